from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data import digits_images, load_data
from overfit_search.data.split import grouped, sorted_rule, stratified
from overfit_search.errors import DataError


def _tree(root: Path, classes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img{i:03d}.png")


def test_digits_source_is_real_upscaled_rgb() -> None:
    x, y = digits_images([3, 5], 16)
    assert x.shape[1:] == (16, 16, 3) and x.dtype == np.uint8
    assert set(np.unique(y)) == {3, 5}
    assert (x[..., 0] == x[..., 2]).all() and x.max() > 200


def test_digits_train_per_class_caps_training_split() -> None:
    data = load_data(
        DataConfig(
            source="digits",
            digits_classes=[5, 6, 7],
            image_size=12,
            validation_fraction=0.3,
            train_per_class=10,
        )
    )
    assert len(data.y_train) == 30 and np.bincount(data.y_train).tolist() == [10, 10, 10]
    assert data.class_names == ["5", "6", "7"]
    assert (data.split.subset == "validation").sum() == len(data.y_val)


def test_folder_source_decodes_skips_bad_files_and_splits(tmp_path: Path) -> None:
    _tree(tmp_path, {"a": 10, "b": 10})
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "text.jpg").write_text("not an image")
    Image.new("L", (9, 9), 128).save(tmp_path / "b" / "gray.png")
    Image.new("RGBA", (9, 9), (1, 2, 3, 4)).save(tmp_path / "a" / "rgba.png")
    data = load_data(
        DataConfig(source="folder", dir=tmp_path, image_size=8, validation_fraction=0.25)
    )
    assert data.x_train.shape[1:] == (8, 8, 3)
    assert len(data.y_train) + len(data.y_val) == 22
    assert sorted(f for f, _ in data.skipped) == ["a/empty.jpg", "b/text.jpg"]
    assert len(data.split) == 22 and set(data.split.label) == {"a", "b"}


def test_user_supplied_split_is_used_as_is(tmp_path: Path) -> None:
    _tree(tmp_path / "train", {"a": 4, "b": 4})
    _tree(tmp_path / "validation", {"a": 2, "b": 2})
    data = load_data(DataConfig(source="folder", dir=tmp_path, image_size=8))
    assert (len(data.y_train), len(data.y_val)) == (8, 4)


@pytest.mark.parametrize(
    ("layout", "fragment"),
    [
        (None, r"directory .* does not exist; it must hold one sub-folder per class"),
        ({}, r"has no class folders"),
        ({"a": 3}, r"single class \(a\)"),
        ({"a": 3, "b": 0}, r"class folder\(s\) with no images .*: b"),
    ],
)
def test_folder_errors(tmp_path: Path, layout: dict[str, int] | None, fragment: str) -> None:
    root = tmp_path / "imgs"
    if layout is not None:
        root.mkdir()
        _tree(root, {k: v for k, v in layout.items() if v})
        for k, v in layout.items():
            if not v:
                (root / k).mkdir()
    with pytest.raises(DataError, match=fragment):
        load_data(DataConfig(source="folder", dir=root))


def test_stratified_is_seeded_and_per_class() -> None:
    labels = [0] * 10 + [1] * 20
    a, b = stratified(labels, 0.2, seed=1), stratified(labels, 0.2, seed=1)
    assert (a == b).all()
    assert a[:10].sum() == 2 and a[10:].sum() == 4
    assert not (stratified(labels, 0.2, seed=2) == a).all()


def test_sorted_rule_takes_first_files_of_each_class() -> None:
    files = ["c.png", "a.png", "b.png", "d.png", "x.png", "y.png"]
    labels = [0, 0, 0, 0, 1, 1]
    mask = sorted_rule(files, labels, 0.5)
    assert [f for f, m in zip(files, mask, strict=True) if m] == ["a.png", "b.png", "x.png"]


def test_group_split_keeps_sources_on_one_side() -> None:
    files = [f"{cls}/signer{g}_{i}.jpg" for cls in "ab" for g in range(5) for i in range(4)]
    labels = [0 if f.startswith("a") else 1 for f in files]
    mask, groups, _ = grouped(files, labels, 0.4, r"(signer\d+)", seed=0)
    sides: dict[str, set[bool]] = {}
    for g, m in zip(groups, mask, strict=True):
        sides.setdefault(g, set()).add(bool(m))
    assert all(len(s) == 1 for s in sides.values())
    assert 0 < mask.sum() < len(files)
