"""The GPU benchmark (bench/gpu.py) on CPU with --tiny: every part runs and reports JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BENCH_DIR

BENCH = BENCH_DIR / "gpu.py"
PARTS = "a,c,d"
"""Part b (4 packed Ray trials against 1) runs too (``--tiny --parts b``, ~70 s on 2 cores),
but is left out here to keep the test short; d goes through Ray and the CLI all the same."""


@pytest.mark.slow
def test_tiny_run_reports_every_part_and_ends_with_the_summary(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--parts", PARTS, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(BENCH_DIR.parent)),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines == [json.loads(line) for line in (tmp_path / "gpu.jsonl").read_text().splitlines()]
    assert lines[0]["part"] == "setup" and lines[0]["tiny"] is True, done.stdout[-3000:]
    assert lines[-1]["part"] == "summary" and [x["part"] for x in lines].count("summary") == 1
    summary = lines[-1]
    assert summary["failed"] == {}, done.stdout[-3000:]
    assert set(summary["ratios"]) == {"a trainer/bare", "c mixed/float32", "d trials"}
    assert all(v > 0 for v in summary["ratios"].values())
    assert summary["ratios"]["d trials"] == 4  # every trial of the tiny sweep ran
    measured = {(x["part"], x["what"]) for x in lines[1:-1]}
    for part, what in [
        ("a", "trainer float32"),
        ("a", "bare keras fit float32"),
        ("a", "ratio trainer / bare"),
        ("c", "trainer mixed_precision"),
        ("c", "ratio mixed / float32"),
        ("d", "sweep through the CLI"),
    ]:
        assert (part, what) in measured
    rates = [x["images_per_s"] for x in lines if "images_per_s" in x]
    assert len(rates) == 3 and all(r > 0 for r in rates)


def test_an_unknown_part_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--parts", "a,z"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown parts ['z']" in done.stderr
