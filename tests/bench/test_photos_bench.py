"""bench/_photos.py: the patch set of bundled photographs, split by disjoint blocks."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_bench

photos = load_bench("_photos")
record_selection = load_bench("_record_selection")

COLOURS = np.arange(photos.GRID**2, dtype=np.uint8) * 15 + 10
"""One grey level per block of a constructed photograph."""


def _blocky(height: int, width: int) -> np.ndarray:
    """A photograph whose every block of the grid is one flat grey level of :data:`COLOURS`."""
    bh, bw = height // photos.GRID, width // photos.GRID
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for r in range(photos.GRID):
        for c in range(photos.GRID):
            image[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = COLOURS[r * photos.GRID + c]
    return image


def test_block_splits_give_every_block_to_one_split() -> None:
    splits = photos.block_splits(np.random.default_rng(0))
    assert {k: len(v) for k, v in splits.items()} == photos.SPLIT_BLOCKS
    cells = [cell for blocks in splits.values() for cell in blocks]
    assert sorted(cells) == [(r, c) for r in range(photos.GRID) for c in range(photos.GRID)]


@pytest.mark.parametrize(("height", "width"), [(64, 64), (90, 130), (200, 120)])
def test_a_patch_never_crosses_its_block(height: int, width: int) -> None:
    blocks = [(0, 1), (3, 2), (2, 0)]
    out = photos.patches(_blocky(height, width), blocks, 30, 12, np.random.default_rng(1))
    assert out.shape == (30, 12, 12, 3)
    for i, patch in enumerate(out):
        r, c = blocks[i % len(blocks)]
        # a crop of one flat block resizes to that block's level and nothing else
        assert np.all(patch == COLOURS[r * photos.GRID + c]), (i, np.unique(patch))


def test_write_photo_set_is_the_products_supplied_split(tmp_path: Path) -> None:
    from overfit_search.config.schema import DataConfig
    from overfit_search.data import load_data

    files = {}
    for name, level in (("dark", 40), ("light", 200)):
        files[name] = tmp_path / f"{name}.png"
        Image.fromarray(np.full((80, 120, 3), level, dtype=np.uint8)).save(files[name])
    counts = {"train": 3, "validation": 5, "test": 4}
    root = photos.write_photo_set(tmp_path / "set", 16, counts, 7, files)
    data = load_data(DataConfig(source="folder", dir=root, image_size=16))
    assert (len(data.y_train), len(data.y_val)) == (6, 10)
    assert list(data.class_names) == ["dark", "light"]
    x_test, y_test = photos.read_split(root, "test", data.class_names)
    assert x_test.shape == (8, 16, 16, 3) and list(y_test) == [0] * 4 + [1] * 4
    assert np.all(x_test[y_test == 1] == 200)
    # written once: a second call with other counts keeps the set
    photos.write_photo_set(root, 16, {"train": 1, "validation": 1, "test": 1}, 7, files)
    assert len(list((root / "train" / "dark").glob("*.png"))) == 3


def test_the_bundled_photographs_are_ten_colour_images() -> None:
    files = photos.photo_files()
    assert len(files) == 10
    for name, path in files.items():
        image = photos.read_rgb(path)
        assert image.ndim == 3 and min(image.shape[:2]) >= 300, name
        assert image.std(axis=2).mean() > 1.0, f"{name} is grey"


def test_resolve_writes_the_photo_set_under_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERFIT_SEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(record_selection, "PHOTO_COUNTS", {"train": 1, "validation": 2, "test": 1})
    setup = dict(record_selection.SELECTION_SETUPS["mn2-photos"])
    setup.pop("model.backbone")  # rebuilding the fixture is not this test's subject
    out = record_selection.resolve(setup)
    root = Path(out["data.dir"])
    assert root.parent == tmp_path / "bench"
    assert len(list(root.glob("validation/*/*.png"))) == 20
    assert {p.name for p in (root / "train").iterdir()} == set(photos.photo_files())


def _bank(path: Path, configs: list[int], epochs: int) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=record_selection.SELECTION_COLUMNS)
        writer.writeheader()
        for config in configs:
            for epoch in range(1, epochs + 1):
                row: dict[str, Any] = dict.fromkeys(record_selection.SELECTION_COLUMNS, 0.5)
                writer.writerow({**row, "config": config, "epoch": epoch})


def test_merge_shards_orders_by_configuration_and_epoch(tmp_path: Path) -> None:
    _bank(tmp_path / "a.csv", [0, 2, 4], 3)
    _bank(tmp_path / "b.csv", [1, 3], 3)
    out = record_selection.merge_shards([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "m")
    with out.open(newline="") as fh:
        keys = [(int(r["config"]), int(r["epoch"])) for r in csv.DictReader(fh)]
    assert keys == [(c, e) for c in range(5) for e in (1, 2, 3)]
