"""The decoded cache: a second load decodes nothing; the split is applied after loading."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from overfit_search.config.schema import DataConfig
from overfit_search.data import cache, folder, load_data
from overfit_search.data.cache import cache_key

Tree = Callable[[dict[str, int]], Path]


def _cfg(root: Path, **kw: Any) -> DataConfig:
    return DataConfig(source="folder", dir=root, **{"image_size": 8, **kw})


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Decoder calls, recorded (the real decoder still runs)."""
    seen: list[Path] = []
    real = folder.decode_image

    def spy(path: Path, size: int) -> np.ndarray:
        seen.append(path)
        return real(path, size)

    monkeypatch.setattr(folder, "decode_image", spy)
    return seen


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []

    def boom(path: Path, size: int) -> np.ndarray:
        seen.append(path)
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(folder, "decode_image", boom)
    return seen


def test_second_load_decodes_nothing(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree({"a": 6, "b": 5})
    (root / "a" / "bad.jpg").write_text("not an image")
    first = load_data(_cfg(root), cache_dir=tmp_path / "cache")
    entries = list((tmp_path / "cache").glob("decoded-*/images.npy"))
    assert len(entries) == 1
    seen = _forbid_decoding(monkeypatch)
    second = load_data(_cfg(root), cache_dir=tmp_path / "cache")
    assert seen == []
    assert second.content_hash == first.content_hash
    assert (second.x_train == first.x_train).all() and (second.x_val == first.x_val).all()
    assert second.skipped == first.skipped == [("a/bad.jpg", "not an image Pillow can read "
                                                "(unknown format or corrupt header)")]  # fmt: skip
    assert second.split.equals(first.split)


def test_cached_and_uncached_loads_agree(tree: Tree, tmp_path: Path) -> None:
    root = tree({"a": 4, "b": 4})
    plain = load_data(_cfg(root))
    cached = load_data(_cfg(root), cache_dir=tmp_path / "cache")
    again = load_data(_cfg(root), cache_dir=tmp_path / "cache")
    assert plain.content_hash == cached.content_hash == again.content_hash


def test_another_seed_or_fraction_reuses_the_cache(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree({"a": 10, "b": 10})
    base = load_data(_cfg(root), cache_dir=tmp_path / "c")
    seen = _forbid_decoding(monkeypatch)
    reseeded = load_data(_cfg(root, seed=1), cache_dir=tmp_path / "c")
    override = load_data(_cfg(root), cache_dir=tmp_path / "c", rng_seed=1)
    wider = load_data(_cfg(root, validation_fraction=0.5), cache_dir=tmp_path / "c")
    in_order = load_data(_cfg(root, split="sorted"), cache_dir=tmp_path / "c")
    assert seen == []
    assert reseeded.content_hash != base.content_hash
    assert override.content_hash == reseeded.content_hash
    assert len(wider.y_val) == 10 and len(base.y_val) == 4
    assert in_order.split.file[in_order.split.subset == "validation"].tolist() == [
        "a/img000.png", "a/img001.png", "b/img000.png", "b/img001.png"
    ]  # fmt: skip


@pytest.mark.parametrize("change", ["edit", "add", "remove", "size"])
def test_changed_files_or_size_decode_afresh(
    tree: Tree, tmp_path: Path, calls: list[Path], change: str
) -> None:
    root = tree({"a": 3, "b": 3})
    load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert len(calls) == 6
    calls.clear()
    size = 8
    if change == "edit":
        target = root / "a" / "img001.png"
        Image.new("RGB", (20, 20), (1, 2, 3)).save(target)
        os.utime(target, ns=(1, 1))
    elif change == "add":
        Image.new("RGB", (20, 20)).save(root / "b" / "new.png")
    elif change == "remove":
        (root / "b" / "img002.png").unlink()
    else:
        size = 10
    data = load_data(_cfg(root, image_size=size), cache_dir=tmp_path / "c")
    assert len(calls) == len(data.split)
    assert len(list((tmp_path / "c").glob("decoded-*"))) == 2


def test_cache_key_covers_files_sizes_mtimes_and_image_size() -> None:
    files = [("a/1.png", 10, 5), ("b/2.png", 20, 6)]
    key = cache_key("folder", 32, files)
    assert key == cache_key("folder", 32, list(reversed(files)))  # sorted
    assert len({
        key,
        cache_key("folder", 33, files),
        cache_key("folder", 32, [("a/1.png", 11, 5), files[1]]),
        cache_key("folder", 32, [("a/1.png", 10, 7), files[1]]),
        cache_key("folder", 32, files[:1]),
        cache_key("digits", 32, files),
        cache_key("folder", 32, files, decoder="v2"),
    }) == 7  # fmt: skip


def test_cached_images_are_memory_mapped_and_large_splits_stay_on_disk(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree({"a": 5, "b": 5})
    in_memory = load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert not isinstance(in_memory.x_train, np.memmap)  # small: gathered into memory
    monkeypatch.setattr(cache, "IN_MEMORY_MAX_BYTES", 0)
    mapped = load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert isinstance(mapped.x_train, np.memmap) and isinstance(mapped.x_val, np.memmap)
    assert not mapped.x_train.flags.writeable
    assert mapped.content_hash == in_memory.content_hash
    assert (mapped.x_train == in_memory.x_train).all()
    seen = _forbid_decoding(monkeypatch)
    again = load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert seen == [] and again.content_hash == in_memory.content_hash
    reseeded = load_data(_cfg(root, seed=3), cache_dir=tmp_path / "c")
    assert reseeded.content_hash != in_memory.content_hash
    entry = next((tmp_path / "c").glob("decoded-*"))
    assert len(list(entry.glob("split-*.x_train.npy"))) == 1  # older split copies removed


def test_a_damaged_cache_is_decoded_again(tree: Tree, tmp_path: Path, calls: list[Path]) -> None:
    root = tree({"a": 2, "b": 2})
    first = load_data(_cfg(root), cache_dir=tmp_path / "c")
    meta = next((tmp_path / "c").glob("decoded-*/meta.json"))
    meta.write_text("{not json")
    calls.clear()
    second = load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert len(calls) == 4 and second.content_hash == first.content_hash
    calls.clear()
    load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert calls == []


def test_no_temporary_files_are_left_behind(tree: Tree, tmp_path: Path) -> None:
    root = tree({"a": 2, "b": 2})
    load_data(_cfg(root), cache_dir=tmp_path / "c")
    assert not [p for p in (tmp_path / "c").rglob("*") if p.name.endswith(".tmp")]


def test_digits_ignore_the_cache_folder(tmp_path: Path) -> None:
    data = load_data(DataConfig(source="digits", image_size=8), cache_dir=tmp_path / "c")
    assert len(data.y_train) > 0 and not (tmp_path / "c").exists()
