"""On-disk cache of decoded images, so a second run of the same data decodes nothing.

Layout under ``cache_dir``::

    decoded-<key>/images.npy     uint8 (N, S, S, 3), one row per listed file (zeros where
                                 a file could not be read), memory-mapped when loaded
    decoded-<key>/meta.json      the listed files and why any could not be read
    decoded-<key>/split-<h>.*    train/validation copies for data too large for memory

``<key>`` is :func:`cache_key`: a sha256 of the source kind, the decoder, ``image_size`` and
the sorted file list with sizes and modification times, so editing, adding or removing a
file decodes afresh. The split is applied after loading, so another seed or fraction reuses
the decoded images. Files are written under temporary names and renamed into place, so a
crash or a concurrent run never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from overfit_search.data.dataset import ImageArray

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bumped when the cache layout changes; part of every key."""

IN_MEMORY_MAX_BYTES: int | None = None
"""Above this many bytes, the train/validation arrays of cached data are memory-mapped
copies in the cache instead of arrays in memory. ``None``: a quarter of physical memory."""

FileStat = tuple[str, int, int]
"""``(relative path, size in bytes, modification time in ns)``."""

Fill = Callable[[ImageArray], list[str | None]]
"""Decodes every listed file into its row of the given array; returns, per file, ``None``
or the reason it could not be read."""

_GATHER_CHUNK_BYTES = 256 * 1024 * 1024


@dataclass
class Decoded:
    """Decoded images of a listing.

    Attributes:
        images: uint8 (N, S, S, 3), one row per listed file, zeros where unreadable;
            a read-only memory map when it comes from the cache.
        reasons: Per listed file, ``None`` or why it could not be read.
        from_cache: Whether nothing was decoded.
    """

    images: ImageArray
    reasons: list[str | None]
    from_cache: bool


def cache_key(kind: str, image_size: int, files: Sequence[FileStat], decoder: str = "") -> str:
    """The cache key of a listing: sha256 hex of everything that changes the decoded arrays.

    Args:
        kind: The source kind (``folder``).
        image_size: Side of the decoded square images.
        files: ``(relative path, size, mtime_ns)`` of every listed file (any order).
        decoder: A version string of the decoder.

    Returns:
        The hex digest.
    """
    payload = {
        "version": CACHE_VERSION,
        "kind": kind,
        "decoder": decoder,
        "image_size": image_size,
        "files": sorted([list(f) for f in files]),
    }
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def entry_dir(cache_dir: Path, key: str) -> Path:
    """The folder of one cache entry."""
    return cache_dir / f"decoded-{key}"


def decoded_images(
    cache_dir: Path | None,
    key: str,
    files: Sequence[str],
    image_size: int,
    fill: Fill,
) -> Decoded:
    """The decoded images of ``files``: from the cache when there, else decoded by ``fill``.

    Without ``cache_dir`` the images are decoded into memory. With it, they are decoded
    straight into a memory-mapped file in the cache (so data larger than memory can be
    decoded) and then opened read-only with ``np.load(..., mmap_mode="r")``.

    Args:
        cache_dir: The cache folder, or ``None`` for no cache.
        key: :func:`cache_key` of the listing.
        files: The listed files, in row order.
        image_size: Side of the decoded images.
        fill: The decoder (see :data:`Fill`).

    Returns:
        The images and per-file reasons.
    """
    shape = (len(files), image_size, image_size, 3)
    if cache_dir is None or not files:
        images = np.zeros(shape, dtype=np.uint8)
        return Decoded(images, fill(images), from_cache=False)
    entry = entry_dir(cache_dir, key)
    hit = _load_entry(entry, key, files, shape)
    if hit is not None:
        return hit
    entry.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(entry / "images.npy")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        reasons = fill(out)
        out.flush()
        del out
        tmp.replace(entry / "images.npy")
    finally:
        tmp.unlink(missing_ok=True)
    skipped = {str(i): r for i, r in enumerate(reasons) if r is not None}
    _write_json(
        entry / "meta.json",
        {"version": CACHE_VERSION, "key": key, "files": list(files), "skipped": skipped},
    )
    images = cast(ImageArray, np.load(entry / "images.npy", mmap_mode="r"))
    return Decoded(images, reasons, from_cache=False)


