"""Class-per-folder image directories, decoded once to uint8."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from overfit_search.config.schema import DataConfig
from overfit_search.data.dataset import ImageData
from overfit_search.data.split import SORTED_SPLIT_WARNING, grouped, sorted_rule, stratified
from overfit_search.errors import DataError

logger = logging.getLogger(__name__)
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def _class_files(root: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {
        c.name: sorted(f for f in c.rglob("*") if f.is_file() and f.suffix.lower() in EXTENSIONS)
        for c in classes
    }


def _check_classes(root: Path, files: dict[str, list[Path]]) -> None:
    if not files:
        raise DataError(
            f"data.dir: {root} has no class folders; it must hold one sub-folder per class "
            f"with the images inside (e.g. {root}/<class>/img001.jpg)"
        )
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DataError(
            f"data.dir: class folder(s) with no images in {root}: {', '.join(empty[:5])} "
            f"(images: {', '.join(sorted(EXTENSIONS))})"
        )
    if len(files) < 2:
        raise DataError(
            f"data.dir: {root} has a single class ({next(iter(files))}); need two or more"
        )


def _decode(path: Path, size: int) -> np.ndarray | str:
    """The image as uint8 (size, size, 3), or the reason it cannot be read."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as opened:
            upright = ImageOps.exif_transpose(opened)
            rgb = upright.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def load_folder_data(cfg: DataConfig) -> ImageData:
    """Decode a class-per-folder tree (or ``train/`` + ``validation/``) and split it."""
    assert cfg.dir is not None
    root = cfg.dir
    if not root.is_dir():
        raise DataError(
            f"data.dir: directory {root} does not exist; it must hold one sub-folder per class "
            f"with the images inside (e.g. {root}/<class>/img001.jpg)"
        )
    preset = (root / "train").is_dir() and (root / "validation").is_dir()
    if preset:
        train_files, val_files = _class_files(root / "train"), _class_files(root / "validation")
        _check_classes(root / "train", train_files)
        names = sorted(set(train_files) | set(val_files))
        entries = [(p, c, "train") for c in names for p in train_files.get(c, [])]
        entries += [(p, c, "validation") for c in names for p in val_files.get(c, [])]
    else:
        files = _class_files(root)
        _check_classes(root, files)
        names = list(files)
        entries = [(p, c, "") for c in names for p in files[c]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        decoded = list(pool.map(lambda e: _decode(e[0], cfg.image_size), entries))
    skipped = [
        (str(e[0].relative_to(root)), r)
        for e, r in zip(entries, decoded, strict=True)
        if isinstance(r, str)
    ]
    good = [(e, r) for e, r in zip(entries, decoded, strict=True) if not isinstance(r, str)]
    if not good:
        raise DataError(f"data.dir: no readable images under {root}")
    rel = [str(e[0].relative_to(root)) for e, _ in good]
    labels = np.array([names.index(e[1]) for e, _ in good], dtype=np.int32)
    images = np.stack([r for _, r in good])
    groups = [""] * len(rel)
    if preset:
        is_val = np.array([e[2] == "validation" for e, _ in good])
    elif cfg.group_pattern:
        is_val, groups, warnings = grouped(
            rel, labels, cfg.validation_fraction, cfg.group_pattern, cfg.seed
        )
        for warning in warnings:
            logger.warning(warning)
    elif cfg.split == "sorted":
        logger.warning(SORTED_SPLIT_WARNING.format(pct=100 * cfg.validation_fraction))
        class_rel = [str(e[0].relative_to(root / e[1])) for e, _ in good]
        is_val = sorted_rule(class_rel, labels, cfg.validation_fraction)
    else:
        is_val = stratified(labels, cfg.validation_fraction, cfg.seed)
    if is_val.all() or not is_val.any():
        raise DataError(f"data.validation_fraction: the split of {root} leaves one side empty")
    split = pd.DataFrame(
        {
            "file": rel,
            "label": [names[i] for i in labels],
            "subset": np.where(is_val, "validation", "train"),
            "group": groups,
        }
    )
    return ImageData(
        images[~is_val], labels[~is_val], images[is_val], labels[is_val], names, split, skipped
    )
