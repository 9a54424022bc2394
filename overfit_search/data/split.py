"""Train/validation splits: pure functions over file paths, labels and groups.

Each returns a boolean array, True where an image goes to validation:

- :func:`stratified_split`: seeded, per class (the default).
- :func:`sorted_split`: ImageDataGenerator(validation_split=f)'s rule, to reproduce old runs.
- :func:`group_split`: no source (the regex group of :func:`group_names`) on both sides.

:data:`SPLITS` maps ``data.split`` names to the first two.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from overfit_search.errors import DataError

BoolArray = npt.NDArray[np.bool_]

SplitRule = Callable[[Sequence[str], npt.ArrayLike, float, int], BoolArray]
"""``(files, labels, fraction, seed) -> is_val``."""

GROUP_TOLERANCE = 0.05
"""How far (as a fraction) a class's validation share may sit from the requested one."""

SORTED_SPLIT_WARNING = (
    "data.split: sorted takes the first validation_fraction of each class folder's "
    "alphabetically sorted files for validation (ImageDataGenerator's rule): not random, so "
    "neighbouring video frames, one person's or one session's images end up on one side and "
    "validation can look much better or worse than it is; use split: stratified (seeded, per "
    "class) unless you are reproducing an old ImageDataGenerator run"
)
"""Logged by the CLI when ``data.split`` is ``sorted`` (see :func:`sorted_split_warning`)."""


def sorted_split_warning(fraction: float) -> str:
    """:data:`SORTED_SPLIT_WARNING` with the fraction written as a percentage.

    Args:
        fraction: ``data.validation_fraction``.

    Returns:
        The warning text, one line.
    """
    return SORTED_SPLIT_WARNING.replace(
        "the first validation_fraction", f"the first {100 * fraction:g}%", 1
    )


def make_rng(seed: int, *stream: int) -> np.random.Generator:
    """A seeded generator; ``default_rng(seed)`` for a non-negative seed and no stream.

    Args:
        seed: Any integer (negative seeds are folded into the non-negative range).
        stream: Extra non-negative integers giving an independent stream for one use.

    Returns:
        The generator.
    """
    base = seed % 2**63
    return np.random.default_rng([base, *stream] if stream else base)


def _class_indices(labels: npt.ArrayLike) -> list[npt.NDArray[np.intp]]:
    """Indices of each class's images, classes in sorted order."""
    labels_arr = np.asarray(labels)
    return [np.flatnonzero(labels_arr == cls) for cls in np.unique(labels_arr)]


def stratified_split(
    files: Sequence[str], labels: npt.ArrayLike, fraction: float, seed: int
) -> BoolArray:
    """Seeded split per class: ``round(n * fraction)`` validation images of each class.

    Python's ``round`` (half to even) of ``n * fraction``; a class of two or more images
    keeps at least one on each side; a class of one image stays in training. The images
    of each class are drawn by one ``numpy.random.default_rng(seed)``, classes in sorted
    order, so the split depends only on the seed and the listing.

    Args:
        files: File of each image (only its length is used).
        labels: Class of each image (any sortable values).
        fraction: Validation fraction, in (0, 1).
        seed: The split's seed.

    Returns:
        True where the image goes to validation.
    """
    labels_arr = np.asarray(labels)
    if len(files) != len(labels_arr):
        raise ValueError(f"{len(files)} files but {len(labels_arr)} labels")
    rng = make_rng(seed)
    is_val = np.zeros(len(labels_arr), dtype=bool)
    for idx in _class_indices(labels_arr):
        n = len(idx)
        n_val = min(max(round(n * fraction), 1), n - 1) if n >= 2 else 0
        is_val[rng.permutation(idx)[:n_val]] = True
    return is_val


