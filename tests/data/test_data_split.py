"""Split rules: stratified (seeded, per class), sorted (ImageDataGenerator), grouped."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data import SORTED_SPLIT_WARNING, load_data, sorted_split_warning
from overfit_search.data.split import (
    SPLITS,
    group_names,
    group_split,
    keras_order_key,
    sorted_split,
    split_rule,
    stratified_split,
)
from overfit_search.errors import DataError


def _labels(counts: list[int]) -> list[int]:
    return [c for c, n in enumerate(counts) for _ in range(n)]


@pytest.mark.parametrize(
    ("counts", "fraction", "expected"),
    [
        ([10, 20], 0.2, [2, 4]),
        ([2, 3], 0.1, [1, 1]),  # at least one when a class has two or more images
        ([2, 4], 0.9, [1, 3]),  # and at least one left for training
        ([1, 5], 0.5, [0, 2]),  # one image stays in training; round(2.5) == 2
        ([7], 0.5, [4]),  # round(3.5) == 4
        ([100, 3], 0.25, [25, 1]),
    ],
)
def test_stratified_takes_round_n_fraction_per_class(
    counts: list[int], fraction: float, expected: list[int]
) -> None:
    labels = _labels(counts)
    is_val = stratified_split([""] * len(labels), labels, fraction, seed=0)
    assert np.bincount(np.array(labels)[is_val], minlength=len(counts)).tolist() == expected


def test_stratified_is_seeded_and_ignores_the_global_rng() -> None:
    labels = _labels([30, 30])
    files = [str(i) for i in range(60)]
    np.random.seed(1)
    first = stratified_split(files, labels, 0.2, seed=7)
    np.random.seed(2)
    np.random.random(10)
    assert (stratified_split(files, labels, 0.2, seed=7) == first).all()
    assert not (stratified_split(files, labels, 0.2, seed=8) == first).all()
    # one default_rng(seed) draws each class in turn
    rng = np.random.default_rng(7)
    expected = np.zeros(60, dtype=bool)
    expected[rng.permutation(np.arange(30))[:6]] = True
    expected[rng.permutation(np.arange(30, 60))[:6]] = True
    assert (first == expected).all()


def test_stratified_accepts_class_names_and_negative_seeds() -> None:
    labels = ["cat"] * 5 + ["dog"] * 5
    is_val = stratified_split([""] * 10, labels, 0.4, seed=-3)
    assert is_val[:5].sum() == 2 and is_val[5:].sum() == 2


@pytest.mark.parametrize(
    ("files", "fraction", "validation"),
    [
        # code-point order: upper case first, "img10" before "img2"
        (["c/img2.jpg", "c/img10.jpg", "c/B.jpg", "c/a.jpg"], 0.5, ["c/B.jpg", "c/a.jpg"]),
        # a folder's own files first, then sub-folders by path: "x" < "x-y" < "x/y"
        (
            ["c/x/y/0.jpg", "c/x-y/0.jpg", "c/x/1.jpg", "c/z.jpg", "c/x/0.jpg"],
            0.6,
            ["c/z.jpg", "c/x/0.jpg", "c/x/1.jpg"],
        ),
        # int(fraction * n) truncates: int(0.3 * 10) == 3, int(0.7 * 3) == 2, int(0.1 * 9) == 0
        ([f"c/{i}.png" for i in range(10)], 0.3, ["c/0.png", "c/1.png", "c/2.png"]),
        (["c/b.png", "c/a.png", "c/c.png"], 0.7, ["c/a.png", "c/b.png"]),
        ([f"c/{i}.png" for i in range(9)], 0.1, []),
    ],
)
def test_sorted_split_is_image_data_generators_rule(
    files: list[str], fraction: float, validation: list[str]
) -> None:
    is_val = sorted_split(files, [0] * len(files), fraction)
    assert sorted(f for f, v in zip(files, is_val, strict=True) if v) == sorted(validation)


def test_sorted_split_truncates_the_float_product_like_keras() -> None:
    files = [f"c/{i:03d}.png" for i in range(100)]
    assert 0.29 * 100 < 29  # 28.999999999999996
    assert sorted_split(files, [0] * 100, 0.29).sum() == 28


def test_sorted_split_works_per_class() -> None:
    files = ["a/2.png", "a/1.png", "b/9.png", "b/3.png", "b/5.png", "b/1.png"]
    is_val = sorted_split(files, [0, 0, 1, 1, 1, 1], 0.5)
    assert [f for f, v in zip(files, is_val, strict=True) if v] == ["a/1.png", "b/3.png", "b/1.png"]


def test_keras_order_key() -> None:
    assert keras_order_key("a/b/c.jpg") == ("a/b", "c.jpg")
    assert keras_order_key("c.jpg") == ("", "c.jpg")


def _keras_listing(class_dir: str, fraction: float, subset: str) -> list[str]:
    """tf_keras's `_iter_valid_files` + `_list_valid_filenames_in_directory`, transcribed."""
    white = tuple("." + e for e in ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff"))
    split = (0, fraction) if subset == "validation" else (fraction, 1)
    walked = sorted(os.walk(class_dir, followlinks=False), key=lambda x: x[0])
    all_files = [
        (root, fname)
        for root, _, names in walked
        for fname in sorted(names)
        if fname.lower().endswith(white)
    ]
    n = len(all_files)
    start, stop = int(split[0] * n), int(split[1] * n)
    parent = Path(class_dir).parent
    return [os.path.relpath(Path(r) / f, parent) for r, f in all_files[start:stop]]


@pytest.mark.parametrize("fraction", [0.2, 0.29, 0.4, 0.5, 0.7, 0.8])
def test_sorted_folder_split_matches_the_transcribed_keras_listing(
    tmp_path: Path, fraction: float
) -> None:
    root = tmp_path / "imgs"
    names = {
        "Cats": ["IMG_10.jpg", "IMG_9.jpg", "b.PNG", "a.jpeg", "sub/x.png", "sub-2/y.png",
                 "sub/deeper/z.png", "zz.bmp", "_a.png", "anim.gif", "photo.webp", "broken.jpg"],
        "dogs": [f"frame{i}.png" for i in range(13)] + ["other/0.png", ".hidden.png"],
    }  # fmt: skip
    for cls, files in names.items():
        for name in files:
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4), (len(name), 0, 0)).save(path, format="PNG")
    (root / "Cats" / "broken.jpg").write_bytes(b"")
    data = load_data(
        DataConfig(source="folder", dir=root, image_size=8, split="sorted",
                   validation_fraction=fraction)
    )  # fmt: skip
    ours = dict(zip(data.split.file, data.split.subset, strict=True))
    for cls in names:
        for subset, side in (("validation", "validation"), ("training", "train")):
            keras = set(_keras_listing(str(root / cls), fraction, subset)) - {"Cats/broken.jpg"}
            mine = {f for f, s in ours.items() if s == side and f.startswith(cls + "/")}
            assert mine - {"Cats/anim.gif", "Cats/photo.webp"} == keras
    assert data.skipped == [("Cats/broken.jpg", "empty file (0 bytes)")]


