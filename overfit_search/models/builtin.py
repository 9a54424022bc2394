"""Small backbones the project pretrains itself, offline, and caches (``builtin:NAME``).

``digits_cnn`` is a four-block CNN pretrained on scikit-learn's digits 0-4 (real images that
ship with scikit-learn), so the demo is real transfer learning onto digits 5-9 with no
download. Pretraining takes a few seconds on two cores and is cached per image size.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import keras
import numpy as np

from overfit_search.errors import ConfigError
from overfit_search.paths import cache_root

PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
PRETRAIN_EPOCHS = 12
_VERSION = 2


def cache_dir() -> Path:
    """Where pretrained builtins are kept (``$OVERFIT_SEARCH_CACHE`` or ~/.cache/overfit-search)."""
    return cache_root() / "builtin"


def _digits_cnn(image_size: int) -> keras.Model:
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for i, filters in enumerate((16, 32, 64, 96)):
        # No BatchNorm: with ~100 fine-tuning images its moving statistics never catch up,
        # and inference-mode losses would say nothing about the training-mode fit.
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    return keras.Model(inputs, x, name="digits_cnn")


def _pretrain_digits_cnn(image_size: int) -> keras.Model:
    from overfit_search.data import digits_images

    x, y = digits_images(PRETRAIN_CLASSES, image_size)
    keras.utils.set_random_seed(1234)
    backbone = _digits_cnn(image_size)
    inputs = keras.Input((image_size, image_size, 3))
    features = backbone(keras.layers.Rescaling(1 / 255)(inputs))
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(len(PRETRAIN_CLASSES), activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    order = np.random.default_rng(1234).permutation(len(x))
    model.fit(
        x[order].astype("float32"), y[order], batch_size=64, epochs=PRETRAIN_EPOCHS, verbose=0
    )
    return backbone


_BUILDERS = {"digits_cnn": _pretrain_digits_cnn}


def load_builtin(name: str, image_size: int) -> keras.Model:
    """Load a builtin backbone, pretraining and caching it on first use.

    Concurrent trials wait on a file lock so the backbone is pretrained once.
    """
    if name not in _BUILDERS:
        raise ConfigError(
            f"model.backbone: unknown builtin '{name}'; choose one of: {', '.join(_BUILDERS)}"
        )
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_v{_VERSION}_{image_size}px.keras"
    with (folder / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            backbone = _BUILDERS[name](image_size)
            tmp = path.with_suffix(".tmp.keras")
            backbone.save(tmp)
            tmp.replace(path)
    model = keras.saving.load_model(path, compile=False)
    assert isinstance(model, keras.Model)
    return model
