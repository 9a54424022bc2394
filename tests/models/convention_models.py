"""Tiny backbones that expect a known input convention, for the probe's tests.

Each is a two-block CNN (Conv → BatchNormalization → ReLU6, like a MobileNet) pretrained for a
few epochs on scikit-learn's digits 0-4 at 16 px under one convention, so it has learnt that
convention's pixel scale; the tests then probe it on digits 5-9 (real transfer). A ``dead``
backbone has random convolution weights and a bias so negative that every feature is exactly
0 under any convention: nothing a linear probe could separate.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from overfit_search.data.digits import digits_images
from overfit_search.models.layers import Preprocess

SIZE = 16
PRETRAIN_EPOCHS = 12


def _blocks(inputs: keras.KerasTensor, rescale: bool) -> keras.KerasTensor:
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs) if rescale else inputs
    for i, filters in enumerate((16, 32)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(6.0, name=f"relu{i}")(x)
        if i == 0:
            x = keras.layers.MaxPooling2D(name="pool0")(x)
    return x


def pretrained_backbone(path: Path, convention: str) -> Path:
    """Pretrain a tiny CNN on digits 0-4 fed under ``convention`` and save its backbone.

    Args:
        path: The ``.keras`` file to write.
        convention: ``unit`` or ``tf`` (the model expects inputs scaled so), or ``rescaling``
            (the model holds ``Rescaling(1/255)`` as its first layer and expects raw pixels).

    Returns:
        ``path``.
    """
    keras.utils.set_random_seed(0)
    x, y = digits_images([0, 1, 2, 3, 4], SIZE)
    inputs = keras.Input((SIZE, SIZE, 3), name="pixels")
    backbone = keras.Model(inputs, _blocks(inputs, convention == "rescaling"), name="backbone")
    outer_in = keras.Input((SIZE, SIZE, 3))
    fed = outer_in if convention == "rescaling" else Preprocess(convention)(outer_in)
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(fed))
    outputs = keras.layers.Dense(5, activation="softmax")(pooled)
    model = keras.Model(outer_in, outputs)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x.astype("float32"), y, epochs=PRETRAIN_EPOCHS, batch_size=32, verbose=0)
    backbone.save(path)
    return path


def dead_backbone(path: Path) -> Path:
    """Save a random-weights CNN whose features are 0 for every input (see the module doc)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(
        8, 3, padding="same", bias_initializer=keras.initializers.Constant(-1e6)
    )(inputs)
    x = keras.layers.ReLU()(x)
    keras.Model(inputs, x, name="dead").save(path)
    return path


def features_are_constant(path: Path) -> bool:
    """Whether the saved model's outputs are all equal on a few digits (what ``dead`` means)."""
    model = keras.saving.load_model(path, compile=False)
    x, _ = digits_images([5, 6], SIZE)
    out = np.asarray(model.predict(x[:16].astype("float32") * 2.0 - 255.0, verbose=0))
    return bool(np.ptp(out) == 0.0)
