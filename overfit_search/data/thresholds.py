"""What the data checks count as a near-duplicate, a tiny class, an imbalance and a leak.

Apart from :mod:`overfit_search.data.check` so that ``check-data``'s options (their defaults
are these) are defined without importing numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HASH_LOW = 8
"""The hash keeps the HASH_LOW x HASH_LOW lowest DCT frequencies: 64 bits."""


@dataclass(frozen=True)
class Thresholds:
    """What counts as a near-duplicate, a tiny class, an imbalance and a leak.

    Attributes:
        hash_distance: Candidate pairs differ in at most this many of the 64 pHash bits.
        pixel_distance: A candidate is confirmed when the mean absolute difference of the
            two normalised thumbnails is at most this (in standard deviations).
        thumb_size: Side of the thumbnails compared for confirmation.
        min_train_images: Classes with fewer training images than this are tiny.
        max_imbalance: Largest over smallest class (training images) above this is an
            imbalance.
        max_leak_fraction: Above this fraction of validation images with a near-duplicate
            in training, the report (and ``run``) warns of leakage.
    """

    hash_distance: int = 14
    pixel_distance: float = 0.10
    thumb_size: int = 32
    min_train_images: int = 10
    max_imbalance: float = 3.0
    max_leak_fraction: float = 0.01

    @property
    def margin(self) -> int:
        """Thumbnail border left out of the comparison; shifts up to ``margin - 1`` are
        aligned (an eighth of the side: 4 of 32 pixels, 3/32 of the image either way)."""
        return self.thumb_size // 8

    def __post_init__(self) -> None:
        if not 0 <= self.hash_distance <= HASH_LOW * HASH_LOW:
            raise ValueError(f"hash_distance: expected 0..64, got {self.hash_distance}")
        if not (math.isfinite(self.pixel_distance) and self.pixel_distance >= 0):
            raise ValueError(f"pixel_distance: expected a number >= 0, got {self.pixel_distance}")
        if not 8 <= self.thumb_size <= 64:
            raise ValueError(f"thumb_size: expected 8..64, got {self.thumb_size}")
        if self.min_train_images < 1:
            raise ValueError(f"min_train_images: expected >= 1, got {self.min_train_images}")
        if not (math.isfinite(self.max_imbalance) and self.max_imbalance >= 1):
            raise ValueError(f"max_imbalance: expected a number >= 1, got {self.max_imbalance}")
        if not 0 <= self.max_leak_fraction <= 1:
            raise ValueError(
                f"max_leak_fraction: expected a number in 0..1, got {self.max_leak_fraction}"
            )