def test_sorted_warning_text() -> None:
    assert SORTED_SPLIT_WARNING.startswith("data.split: sorted takes the first")
    assert "not random" in SORTED_SPLIT_WARNING and "\n" not in SORTED_SPLIT_WARNING
    assert sorted_split_warning(0.4).startswith("data.split: sorted takes the first 40% of each")
    assert SORTED_SPLIT_WARNING.format(pct=20) == SORTED_SPLIT_WARNING  # safe to .format


def test_split_registry_lists_valid_names() -> None:
    assert set(SPLITS) == {"stratified", "sorted"}
    with pytest.raises(DataError, match=r"^data\.split: unknown split 'random'; choose one of: so"):
        split_rule("random")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"signer(\d+)", ["3", "3", "12", ""]),
        (r"^[^/]+/(\w+?)_", ["signer3", "signer3", "signer12", ""]),
        (r"(signer)?(\d)", ["signer", "signer", "signer", ""]),  # first group only
    ],
)
def test_group_names_take_the_first_group_or_nothing(pattern: str, expected: list[str]) -> None:
    files = ["a/signer3_0.jpg", "b/signer3_1.jpg", "a/signer12_0.jpg", "b/nobody.jpg"]
    assert group_names(files, pattern) == expected


def _layout(sources: int, per_class: int, classes: int = 2) -> tuple[list[int], list[str]]:
    labels = [c for s in range(sources) for c in range(classes) for _ in range(per_class)]
    groups = [f"s{s}" for s in range(sources) for _ in range(classes) for _ in range(per_class)]
    return labels, groups


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35])
def test_group_split_keeps_sources_whole_and_shares_close(seed: int, fraction: float) -> None:
    labels, groups = _layout(sources=20, per_class=3)
    result = group_split(labels, groups, fraction, seed)
    sides: dict[str, set[bool]] = {}
    for g, v in zip(groups, result.is_val.tolist(), strict=True):
        sides.setdefault(g, set()).add(v)
    assert all(len(s) == 1 for s in sides.values())
    assert all(abs(share - fraction) <= 0.05 for share in result.shares.values())
    assert result.warnings == []


