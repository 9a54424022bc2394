"""The built-in-layer preprocessing and attention head compute what the old custom layers did.

Models the tool writes must load with plain Keras (issue 16), so ``build_model`` uses Keras's own
layers only; these tests hold them to the old ``Preprocess`` / ``PositionAttention`` numbers and
check the inference model (no augmentation) and mixed precision. Backend-agnostic (CI runs them
under JAX too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from overfit_search.config import sweep_from_dict
from overfit_search.models.build import AUGMENTATION_LAYER, build_model, inference_model
from overfit_search.models.layers import (
    PREPROCESS_MODES,
    PositionAttention,
    Preprocess,
    attention_block,
    preprocess_layer,
)
from overfit_search.training.final import copy_legacy_weights, load, load_trial_weights
from overfit_search.training.precision import dtype_policy
from tests.conftest import tiny_sweep

PIXELS = np.random.default_rng(0).uniform(0.0, 255.0, (2, 5, 4, 3)).astype("float32")
PIXELS[0, 0, 0] = (0.0, 127.5, 255.0)  # the ends of the range and the middle, exactly


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_builtin_preprocessing_equals_the_old_preprocess_layer(mode: str) -> None:
    old = keras.ops.convert_to_numpy(Preprocess(mode)(PIXELS))
    layer = preprocess_layer(mode)
    new = PIXELS if layer is None else keras.ops.convert_to_numpy(layer(PIXELS))
    assert (layer is None) == (mode == "none")
    assert new.dtype == np.float32
    # the same formulas in another order (x * (1/127.5) - 1 vs x / 127.5 - 1): float32 rounding
    np.testing.assert_allclose(new, old, rtol=1e-6, atol=2e-6)
    if mode == "caffe":  # a permutation and a bias: bit for bit
        np.testing.assert_array_equal(new, old)
        assert layer is not None and not layer.trainable_weights


def test_builtin_preprocessing_casts_to_the_compute_dtype_under_mixed_precision() -> None:
    with dtype_policy("float16"):
        layers = [preprocess_layer(mode) for mode in ("tf", "unit", "torch", "caffe")]
    for layer in layers:
        assert layer is not None
        out = layer(PIXELS)  # float32, as the model's float32 Input gives them
        assert keras.backend.standardize_dtype(out.dtype) == "float16", layer.name


def test_attention_block_equals_position_attention_with_its_weights() -> None:
    keras.utils.set_random_seed(0)
    features = np.random.default_rng(1).normal(size=(2, 3, 4, 8)).astype("float32")
    inputs = keras.Input((3, 4, 8))
    old = keras.Model(inputs, PositionAttention(2, name="attention")(inputs))
    inputs = keras.Input((3, 4, 8))
    new = keras.Model(inputs, attention_block(inputs, 2, name="attention"))
    assert all(type(layer).__module__.startswith("keras.") for layer in new.layers)
    for layer in old.layers:  # non-trivial BatchNorm statistics too
        if isinstance(layer, PositionAttention):
            weights = layer.norm.get_weights()
            layer.norm.set_weights([w + 0.1 * (i + 1) for i, w in enumerate(weights)])
    copy_legacy_weights(old, new)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(new(features)),
        keras.ops.convert_to_numpy(old(features)),
        rtol=1e-5,
        atol=1e-6,
    )


def _attention_sweep(**train: Any) -> Any:
    return sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 16},
            model={"backbone": "builtin:digits_cnn", "head": {"attention_heads": 2}},
            train={"augment_flip": True, **train},
        )
    )


PARAMS: dict[str, Any] = {
    "dropout": 0.2,
    "l2": 1e-4,
    "learning_rate": 1e-3,
    "augmentation": 0.5,
    "frozen_fraction": 0.5,
}


def test_the_inference_model_is_the_trained_one_without_augmentation() -> None:
    model = build_model(_attention_sweep(), PARAMS, num_classes=3, seed=0).model
    served = inference_model(model)
    names = [layer.name for layer in served.layers]
    assert AUGMENTATION_LAYER in [layer.name for layer in model.layers]
    assert AUGMENTATION_LAYER not in names
    assert {"attention_mha", "attention_norm", "classes"} <= set(names)
    for layer in served.layers:  # shared, not copied: the trained weights themselves
        if layer.weights:
            assert model.get_layer(layer.name) is layer
    x = PIXELS[:, :4, :4].repeat(4, axis=1).repeat(4, axis=2)[:, :16, :16]
    # augmentation does nothing in inference: the same numbers (to rounding, should a backend's
    # compiler fuse the two graphs differently)
    np.testing.assert_allclose(
        served.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-6
    )


def test_older_weights_and_models_of_the_custom_layer_model_still_load(tmp_path: Path) -> None:
    sweep = _attention_sweep()
    keras.utils.set_random_seed(3)
    legacy = build_model(sweep, PARAMS, num_classes=3, seed=0, legacy=True).model
    assert isinstance(legacy.get_layer("attention"), PositionAttention)
    x = np.random.default_rng(2).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    expected = legacy.predict(x, verbose=0)
    path = tmp_path / "best.weights.h5"
    legacy.save_weights(path)
    model = load_trial_weights(sweep, PARAMS, 3, path, seed=0)
    assert not any(isinstance(layer, PositionAttention | Preprocess) for layer in model.layers)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # and a .keras model an older version wrote still loads with the package
    legacy.save(tmp_path / "old.keras")
    np.testing.assert_allclose(
        load(tmp_path / "old.keras").predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_inference_model_outputs_float32_probabilities(precision: str) -> None:
    if precision == "float16" and keras.backend.backend() == "jax":
        pytest.skip("JAX on CPU has no float16 dot_general (F16_F16_F32); GPUs have it")
    sweep = _attention_sweep(mixed_precision=precision)
    with dtype_policy(sweep.train.mixed_precision):
        model = build_model(sweep, PARAMS, num_classes=3, seed=0).model
    served = inference_model(model)
    assert served.get_layer("preprocess").compute_dtype == precision
    p = served.predict(np.full((2, 16, 16, 3), 200.0, "float32"), verbose=0)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-3)
