"""Data checks before a sweep: split sizes, bad files, imbalance, near-duplicates across the split.

Pure: numpy only (Pillow decodes upstream, in :mod:`overfit_search.data.folder`); no Keras,
TensorFlow, Ray or Optuna.

Near-duplicates are the same picture again (a neighbouring video frame, a re-encode, a small
shift or noise), not merely similar pictures. They are found in two steps, both on grayscale
thumbnails computed with numpy from the decoded uint8 arrays:

1. **Candidates**: a 64-bit DCT perceptual hash (pHash) of a 32x32 thumbnail of every image;
   every (training, validation) pair whose hashes differ in at most
   :attr:`Thresholds.hash_distance` bits is a candidate. The Hamming distances of all pairs
   are computed with numpy bit operations, a block of validation images at a time.
2. **Confirmation**: a candidate is a near-duplicate when the mean absolute difference of
   the two 16x16 thumbnails, each normalised to mean 0 and standard deviation 1, is at most
   :attr:`Thresholds.pixel_distance` (in standard deviations of the picture).

Candidates come from the 64-bit hash; confirmation aligns the pair first: a global sub-pixel
shift of up to 3/32 of the image is estimated (Lucas-Kanade steps) and the interior of the
thumbnails compared, so a shifted copy or a neighbouring frame of a slowly panning video is
confirmed while a different picture of the same thing is not.

Defaults (:class:`Thresholds`: 14 bits, 0.10, 32 px), measured on images decoded at 64 px: on
the 1,797 real scikit-learn digits split 80/20 (stratified, seed 0), where two writers' 3s look
alike but are not the same picture, 2 of 359 validation images are confirmed, both one
writer's near-identical 1s (distances 0.065 and 0.080); among all 16,653 pairs of 3s none is,
the closest at 0.120. JPEG re-encodes (quality 30-90), Gaussian noise (sigma 10), 1-3 px shifts
and neighbouring frames of a synthetic video, written at 128 px, all fall within 0.083; at
64 px, sharp-edged pictures shifted by 2-3 px reach 0.2 and are partly missed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from overfit_search.data.dataset import ImageData
from overfit_search.data.thresholds import HASH_LOW, Thresholds

HASH_SIZE = 32
"""Side of the grayscale thumbnail the perceptual hash is computed from."""

_CHUNK_IMAGES = 256
_CHUNK_PAIRS = 1024 * 1024
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

FloatArray = npt.NDArray[np.float32]
HashArray = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class DuplicatePair:
    """A validation image and its closest near-duplicate in training.

    Attributes:
        train_file: The training image (``split.file``).
        validation_file: The validation image.
        train_label: Class of the training image.
        validation_label: Class of the validation image (a different one is a label
            conflict: the same picture labelled twice).
        hash_distance: Differing pHash bits.
        pixel_distance: Mean absolute difference of the normalised thumbnails.
    """

    train_file: str
    validation_file: str
    train_label: str
    validation_label: str
    hash_distance: int
    pixel_distance: float


@dataclass
class DataReport:
    """What :func:`check_data` found.

    Attributes:
        classes: Class name -> ``{"train": n, "validation": m}``, classes in index order.
        unreadable: ``{"path", "reason"}`` of every file that could not be read.
        duplicates_across_split: Validation images with a near-duplicate in training.
        duplicate_pairs_across_split: Confirmed (training, validation) pairs.
        label_conflicts: Validation images whose near-duplicate in training has another
            class.
        duplicate_examples: A few pairs, closest first.
        validation_images: Validation images checked.
        train_images: Training images checked.
        imbalance_ratio: Largest over smallest class, counted in training images.
        tiny_classes: Classes with fewer than ``thresholds.min_train_images`` training
            images.
        thresholds: The thresholds used.
        warnings: One line per problem found (empty when the data looks fine).
    """

    classes: dict[str, dict[str, int]]
    unreadable: list[dict[str, str]]
    duplicates_across_split: int
    duplicate_pairs_across_split: int
    label_conflicts: int
    duplicate_examples: list[DuplicatePair]
    validation_images: int
    train_images: int
    imbalance_ratio: float
    tiny_classes: list[str]
    thresholds: Thresholds
    warnings: list[str] = field(default_factory=list)

    @property
    def duplicate_fraction(self) -> float:
        """Fraction of validation images with a near-duplicate in training."""
        return (
            self.duplicates_across_split / self.validation_images if self.validation_images else 0.0
        )

    @property
    def leaks(self) -> bool:
        """Whether the duplicate fraction is above ``thresholds.max_leak_fraction``."""
        return self.duplicate_fraction > self.thresholds.max_leak_fraction

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (the ``check-data --json`` object)."""
        return {
            "classes": {name: dict(counts) for name, counts in self.classes.items()},
            "train_images": self.train_images,
            "validation_images": self.validation_images,
            "unreadable": [dict(item) for item in self.unreadable],
            "duplicates_across_split": self.duplicates_across_split,
            "duplicate_fraction": round(self.duplicate_fraction, 6),
            "duplicate_pairs_across_split": self.duplicate_pairs_across_split,
            "label_conflicts": self.label_conflicts,
            "duplicate_examples": [
                {**asdict(pair), "pixel_distance": round(pair.pixel_distance, 4)}
                for pair in self.duplicate_examples
            ],
            "imbalance_ratio": (
                round(self.imbalance_ratio, 4) if math.isfinite(self.imbalance_ratio) else None
            ),
            "tiny_classes": list(self.tiny_classes),
            "thresholds": asdict(self.thresholds),
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# Thumbnails and hashes


def _area_matrix(src: int, dst: int) -> FloatArray:
    """(dst, src) weights averaging ``src`` pixels into ``dst`` (box filter, any ratio)."""
    edges = np.linspace(0.0, float(src), dst + 1)
    starts, ends = edges[:-1, None], edges[1:, None]
    pixels = np.arange(src, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(ends, pixels + 1) - np.maximum(starts, pixels), 0.0, None)
    result: FloatArray = (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
    return result


def thumbnails(images: npt.NDArray[np.uint8], size: int) -> FloatArray:
    """Grayscale ``size`` x ``size`` thumbnails (box-filtered, values 0..255).

    Args:
        images: uint8 (N, H, W, 3) or (N, H, W); may be a memory map (read in chunks).
        size: Side of the thumbnails.

    Returns:
        float32 (N, size, size).
    """
    n, height, width = images.shape[:3]
    rows, cols = _area_matrix(height, size), _area_matrix(width, size).T
    out = np.empty((n, size, size), dtype=np.float32)
    for start in range(0, n, _CHUNK_IMAGES):
        chunk = np.asarray(images[start : start + _CHUNK_IMAGES], dtype=np.float32)
        gray = chunk @ _LUMA if chunk.ndim == 4 else chunk
        out[start : start + len(chunk)] = rows @ gray @ cols
    return out


def _dct_matrix(n: int) -> FloatArray:
    k = np.arange(n, dtype=np.float64)[:, None]
    i = np.arange(n, dtype=np.float64)[None, :]
    basis = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis.astype(np.float32)


def phash(thumbs: FloatArray) -> HashArray:
    """64-bit DCT perceptual hashes of 32x32 thumbnails (one uint64 per image).

    The 8x8 lowest frequencies of the 2-D DCT (the DC term replaced by 0), each compared
    with their median: bit set where above.

    Args:
        thumbs: float32 (N, 32, 32), e.g. from ``thumbnails(images, HASH_SIZE)``.

    Returns:
        uint64 (N,).
    """
    dct = _dct_matrix(thumbs.shape[1])[:HASH_LOW]
    low = dct @ thumbs @ dct.T
    flat = low.reshape(len(thumbs), HASH_LOW * HASH_LOW)
    flat[:, 0] = 0.0
    bits = flat > np.median(flat, axis=1, keepdims=True)
    packed = np.packbits(bits, axis=1)
    return packed.view(">u8").astype(np.uint64).reshape(len(thumbs))


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(words: HashArray) -> npt.NDArray[np.uint8]:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.uint8)
    as_bytes = words.view(np.uint8).reshape(*words.shape, 8)
    result: npt.NDArray[np.uint8] = _POPCOUNT8[as_bytes].sum(axis=-1, dtype=np.uint8)
    return result


def hamming_candidates(
    train_hashes: HashArray, val_hashes: HashArray, max_distance: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.uint8]]:
    """Every (training, validation) pair whose hashes differ in at most ``max_distance`` bits.

    All pairs are compared, a block of validation hashes at a time (XOR + bit count).

    Args:
        train_hashes: uint64 (N,).
        val_hashes: uint64 (M,).
        max_distance: Largest Hamming distance kept.

    Returns:
        ``(train rows, validation rows, distances)`` of the pairs, by validation row.
    """
    block = max(1, _CHUNK_PAIRS // max(1, len(train_hashes)))
    found_t: list[npt.NDArray[np.intp]] = []
    found_v: list[npt.NDArray[np.intp]] = []
    found_d: list[npt.NDArray[np.uint8]] = []
    for start in range(0, len(val_hashes), block):
        xor = val_hashes[start : start + block, None] ^ train_hashes[None, :]
        dist = _popcount(xor)
        v, t = np.nonzero(dist <= max_distance)
        found_t.append(t)
        found_v.append(v + start)
        found_d.append(dist[v, t])
    if not found_t:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0, dtype=np.uint8)
    return np.concatenate(found_t), np.concatenate(found_v), np.concatenate(found_d)