def test_group_split_balances_uneven_sources_across_classes() -> None:
    rng = np.random.default_rng(3)
    labels: list[int] = []
    groups: list[str] = []
    for s in range(40):  # each source holds a random number of images of each of 5 classes
        for c in range(5):
            n = int(rng.integers(0, 8))
            labels += [c] * n
            groups += [f"v{s}"] * n
    result = group_split(labels, groups, 0.2, seed=0)
    assert all(abs(share - 0.2) <= 0.05 for share in result.shares.values()), result.shares
    assert result.warnings == []


def test_group_split_is_seeded() -> None:
    labels, groups = _layout(sources=30, per_class=2)
    a = group_split(labels, groups, 0.3, seed=5).is_val
    assert (group_split(labels, groups, 0.3, seed=5).is_val == a).all()
    assert any(not (group_split(labels, groups, 0.3, seed=s).is_val == a).all() for s in (6, 7))


def test_group_split_warns_when_a_class_cannot_be_balanced() -> None:
    labels = [0] * 9 + [0] + [1] * 10
    groups = ["big"] * 9 + ["small"] + [f"u{i}" for i in range(10)]
    result = group_split(labels, groups, 0.5, seed=0)
    assert result.shares["1"] == 0.5
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("data.group_pattern: class '0' gets ")
    assert "its 2 source(s) are too few or too uneven" in result.warnings[0]


def test_unmatched_images_are_singleton_sources() -> None:
    labels = [0] * 10 + [1] * 10
    result = group_split(labels, [""] * 20, 0.3, seed=0)
    assert result.is_val[:10].sum() == 3 and result.is_val[10:].sum() == 3


def test_group_split_with_many_sources_stays_fast_enough() -> None:
    labels = [i % 7 for i in range(30_000)]
    groups = [f"g{i // 3}" for i in range(30_000)]
    result = group_split(labels, groups, 0.2, seed=0)
    assert all(abs(share - 0.2) <= 0.05 for share in result.shares.values())


@pytest.mark.parametrize(
    "make",
    [
        lambda: stratified_split(["a"], [0, 1], 0.2, 0),
        lambda: sorted_split(["a"], [0, 1], 0.2),
        lambda: group_split([0, 1], ["a"], 0.2, 0),
        lambda: group_names(["a"], "no group"),
    ],
)
def test_split_functions_check_their_arguments(make: Callable[[], Any]) -> None:
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("fraction", [0.2, 0.35, 0.5])
def test_sorted_folder_split_matches_tf_keras_image_data_generator(
    tmp_path: Path, fraction: float
) -> None:
    """The real oracle: tf_keras's ImageDataGenerator puts the same files on each side."""
    image = pytest.importorskip("tf_keras.preprocessing.image")
    root = tmp_path / "imgs"
    names = {
        "Cats": ["IMG_10.jpg", "IMG_9.jpg", "b.PNG", "a.jpeg", "sub/x.png", "sub-2/y.png",
                 "sub/deeper/z.png", "zz.bmp", "_a.png", "c.png", "d.png"],
        "dogs": [f"frame{i}.png" for i in range(13)] + ["other/0.png"],
    }  # fmt: skip
    for cls, files in names.items():
        for name in files:
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4), (len(name), 0, 0)).save(path, format="PNG")
    data = load_data(
        DataConfig(source="folder", dir=root, image_size=8, split="sorted",
                   validation_fraction=fraction)
    )  # fmt: skip
    generator = image.ImageDataGenerator(validation_split=fraction)
    for subset, side in (("validation", "validation"), ("training", "train")):
        flow = generator.flow_from_directory(
            str(root), target_size=(8, 8), subset=subset, shuffle=False
        )
        keras_side = {f.replace(os.sep, "/") for f in flow.filenames}
        ours = set(data.split.file[data.split.subset == side])
        assert ours == keras_side, subset
