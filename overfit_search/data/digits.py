"""scikit-learn's bundled digits (1,797 real 8x8 images), upscaled to RGB.

Bundled with scikit-learn, so no download; decoding takes well under a second, so the digits
are not cached on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data.dataset import ImageArray, ImageData, LabelArray, split_frame
from overfit_search.data.split import make_rng, sorted_split, split_rule
from overfit_search.errors import DataError


def _digits(
    classes: Sequence[int], image_size: int
) -> tuple[ImageArray, LabelArray, npt.NDArray[np.intp]]:
    """Images, digit values and indices into ``load_digits()`` of the given digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    target = np.asarray(bunch.target)
    index = np.flatnonzero(np.isin(target, [int(c) for c in classes]))
    raw = (np.asarray(bunch.images)[index] * (255.0 / 16.0)).round().astype(np.uint8)
    size = (image_size, image_size)
    gray = np.stack(
        [np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR)) for img in raw]
    ).reshape(len(raw), image_size, image_size)
    images = np.repeat(gray[..., None], 3, axis=-1).astype(np.uint8)
    return images, target[index].astype(np.int32), index


def digits_images(classes: Sequence[int], image_size: int) -> tuple[ImageArray, LabelArray]:
    """All of scikit-learn's bundled digits of ``classes``, as RGB images.

    The 8x8 images (values 0..16) are scaled to 0..255 uint8, upscaled to image_size ×
    image_size with Pillow's bilinear filter and the gray channel is repeated three times.

    Args:
        classes: Digits to keep (0-9).
        image_size: Side of the output images.

    Returns:
        ``(images, labels)``: uint8 (N, S, S, 3) in ``load_digits()`` order, and the
        int32 digit value of each.
    """
    images, labels, _ = _digits(classes, image_size)
    return images, labels


def load_digits_data(
    cfg: DataConfig, cache_dir: Path | None = None, seed: int | None = None
) -> ImageData:
    """The digits source: a seeded split, optionally a tiny training split.

    Validation takes ``cfg.validation_fraction`` of each digit (stratified, or
    ImageDataGenerator's rule on ``load_digits()`` order with ``split: sorted``); with
    ``cfg.train_per_class``, only that many training images per digit are kept (seeded),
    so configurations overfit. Images left out of training appear nowhere (not in
    ``split``). Class names are the digit strings, classes in ascending digit order.

    Args:
        cfg: The sweep's data section (``source: digits``).
        cache_dir: Unused (the digits are not cached).
        seed: Seed of the split; ``None`` uses ``cfg.seed``.

    Returns:
        The split data; ``split.file`` is ``digits:<index into load_digits()>``.

    Raises:
        DataError: Fewer than two digits, or a ``group_pattern`` (folders only).
    """
    del cache_dir
    seed = cfg.seed if seed is None else seed
    classes = sorted({int(c) for c in cfg.digits_classes})
    if len(classes) < 2:
        raise DataError(
            f"data.digits_classes: need two or more different digits, got {cfg.digits_classes}"
        )
    if cfg.group_pattern:
        raise DataError(
            "data.group_pattern: applies to source: folder (a regex on file paths); the "
            "digits source has no sources to group, remove it"
        )
    x, digits, index = _digits(classes, cfg.image_size)
    y = np.searchsorted(classes, digits).astype(np.int32)
    files = [f"digits:{i}" for i in index.tolist()]
    if cfg.split == "sorted":
        is_val = sorted_split([f"{i:06d}" for i in index.tolist()], y, cfg.validation_fraction)
    else:
        is_val = split_rule(cfg.split)(files, y, cfg.validation_fraction, seed)
    is_train = ~is_val
    if cfg.train_per_class is not None:
        rng = make_rng(seed + 1)
        is_train = np.zeros(len(y), dtype=bool)
        for c in range(len(classes)):
            candidates = np.flatnonzero((y == c) & ~is_val)
            is_train[rng.permutation(candidates)[: cfg.train_per_class]] = True
    used = np.flatnonzero(is_train | is_val)
    names = [str(c) for c in classes]
    split = split_frame(
        [files[i] for i in used], [names[y[i]] for i in used.tolist()], is_val[used]
    )
    return ImageData(
        x_train=x[is_train],
        y_train=y[is_train],
        x_val=x[is_val],
        y_val=y[is_val],
        class_names=names,
        split=split,
    )
