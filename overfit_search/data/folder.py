"""Class-per-folder image directories, decoded once to uint8 with Pillow.

``data.dir`` holds one sub-folder per class (images may sit in nested folders inside a class
folder), or ``train/`` and ``validation/``, each holding the class folders: a split the user
made, used as is. Folders whose name starts with a dot (``.ipynb_checkpoints``) are not
classes.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from overfit_search.config.schema import DataConfig
from overfit_search.data.cache import FileStat, cache_key, decoded_images, gather_split
from overfit_search.data.dataset import (
    ImageArray,
    ImageData,
    LabelArray,
    content_hash,
    split_frame,
)
from overfit_search.data.split import (
    group_names,
    group_split,
    sorted_split,
    split_rule,
)
from overfit_search.errors import DataError

logger = logging.getLogger(__name__)

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
"""Image file name endings (case-insensitive) that are loaded."""

KERAS_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
"""The endings ImageDataGenerator's ``flow_from_directory`` lists (for ``split: sorted``)."""

PRESET_DIRS = ("train", "validation")
"""The folders of a user-supplied split."""

DECODER_VERSION = "pil-exif-rgb-bilinear-draft-1"
"""Part of the cache key: change it when :func:`decode_image` changes its output."""

DECODE_THREADS: int | None = None
"""Decoding threads (Pillow releases the GIL); ``None``: ThreadPoolExecutor's default."""

_CHUNK = 32
_EXT_TEXT = ", ".join(sorted(EXTENSIONS))


@dataclass(frozen=True)
class FolderListing:
    """The image files of a data folder, before decoding.

    Attributes:
        root: Absolute ``data.dir``.
        class_names: Class folder names, sorted.
        files: ``/``-separated path of each image relative to ``root``, class by class,
            each class in ImageDataGenerator's order.
        labels: Class index of each file.
        preset: ``train``/``validation`` of each file for a user-supplied split, else None.
    """

    root: Path
    class_names: list[str]
    files: list[str]
    labels: LabelArray
    preset: list[str] | None


def _missing(root: Path) -> str:
    return (
        f"data.dir: directory {root} does not exist; it must hold one sub-folder per class "
        f"with the images inside (e.g. {root}/<class>/img001.jpg)"
    )


def _walk_images(class_dir: Path) -> list[str]:
    """Image files under ``class_dir``, relative and ``/``-separated, in Keras's order.

    Mirrors ``_iter_valid_files``: ``os.walk`` (symlinked folders not followed) sorted by
    directory path, each directory's names sorted, names kept by their ending.
    """
    found: list[str] = []
    for dirpath, _dirs, names in sorted(os.walk(class_dir), key=lambda walked: walked[0]):
        rel = Path(os.path.relpath(dirpath, class_dir)).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        found.extend(prefix + name for name in sorted(names) if name.lower().endswith(EXTENSIONS))
    return found


