"""``model.batchnorm``: the backbone's BatchNormalization layers stay frozen unless asked.

Keras 3 runs a non-trainable BatchNormalization in inference mode. Fine-tuning a pretrained
backbone with its BatchNormalization layers training normalises each small batch with its own
statistics while evaluation uses moving statistics that barely move; the Keras
transfer-learning guide keeps them in inference mode, and so does ``batchnorm: frozen``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from overfit_search.config import sweep_from_dict
from overfit_search.data import load_data
from overfit_search.models.backbones import build_backbone, freeze
from overfit_search.training.trial import run_trial
from tests.conftest import MOBILENET_H5, fixture_digits_sweep, tiny_sweep


def _bn_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_bn_layers(layer))
    return found


def _mobilenet() -> Any:
    sweep = sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 32},
            model={"backbone": "mobilenet_v2", "weights": "none"},
        )
    )
    return build_backbone(sweep.model, 32)


HALF_UNFROZEN = {"dropout": 0.0, "l2": 0.0, "augmentation": 0.0, "frozen_fraction": 0.5}


@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_freeze_leaves_batchnorm_trainable_only_when_asked(batchnorm: str) -> None:
    backbone = _mobilenet()
    layers = [lay for lay in backbone.model.layers if not isinstance(lay, keras.layers.InputLayer)]
    count = freeze(backbone, 0.5, None, batchnorm)
    others = [lay for lay in layers if not isinstance(lay, keras.layers.BatchNormalization)]
    assert [lay.trainable for lay in others] == [
        i >= count for i, lay in enumerate(layers) if lay in others
    ]
    norms = [
        (i, lay) for i, lay in enumerate(layers) if isinstance(lay, keras.layers.BatchNormalization)
    ]
    assert any(i >= count for i, _ in norms)  # some sit among the unfrozen layers
    expected = [batchnorm == "train" and i >= count for i, _ in norms]
    assert [lay.trainable for _, lay in norms] == expected


def test_frozen_batchnorm_reaches_a_nested_backbone() -> None:
    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(
        inner_in, keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inner_in))
    )
    outer_in = keras.Input((8, 8, 3))
    outer = keras.Model(outer_in, keras.layers.BatchNormalization()(inner(outer_in)))
    from overfit_search.models.backbones import Backbone

    backbone = Backbone(model=outer, preprocess="none", input_size=8, layer_freezable=True)
    freeze(backbone, 0.0, None, "frozen")
    assert len(_bn_layers(outer)) == 2
    assert not any(lay.trainable for lay in _bn_layers(outer))
    assert inner.layers[1].trainable  # the Conv2D still trains


@pytest.mark.slow
@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_a_real_trial_keeps_batchnorm_statistics_only_when_frozen(
    batchnorm: str, tmp_path: Path
) -> None:
    # weights: none, so every moving mean starts at 0 and every gamma at 1.
    sweep = sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 32, "train_per_class": 8},
            model={"backbone": "mobilenet_v2", "weights": "none", "batchnorm": batchnorm},
            train={"batch_size": 16, "max_epochs": 1},
        )
    )
    params = {**HALF_UNFROZEN, "learning_rate": 1e-3}
    model = run_trial(sweep, params, load_data(sweep.data), lambda row: None, tmp_path, seed=0)
    norms = _bn_layers(model)
    moved = [
        not np.allclose(keras.ops.convert_to_numpy(lay.moving_mean), 0.0)
        or not np.allclose(keras.ops.convert_to_numpy(lay.gamma), 1.0)
        for lay in norms
    ]
    assert norms
    if batchnorm == "frozen":
        assert not any(moved)
    else:
        assert any(moved) and not all(moved)  # the unfrozen half moved, the frozen half did not
    assert f"batchnorm {batchnorm}" in (tmp_path / "trial.log").read_text()


def _fixture_trial(batchnorm: str, trial_dir: Path) -> list[dict[str, Any]]:
    sweep = sweep_from_dict(
        fixture_digits_sweep(
            "bn",
            f"file:{MOBILENET_H5}#mobilenetv2_1.00_160",
            0.2,
            model={"batchnorm": batchnorm},
            train={"batch_size": 16, "max_epochs": 3},
        )
    )
    params = {**HALF_UNFROZEN, "learning_rate": 1e-4}
    rows: list[dict[str, Any]] = []
    run_trial(sweep, params, load_data(sweep.data), rows.append, trial_dir, seed=0)
    return rows


@pytest.mark.slow
@pytest.mark.skipif(
    not MOBILENET_H5.is_file(), reason=f"the pretrained fixture {MOBILENET_H5} is absent"
)
@pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    # 75-240 s under JAX on 2 CPU cores (XLA compiles the 160 px MobileNetV2 twice). Under JAX
    # the mechanism is still trained for real (test_a_real_trial_keeps_batchnorm_statistics_
    # only_when_frozen) and the fixture is fine-tuned for real (test_fixture_transfer.py).
    reason="the TensorFlow pass compares the two fine-tunes of the fixture",
)
def test_fine_tuning_the_pretrained_fixture_is_better_with_frozen_batchnorm(tmp_path: Path) -> None:
    # Half of the real MobileNetV2 unfrozen, a careful learning rate: with its BatchNormalization
    # layers training, evaluation (moving statistics) and training (batch statistics) disagree.
    frozen = _fixture_trial("frozen", tmp_path / "frozen")
    trained = _fixture_trial("train", tmp_path / "train")
    print(
        {
            "frozen": [(r["val_loss"], r["val_accuracy"]) for r in frozen],
            "train": [(r["val_loss"], r["val_accuracy"]) for r in trained],
        }
    )
    best_frozen = min(r["val_loss"] for r in frozen)
    best_trained = min(r["val_loss"] for r in trained)
    assert best_frozen < 0.8 * best_trained
    assert max(r["val_accuracy"] for r in frozen) > max(r["val_accuracy"] for r in trained)
