"""tfhub: backbones through keras.layers.TFSMLayer, on a SavedModel exported in the test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import pytest

from overfit_search.config import Sweep, sweep_from_dict
from overfit_search.errors import ConfigError
from overfit_search.models.build import build_model
from tests.conftest import tiny_sweep

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tfhub: needs the TensorFlow backend"
)


@pytest.fixture(scope="module")
def saved_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny feature-vector module, as TF-Hub publishes them: images in [0, 1] -> (N, 8)."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("hub") / "feature_vector"
    keras.Model(inputs, x).export(str(path), verbose=False)
    return path


def _sweep(backbone: str, frozen: float) -> Sweep:
    return sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 16, "digits_classes": [1, 2]},
            model={"backbone": backbone},
            search={"dropout": 0.0, "l2": 0.0, "learning_rate": 0.01, "augmentation": 0.0,
                    "frozen_fraction": frozen},
        )
    )  # fmt: skip


@pytest.mark.parametrize(("frozen", "trainable"), [(0.0, True), (0.4, True), (0.5, False)])
def test_module_is_frozen_all_or_nothing_and_fine_tunes_when_trainable(
    saved_module: Path, frozen: float, trainable: bool
) -> None:
    sweep = _sweep(f"tfhub:{saved_module}", frozen)
    params = {"dropout": 0.0, "l2": 0.0, "learning_rate": 0.01, "augmentation": 0.0,
              "frozen_fraction": frozen}  # fmt: skip
    built = build_model(sweep, params, num_classes=2)
    module = next(lay for lay in built.model.layers if isinstance(lay, keras.layers.TFSMLayer))
    assert module.trainable is trainable
    assert (len(module.trainable_weights) > 0) is trainable
    model = built.model
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=16)
    before = [np.array(w) for w in module.weights]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    moved = any(
        not np.allclose(a, np.array(b)) for a, b in zip(before, module.weights, strict=True)
    )
    assert moved is trainable  # a trainable module fine-tunes, a frozen one does not
    assert model.predict(x, verbose=0).shape == (16, 2)


def test_a_handle_resolves_through_tfhub_cache_dir(
    saved_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    cached = tmp_path / hashlib.sha1(handle.encode()).hexdigest()
    cached.symlink_to(saved_module, target_is_directory=True)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    from overfit_search.models.backbones import build_backbone

    sweep = _sweep(f"tfhub:{handle}", 1.0)
    backbone = build_backbone(sweep.model, 16)
    assert isinstance(backbone.model, keras.layers.TFSMLayer)
    monkeypatch.delenv("TFHUB_CACHE_DIR")
    with pytest.raises(ConfigError, match=r"not a local SavedModel directory.*TFHUB_CACHE_DIR"):
        build_backbone(sweep.model, 16)