def _class_folders(where: Path) -> dict[str, list[str]]:
    """``{class name: image files relative to the class folder}``, classes sorted."""
    names = sorted(
        entry.name
        for entry in os.scandir(where)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    return {name: _walk_images(where / name) for name in names}


def _check_classes(where: Path, classes: dict[str, list[str]], *, need_two: bool) -> None:
    if not classes:
        loose = [p.name for p in where.iterdir() if p.name.lower().endswith(EXTENSIONS)]
        found = (
            f"; found {len(loose)} image(s) directly in it: move each class's images into "
            "a sub-folder named after the class"
            if loose
            else ""
        )
        raise DataError(
            f"data.dir: {where} has no class folders; it must hold one sub-folder per class "
            f"with the images inside (e.g. {where}/<class>/img001.jpg){found}"
        )
    empty = [name for name, files in classes.items() if not files]
    if len(empty) == len(classes):
        raise DataError(
            f"data.dir: no images in the {len(classes)} class folder(s) of {where} "
            f"(looked for {_EXT_TEXT} files, also in sub-folders)"
        )
    if empty:
        more = f" (and {len(empty) - 1} more empty class folder(s))" if len(empty) > 1 else ""
        raise DataError(
            f"data.dir: class folder {where / empty[0]} holds no images{more} (looked for "
            f"{_EXT_TEXT} files, also in sub-folders); add images or remove the folder"
        )
    if need_two and len(classes) < 2:
        raise DataError(
            f"data.dir: {where} has a single class folder ({next(iter(classes))}); a "
            "classifier needs two or more, one sub-folder per class"
        )


def scan_folder(directory: Path) -> FolderListing:
    """List the images of a data folder (nothing is decoded).

    Args:
        directory: ``data.dir`` (relative paths resolve against the working directory).

    Returns:
        The listing.

    Raises:
        DataError: The folder is missing, has no class folders, no images, an empty
            class folder or a single class.
    """
    root = Path(directory).expanduser().resolve()
    if not root.exists():
        raise DataError(_missing(root))
    if not root.is_dir():
        raise DataError(
            f"data.dir: {root} is a file, not a directory; it must hold one sub-folder per "
            f"class with the images inside (e.g. {root}/<class>/img001.jpg)"
        )
    if all((root / name).is_dir() for name in PRESET_DIRS):
        train_dir, val_dir = (root / name for name in PRESET_DIRS)
        train, val = _class_folders(train_dir), _class_folders(val_dir)
        _check_classes(train_dir, train, need_two=True)
        _check_classes(val_dir, val, need_two=False)
        unknown = sorted(set(val) - set(train))
        if unknown:
            raise DataError(
                f"data.dir: class folder(s) {', '.join(unknown)} in {val_dir} have no "
                f"counterpart in {train_dir}; a class must be trained to be validated"
            )
        class_names = sorted(train)
        sides = [("train", train), ("validation", val)]
    else:
        classes = _class_folders(root)
        _check_classes(root, classes, need_two=True)
        class_names = list(classes)
        sides = [("", classes)]
    files: list[str] = []
    labels: list[int] = []
    preset: list[str] = []
    for side, classes_of_side in sides:
        for index, name in enumerate(class_names):
            for rel in classes_of_side.get(name, []):
                files.append(f"{side}/{name}/{rel}" if side else f"{name}/{rel}")
                labels.append(index)
                preset.append(side)
    return FolderListing(
        root=root,
        class_names=class_names,
        files=files,
        labels=np.array(labels, dtype=np.int32),
        preset=preset if sides[0][0] else None,
    )


def decode_image(path: Path, size: int) -> ImageArray:
    """Decode one image to uint8 (size, size, 3).

    EXIF orientation is applied; palette, grayscale, 16-bit, CMYK and alpha images are
    converted to RGB (alpha dropped, as Keras's ``load_img`` does); the image is resized
    to size × size, bilinear, aspect ratio not kept. Large JPEGs are decoded at a reduced
    scale (Pillow's ``draft``, never below ``size``) before resizing.

    Args:
        path: The image file.
        size: Side of the output.

    Returns:
        The image.

    Raises:
        Exception: Whatever Pillow raises for an unreadable, truncated or corrupt file.
    """
    with Image.open(path) as opened:
        if opened.format == "JPEG":
            opened.draft(None, (size, size))
        opened.load()
        image: Image.Image = opened
        try:
            orientation = int(opened.getexif().get(ExifTags.Base.Orientation, 1))
        except Exception:  # a broken EXIF block does not make the pixels unreadable
            orientation = 1
        if orientation in range(2, 9):
            image = ImageOps.exif_transpose(opened)
        rgb = _to_rgb(image)
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("P", "PA") and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")


def _reason(path: Path, exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read (unknown format or corrupt header)"
    text = (str(exc).splitlines() or [""])[0].replace(str(path), "<file>")[:200]
    if isinstance(exc, OSError) and "truncated" in text.lower():
        return f"truncated image ({text})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _decode_into(path: Path, size: int, out: ImageArray, row: int) -> str | None:
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        out[row] = decode_image(path, size)
    except Exception as exc:  # never fatal: the file is skipped with the reason
        return _reason(path, exc)
    return None


def decode_all(paths: list[Path], size: int, out: ImageArray) -> list[str | None]:
    """Decode ``paths`` into the rows of ``out`` on a thread pool.

    Args:
        paths: The image files.
        size: Side of the decoded images.
        out: uint8 (len(paths), size, size, 3), written row by row.

    Returns:
        Per file, ``None`` or the reason it could not be read.
    """
    reasons: list[str | None] = [None] * len(paths)

    def work(start: int) -> None:
        for row in range(start, min(start + _CHUNK, len(paths))):
            reasons[row] = _decode_into(paths[row], size, out, row)

    with ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="decode") as pool:
        for future in [pool.submit(work, start) for start in range(0, len(paths), _CHUNK)]:
            future.result()
    return reasons


def _stat(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return -1, 0
    return info.st_size, info.st_mtime_ns


def _first(files: list[str], reasons: list[str | None], rows: npt.NDArray[np.intp]) -> str:
    row = int(rows[0])
    return f"{files[row]}: {reasons[row]}"


def _check_readable(
    listing: FolderListing, reasons: list[str | None], kept: npt.NDArray[np.bool_]
) -> list[str]:
    """Raise when a class (or the whole folder) has no readable image; return warnings."""
    root, files, labels = listing.root, listing.files, listing.labels
    if not kept.any():
        raise DataError(
            f"data.dir: none of the {len(files)} images under {root} could be read "
            f"(e.g. {_first(files, reasons, np.arange(len(files)))})"
        )
    train_side = (
        np.ones(len(files), dtype=bool)
        if listing.preset is None
        else np.array([s == "train" for s in listing.preset])
    )
    for index, name in enumerate(listing.class_names):
        rows = np.flatnonzero((labels == index) & train_side)
        if not kept[rows].any():
            folder = root / name if listing.preset is None else root / "train" / name
            raise DataError(
                f"data.dir: class folder {folder} has no readable image ({len(rows)} file(s) "
                f"skipped, e.g. {_first(files, reasons, rows)})"
            )
    if listing.preset is None:
        return []
    val_side = ~train_side
    if not (kept & val_side).any():
        raise DataError(f"data.dir: no readable image in {root / 'validation'}")
    missing = [
        name
        for index, name in enumerate(listing.class_names)
        if not (kept & val_side & (labels == index)).any()
    ]
    if not missing:
        return []
    return [
        f"data.dir: class(es) {', '.join(missing)} have no validation images in "
        f"{root / 'validation'}; their validation loss is not measured"
    ]


def load_folder_data(
    cfg: DataConfig, cache_dir: Path | None = None, seed: int | None = None
) -> ImageData:
    """The folder source: list, decode (or load from the cache), split.

    Args:
        cfg: The sweep's data section (``source: folder``).
        cache_dir: Folder of the decoded cache (see :mod:`overfit_search.data.cache`);
            ``None`` decodes into memory.
        seed: Seed of the split; ``None`` uses ``cfg.seed``.

    Returns:
        The decoded, split data.

    Raises:
        DataError: The folder is unusable (see :func:`scan_folder`), no image of a class
            could be read, or the split leaves one side empty.
    """
    if cfg.dir is None:
        raise DataError("data.dir: required when source is 'folder'")
    seed = cfg.seed if seed is None else seed
    listing = scan_folder(cfg.dir)
    root, files, labels = listing.root, listing.files, listing.labels
    if listing.preset is None and cfg.group_pattern and cfg.split == "sorted":
        raise DataError(
            "data.group_pattern: cannot be combined with split: sorted (ImageDataGenerator's "
            "rule ignores sources); use split: stratified with a group_pattern"
        )
    paths = [root / f for f in files]
    stats: list[FileStat] = [(f, *_stat(p)) for f, p in zip(files, paths, strict=True)]
    key = cache_key("folder", cfg.image_size, stats, decoder=DECODER_VERSION)
    started = time.perf_counter()
    decoded = decoded_images(
        cache_dir, key, files, cfg.image_size, lambda out: decode_all(paths, cfg.image_size, out)
    )
    reasons = decoded.reasons
    kept = np.array([r is None for r in reasons], dtype=bool)
    skipped = [(f, r) for f, r in zip(files, reasons, strict=True) if r is not None]
    logger.info(
        "%s %d images of %s in %.1f s (%d unreadable, skipped)",
        "loaded the decoded cache of" if decoded.from_cache else "decoded",
        len(files),
        root,
        time.perf_counter() - started,
        len(skipped),
    )
    warnings = _check_readable(listing, reasons, kept)

    kept_rows = np.flatnonzero(kept)
    kept_files = [files[i] for i in kept_rows]
    names = np.array(listing.class_names, dtype=object)
    kept_labels = labels[kept_rows]
    groups = (
        group_names(kept_files, cfg.group_pattern) if cfg.group_pattern else [""] * len(kept_rows)
    )
    if cfg.group_pattern:
        warnings += _unmatched_warning(groups, cfg.group_pattern)
    if listing.preset is not None:
        is_val = np.array([listing.preset[i] == "validation" for i in kept_rows], dtype=bool)
        if cfg.group_pattern:
            warnings += _leak_warning(groups, is_val)
        how = "supplied"
    elif cfg.group_pattern:
        result = group_split(names[kept_labels], groups, cfg.validation_fraction, seed)
        is_val = result.is_val
        warnings += result.warnings
        how = "group_pattern"
    elif cfg.split == "sorted":
        # ImageDataGenerator lists each class folder on its own, and only its own formats:
        # rank .gif/.webp files (which it ignores) apart from the others.
        ours_only = np.array([not f.lower().endswith(KERAS_EXTENSIONS) for f in files])
        is_val = sorted_split(files, labels * 2 + ours_only, cfg.validation_fraction)[kept_rows]
        how = "sorted"
    else:
        rule = split_rule(cfg.split)
        is_val = rule(kept_files, kept_labels, cfg.validation_fraction, seed)
        how = cfg.split
    _check_sides(root, is_val, len(listing.class_names), how)
    for warning in warnings:
        logger.warning(warning)

    y_train, y_val = kept_labels[~is_val], kept_labels[is_val]

    def hash_of(x_train: ImageArray, x_val: ImageArray) -> str:
        return content_hash(x_train, y_train, x_val, y_val, listing.class_names)

    x_train, x_val, digest = gather_split(
        decoded.images,
        kept_rows[~is_val],
        kept_rows[is_val],
        cache_dir=cache_dir,
        key=key,
        hash_of=hash_of,
    )
    split = split_frame(kept_files, [str(n) for n in names[kept_labels]], is_val, groups)
    return ImageData(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        class_names=list(listing.class_names),
        split=split,
        skipped=skipped,
        content_hash=digest,
        warnings=warnings,
    )


def _check_sides(root: Path, is_val: npt.NDArray[np.bool_], n_classes: int, how: str) -> None:
    for side, empty in (("validation", not is_val.any()), ("training", is_val.all())):
        if empty:
            fix = (
                f"add images to {root}/{'validation' if side == 'validation' else 'train'}"
                if how == "supplied"
                else "add images or change data.validation_fraction"
            )
            raise DataError(
                f"data.validation_fraction: the {how} split of {root} leaves no {side} "
                f"image ({len(is_val)} readable images in {n_classes} classes); {fix}"
            )


def _unmatched_warning(groups: list[str], pattern: str) -> list[str]:
    unmatched = sum(not g for g in groups)
    if not unmatched:
        return []
    what = "no file path" if unmatched == len(groups) else f"{unmatched} of {len(groups)} paths"
    return [
        f"data.group_pattern: {what} match {pattern!r} (searched in the path relative to "
        "data.dir); each such image counts as a source of its own"
    ]


def _leak_warning(groups: list[str], is_val: npt.NDArray[np.bool_]) -> list[str]:
    sides: dict[str, set[bool]] = {}
    for group, val in zip(groups, is_val.tolist(), strict=True):
        if group:
            sides.setdefault(group, set()).add(val)
    both = sorted(g for g, s in sides.items() if len(s) == 2)
    if not both:
        return []
    return [
        f"data.group_pattern: {len(both)} source(s) have images in both train/ and "
        f"validation/ of the supplied split (e.g. {', '.join(both[:3])}): validation is "
        "not independent of training"
    ]
