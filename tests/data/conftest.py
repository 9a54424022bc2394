"""Fixtures for the data tests: tiny class-per-folder trees written with Pillow."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from overfit_search.data import ImageData

WriteImages = Callable[..., list[Path]]
ArraysByFile = Callable[[ImageData], dict[str, np.ndarray]]


@pytest.fixture
def write_images() -> WriteImages:
    """``write_images(folder, names, size=(20, 20))``: one distinct image per name.

    The format comes from the name's ending (Pillow's choice); pixels are seeded noise
    around a per-name shade.
    """

    def _write(folder: Path, names: Iterable[str], size: tuple[int, int] = (20, 20)) -> list[Path]:
        written = []
        for name in names:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            shade = rng.integers(30, 220)
            pixels = np.clip(rng.normal(shade, 20, (size[1], size[0], 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(path)
            written.append(path)
        return written

    return _write


@pytest.fixture
def tree(tmp_path: Path, write_images: WriteImages) -> Callable[[dict[str, int]], Path]:
    """``tree({"a": 4, "b": 3})``: ``tmp_path/imgs/<class>/img000.png``... and its root."""

    def _tree(classes: dict[str, int]) -> Path:
        root = tmp_path / "imgs"
        root.mkdir(exist_ok=True)
        for cls, count in classes.items():
            (root / cls).mkdir(exist_ok=True)
            write_images(root / cls, [f"img{i:03d}.png" for i in range(count)])
        return root

    return _tree


@pytest.fixture
def arrays_by_file() -> ArraysByFile:
    """The decoded image of every file of ``data.split``."""

    def _arrays(data: ImageData) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for subset, images in (("train", data.x_train), ("validation", data.x_val)):
            files = data.split.loc[data.split.subset == subset, "file"].tolist()
            assert len(files) == len(images)
            out.update(zip(files, images, strict=True))
        return out

    return _arrays
