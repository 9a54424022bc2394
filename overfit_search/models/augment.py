"""Augmentation layers whose every factor is scaled by one strength in [0, 1]."""

from __future__ import annotations

import keras

AUGMENTATION_LAYER = "augmentation"
"""Name of the Sequential :func:`augmentation` returns (left out of the model that is written)."""

# Factors at strength 1.0; strength s multiplies each.
MAX_FACTORS = {"rotation": 0.10, "zoom": 0.15, "translation": 0.10, "contrast": 0.30}


def augmentation(strength: float, flip: bool = True, seed: int = 0) -> keras.Sequential | None:
    """Flip, rotation, zoom, translation and contrast, active only in training.

    Args:
        strength: 0 disables augmentation; 1 uses :data:`MAX_FACTORS`.
        flip: Include a random horizontal flip (not scaled: it is on or off).
        seed: Seed of the random layers.

    Returns:
        A Sequential of Keras preprocessing layers, or None when ``strength`` is 0.
    """
    if strength <= 0:
        return None
    f = {k: v * strength for k, v in MAX_FACTORS.items()}
    layers: list[keras.layers.Layer] = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    layers += [
        keras.layers.RandomRotation(f["rotation"], fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomZoom(f["zoom"], fill_mode="nearest", seed=seed + 2),
        keras.layers.RandomTranslation(
            f["translation"], f["translation"], fill_mode="nearest", seed=seed + 3
        ),
        keras.layers.RandomContrast(f["contrast"], value_range=(0, 255), seed=seed + 4),
    ]
    return keras.Sequential(layers, name=AUGMENTATION_LAYER)