def keras_order_key(path: str) -> tuple[str, str]:
    """The order in which ImageDataGenerator lists a class folder's files.

    ``flow_from_directory`` walks each class folder with ``os.walk``, sorts the walked
    directories by path and each directory's file names with ``sorted`` (code-point
    order: ``B.jpg`` before ``a.jpg``, ``img10`` before ``img2``). For a ``/``-separated
    path that is the pair (directory, file name): a folder's own files come before its
    sub-folders', and ``x/`` after ``x-y/``.

    Args:
        path: ``/``-separated path of a file, e.g. ``cats/sub/img001.jpg``.

    Returns:
        The sort key.
    """
    head, _, name = path.rpartition("/")
    return head, name


def sorted_split(
    files: Sequence[str], labels: npt.ArrayLike, fraction: float, seed: int = 0
) -> BoolArray:
    """ImageDataGenerator(validation_split=fraction)'s split: not random.

    ``DirectoryIterator`` uses ``split = (0, fraction)`` for ``subset="validation"`` and
    ``(fraction, 1)`` for ``"training"``; ``_list_valid_filenames_in_directory`` lists a
    class folder's files (see :func:`keras_order_key`) and keeps
    ``files[int(split[0] * n):int(split[1] * n)]``. So validation is the first
    ``int(fraction * n)`` files of each class (float truncation included:
    ``int(0.29 * 100) == 28``) and training the rest.

    Args:
        files: ``/``-separated path of each image (relative paths are enough: a common
            prefix does not change the order).
        labels: Class of each image: the files of one class are one class folder.
        fraction: ``validation_split``.
        seed: Unused (the rule is deterministic); there for :data:`SplitRule`.

    Returns:
        True where the image goes to validation.
    """
    del seed
    labels_arr = np.asarray(labels)
    if len(files) != len(labels_arr):
        raise ValueError(f"{len(files)} files but {len(labels_arr)} labels")
    is_val = np.zeros(len(labels_arr), dtype=bool)
    for idx in _class_indices(labels_arr):
        ordered = sorted(idx.tolist(), key=lambda i: keras_order_key(files[i]))
        is_val[ordered[: int(fraction * len(ordered))]] = True
    return is_val


SPLITS: dict[str, SplitRule] = {"stratified": stratified_split, "sorted": sorted_split}
"""``data.split`` name -> rule."""


def split_rule(name: str) -> SplitRule:
    """The rule registered under ``name``.

    Raises:
        DataError: Unknown name; the message lists the valid ones.
    """
    try:
        return SPLITS[name]
    except KeyError:
        raise DataError(
            f"data.split: unknown split '{name}'; choose one of: {', '.join(sorted(SPLITS))}"
        ) from None


def group_names(files: Sequence[str], pattern: str) -> list[str]:
    """The source of each file: the first group of ``re.search(pattern, file)``.

    Args:
        files: ``/``-separated relative path of each image.
        pattern: A regular expression with at least one capturing group.

    Returns:
        The source of each file, ``""`` where the pattern does not match (or its first
        group is empty): such an image is a source of its own.
    """
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise ValueError(f"group pattern {pattern!r} has no capturing group")
    names = []
    for file in files:
        match = regex.search(file)
        names.append((match.group(1) or "") if match else "")
    return names


@dataclass(frozen=True)
class GroupSplit:
    """The result of :func:`group_split`.

    Attributes:
        is_val: True where the image goes to validation.
        shares: Validation share of each class, classes in sorted order.
        warnings: One line per class whose share is more than :data:`GROUP_TOLERANCE`
            from the requested fraction.
    """

    is_val: BoolArray
    shares: dict[str, float]
    warnings: list[str]


