"""Real transfer learning: the pretrained MobileNetV2 fixture beats the same net from scratch.

The fixture (``/work/shared/fixtures/mobilenetv2_160_stanford_dogs.h5``, see its README) is a
MobileNetV2 trained on Stanford Dogs. Its backbone has a fixed 160 px input, so the trial's
model resizes the 32 px digits up to 160 px. The baseline is the same architecture with fresh
random weights (``keras.models.clone_model`` of the backbone, saved as a ``file:`` model), so
the two runs differ only in the initial weights. Measured on 2 shared CPU cores: about 30-75 s.

The JAX pass (``KERAS_BACKEND=jax``) fine-tunes the pretrained fixture for real and holds it to the
same bars against chance, but leaves the from-scratch twin (half the test's time, 30+ s under
JAX) to the TensorFlow pass: its training is the same trainer on the same architecture.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import pytest

from overfit_search.config import sweep_from_dict
from overfit_search.data import load_data
from tests.conftest import MOBILENET_H5, fixture_digits_sweep

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not MOBILENET_H5.is_file(), reason=f"the pretrained fixture {MOBILENET_H5} is absent"
    ),
]

BACKBONE_LAYER = "mobilenetv2_1.00_160"
EPOCHS = 2
PARAMS: dict[str, Any] = {
    "dropout": 0.0,
    "l2": 0.0,
    "learning_rate": 1e-2,
    "augmentation": 0.0,
    "frozen_fraction": 1.0,  # features only: the classic transfer setting
}


def _random_twin(path: Path) -> None:
    """Save the fixture's backbone architecture with fresh random weights to ``path``."""
    full = keras.saving.load_model(MOBILENET_H5, compile=False)
    backbone = full.get_layer(BACKBONE_LAYER)
    keras.utils.set_random_seed(0)
    twin = keras.models.clone_model(backbone)
    assert [w.shape for w in twin.weights] == [w.shape for w in backbone.weights]
    twin.save(path)


def _trial(backbone: str, trial_dir: Path) -> list[dict[str, Any]]:
    from overfit_search.training.trial import run_trial

    sweep = sweep_from_dict(
        fixture_digits_sweep(
            "fixture", backbone, 0.1, train={"batch_size": 32, "max_epochs": EPOCHS}
        )
    )
    rows: list[dict[str, Any]] = []
    run_trial(sweep, PARAMS, load_data(sweep.data), rows.append, trial_dir, seed=0)
    return rows


def _check_rows(rows: list[dict[str, Any]]) -> None:
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert all(math.isfinite(r["val_loss"]) for r in rows)


def test_pretrained_fixture_beats_the_same_net_from_scratch(tmp_path: Path) -> None:
    pretrained = _trial(f"file:{MOBILENET_H5}#{BACKBONE_LAYER}", tmp_path / "pretrained")
    _check_rows(pretrained)
    print(  # shown with pytest -rP
        "val_loss by epoch: pretrained", [round(r["val_loss"], 3) for r in pretrained]
    )
    best_pretrained = min(r["val_loss"] for r in pretrained)
    # 5 classes: chance is ln 5 = 1.61 and accuracy 0.2
    assert best_pretrained < math.log(5) - 0.2, pretrained
    assert max(r["val_accuracy"] for r in pretrained) > 0.4
    assert pretrained[-1]["val_loss"] < pretrained[0]["val_loss"]
    if keras.config.backend() != "tensorflow":
        return  # the JAX pass: the TensorFlow pass trains the from-scratch twin (docstring)

    twin = tmp_path / "random_mobilenetv2_160.keras"
    _random_twin(twin)
    scratch = _trial(f"file:{twin}", tmp_path / "scratch")
    _check_rows(scratch)
    print("val_loss by epoch: scratch", [round(r["val_loss"], 3) for r in scratch])
    best_scratch = min(r["val_loss"] for r in scratch)
    assert best_pretrained < best_scratch - 0.2, (pretrained, scratch)
