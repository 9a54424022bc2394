"""The decoded, split image data every trial shares."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

ImageArray = npt.NDArray[np.uint8]
"""uint8 images, (N, S, S, 3)."""
LabelArray = npt.NDArray[np.int32]
"""int32 class indices, (N,)."""

SPLIT_COLUMNS = ("file", "label", "subset", "group")
"""The columns of :attr:`ImageData.split` (and of split.csv), in order."""

_HASH_CHUNK_BYTES = 64 * 1024 * 1024


def content_hash(
    x_train: npt.NDArray[np.generic],
    y_train: npt.NDArray[np.generic],
    x_val: npt.NDArray[np.generic],
    y_val: npt.NDArray[np.generic],
    class_names: Sequence[str],
) -> str:
    """sha256 hex digest of the decoded arrays, their labels and the class names.

    Arrays are read in chunks of whole rows, so memory-mapped data is never copied whole.

    Args:
        x_train: Training images.
        y_train: Training class indices.
        x_val: Validation images.
        y_val: Validation class indices.
        class_names: Class names, by index.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256(b"overfit-search data v1\0")
    digest.update("\0".join(class_names).encode())
    for array in (x_train, y_train, x_val, y_val):
        digest.update(f"\0{array.dtype.str}{array.shape}\0".encode())
        row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64)))
        rows = max(1, _HASH_CHUNK_BYTES // row_bytes)
        for start in range(0, len(array), rows):
            digest.update(np.ascontiguousarray(array[start : start + rows]).tobytes())
    return digest.hexdigest()


@dataclass
class ImageData:
    """Decoded uint8 images and their train/validation split.

    Attributes:
        x_train: uint8 training images, (N, S, S, 3); may be a read-only memory map.
        y_train: int32 class indices of the training images.
        x_val: uint8 validation images, (M, S, S, 3); may be a read-only memory map.
        y_val: int32 class indices of the validation images.
        class_names: Class names, by index.
        split: One row per image used: ``file`` (path relative to ``data.dir``, ``/``
            separated, or ``digits:<index>``), ``label`` (class name), ``subset``
            (``train`` or ``validation``), ``group`` (the source named by
            ``data.group_pattern``, or ``""``). Saved as split.csv.
        skipped: ``(file, reason)`` of every image that could not be read.
        content_hash: sha256 hex digest of the arrays, labels and class names (see
            :func:`content_hash`); computed when not given.
        x_test: Held-out test images (``data.test_fraction``), or None; never seen by trials.
        y_test: Their class indices.
        warnings: Warnings the loader logged (uneven group split, classes missing
            from a user-supplied validation folder). The ``split: sorted`` warning is
            not among them: the CLI logs :data:`~overfit_search.data.split.SORTED_SPLIT_WARNING`.
    """

    x_train: ImageArray
    y_train: LabelArray
    x_val: ImageArray
    y_val: LabelArray
    class_names: list[str]
    split: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    content_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    x_test: ImageArray | None = None
    y_test: LabelArray | None = None

    def without_test(self) -> ImageData:
        """The same data with no test images (what trials get)."""
        return dataclasses.replace(self, x_test=None, y_test=None)

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = content_hash(
                self.x_train, self.y_train, self.x_val, self.y_val, self.class_names
            )

    @property
    def num_classes(self) -> int:
        """How many classes."""
        return len(self.class_names)


def split_frame(
    files: Sequence[str],
    labels: Sequence[str],
    is_val: npt.NDArray[np.bool_],
    groups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The split table: one row per image, columns :data:`SPLIT_COLUMNS`.

    Args:
        files: File of each image (relative path or ``digits:<index>``).
        labels: Class name of each image.
        is_val: True where the image is in the validation split.
        groups: Source of each image (``""`` when none); all ``""`` when not given.

    Returns:
        The table, in the order given.
    """
    return pd.DataFrame(
        {
            "file": list(files),
            "label": list(labels),
            "subset": ["validation" if v else "train" for v in is_val.tolist()],
            "group": list(groups) if groups is not None else [""] * len(files),
        },
        columns=list(SPLIT_COLUMNS),
    )
