"""The trainer and model code under both Keras backends (TensorFlow and JAX).

Keras fixes its backend when it is first imported, so each backend runs
:mod:`tests.models.backend_probe` in its own subprocess (``KERAS_BACKEND=...``) and these
tests read the JSON it writes. The JAX run needs ``pip install "jax[cpu]"``; without it the
JAX cases are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import keras
import pytest

pytestmark = [
    pytest.mark.slow,
    # The probes pin their backend in their own subprocesses, so a run of this module does the
    # same whatever the backend of the pytest process: the TensorFlow pass runs it (both
    # backends), and the JAX pass (KERAS_BACKEND=jax pytest tests/models ...) would only repeat
    # it, ~50 s on 2 cores.
    pytest.mark.skipif(
        keras.config.backend() != "tensorflow",
        reason="the same subprocesses as in the TensorFlow pass, which runs this module",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("tensorflow", "jax")
JAX_MISSING = importlib.util.find_spec("jax") is None


@cache
def _probe(backend: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.models.backend_probe", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"the {backend} probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``probe(backend)``: the probe's result under that backend (each runs once)."""
    base = tmp_path_factory.mktemp("backends")

    def _get(backend: str) -> dict[str, Any]:
        if backend == "jax" and JAX_MISSING:
            pytest.skip('jax is not installed (pip install "jax[cpu]") to test KERAS_BACKEND=jax')
        return _probe(backend, base / backend)

    return _get


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_two_phase_trial_runs(probe: Any, backend: str) -> None:
    result = probe(backend)
    assert result["backend"] == backend
    trial = result["trial"]
    rows = trial["rows"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("val_loss", "train_eval_loss", "gap", "val_accuracy", "keras_loss"):
            assert math.isfinite(row[key]), (backend, row)
    val = [r["val_loss"] for r in rows]
    assert min(val[1:]) < val[0], f"{backend}: val_loss never fell below epoch 1's: {val}"
    assert trial["best_weights_saved"]
    assert trial["trainable_weights"] == 6  # conv2, conv3 and the classifier: kernel + bias
    assert (
        "phase 1 (head): epoch 1, whole backbone frozen (0 trainable backbone weights)"
        in (trial["log"])
    )
    assert "phase 2 (fine-tune): epochs 2-3, backbone layers frozen 4/8" in trial["log"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_freeze_and_batchnorm_modes(probe: Any, backend: str, batchnorm: str) -> None:
    bn = probe(backend)["bn"][batchnorm]
    trains = batchnorm == "train"
    assert bn["frozen_layers"] == 3
    assert bn["layer_trainable"] == {
        "conv0": False,
        "bn0": False,
        "relu0": False,
        "conv1": True,
        "bn1": trains,  # batchnorm: frozen keeps it in inference mode among unfrozen layers
        "relu1": True,
    }
    # frozen BN: neither its scale/offset nor its moving statistics move (inference mode)
    assert bn["bn_moved"]["bn0"] == [False, False, False, False]
    assert bn["bn_moved"]["bn1"] == [trains] * 4
    # conv1 kernel+bias, [bn1 gamma+beta,] classifier kernel+bias
    assert bn["trainable_weights"] == (6 if trains else 4)
    assert bn["non_trainable_weights"] == (8 if trains else 10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("batchnorm", "trainable", "non_trainable", "bn_trainable"),
    [("frozen", 28, 234, 0), ("train", 80, 182, 26)],
)
def test_mobilenet_v2_freeze_counts(
    probe: Any, backend: str, batchnorm: str, trainable: int, non_trainable: int, bn_trainable: int
) -> None:
    # 52 BatchNormalization layers with gamma and beta each; 26 of them in the unfrozen half
    assert probe(backend)["mobilenet_v2"][batchnorm] == {
        "frozen_layers": 76,
        "trainable_weights": trainable,
        "non_trainable_weights": non_trainable,
        "bn_trainable": bn_trainable,
        "bn_total": 52,
    }


def test_tfhub_needs_tensorflow(probe: Any) -> None:
    message = probe("jax")["tfhub_message"]
    assert "tfhub: backbones need the TensorFlow backend" in message
    assert "KERAS_BACKEND=jax" in message


def test_builtin_cache_loads_under_both_backends(probe: Any) -> None:
    # The same cached .keras file, whichever backend pretrained it, loads to the same weights.
    assert probe("jax")["builtin_checksums"] == pytest.approx(
        probe("tensorflow")["builtin_checksums"]
    )