def group_split(
    labels: npt.ArrayLike,
    groups: Sequence[str],
    fraction: float,
    seed: int,
    *,
    restarts: int | None = None,
) -> GroupSplit:
    """Split whole sources, each class's validation share close to ``fraction``.

    A source (``groups[i]``; ``""`` is a source of one image) goes entirely to one side.
    Sources may hold images of several classes (one signer, every letter). The search
    minimises the sum over classes of (validation share - fraction)²: a greedy pass over
    the sources in a seeded random order, then single-source flips while they help,
    repeated from a few seeded orders (fewer for many sources); the best result wins,
    judged first by how many classes end outside ±:data:`GROUP_TOLERANCE`.

    Args:
        labels: Class of each image.
        groups: Source of each image (see :func:`group_names`).
        fraction: Requested validation fraction, in (0, 1).
        seed: The split's seed.
        restarts: How many seeded orders to try (default: 16 up to 2,000 sources, 4 up
            to 20,000, else 1).

    Returns:
        The split, each class's share and the warnings.
    """
    labels_arr = np.asarray(labels)
    if len(groups) != len(labels_arr):
        raise ValueError(f"{len(groups)} groups but {len(labels_arr)} labels")
    classes, y = np.unique(labels_arr, return_inverse=True)
    ids: dict[str, int] = {}
    gidx = np.array(
        [ids.setdefault(g if g else f"\0{i}", len(ids)) for i, g in enumerate(groups)],
        dtype=np.intp,
    )
    n_groups, n_classes = len(ids), len(classes)
    totals = np.bincount(y, minlength=n_classes)
    # Sparse rows (most sources hold one or a few classes): [(class, share of the class)].
    pairs = Counter(zip(gidx.tolist(), y.tolist(), strict=True))
    rows: list[list[tuple[int, float]]] = [[] for _ in range(n_groups)]
    for (g, c), n in sorted(pairs.items()):
        rows[g].append((c, n / float(totals[c])))
    groups_of_class = Counter(c for _, c in pairs)
    if restarts is None:
        restarts = 16 if n_groups <= 2_000 else 4 if n_groups <= 20_000 else 1
    rng = make_rng(seed)
    best: tuple[tuple[int, float, float], list[bool]] | None = None
    for _ in range(max(1, restarts)):
        order = rng.permutation(n_groups).tolist()
        chosen = _search(rows, order, n_classes, fraction)
        dev = [-fraction] * n_classes
        for g, on in enumerate(chosen):
            if on:
                for c, w in rows[g]:
                    dev[c] += w
        score = (
            sum(abs(d) > GROUP_TOLERANCE + 1e-9 for d in dev),
            max(abs(d) for d in dev),
            sum(d * d for d in dev),
        )
        if best is None or score < best[0]:
            best = (score, chosen)
    assert best is not None
    chosen_arr = np.array(best[1], dtype=bool)
    is_val = chosen_arr[gidx]
    shares: dict[str, float] = {}
    warnings: list[str] = []
    for c, name in enumerate(classes.tolist()):
        share = float(is_val[y == c].mean())
        shares[str(name)] = share
        if abs(share - fraction) > GROUP_TOLERANCE + 1e-9:
            warnings.append(
                f"data.group_pattern: class '{name}' gets {100 * share:.0f}% of its images "
                f"in validation (asked {100 * fraction:g}%, ±{100 * GROUP_TOLERANCE:g} points): "
                f"its {groups_of_class[c]} source(s) are too few or too uneven to do better"
            )
    return GroupSplit(is_val=is_val, shares=shares, warnings=warnings)


def _search(
    rows: list[list[tuple[int, float]]], order: list[int], n_classes: int, fraction: float
) -> list[bool]:
    """Greedy pass then single-flip descent on sum((share - fraction)²)."""
    dev = [-fraction] * n_classes
    chosen = [False] * len(rows)

    def delta(g: int, sign: float) -> float:
        return sum(2.0 * sign * dev[c] * w + w * w for c, w in rows[g])

    for g in order:
        if delta(g, 1.0) < -1e-12:
            chosen[g] = True
            for c, w in rows[g]:
                dev[c] += w
    for _ in range(50):
        improved = False
        for g in order:
            sign = -1.0 if chosen[g] else 1.0
            if delta(g, sign) < -1e-12:
                chosen[g] = not chosen[g]
                for c, w in rows[g]:
                    dev[c] += sign * w
                improved = True
        if not improved:
            break
    return chosen
