"""The digits source: scikit-learn's bundled 8x8 digits, upscaled, split, trimmed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from overfit_search.config.schema import DataConfig
from overfit_search.data import digits_images, load_data
from overfit_search.errors import DataError

TARGET = load_digits().target


def _cfg(**kw: Any) -> DataConfig:
    return DataConfig(source="digits", **{"image_size": 12, **kw})


@pytest.mark.parametrize(("classes", "size"), [([3, 5], 16), ([0, 1, 2, 3, 4], 8), ([9], 32)])
def test_digits_images_are_every_digit_of_the_classes_upscaled_to_rgb(
    classes: list[int], size: int
) -> None:
    x, y = digits_images(classes, size)
    assert x.dtype == np.uint8 and x.shape == (np.isin(TARGET, classes).sum(), size, size, 3)
    assert y.tolist() == TARGET[np.isin(TARGET, classes)].tolist()
    assert (x[..., 0] == x[..., 1]).all() and (x[..., 0] == x[..., 2]).all()
    assert x.max() == 255 and x.min() == 0


def test_digits_scale_0_16_to_0_255_then_resize_bilinear() -> None:
    raw = load_digits().images[TARGET == 7]
    scaled = (raw * (255 / 16)).round().astype(np.uint8)
    x8, _ = digits_images([7], 8)
    assert (x8[..., 0] == scaled).all()
    x20, _ = digits_images([7], 20)
    up = np.asarray(Image.fromarray(scaled[0]).resize((20, 20), Image.Resampling.BILINEAR))
    assert (x20[0, ..., 0] == up).all()


def test_digits_source_splits_every_class_and_names_files_by_index() -> None:
    data = load_data(_cfg(digits_classes=[8, 2, 5], validation_fraction=0.25, seed=3))
    assert data.class_names == ["2", "5", "8"]
    assert set(np.unique(data.y_train)) == {0, 1, 2}
    counts = [int(np.isin(TARGET, [d]).sum()) for d in (2, 5, 8)]
    assert np.bincount(data.y_val).tolist() == [round(n * 0.25) for n in counts]
    assert len(data.y_train) + len(data.y_val) == sum(counts)
    index = data.split.file.str.removeprefix("digits:").astype(int)
    assert (TARGET[index].astype(str) == data.split.label.to_numpy()).all()
    assert set(data.split.subset) == {"train", "validation"} and (data.split.group == "").all()
    assert data.skipped == [] and len(data.content_hash) == 64


@pytest.mark.parametrize("per_class", [2, 10, 20])
def test_train_per_class_keeps_that_many_training_images_per_class(per_class: int) -> None:
    cfg = _cfg(digits_classes=[5, 6, 7], validation_fraction=0.3, train_per_class=per_class)
    data = load_data(cfg)
    assert np.bincount(data.y_train).tolist() == [per_class] * 3
    full = load_data(_cfg(digits_classes=[5, 6, 7], validation_fraction=0.3))
    assert (data.x_val == full.x_val).all()  # validation does not shrink
    assert len(data.split) == 3 * per_class + len(data.y_val)
    assert (data.split.subset == "train").sum() == 3 * per_class


def test_train_per_class_draw_is_seeded() -> None:
    def train_files(seed: int) -> list[str]:
        data = load_data(_cfg(digits_classes=[1, 2], train_per_class=5, seed=seed))
        return data.split.file[data.split.subset == "train"].tolist()

    assert train_files(0) == train_files(0)
    assert train_files(0) != train_files(1)


def test_rng_seed_overrides_the_configured_seed() -> None:
    cfg = _cfg(digits_classes=[1, 2], seed=0)
    a, b = load_data(cfg, rng_seed=11), load_data(_cfg(digits_classes=[1, 2], seed=11))
    assert a.content_hash == b.content_hash
    assert a.content_hash != load_data(cfg).content_hash


def test_sorted_split_on_digits_takes_the_first_indices() -> None:
    data = load_data(_cfg(digits_classes=[0, 1], split="sorted", validation_fraction=0.1))
    val = data.split[data.split.subset == "validation"]
    for digit in ("0", "1"):
        idx = np.flatnonzero(np.isin(TARGET, [int(digit)]))
        first = [f"digits:{i}" for i in idx[: int(0.1 * len(idx))]]
        assert val.file[val.label == digit].tolist() == first


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"digits_classes": [4, 4]}, r"^data\.digits_classes: need two or more different digits"),
        ({"digits_classes": []}, r"^data\.digits_classes: need two or more"),
        ({"group_pattern": "(x)"}, r"^data\.group_pattern: applies to source: folder"),
    ],
)
def test_digits_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_data(_cfg(**kw))
