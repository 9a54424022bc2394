"""Train/validation splits: stratified (seeded), sorted (ImageDataGenerator's rule), grouped."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

SORTED_SPLIT_WARNING = (
    "data.split: sorted takes the first {pct:.0f}% of each class folder's alphabetically sorted "
    "files for validation (ImageDataGenerator's rule): not random, so neighbouring frames or one "
    "person's images can all land on one side"
)


def stratified(labels: npt.ArrayLike, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation images: round(n * fraction) per class, seeded.

    A class with at least two images always keeps one on each side.
    """
    labels_arr = np.asarray(labels)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels_arr), dtype=bool)
    for cls in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == cls)
        n_val = round(len(idx) * fraction)
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        is_val[rng.permutation(idx)[:n_val]] = True
    return is_val


def sorted_rule(files: Sequence[str], labels: npt.ArrayLike, fraction: float) -> np.ndarray:
    """ImageDataGenerator(validation_split=f): the first int(f * n) sorted files of each class."""
    labels_arr = np.asarray(labels)
    is_val = np.zeros(len(labels_arr), dtype=bool)
    for cls in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == cls)
        ordered = sorted(idx, key=lambda i: files[int(i)])
        is_val[ordered[: int(fraction * len(ordered))]] = True
    return is_val


def grouped(
    files: Sequence[str], labels: npt.ArrayLike, fraction: float, pattern: str, seed: int
) -> tuple[np.ndarray, list[str], list[str]]:
    """Keep every source (the regex's first group) on one side of the split.

    Returns:
        The validation mask, the group of each image, and warnings for classes whose
        validation share ends more than 5 points from ``fraction``.
    """
    regex = re.compile(pattern)
    groups = []
    for f in files:
        match = regex.search(f)
        groups.append(match.group(1) if match and match.group(1) is not None else f"<{f}>")
    labels_arr = np.asarray(labels)
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    order = [names[i] for i in rng.permutation(len(names))]
    counts: dict[str, dict[int, int]] = {g: {} for g in names}
    for g, y in zip(groups, labels_arr, strict=True):
        counts[g][int(y)] = counts[g].get(int(y), 0) + 1
    totals = {int(c): int((labels_arr == c).sum()) for c in np.unique(labels_arr)}
    val_counts = dict.fromkeys(totals, 0)
    chosen: set[str] = set()
    for g in order:  # greedy: take a group if it moves its classes toward the target share
        gain = 0.0
        for c, n in counts[g].items():
            target = fraction * totals[c]
            gain += abs(val_counts[c] - target) - abs(val_counts[c] + n - target)
        if gain > 0:
            chosen.add(g)
            for c, n in counts[g].items():
                val_counts[c] += n
    is_val = np.array([g in chosen for g in groups], dtype=bool)
    warnings = [
        f"data.group_pattern: class {c} gets {100 * val_counts[c] / totals[c]:.0f}% validation "
        f"(asked {100 * fraction:.0f}%): its groups are too few or too uneven"
        for c in totals
        if abs(val_counts[c] / totals[c] - fraction) > 0.05
    ]
    return is_val, groups, warnings
