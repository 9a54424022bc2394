"""A held-out test split (``data.test_fraction``), carved from the training side.

Trials never see it: the sweep tunes on train/validation, and the test images are evaluated
once, for the final model (``retrain`` / ``export``). Taking them from the training side keeps the
validation split, and so every trial's score, exactly what it is without a test split.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from overfit_search.data.dataset import ImageData
from overfit_search.data.split import make_rng
from overfit_search.errors import DataError

_TEST_STREAM = 7  # an independent random stream of data.seed for the test draw


def hold_out_test(data: ImageData, fraction: float, seed: int) -> ImageData:
    """Move ``fraction`` of the images (per class; whole groups when groups are named) from the
    training side to a test split.

    Args:
        data: The loaded, split data.
        fraction: Share of all of a class's images to hold out, in (0, 0.5).
        seed: ``data.seed``.

    Returns:
        The data with ``x_test``/``y_test`` set and split rows marked ``test``.

    Raises:
        DataError: A class would have no training image left.
    """
    split = data.split.copy()
    train_rows = np.flatnonzero((split.subset == "train").to_numpy())
    if len(train_rows) != len(data.y_train):
        raise DataError("data.test_fraction: the split table does not match the training images")
    rng = make_rng(seed, _TEST_STREAM)
    groups = split.group.to_numpy()[train_rows]
    if any(groups):
        test = _by_groups(groups, fraction * len(split), rng)
    else:
        test = _by_class(data, split.label.to_numpy(), fraction, rng)
    left = np.bincount(data.y_train[~test], minlength=data.num_classes)
    if (left == 0).any():
        empty = data.class_names[int(np.argmin(left))]
        raise DataError(
            f"data.test_fraction: {fraction:g} leaves class '{empty}' no training image; "
            "lower it or add images"
        )
    split.loc[split.index[train_rows[test]], "subset"] = "test"
    x_train = np.asarray(data.x_train)
    return ImageData(
        x_train=x_train[~test],
        y_train=data.y_train[~test],
        x_val=data.x_val,
        y_val=data.y_val,
        class_names=data.class_names,
        split=split,
        skipped=data.skipped,
        warnings=data.warnings,
        x_test=x_train[test],
        y_test=data.y_train[test],
    )


def _by_class(
    data: ImageData, labels: npt.NDArray[np.object_], fraction: float, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    test = np.zeros(len(data.y_train), dtype=bool)
    for index, name in enumerate(data.class_names):
        mine = np.flatnonzero(data.y_train == index)
        want = round(fraction * int((labels == name).sum()))
        take = min(want, len(mine) - 1)
        if take > 0:
            test[rng.choice(mine, size=take, replace=False)] = True
    return test


def _by_groups(
    groups: npt.NDArray[np.object_], target: float, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    test = np.zeros(len(groups), dtype=bool)
    for group in rng.permutation(sorted(set(groups.tolist()))):
        if test.sum() >= target:
            break
        test |= groups == group
    return test
