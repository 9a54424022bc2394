"""The input-pipeline benchmark (bench/data.py) on a tiny folder: every row runs, both models."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BENCH_DIR, load_bench

BENCH = BENCH_DIR / "data.py"


def test_pixel_model_reads_one_pixel_and_gap_model_reads_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = load_bench("data")
    monkeypatch.setattr(bench, "SIZE", 8)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    b[0, 0, 0] = a[0, 0, 0]
    both = np.concatenate([a, b])
    for kind, same in (("pixel", True), ("gap", False)):
        monkeypatch.setattr(bench, "MODEL", kind)
        out = np.asarray(bench.keras3_model(3, steps=1).predict(both, verbose=0))
        assert np.allclose(out[0], out[1], atol=1e-6) is same, kind


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gap", "pixel"])
def test_bench_runs_every_row_and_prints_ratios(model: str, tmp_path: Path) -> None:
    args = ["--images", "60", "--epochs", "2", "--source-px", "40", "--size", "32"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args, "--model", model],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OVERFIT_SEARCH_CACHE=str(tmp_path / "cache")),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"model {model}, image size 32, batch 32, 2 epochs" in done.stdout
    ratios = re.findall(r"^ratio project / (.+): ([0-9.]+)x$", done.stdout, re.M)
    assert len(ratios) == 9, done.stdout
    assert all(float(r) > 0 for _, r in ratios)
    assert "tf_keras ImageDataGenerator" in dict(ratios)
