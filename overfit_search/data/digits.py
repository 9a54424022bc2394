"""scikit-learn's bundled digits (1,797 real 8x8 images), upscaled to RGB."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data.dataset import ImageData
from overfit_search.data.split import stratified


def digits_images(classes: Sequence[int], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All digits of ``classes``: uint8 (N, S, S, 3) upscaled bilinearly, and digit labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = np.isin(bunch.target, list(classes))
    raw = (bunch.images[keep] * (255.0 / 16.0)).round().astype(np.uint8)
    images = np.stack(
        [
            np.asarray(
                Image.fromarray(img).resize((image_size, image_size), Image.Resampling.BILINEAR)
            )
            for img in raw
        ]
    )
    return np.repeat(images[..., None], 3, axis=-1), bunch.target[keep].astype(np.int32)


def load_digits_data(cfg: DataConfig) -> ImageData:
    """The digits source: a seeded stratified split, optionally a tiny training split."""
    from sklearn.datasets import load_digits

    classes = sorted(set(cfg.digits_classes))
    x, digits = digits_images(classes, cfg.image_size)
    index = np.flatnonzero(np.isin(load_digits().target, classes))
    y = np.searchsorted(classes, digits).astype(np.int32)
    is_val = stratified(y, cfg.validation_fraction, cfg.seed)
    is_train = ~is_val
    if cfg.train_per_class is not None:
        rng = np.random.default_rng(cfg.seed + 1)
        is_train = np.zeros(len(y), dtype=bool)
        for c in range(len(classes)):
            idx = np.flatnonzero((y == c) & ~is_val)
            is_train[rng.permutation(idx)[: cfg.train_per_class]] = True
    subset = np.where(is_val, "validation", np.where(is_train, "train", "unused"))
    split = pd.DataFrame(
        {
            "file": [f"digits:{i}" for i in index],
            "label": [str(classes[c]) for c in y],
            "subset": subset,
            "group": "",
        }
    )
    return ImageData(
        x[is_train], y[is_train], x[is_val], y[is_val], [str(c) for c in classes], split
    )