def normalise(thumbs: FloatArray) -> FloatArray:
    """Each thumbnail shifted to mean 0 and scaled to standard deviation 1.

    Flat thumbnails (standard deviation under 1 grey level) are only shifted, so two blank
    images compare equal and a blank one differs from a picture.
    """
    flat = thumbs.reshape(len(thumbs), -1)
    mean = flat.mean(axis=1, keepdims=True)
    std = np.maximum(flat.std(axis=1, keepdims=True), 1.0)
    result: FloatArray = ((flat - mean) / std).reshape(thumbs.shape).astype(np.float32)
    return result


def _warp(thumbs: FloatArray, shift: npt.NDArray[np.float32], margin: int) -> FloatArray:
    """Bilinear samples of each thumbnail's interior moved by its ``shift`` (dy, dx).

    ``shift`` must lie within ``margin - 1`` pixels either way. Pairs are grouped by the
    integer part of their shift, so every sample is a slice, not a gather.
    """
    n, size = len(thumbs), thumbs.shape[1]
    inner = size - 2 * margin
    whole = np.floor(shift).astype(np.intp)
    frac = (shift - whole).astype(np.float32)
    key = (whole[:, 0] + margin) * (2 * margin + 1) + (whole[:, 1] + margin)
    out = np.empty((n, inner, inner), dtype=np.float32)
    for value in np.unique(key):
        sel = np.flatnonzero(key == value)
        y0, x0 = margin + int(whole[sel[0], 0]), margin + int(whole[sel[0], 1])
        part = thumbs[sel]
        fy, fx = frac[sel, 0, None, None], frac[sel, 1, None, None]
        rows = part[:, y0 : y0 + inner + 1]
        left, right = rows[:, :, x0 : x0 + inner], rows[:, :, x0 + 1 : x0 + inner + 1]
        cols = left + fx * (right - left)
        out[sel] = cols[:, :inner] + fy * (cols[:, 1:] - cols[:, :inner])
    return out


