"""A small real-photo image set for curve banks: patches of ten bundled photographs (issue 18).

Every curve bank before this one trained on scikit-learn's 8x8 digits, far from the natural
photographs the MobileNetV2 fixture (Stanford Dogs) was trained on, and none turned steeply:
the best epoch was late on all of them. The product exists for the other regime (a pretrained
backbone whose features fit the images, a small training set, validation loss that turns and
climbs within a few epochs). With no network, the natural colour photographs on this machine
are the ones scikit-image and scikit-learn ship with their wheels; this module makes a
classification task of them: which photograph a patch was cut from.

Each photograph is cut into a grid of ``GRID x GRID`` blocks. A seeded permutation gives each
block to one split (training, validation or test), so no pixel is shared between splits, and a
patch (a random square of 35-100 % of the block side, resized) comes from inside one block. A
model that memorises the few training blocks has to generalise to other parts of the same
scene: sky and suit of the astronaut, fur and background of the cat.

The patches are written as the product's user-supplied split (``train/`` and ``validation/``
folders, each holding one folder per class: DESIGN.md §2), so trials read them through the
product's own folder loader; the test patches go to ``test/`` beside them, read only by the
recorder.

scikit-image is needed only to build the set (``pip install scikit-image``); nothing is
downloaded: the photographs are files inside the two wheels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

GRID = 4
"""Blocks per side of each photograph."""
SPLIT_BLOCKS = {"train": 2, "validation": 8, "test": 6}
"""Blocks of the ``GRID x GRID`` of a photograph given to each split (16 in all)."""


def photo_files() -> dict[str, Path]:
    """The ten colour photographs: class name -> file (inside the installed wheels).

    Raises:
        ModuleNotFoundError: scikit-image is not installed.
    """
    import skimage.data
    import sklearn.datasets

    ski = Path(skimage.data.__file__).parent
    skl = Path(sklearn.datasets.__file__).parent / "images"
    return {
        "astronaut": ski / "astronaut.png",
        "cat": ski / "chelsea.png",
        "coffee": ski / "coffee.png",
        "hubble": ski / "hubble_deep_field.jpg",
        "ihc": ski / "ihc.png",
        "motorcycle": ski / "motorcycle_left.png",
        "retina": ski / "retina.jpg",
        "rocket": ski / "rocket.jpg",
        "china": skl / "china.jpg",
        "flower": skl / "flower.jpg",
    }


def read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """A photograph as uint8 (H, W, 3)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def block_splits(rng: np.random.Generator) -> dict[str, list[tuple[int, int]]]:
    """The ``(row, column)`` blocks of one photograph given to each split of
    :data:`SPLIT_BLOCKS`, by a seeded permutation of the grid."""
    cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    order = rng.permutation(len(cells))
    out: dict[str, list[tuple[int, int]]] = {}
    start = 0
    for split, count in SPLIT_BLOCKS.items():
        out[split] = [cells[i] for i in order[start : start + count]]
        start += count
    return out


def patches(
    photo: npt.NDArray[np.uint8],
    blocks: Sequence[tuple[int, int]],
    count: int,
    size: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.uint8]:
    """``count`` square patches from inside ``blocks`` of ``photo``, resized to ``size``.

    Each patch lies inside one block (chosen in turn), its side a random 35-100 % of the
    block's shorter side, at a random position.

    Returns:
        uint8 (count, size, size, 3).
    """
    from PIL import Image

    height, width = photo.shape[:2]
    bh, bw = height // GRID, width // GRID
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        r, c = blocks[i % len(blocks)]
        side = int(rng.integers(max(8, int(0.35 * min(bh, bw))), min(bh, bw) + 1))
        top = r * bh + int(rng.integers(0, bh - side + 1))
        left = c * bw + int(rng.integers(0, bw - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
    return out


def write_photo_set(
    root: Path, size: int, per_class: dict[str, int], seed: int, files: dict[str, Path]
) -> Path:
    """Write the patch set under ``root``: ``train/``, ``validation/`` and ``test/``, each with
    one folder of PNGs per photograph. Written once: an existing complete set is kept.

    Args:
        root: The folder (``data.dir`` of the sweep).
        size: Side of the patches in pixels.
        per_class: Patches per photograph for ``train``, ``validation`` and ``test``.
        seed: Seeds the block permutation and the patches.
        files: Class name -> photograph (:func:`photo_files`).

    Returns:
        ``root``.
    """
    from PIL import Image

    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    for name, path in sorted(files.items()):
        photo = read_rgb(path)
        splits = block_splits(rng)
        for split, blocks in splits.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, patch in enumerate(patches(photo, blocks, per_class[split], size, rng)):
                Image.fromarray(patch).save(folder / f"{name}_{i:04d}.png")
    done.write_text(f"size {size} per_class {per_class} seed {seed}\n")
    return root


def read_split(root: Path, split: str, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one split written by :func:`write_photo_set`: uint8 images and
    int32 indices into ``class_names`` (the loader's class order)."""
    xs, ys = [], []
    for label, name in enumerate(class_names):
        for path in sorted((root / split / name).glob("*.png")):
            xs.append(read_rgb(path))
            ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int32)
