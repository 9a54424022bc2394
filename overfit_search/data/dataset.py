"""The decoded, split image data every trial shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class ImageData:
    """Decoded uint8 images and the split.

    Attributes:
        x_train: uint8 images, (N, S, S, 3).
        y_train: int32 class indices.
        x_val: Validation images.
        y_val: Validation class indices.
        class_names: Class names, by index.
        split: One row per image: ``file``, ``label``, ``subset`` (train/validation), ``group``.
        skipped: ``(file, reason)`` of images that could not be read.
        content_hash: sha256 of the arrays and labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: list[str]
    split: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            digest = hashlib.sha256()
            for array in (self.x_train, self.y_train, self.x_val, self.y_val):
                digest.update(np.ascontiguousarray(array).tobytes())
            self.content_hash = digest.hexdigest()

    @property
    def num_classes(self) -> int:
        """How many classes."""
        return len(self.class_names)
