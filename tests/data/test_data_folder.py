"""The folder source: listing, decoding (modes, EXIF, bad files), layouts and errors."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data import SOURCES, load_data
from overfit_search.data.folder import decode_image, scan_folder
from overfit_search.errors import DataError

Tree = Callable[[dict[str, int]], Path]


def _cfg(root: Path, **kw: Any) -> DataConfig:
    return DataConfig(source="folder", dir=root, **{"image_size": 8, **kw})


def _jpeg_bytes(size: tuple[int, int] = (40, 40)) -> bytes:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=90
    )
    return buffer.getvalue()


@pytest.fixture
def mixed(tree: Tree) -> Path:
    """Two classes of good PNGs plus every kind of odd and broken file."""
    root = tree({"a": 4, "b": 4})
    Image.new("RGBA", (20, 20), (200, 10, 10, 0)).save(root / "a" / "rgba.png")
    Image.new("L", (20, 20), 77).save(root / "b" / "gray.png")
    Image.new("P", (20, 20), 3).save(root / "a" / "palette.gif")
    Image.new("RGB", (30, 10), (10, 200, 10)).save(root / "b" / "UPPER.JPG")
    Image.new("RGB", (20, 20), (5, 5, 250)).save(root / "b" / "photo.webp")
    Image.new("I;16", (20, 20), 65535).save(root / "a" / "deep16.png")
    (root / "a" / "nested").mkdir()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(root / "a" / "nested" / "deeper.bmp")
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "b" / "truncated.jpg").write_bytes(_jpeg_bytes()[:400])
    (root / "a" / "text.jpg").write_text("this is not an image\n")
    (root / "a" / "notes.txt").write_text("not listed")
    (root / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (20, 20)).save(root / ".ipynb_checkpoints" / "x.png")
    return root


def test_every_mode_decodes_to_uint8_rgb_at_image_size(
    mixed: Path, arrays_by_file: Callable[..., dict[str, np.ndarray]]
) -> None:
    data = load_data(_cfg(mixed, validation_fraction=0.25))
    assert data.class_names == ["a", "b"]
    for x in (data.x_train, data.x_val):
        assert x.dtype == np.uint8 and x.shape[1:] == (8, 8, 3)
    assert data.y_train.dtype == np.int32 and data.y_val.dtype == np.int32
    images = arrays_by_file(data)
    assert sorted(images) == sorted(
        [f"a/img{i:03d}.png" for i in range(4)]
        + [f"b/img{i:03d}.png" for i in range(4)]
        + ["a/rgba.png", "b/gray.png", "a/palette.gif", "b/UPPER.JPG", "b/photo.webp"]
        + ["a/deep16.png", "a/nested/deeper.bmp"]
    )
    assert (images["b/gray.png"] == 77).all()  # gray replicated to three channels
    assert (images["a/rgba.png"] == [200, 10, 10]).all()  # alpha dropped, colour kept
    assert (images["a/deep16.png"] == 255).all()  # 16-bit scaled, not clipped
    assert (images["a/nested/deeper.bmp"] == 9).all()  # recursive within a class folder
    assert abs(int(images["b/UPPER.JPG"][4, 4, 1]) - 200) < 10  # extension case-insensitive
    assert images["b/photo.webp"][4, 4, 2] > 230


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("a/empty.jpg", r"^empty file \(0 bytes\)$"),
        ("b/truncated.jpg", r"^truncated image \((image file is truncated|Truncated File Read)"),
        ("a/text.jpg", r"^not an image Pillow can read"),
    ],
)
def test_unreadable_files_are_skipped_with_their_reason(
    mixed: Path, file: str, reason: str
) -> None:
    data = load_data(_cfg(mixed))
    skipped = dict(data.skipped)
    assert sorted(skipped) == ["a/empty.jpg", "a/text.jpg", "b/truncated.jpg"]
    assert re.search(reason, skipped[file]), skipped[file]
    assert file not in set(data.split.file)
    assert "\n" not in skipped[file] and str(mixed) not in skipped[file]


def test_hidden_folders_and_other_files_are_not_classes_or_images(mixed: Path) -> None:
    listing = scan_folder(mixed)
    assert listing.class_names == ["a", "b"]
    assert not any(f.endswith(".txt") or "ipynb" in f for f in listing.files)


def test_exif_orientation_is_respected(
    tree: Tree, arrays_by_file: Callable[..., dict[str, np.ndarray]]
) -> None:
    root = tree({"a": 3, "b": 3})
    stored = np.zeros((10, 20, 3), dtype=np.uint8)  # 20 wide, 10 high
    stored[:, :10] = (255, 0, 0)  # left half red
    stored[:, 10:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: the left edge becomes the top
    Image.fromarray(stored).save(root / "a" / "rotated.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(stored).save(root / "a" / "upright.jpg", quality=95)
    images = arrays_by_file(load_data(_cfg(root, image_size=10)))
    rotated, upright = images["a/rotated.jpg"].astype(int), images["a/upright.jpg"].astype(int)
    red, blue = np.array([255, 0, 0]), np.array([0, 0, 255])
    assert np.abs(rotated[1, 5] - red).max() < 60 and np.abs(rotated[8, 5] - blue).max() < 60
    assert np.abs(upright[5, 1] - red).max() < 60 and np.abs(upright[5, 8] - blue).max() < 60


def test_decode_image_resizes_bilinear_without_keeping_aspect(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    pixels = np.zeros((4, 8, 3), dtype=np.uint8)
    pixels[:, 4:] = 200
    Image.fromarray(pixels).save(path)
    out = decode_image(path, 8)
    expected = np.asarray(Image.fromarray(pixels).resize((8, 8), Image.Resampling.BILINEAR))
    assert out.shape == (8, 8, 3) and (out == expected).all()


def test_split_table_has_one_row_per_image(tree: Tree) -> None:
    root = tree({"a": 5, "b": 7})
    data = load_data(_cfg(root, validation_fraction=0.4))
    assert list(data.split.columns) == ["file", "label", "subset", "group"]
    assert len(data.split) == len(data.y_train) + len(data.y_val) == 12
    assert set(data.split.subset) == {"train", "validation"}
    assert (data.split.group == "").all()
    val = data.split[data.split.subset == "validation"]
    assert [data.class_names[i] for i in data.y_val] == val.label.tolist()
    assert data.split.file.str.match(r"^[ab]/img\d{3}\.png$").all()
    assert data.num_classes == 2 and len(data.content_hash) == 64


def test_relative_dir_resolves_against_the_working_directory(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree({"a": 2, "b": 2})
    monkeypatch.chdir(root.parent)
    data = load_data(_cfg(Path("imgs")))
    assert len(data.split) == 4


def test_user_supplied_split_is_detected_and_used_as_is(tmp_path: Path, write_images: Any) -> None:
    root = tmp_path / "imgs"
    write_images(root / "train" / "a", ["s1_0.png", "s1_1.png", "s2_0.png"])
    write_images(root / "train" / "b", ["s1_2.png", "s3_0.png"])
    write_images(root / "validation" / "a", ["s2_1.png"])
    write_images(root / "validation" / "b", ["s4_0.png", "s4_1.png"])
    cfg = _cfg(root, validation_fraction=0.5, split="sorted", seed=9, group_pattern=r"(s\d)_")
    data = load_data(cfg)
    assert data.class_names == ["a", "b"]
    assert (len(data.y_train), len(data.y_val)) == (5, 3)
    assert data.y_val.tolist() == [0, 1, 1]
    expected = {f: "train" for f in data.split.file if f.startswith("train/")}
    expected |= {f: "validation" for f in data.split.file if f.startswith("validation/")}
    assert dict(zip(data.split.file, data.split.subset, strict=True)) == expected
    assert "validation/b/s4_1.png" in expected
    # the supplied split is kept even though source s2 leaks across it, with a warning
    assert any("s2" in w and "both train/ and validation/" in w for w in data.warnings)


def test_user_supplied_split_warns_about_a_class_without_validation_images(
    tmp_path: Path, write_images: Any
) -> None:
    root = tmp_path / "imgs"
    write_images(root / "train" / "a", ["0.png", "1.png"])
    write_images(root / "train" / "b", ["0.png", "1.png"])
    write_images(root / "validation" / "a", ["0.png"])
    data = load_data(_cfg(root))
    assert data.y_val.tolist() == [0]
    assert any("class(es) b have no validation images" in w for w in data.warnings)


def test_group_pattern_on_a_folder_keeps_each_source_on_one_side(
    tmp_path: Path, write_images: Any
) -> None:
    root = tmp_path / "imgs"
    for cls in "ab":
        write_images(
            root / cls, [f"signer{s}_{i}.png" for s in range(10) for i in range(2)] + ["x.png"]
        )
    data = load_data(_cfg(root, validation_fraction=0.3, group_pattern=r"signer(\d+)_", seed=4))
    split = data.split
    assert set(split.group) == {str(s) for s in range(10)} | {""}
    sides = split[split.group != ""].groupby("group").subset.nunique()
    assert (sides == 1).all()
    share = (split.subset == "validation").groupby(split.label).mean()
    assert ((share - 0.3).abs() <= 0.05 + 1e-9).all()
    assert any("2 of 42 paths match" in w for w in data.warnings)


def test_group_pattern_with_sorted_split_is_refused(tree: Tree) -> None:
    root = tree({"a": 2, "b": 2})
    with pytest.raises(DataError, match=r"^data\.group_pattern: cannot be combined with split"):
        load_data(_cfg(root, split="sorted", group_pattern="(img)"))


def _missing(root: Path) -> None:
    pass


def _a_file(root: Path) -> None:
    root.write_text("x")


def _no_class_folders(root: Path) -> None:
    root.mkdir()
    (root / "readme.md").write_text("x")


def _loose_images(root: Path) -> None:
    root.mkdir()
    Image.new("RGB", (4, 4)).save(root / "img.png")


def _all_empty(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "b" / "sub").mkdir(parents=True)
    (root / "b" / "notes.txt").write_text("x")


def _one_empty(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "a" / "0.png")
    (root / "b").mkdir()


def _single_class(root: Path) -> None:
    (root / "cats").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (4, 4)).save(root / "cats" / f"{i}.png")


def _nothing_readable(root: Path) -> None:
    for cls in "ab":
        (root / cls).mkdir(parents=True)
        (root / cls / "0.jpg").write_bytes(b"")


def _class_unreadable(root: Path) -> None:
    _one_empty(root)
    (root / "b" / "bad.png").write_text("nope")


def _validation_only_class(root: Path) -> None:
    for side, cls in (("train", "a"), ("train", "b"), ("validation", "c")):
        (root / side / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / side / cls / "0.png")


def _empty_validation(root: Path) -> None:
    for cls in "ab":
        (root / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / "train" / cls / "0.png")
    (root / "validation").mkdir()


def _one_image_per_class(root: Path) -> None:
    for cls in "ab":
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / cls / "0.png")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            _missing,
            r"^data\.dir: directory {root} does not exist; it must hold one sub-folder per "
            r"class with the images inside \(e\.g\. {root}/<class>/img001\.jpg\)$",
        ),
        (_a_file, r"^data\.dir: {root} is a file, not a directory"),
        (_no_class_folders, r"^data\.dir: {root} has no class folders; it must hold one"),
        (_loose_images, r"has no class folders.*found 1 image\(s\) directly in it"),
        (_all_empty, r"^data\.dir: no images in the 2 class folder\(s\) of {root} \(looked for"),
        (_one_empty, r"^data\.dir: class folder {root}/b holds no images \(looked for"),
        (_single_class, r"^data\.dir: {root} has a single class folder \(cats\); a classifier"),
        (_nothing_readable, r"^data\.dir: none of the 2 images under {root} could be read"),
        (_class_unreadable, r"^data\.dir: class folder {root}/b has no readable image \(1 file"),
        (
            _validation_only_class,
            r"^data\.dir: class folder\(s\) c in {root}/validation have no counterpart in "
            r"{root}/train",
        ),
        (_empty_validation, r"^data\.dir: {root}/validation has no class folders"),
        (
            _one_image_per_class,
            r"^data\.validation_fraction: the stratified split of {root} leaves no validation",
        ),
    ],
)
def test_data_errors_are_one_clear_line(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    root = tmp_path / "imgs"
    make(root)
    with pytest.raises(DataError) as caught:
        load_data(_cfg(root))
    text = str(caught.value)
    assert "\n" not in text
    assert re.search(message.format(root=re.escape(str(root))), text), text


def test_sources_registry_and_unknown_source() -> None:
    assert set(SOURCES) == {"folder", "digits"}
    cfg = DataConfig(source="digits")
    object.__setattr__(cfg, "source", "webdataset")
    with pytest.raises(DataError, match=r"data\.source: unknown source 'webdataset'; choose one"):
        load_data(cfg)


def test_many_images_decode_on_a_thread_pool(tree: Tree) -> None:
    root = tree({"a": 150, "b": 150})
    data = load_data(_cfg(root, image_size=16))
    assert len(data.split) == 300 and not data.skipped
    # every row holds its own image, not a neighbour's
    again = load_data(_cfg(root, image_size=16))
    assert data.content_hash == again.content_hash
    assert pd.Series(data.x_train.reshape(len(data.x_train), -1).sum(1)).nunique() > 100