def aligned_distances(
    a: FloatArray, b: FloatArray, margin: int, iterations: int = 4
) -> npt.NDArray[np.float32]:
    """Mean absolute difference of ``a`` and ``b`` after aligning ``b`` on ``a``, pair by pair.

    A global sub-pixel translation of at most ``margin - 1`` thumbnail pixels is estimated
    by a few Lucas-Kanade (Gauss-Newton) steps; the interior of ``a`` (``margin`` pixels
    off each border) is compared with ``b`` moved by it. The unaligned distance is also
    taken, so alignment never makes a pair look further apart.

    Args:
        a: Normalised thumbnails (K, T, T).
        b: Normalised thumbnails (K, T, T), paired with ``a`` row by row.
        margin: Border left out of the comparison; bounds the shift.
        iterations: Gauss-Newton steps.

    Returns:
        float32 (K,) distances.
    """
    core = a[:, margin:-margin, margin:-margin] if margin else a
    zero = np.zeros((len(a), 2), dtype=np.float32)
    best = np.abs(core - _warp(b, zero, margin)).reshape(len(a), -1).mean(axis=1)
    if margin < 2:
        result: npt.NDArray[np.float32] = best.astype(np.float32)
        return result
    shift = zero.copy()
    limit = float(margin - 1)
    for _ in range(iterations):
        moved = _warp(b, shift, margin)
        gy, gx = np.gradient(moved, axis=(1, 2))
        resid = core - moved
        sxx, syy, sxy = (gx * gx).sum((1, 2)), (gy * gy).sum((1, 2)), (gx * gy).sum((1, 2))
        bx, by = (gx * resid).sum((1, 2)), (gy * resid).sum((1, 2))
        det = sxx * syy - sxy * sxy
        ok = det > 1e-6 * np.maximum(sxx * syy, 1e-12)
        safe = np.where(ok, det, 1.0)
        dx = np.where(ok, (syy * bx - sxy * by) / safe, 0.0)
        dy = np.where(ok, (sxx * by - sxy * bx) / safe, 0.0)
        shift = np.clip(shift + np.stack([dy, dx], axis=1), -limit, limit).astype(np.float32)
    moved = _warp(b, shift, margin)
    dist = np.abs(core - moved).reshape(len(a), -1).mean(axis=1)
    final: npt.NDArray[np.float32] = np.minimum(best, dist).astype(np.float32)
    return final


