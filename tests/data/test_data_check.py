"""check-data: counts, unreadable files, imbalance and near-duplicates across the split."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from overfit_search import check_data_cli as cmd
from overfit_search.config.schema import DataConfig
from overfit_search.data import ImageData, load_data
from overfit_search.data.check import (
    DataReport,
    Thresholds,
    check_data,
    find_near_duplicates,
    format_report,
    hamming_candidates,
    leak_warning,
)
from overfit_search.data.digits import digits_images
from overfit_search.errors import DataError, OverfitSearchError

JSON_KEYS = {
    "classes",
    "unreadable",
    "duplicates_across_split",
    "duplicate_examples",
    "imbalance_ratio",
    "thresholds",
    "warnings",
}

# ---------------------------------------------------------------------------------------------
# Pictures


def scene(seed: int, size: int = 104) -> Image.Image:
    """A distinct picture: a smooth colour field and a few random shapes."""
    rng = np.random.default_rng(seed)
    field = np.clip(128 + 40 * rng.normal(0, 1, (6, 6, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    return image


def crop(image: Image.Image, dx: int = 0, dy: int = 0, size: int = 96) -> Image.Image:
    """The ``size`` window 4 px in from the corner, moved by (dx, dy): a camera shift."""
    return image.crop((4 + dx, 4 + dy, 4 + dx + size, 4 + dy + size))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def noisy(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    pixels = pixels + np.random.default_rng(seed).normal(0, sigma, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def video_frame(seed: int, frame: int) -> Image.Image:
    """Frame ``frame`` of a synthetic video: a ball moving 2 px right, 1 px down per frame."""
    rng = np.random.default_rng(seed)
    image = crop(scene(seed))
    x, y = (int(v) for v in rng.integers(10, 50, 2))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    x, y = x + 2 * frame, y + frame
    ImageDraw.Draw(image).ellipse((x, y, x + 24, y + 24), fill=colour)
    return noisy(image, 3, seed=frame)


Transform = Callable[[int], tuple[Image.Image, Image.Image]]
"""seed -> (training picture, its near-duplicate for validation)."""

PLANTED: dict[str, Transform] = {
    "jpeg re-encode q40": lambda s: (crop(scene(s)), jpeg(crop(scene(s)), 40)),
    "jpeg re-encode q90": lambda s: (crop(scene(s)), jpeg(crop(scene(s)), 90)),
    "shift 1 px": lambda s: (crop(scene(s)), crop(scene(s), 1, 0)),
    "shift 2 px": lambda s: (crop(scene(s)), crop(scene(s), 2, -1)),
    "noise sigma 8": lambda s: (crop(scene(s)), noisy(crop(scene(s)), 8)),
    "shift + noise + jpeg": lambda s: (crop(scene(s)), jpeg(noisy(crop(scene(s), 1, 1), 5), 60)),
    "neighbouring video frame": lambda s: (video_frame(s, 0), video_frame(s, 1)),
}


def write(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=92) if path.suffix == ".jpg" else image.save(path)
    return path


def preset_tree(
    root: Path,
    train: int = 10,
    val: int = 4,
    classes: Sequence[str] = ("a", "b", "c"),
    seed: int = 0,
) -> Path:
    """``root/train/<class>/`` and ``root/validation/<class>/`` of distinct scenes."""
    for c, name in enumerate(classes):
        for i in range(train + val):
            side = "train" if i < train else "validation"
            write(crop(scene(seed + 1000 * c + i)), root / side / name / f"{side}{i:03d}.jpg")
    return root


def folder_data(root: Path, image_size: int = 64, **extra: object) -> ImageData:
    return load_data(DataConfig(source="folder", dir=root, image_size=image_size, **extra))


# ---------------------------------------------------------------------------------------------
# Near-duplicates


def test_distinct_pictures_have_no_duplicates(tmp_path: Path) -> None:
    report = check_data(folder_data(preset_tree(tmp_path / "imgs")))
    assert report.duplicates_across_split == 0
    assert report.duplicate_examples == []
    assert report.classes == {n: {"train": 10, "validation": 4} for n in "abc"}
    assert report.warnings == []
    assert leak_warning(report) is None


@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_near_duplicate_is_found(tmp_path: Path, name: str) -> None:
    root = preset_tree(tmp_path / "imgs")
    original, copy = PLANTED[name](777)
    write(original, root / "train" / "b" / "zz_original.jpg")
    write(copy, root / "validation" / "b" / "zz_copy.png")
    report = check_data(folder_data(root))
    assert report.duplicates_across_split == 1, format_report(report)
    (pair,) = report.duplicate_examples
    assert (pair.train_file, pair.validation_file) == (
        "train/b/zz_original.jpg",
        "validation/b/zz_copy.png",
    )
    assert pair.pixel_distance <= report.thresholds.pixel_distance
    assert pair.hash_distance <= report.thresholds.hash_distance


def test_many_planted_duplicates_warn_of_leakage_and_label_conflicts(tmp_path: Path) -> None:
    root = preset_tree(tmp_path / "imgs", train=10, val=10)
    for i, transform in enumerate(PLANTED.values()):
        original, copy = transform(500 + i)
        write(original, root / "train" / "a" / f"zz{i}.jpg")
        write(copy, root / "validation" / ("a" if i else "c") / f"zz{i}.png")
    report = check_data(folder_data(root), max_examples=3)
    assert report.duplicates_across_split == len(PLANTED)
    assert report.label_conflicts == 1
    assert len(report.duplicate_examples) == 3
    warning = leak_warning(report)
    assert warning is not None
    assert f"{len(PLANTED)} of {report.validation_images} validation images" in warning
    assert any(w.startswith("leakage:") for w in report.warnings)
    assert any(w.startswith("labels:") for w in report.warnings)


def test_two_writers_threes_are_not_duplicates() -> None:
    """The hard false positive: every 3 of scikit-learn's digits against every other 3."""
    threes, _ = digits_images([3], 64)
    first, second = threes[: len(threes) // 2], threes[len(threes) // 2 :]
    assert len(find_near_duplicates(first, second, Thresholds()).val_rows) == 0
    assert len(find_near_duplicates(threes[:60], threes[60:120], Thresholds()).val_rows) == 0


def test_full_digits_split_reports_almost_no_duplicates() -> None:
    """Measured: 2 of 359 validation digits match (one writer's two near-identical 1s)."""
    data = load_data(DataConfig(source="digits", digits_classes=list(range(10)), image_size=64))
    report = check_data(data)
    assert report.validation_images == 359
    assert report.duplicates_across_split <= 3
    assert report.label_conflicts == 0
    assert leak_warning(report) is None
    assert {p.train_label for p in report.duplicate_examples} <= {"1"}


def test_stricter_thresholds_find_less() -> None:
    data = load_data(DataConfig(source="digits", digits_classes=list(range(10)), image_size=64))
    loose = check_data(data, Thresholds(pixel_distance=0.2))
    strict = check_data(data, Thresholds(hash_distance=0))
    assert loose.duplicates_across_split > 10
    assert strict.duplicates_across_split == 0


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_hamming_candidates_match_brute_force(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    from overfit_search.data import check

    monkeypatch.setattr(check, "_CHUNK_PAIRS", chunk)
    rng = np.random.default_rng(1)
    train = rng.integers(0, 2**63, 40, dtype=np.uint64) | (1 << 63)
    val = train[rng.integers(0, 40, 25)] ^ (
        np.uint64(1) << rng.integers(0, 64, 25).astype(np.uint64)
    )
    t, v, d = hamming_candidates(train, val, 20)
    expected = {
        (i, j, bin(int(a) ^ int(b)).count("1"))
        for j, b in enumerate(val.tolist())
        for i, a in enumerate(train.tolist())
        if bin(int(a) ^ int(b)).count("1") <= 20
    }
    assert set(zip(t.tolist(), v.tolist(), d.tolist(), strict=True)) == expected
    assert len(t) >= 25


# ---------------------------------------------------------------------------------------------
# Counts, classes, unreadable files


def synthetic(train: dict[str, int], val: dict[str, int], groups: bool = False) -> ImageData:
    """ImageData of distinct random-block pictures with the given counts per class."""
    names = list(train)
    rng = np.random.default_rng(0)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    for subset, counts in (("train", train), ("validation", val)):
        labels = np.repeat(np.arange(len(names)), [counts[n] for n in names]).astype(np.int32)
        blocks = rng.integers(0, 256, (len(labels), 4, 4, 3), dtype=np.uint8)
        parts[subset] = (blocks.repeat(8, axis=1).repeat(8, axis=2), labels)
        rows += [
            (f"{subset}{i}.png", names[y], subset, "rec1" if groups and i == 0 else "")
            for i, y in enumerate(labels.tolist())
        ]
    split = pd.DataFrame(rows, columns=["file", "label", "subset", "group"])
    return ImageData(*parts["train"], *parts["validation"], class_names=names, split=split)


@pytest.mark.parametrize(
    ("train", "val", "ratio", "starts"),
    [
        ({"a": 20, "b": 20}, {"a": 5, "b": 5}, 1.0, []),
        ({"a": 40, "b": 10}, {"a": 5, "b": 5}, 4.0, ["imbalance:"]),
        ({"a": 20, "b": 9}, {"a": 5, "b": 2}, 20 / 9, ["tiny classes:"]),
        ({"a": 20, "b": 1}, {"a": 5, "b": 1}, 20.0, ["tiny classes:", "imbalance:"]),
        ({"a": 20, "b": 20}, {"a": 5, "b": 0}, 1.0, ["split:"]),
    ],
)
def test_class_flags(
    train: dict[str, int], val: dict[str, int], ratio: float, starts: list[str]
) -> None:
    report = check_data(synthetic(train, val))
    assert report.imbalance_ratio == pytest.approx(ratio)
    assert [w.split(":")[0] + ":" for w in report.warnings] == starts
    assert report.classes == {n: {"train": train[n], "validation": val[n]} for n in train}
    if train["b"] == 1:
        assert "single training image" in report.warnings[0]


def test_group_leak_is_flagged() -> None:
    report = check_data(synthetic({"a": 12, "b": 12}, {"a": 3, "b": 3}, groups=True))
    assert any("rec1" in w and w.startswith("leakage:") for w in report.warnings)


def test_imbalance_threshold_is_configurable() -> None:
    data = synthetic({"a": 40, "b": 10}, {"a": 5, "b": 5})
    assert not any(
        w.startswith("imbalance") for w in check_data(data, Thresholds(max_imbalance=5)).warnings
    )


def test_unreadable_files_are_listed(tmp_path: Path) -> None:
    root = preset_tree(tmp_path / "imgs")
    (root / "train" / "a" / "garbage.jpg").write_bytes(b"not an image at all")
    good = (root / "train" / "b" / "train000.jpg").read_bytes()
    (root / "train" / "b" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "validation" / "c" / "empty.png").write_bytes(b"")
    report = check_data(folder_data(root))
    reasons = {item["path"]: item["reason"] for item in report.unreadable}
    assert set(reasons) == {
        "train/a/garbage.jpg",
        "train/b/truncated.jpg",
        "validation/c/empty.png",
    }
    assert "not an image" in reasons["train/a/garbage.jpg"]
    assert "truncated" in reasons["train/b/truncated.jpg"]
    assert reasons["validation/c/empty.png"] == "empty file (0 bytes)"
    assert report.warnings[0].startswith("unreadable: 3 file(s)")
    assert "unreadable files: 3" in format_report(report)


@pytest.mark.parametrize(
    ("field", "value"),
    [("hash_distance", 65), ("pixel_distance", -1.0), ("thumb_size", 4), ("max_imbalance", 0.5)],
)
def test_bad_thresholds_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        Thresholds(**{field: value})


# ---------------------------------------------------------------------------------------------
# The command, in-process


def cli(argv: list[str]) -> int:
    """Parse like ``overfit-search`` and map errors to exit codes as ``cli.main`` does."""
    parser = argparse.ArgumentParser(prog="overfit-search")
    cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except OverfitSearchError as exc:
        return exc.exit_code


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERFIT_SEARCH_CACHE", str(tmp_path / "cache"))


def test_cli_json_on_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "flat"
    for c, name in enumerate(("cat", "dog")):
        for i in range(15):
            write(crop(scene(100 * c + i)), root / name / f"{i:03d}.jpg")
    write(crop(scene(1)), root / "dog" / "copy.png")  # the same picture as cat/001.jpg
    (root / "cat" / "bad.jpg").write_bytes(b"junk")
    assert cli(["check-data", str(root), "--json", "--max-examples", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= JSON_KEYS
    assert "validation_fraction 0.2" in out["checked"] and "64 px" in out["checked"]
    assert sum(c["train"] + c["validation"] for c in out["classes"].values()) == 31
    assert out["unreadable"] == [
        {
            "path": "cat/bad.jpg",
            "reason": "not an image Pillow can read (unknown format or corrupt header)",
        }
    ]
    assert out["thresholds"]["hash_distance"] == Thresholds().hash_distance
    assert isinstance(out["duplicates_across_split"], int)
    assert len(out["duplicate_examples"]) <= 1
    for pair in out["duplicate_examples"]:
        assert {"train_file", "validation_file", "hash_distance", "pixel_distance"} <= set(pair)


def test_cli_text_on_a_sweep_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = preset_tree(tmp_path / "imgs")
    original, copy = PLANTED["shift 2 px"](9)
    write(original, root / "train" / "a" / "orig.jpg")
    write(copy, root / "validation" / "a" / "copy.jpg")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: t\ndata:\n  dir: {root}\n  image_size: 48\n")
    assert cli(["check-data", str(sweep), "--pixel-distance", "0.12"]) == 0
    text = capsys.readouterr().out
    assert "48 px" in text
    assert "near-duplicates across the split: 1 of 13 validation images" in text
    assert "validation/a/copy.jpg  ~  train/a/orig.jpg" in text
    assert "<= 0.12" in text


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["check-data", "{tmp}/missing"], 2),
        (["check-data", "{tmp}/empty"], 2),
        (["check-data", "{tmp}/bad.yaml"], 2),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, argv: list[str], code: int) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("name: x\ndata: {source: folder}\n")
    assert cli([a.format(tmp=tmp_path) for a in argv]) == code


def test_missing_directory_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing: no such sweep file or data directory"):
        cmd.data_config(tmp_path / "missing")


def test_report_to_dict_is_json(tmp_path: Path) -> None:
    report: DataReport = check_data(synthetic({"a": 12, "b": 1}, {"a": 3, "b": 1}))
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(payload) >= JSON_KEYS
    assert payload["tiny_classes"] == ["b"]
