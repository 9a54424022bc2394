"""data.test_fraction: a held-out test split carved from the training side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data import load_data
from overfit_search.errors import DataError


def _digits(**extra: object) -> DataConfig:
    return DataConfig(source="digits", image_size=8, digits_classes=[1, 2, 3], **extra)


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_test_split_comes_from_training_and_leaves_validation_alone(fraction: float) -> None:
    plain = load_data(_digits())
    held = load_data(_digits(test_fraction=fraction))
    assert held.x_test is not None and held.y_test is not None
    # validation is exactly what it was: every trial scores the same with or without a test split
    assert np.array_equal(np.asarray(held.x_val), np.asarray(plain.x_val))
    assert len(held.y_train) + len(held.y_test) == len(plain.y_train)
    split = held.split
    assert set(split.subset) == {"train", "validation", "test"}
    for index, name in enumerate(held.class_names):
        total = int((split.label == name).sum())
        assert int((held.y_test == index).sum()) == round(fraction * total)
    # the test rows of split.csv are the test images
    test_labels = split.label[split.subset == "test"].tolist()
    assert test_labels == [held.class_names[i] for i in held.y_test]
    assert held.content_hash != plain.content_hash  # trials train on fewer images


def test_test_split_is_reproducible_and_seeded() -> None:
    a = load_data(_digits(test_fraction=0.2))
    b = load_data(_digits(test_fraction=0.2))
    c = load_data(_digits(test_fraction=0.2, seed=1))
    assert a.split.equals(b.split)
    assert not a.split.equals(c.split)


def test_test_split_takes_whole_groups(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for person in range(6):
            for shot in range(4):
                Image.new("RGB", (8, 8), (person * 30, shot * 40, 0)).save(
                    root / cls / f"p{person}_{shot}.png"
                )
    cfg = DataConfig(
        source="folder", dir=root, image_size=8, group_pattern=r"(p\d+)_", test_fraction=0.2
    )
    data = load_data(cfg)
    split = data.split
    sides = split.groupby("group").subset.nunique()
    assert (sides == 1).all()  # no person on two sides, test included
    assert (split.subset == "test").sum() >= 0.2 * len(split)


def test_every_class_keeps_a_training_image() -> None:
    cfg = DataConfig(
        source="digits",
        image_size=8,
        digits_classes=[1, 2],
        train_per_class=2,
        validation_fraction=0.3,
        test_fraction=0.45,
    )
    data = load_data(cfg)
    assert np.bincount(data.y_train, minlength=2).min() >= 1
    assert data.y_test is not None and len(data.y_test) == 2


@pytest.mark.parametrize(("seed", "refused"), [(0, True), (1, False)])
def test_grouped_test_split_that_empties_a_class_is_refused(
    tmp_path: Path, seed: int, refused: bool
) -> None:
    root = tmp_path / "d"
    for cls, people in (("a", range(6)), ("b", [0])):  # class b: one person only
        (root / cls).mkdir(parents=True)
        for person in people:
            for shot in range(3):
                Image.new("RGB", (8, 8), (person * 30, shot * 40, 0)).save(
                    root / cls / f"p{person}_{shot}.png"
                )
    cfg = DataConfig(
        source="folder",
        dir=root,
        image_size=8,
        group_pattern=r"(p\d+)_",
        test_fraction=0.45,
        validation_fraction=0.2,
        seed=seed,
    )
    if refused:  # this seed's draw takes person 0, and with them all of class b's training side
        with pytest.raises(DataError, match=r"test_fraction: 0\.45 leaves class 'b'"):
            load_data(cfg)
    else:
        data = load_data(cfg)
        assert np.bincount(data.y_train, minlength=2).min() >= 1