def pixel_distances(
    train_norm: FloatArray,
    val_norm: FloatArray,
    train_rows: npt.NDArray[np.intp],
    val_rows: npt.NDArray[np.intp],
    margin: int = 0,
) -> npt.NDArray[np.float32]:
    """Aligned mean absolute difference of normalised thumbnails, pair by pair.

    Args:
        train_norm: :func:`normalise`-d training thumbnails.
        val_norm: :func:`normalise`-d validation thumbnails.
        train_rows: Training row of each pair.
        val_rows: Validation row of each pair.
        margin: See :func:`aligned_distances`.

    Returns:
        float32 distances, one per pair.
    """
    out = np.empty(len(train_rows), dtype=np.float32)
    per_pair = int(train_norm[0].size) if len(train_norm) else 1
    step = max(1, 4 * _CHUNK_PAIRS // (8 * per_pair))
    for start in range(0, len(train_rows), step):
        t = train_norm[train_rows[start : start + step]]
        v = val_norm[val_rows[start : start + step]]
        out[start : start + len(t)] = aligned_distances(v, t, margin)
    return out


@dataclass(frozen=True)
class Matches:
    """Confirmed near-duplicate pairs across the split.

    Attributes:
        train_rows: Training row of each pair.
        val_rows: Validation row of each pair.
        hash_distances: Differing pHash bits of each pair.
        pixel_distances: Normalised thumbnail distance of each pair.
    """

    train_rows: npt.NDArray[np.intp]
    val_rows: npt.NDArray[np.intp]
    hash_distances: npt.NDArray[np.uint8]
    pixel_distances: npt.NDArray[np.float32]


def find_near_duplicates(
    x_train: npt.NDArray[np.uint8], x_val: npt.NDArray[np.uint8], thresholds: Thresholds
) -> Matches:
    """Confirmed near-duplicate (training, validation) pairs.

    Args:
        x_train: uint8 training images (N, H, W, 3).
        x_val: uint8 validation images (M, H, W, 3).
        thresholds: ``hash_distance``, ``pixel_distance`` and ``thumb_size`` are used.

    Returns:
        The pairs, in no particular order.
    """
    hashes = [phash(thumbnails(x, HASH_SIZE)) for x in (x_train, x_val)]
    t_rows, v_rows, h_dist = hamming_candidates(hashes[0], hashes[1], thresholds.hash_distance)
    if len(t_rows) == 0:
        return Matches(t_rows, v_rows, h_dist, np.zeros(0, dtype=np.float32))
    t_norm, v_norm = (normalise(thumbnails(x, thresholds.thumb_size)) for x in (x_train, x_val))
    p_dist = pixel_distances(t_norm, v_norm, t_rows, v_rows, margin=thresholds.margin)
    keep = p_dist <= thresholds.pixel_distance
    return Matches(t_rows[keep], v_rows[keep], h_dist[keep], p_dist[keep])


# ---------------------------------------------------------------------------------------------
# The report


def _files(data: ImageData, subset: str) -> list[str]:
    split = data.split
    return [str(f) for f in split.loc[split["subset"] == subset, "file"].tolist()]


def _examples(
    data: ImageData, matches: Matches, max_examples: int
) -> tuple[list[DuplicatePair], int]:
    """The closest pair of each of the first ``max_examples`` validation images, and the
    number of validation images whose closest training duplicate has another label."""
    train_files, val_files = _files(data, "train"), _files(data, "validation")
    if len(train_files) != len(data.x_train) or len(val_files) != len(data.x_val):
        train_files = [f"train:{i}" for i in range(len(data.x_train))]
        val_files = [f"validation:{i}" for i in range(len(data.x_val))]
    names = data.class_names
    y_train, y_val = np.asarray(data.y_train), np.asarray(data.y_val)
    conflicting = y_train[matches.train_rows] != y_val[matches.val_rows]
    conflicts = len(np.unique(matches.val_rows[conflicting]))
    order = np.lexsort((matches.pixel_distances, matches.val_rows))
    first = order[np.r_[True, np.diff(matches.val_rows[order]) != 0]] if len(order) else order
    closest = first[np.argsort(matches.pixel_distances[first], kind="stable")][:max_examples]
    pairs = [
        DuplicatePair(
            train_file=train_files[int(matches.train_rows[i])],
            validation_file=val_files[int(matches.val_rows[i])],
            train_label=names[int(y_train[matches.train_rows[i]])],
            validation_label=names[int(y_val[matches.val_rows[i]])],
            hash_distance=int(matches.hash_distances[i]),
            pixel_distance=float(matches.pixel_distances[i]),
        )
        for i in closest
    ]
    return pairs, conflicts


def _group_leaks(data: ImageData) -> list[str]:
    split = data.split
    if "group" not in split or not (split["group"].astype(str) != "").any():
        return []
    named = split[split["group"].astype(str) != ""]
    sides = named.groupby("group")["subset"].nunique()
    both = sorted(str(g) for g in sides[sides > 1].index)
    if not both:
        return []
    return [
        f"leakage: {len(both)} source(s) of data.group_pattern have images on both sides of "
        f"the split (e.g. {', '.join(both[:3])}): validation is not independent of training"
    ]


def check_data(
    data: ImageData, thresholds: Thresholds | None = None, *, max_examples: int = 5
) -> DataReport:
    """Check decoded, split data: counts, unreadable files, imbalance, near-duplicates.

    Args:
        data: The data, as :func:`overfit_search.data.load_data` returns it.
        thresholds: What counts as a problem; :class:`Thresholds` defaults when ``None``.
        max_examples: How many near-duplicate pairs to keep as examples (closest first,
            one per validation image).

    Returns:
        The report; its ``warnings`` name every problem found (never raises for them).
    """
    th = thresholds or Thresholds()
    y_train, y_val = np.asarray(data.y_train), np.asarray(data.y_val)
    n_classes = len(data.class_names)
    train_counts = np.bincount(y_train, minlength=n_classes)[:n_classes]
    val_counts = np.bincount(y_val, minlength=n_classes)[:n_classes]
    classes = {
        name: {"train": int(train_counts[i]), "validation": int(val_counts[i])}
        for i, name in enumerate(data.class_names)
    }
    smallest = int(train_counts.min()) if n_classes else 0
    largest = int(train_counts.max()) if n_classes else 0
    imbalance = largest / smallest if smallest else math.inf
    tiny = [n for n, c in classes.items() if c["train"] < th.min_train_images]

    if len(data.x_train) and len(data.x_val):
        matches = find_near_duplicates(data.x_train, data.x_val, th)
    else:
        empty = np.zeros(0, dtype=np.intp)
        matches = Matches(empty, empty, np.zeros(0, np.uint8), np.zeros(0, np.float32))
    examples, conflicts = _examples(data, matches, max_examples)
    report = DataReport(
        classes=classes,
        unreadable=[{"path": path, "reason": reason} for path, reason in data.skipped],
        duplicates_across_split=len(np.unique(matches.val_rows)),
        duplicate_pairs_across_split=len(matches.val_rows),
        label_conflicts=conflicts,
        duplicate_examples=examples,
        validation_images=len(y_val),
        train_images=len(y_train),
        imbalance_ratio=imbalance,
        tiny_classes=tiny,
        thresholds=th,
    )
    report.warnings = _warnings(report, data)
    return report


def _warnings(report: DataReport, data: ImageData) -> list[str]:
    th = report.thresholds
    out: list[str] = []
    if report.unreadable:
        out.append(
            f"unreadable: {len(report.unreadable)} file(s) could not be read and are skipped "
            f"(e.g. {report.unreadable[0]['path']}: {report.unreadable[0]['reason']})"
        )
    single = [n for n, c in report.classes.items() if c["train"] == 1]
    if single:
        out.append(
            f"tiny classes: {', '.join(single)} {'has' if len(single) == 1 else 'have'} a "
            "single training image: the model cannot learn a class from one picture"
        )
    tiny = [n for n in report.tiny_classes if n not in single]
    if tiny:
        shown = ", ".join(f"{n} ({report.classes[n]['train']})" for n in tiny[:8])
        more = f" and {len(tiny) - 8} more" if len(tiny) > 8 else ""
        out.append(
            f"tiny classes: {shown}{more} have fewer than {th.min_train_images} training "
            "images: their validation figures are noise"
        )
    no_val = [n for n, c in report.classes.items() if c["validation"] == 0]
    if no_val:
        out.append(
            f"split: class(es) {', '.join(no_val[:8])} have no validation image: their "
            "validation loss is not measured"
        )
    if report.imbalance_ratio > th.max_imbalance:
        counts = {n: c["train"] for n, c in report.classes.items()}
        big, small = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
        ratio = f"{report.imbalance_ratio:.1f}" if math.isfinite(report.imbalance_ratio) else "inf"
        out.append(
            f"imbalance: the largest class has {ratio}x the training images of the smallest "
            f"({big}: {counts[big]}, {small}: {counts[small]}; threshold {th.max_imbalance:g}): "
            "validation loss and accuracy are dominated by the large classes; consider class "
            "weights or resampling"
        )
    if report.duplicates_across_split:
        level = "leakage" if report.leaks else "near-duplicates"
        out.append(
            f"{level}: {report.duplicates_across_split} of {report.validation_images} "
            f"validation images ({100 * report.duplicate_fraction:.1f}%) have a near-duplicate "
            "in training"
            + (
                f" (above {100 * th.max_leak_fraction:g}%): validation loss will look better "
                "than it is; split by source (data.group_pattern) or remove the duplicates"
                if report.leaks
                else ""
            )
        )
    if report.label_conflicts:
        out.append(
            f"labels: {report.label_conflicts} validation image(s) have a near-duplicate in "
            "training with another class: the same picture labelled twice"
        )
    out.extend(_group_leaks(data))
    out.extend(w for w in data.warnings if w not in out)
    return out


def format_report(report: DataReport) -> str:
    """The report as text for a terminal.

    Args:
        report: What :func:`check_data` returned.

    Returns:
        Several lines, no trailing newline.
    """
    th = report.thresholds
    width = max([len("class"), *(len(n) for n in report.classes)])
    lines = [
        f"{report.train_images} training and {report.validation_images} validation images "
        f"in {len(report.classes)} classes",
        "",
        f"  {'class':<{width}}  {'train':>7}  {'validation':>10}",
    ]
    for name, counts in report.classes.items():
        flag = "  < tiny" if name in report.tiny_classes else ""
        lines.append(f"  {name:<{width}}  {counts['train']:>7}  {counts['validation']:>10}{flag}")
    ratio = f"{report.imbalance_ratio:.2f}" if math.isfinite(report.imbalance_ratio) else "inf"
    lines += [
        "",
        f"imbalance (largest/smallest class, training): {ratio} (threshold {th.max_imbalance:g})",
        f"unreadable files: {len(report.unreadable)}",
    ]
    lines += [f"  {item['path']}: {item['reason']}" for item in report.unreadable[:10]]
    if len(report.unreadable) > 10:
        lines.append(f"  ... and {len(report.unreadable) - 10} more")
    lines.append(
        f"near-duplicates across the split: {report.duplicates_across_split} of "
        f"{report.validation_images} validation images "
        f"({100 * report.duplicate_fraction:.1f}%; {report.duplicate_pairs_across_split} "
        f"pair(s), {report.label_conflicts} with another label)"
    )
    lines.append(
        f"  (pHash within {th.hash_distance}/64 bits, then aligned {th.thumb_size}x"
        f"{th.thumb_size} thumbnail distance <= {th.pixel_distance:g})"
    )
    for pair in report.duplicate_examples:
        labels = (
            pair.train_label
            if pair.train_label == pair.validation_label
            else f"{pair.train_label} vs {pair.validation_label}"
        )
        lines.append(
            f"  {pair.validation_file}  ~  {pair.train_file}  [{labels}; "
            f"hash {pair.hash_distance}, pixels {pair.pixel_distance:.3f}]"
        )
    lines.append("")
    if report.warnings:
        lines.append(f"{len(report.warnings)} warning(s):")
        lines += [f"  - {w}" for w in report.warnings]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def leak_warning(report: DataReport) -> str | None:
    """The one-line warning ``run`` logs when too many validation images leak, else None.

    Args:
        report: The report of :func:`overfit_search.data.check.check_data`.

    Returns:
        The warning when more than ``thresholds.max_leak_fraction`` (1% by default) of the
        validation images have a near-duplicate in training; ``None`` otherwise.
    """
    if not report.leaks:
        return None
    pct = 100 * report.duplicate_fraction
    return (
        f"data: {report.duplicates_across_split} of {report.validation_images} validation "
        f"images ({pct:.1f}%) have a near-duplicate in training (more than "
        f"{100 * report.thresholds.max_leak_fraction:g}%): validation loss will look better "
        "than it is; `overfit-search check-data` on this sweep lists examples"
    )