def _load_entry(
    entry: Path, key: str, files: Sequence[str], shape: tuple[int, ...]
) -> Decoded | None:
    meta_path, images_path = entry / "meta.json", entry / "images.npy"
    if not meta_path.is_file() or not images_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
            return None
        if meta.get("files") != list(files):
            return None
        images = np.load(images_path, mmap_mode="r")
        if images.shape != shape or images.dtype != np.uint8:
            return None
        reasons: list[str | None] = [None] * len(files)
        for index, reason in meta.get("skipped", {}).items():
            reasons[int(index)] = str(reason)
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        logger.warning("ignoring the unreadable decoded cache %s (%s)", entry, exc)
        return None
    return Decoded(cast(ImageArray, images), reasons, from_cache=True)


def in_memory_limit() -> int:
    """:data:`IN_MEMORY_MAX_BYTES`, or a quarter of physical memory when it is ``None``."""
    if IN_MEMORY_MAX_BYTES is not None:
        return IN_MEMORY_MAX_BYTES
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


def gather_split(
    images: ImageArray,
    train_idx: npt.NDArray[np.intp],
    val_idx: npt.NDArray[np.intp],
    *,
    cache_dir: Path | None,
    key: str,
    hash_of: Callable[[ImageArray, ImageArray], str],
) -> tuple[ImageArray, ImageArray, str]:
    """The training and validation images, and the data's content hash.

    Small data (or data not from the cache) is gathered into memory. When ``images`` is a
    memory map and the two arrays together exceed :func:`in_memory_limit`, they are
    written to the cache entry in chunks and returned as read-only memory maps (with
    their content hash stored beside them, so it is not recomputed); split files of other
    splits of the same entry are removed.

    Args:
        images: All decoded rows (see :class:`Decoded`).
        train_idx: Rows of the training images, ascending.
        val_idx: Rows of the validation images, ascending.
        cache_dir: The cache folder, or ``None``.
        key: :func:`cache_key` of the listing.
        hash_of: Computes the content hash from ``(x_train, x_val)``.

    Returns:
        ``(x_train, x_val, content_hash)``.
    """
    row_bytes = int(np.prod(images.shape[1:], dtype=np.int64))
    total = (len(train_idx) + len(val_idx)) * row_bytes
    if cache_dir is None or not isinstance(images, np.memmap) or total <= in_memory_limit():
        x_train, x_val = images[train_idx], images[val_idx]
        return x_train, x_val, hash_of(x_train, x_val)
    entry = entry_dir(cache_dir, key)
    tag = hashlib.sha256(
        train_idx.astype(np.int64).tobytes() + b"|" + val_idx.astype(np.int64).tobytes()
    )
    stem = f"split-{tag.hexdigest()[:20]}"
    paths = (entry / f"{stem}.x_train.npy", entry / f"{stem}.x_val.npy")
    info_path = entry / f"{stem}.json"
    try:
        info = json.loads(info_path.read_text())
        loaded = tuple(cast(ImageArray, np.load(p, mmap_mode="r")) for p in paths)
        if [len(a) for a in loaded] == [len(train_idx), len(val_idx)]:
            logger.info("memory-mapped split arrays from %s", entry)
            return loaded[0], loaded[1], str(info["content_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for old in entry.glob("split-*"):
        if not old.name.startswith(stem):
            old.unlink(missing_ok=True)
    for path, idx in zip(paths, (train_idx, val_idx), strict=True):
        _gather_to_file(images, idx, path)
    x_train = cast(ImageArray, np.load(paths[0], mmap_mode="r"))
    x_val = cast(ImageArray, np.load(paths[1], mmap_mode="r"))
    digest = hash_of(x_train, x_val)
    _write_json(info_path, {"content_hash": digest})
    logger.info("wrote memory-mapped split arrays (%.1f GB) to %s", total / 1e9, entry)
    return x_train, x_val, digest


def _gather_to_file(images: ImageArray, idx: npt.NDArray[np.intp], path: Path) -> None:
    tmp = _tmp_name(path)
    try:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(idx), *images.shape[1:])
        )
        rows = max(1, _GATHER_CHUNK_BYTES // max(1, int(np.prod(images.shape[1:]))))
        for start in range(0, len(idx), rows):
            out[start : start + rows] = images[idx[start : start + rows]]
        out.flush()
        del out
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = _tmp_name(path)
    try:
        tmp.write_text(json.dumps(payload, ensure_ascii=False))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
