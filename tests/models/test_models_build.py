from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from overfit_search.config import sweep_from_dict
from overfit_search.config.schema import ModelConfig
from overfit_search.errors import ConfigError
from overfit_search.models.backbones import build_backbone, freeze
from overfit_search.models.build import build_model
from overfit_search.models.layers import Preprocess
from tests.conftest import tiny_sweep

PARAMS: dict[str, Any] = {
    "dropout": 0.3,
    "l2": 1e-3,
    "learning_rate": 1e-3,
    "augmentation": 0.5,
    "frozen_fraction": 0.5,
}


@pytest.mark.parametrize(
    ("backbone", "size", "mode"),
    [
        ("mobilenet", 32, "tf"),
        ("mobilenet_v2", 32, "tf"),
        ("efficientnet_b0", 32, "none"),
        ("resnet50", 32, "caffe"),
    ],
)
def test_application_backbones_build_with_their_preprocessing(
    backbone: str, size: int, mode: str
) -> None:
    sweep = sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": size},
            model={"backbone": backbone, "weights": "none"},
        )
    )
    built = build_model(sweep, PARAMS, num_classes=3)
    model = built.model
    assert model.output_shape == (None, 3)
    kinds = {"tf": keras.layers.Rescaling, "caffe": keras.layers.Conv2D}
    names = [layer.name for layer in model.layers]
    if mode == "none":
        assert "preprocess" not in names
    else:
        assert isinstance(model.get_layer("preprocess"), kinds[mode])
    assert model.get_layer("augmentation") is not None
    probs = model.predict(np.zeros((2, size, size, 3), dtype=np.uint8), verbose=0)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # L2 on the classifier; none on the backbone
    assert len(model.losses) == 1


def test_freeze_counts_from_the_input_side_and_bn_is_frozen() -> None:
    sweep = sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 32},
            model={"backbone": "mobilenet_v2", "weights": "none"},
        )
    )
    backbone = build_backbone(sweep.model, 32)
    layers = [lay for lay in backbone.model.layers if not isinstance(lay, keras.layers.InputLayer)]
    count = freeze(backbone, 0.5, None, "train")  # batchnorm: frozen is test_batchnorm.py's
    assert count == round(0.5 * len(layers))
    assert all(not lay.trainable for lay in layers[:count])
    assert all(lay.trainable for lay in layers[count:])
    frozen_bn = [lay for lay in layers[:count] if isinstance(lay, keras.layers.BatchNormalization)]
    assert frozen_bn and not any(lay.trainable for lay in frozen_bn)
    assert freeze(backbone, None, 10_000) == len(layers)  # a count past the end freezes all


@pytest.mark.parametrize(
    ("mode", "pixel", "expected"),
    [("tf", 255.0, 1.0), ("tf", 0.0, -1.0), ("unit", 255.0, 1.0), ("none", 7.0, 7.0)],
)
def test_preprocess_modes(mode: str, pixel: float, expected: float) -> None:
    out = keras.ops.convert_to_numpy(Preprocess(mode)(np.full((1, 2, 2, 3), pixel, "float32")))
    assert np.allclose(out, expected)


def test_attention_head_and_hidden_units() -> None:
    sweep = sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 32},
            model={
                "backbone": "mobilenet",
                "weights": "none",
                "head": {"attention_heads": 2, "hidden_units": 8},
            },
        )
    )
    model = build_model(sweep, {**PARAMS, "augmentation": 0.0}, num_classes=4).model
    assert model.get_layer("attention_mha").num_heads == 2
    assert model.get_layer("hidden").units == 8
    assert model.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape == (1, 4)


def test_a_model_file_with_a_lambda_layer_needs_unsafe_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overfit_search.models.backbones import UNSAFE_LOAD_ENV

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    keras.Model(inputs, x).save(tmp_path / "lam.keras")
    cfg = ModelConfig(backbone=f"file:{tmp_path / 'lam.keras'}")
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"holds a Lambda layer.*pass --unsafe-load"):
        build_backbone(cfg, 16)
    monkeypatch.setenv(UNSAFE_LOAD_ENV, "1")
    assert build_backbone(cfg, 16).model.get_layer("double") is not None


def _nested_file(tmp_path: Path) -> str:
    """A saved float32 Functional model whose backbone is a nested sub-model (like the fixture)."""
    inner_in = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, name="c1")(inner_in)
    y = keras.layers.BatchNormalization(name="bn")(y)
    inner = keras.Model(inner_in, keras.layers.ReLU(name="r")(y), name="inner")
    outer_in = keras.Input((16, 16, 3))
    z = keras.layers.GlobalAveragePooling2D()(inner(outer_in))
    keras.Model(outer_in, keras.layers.Dense(2)(z)).save(tmp_path / "nested.keras")
    return f"file:{tmp_path / 'nested.keras'}#inner"


FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@pytest.mark.parametrize(
    "backbone",
    [
        "mobilenet_v2",  # built fresh, in the policy
        "builtin:digits_cnn",  # loaded from the saved builtin: cloned into it
        "nested-file",  # a saved file's nested sub-model (file:PATH#LAYER)
        "fixture",  # the real pretrained MobileNetV2 file (skipped without ../shared/fixtures)
    ],
)
def test_mixed_precision_reaches_every_backbone_and_keeps_its_weights(
    tmp_path: Path, backbone: str
) -> None:
    from overfit_search.training.precision import dtype_policy

    size = 16
    if backbone == "nested-file":
        backbone = _nested_file(tmp_path)
    elif backbone == "fixture":
        h5 = FIXTURE / "mobilenetv2_160_stanford_dogs.h5"
        if not h5.is_file():
            pytest.skip(f"no pretrained fixture at {h5}")
        backbone, size = f"file:{h5}#mobilenetv2_1.00_160", 160
    model_cfg: dict[str, Any] = {"backbone": backbone}
    fresh = backbone == "mobilenet_v2"
    if fresh:
        model_cfg["weights"], size = "none", 32
    cfg = ModelConfig(**model_cfg)
    saved = build_backbone(cfg, size).model  # float32, as saved or built
    with dtype_policy("bfloat16"):
        mixed = build_backbone(cfg, size).model
    layers = [lay for lay in mixed._flatten_layers() if not isinstance(lay, keras.Model)]
    assert layers
    assert all(
        lay.dtype_policy.name == "mixed_bfloat16"
        for lay in layers
        if not isinstance(lay, keras.layers.InputLayer)
    )
    assert keras.config.dtype_policy().name == "float32"
    if fresh:
        return  # random weights each build: nothing to compare
    for before, after in zip(saved.get_weights(), mixed.get_weights(), strict=True):
        assert after.dtype == before.dtype == np.float32  # variables stay float32
        np.testing.assert_array_equal(before, after)  # the pretrained weights are kept


def test_every_backbone_scheme_the_schema_accepts_has_a_builder() -> None:
    """models.catalog.SCHEMES (what config/ accepts, without Keras) and backbones.BACKBONES
    (what models/ builds) name the same sources."""
    from overfit_search.models.backbones import BACKBONES
    from overfit_search.models.catalog import SCHEMES

    assert {s.rstrip(":") for s in SCHEMES} | {"application"} == set(BACKBONES)
