"""Image sources, splits and the shared decoded data. No Keras, Ray or Optuna imports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from overfit_search.config.schema import DataConfig
from overfit_search.data.dataset import ImageData
from overfit_search.data.digits import digits_images, load_digits_data
from overfit_search.data.folder import load_folder_data

SOURCES: dict[str, Callable[[DataConfig], ImageData]] = {
    "folder": load_folder_data,
    "digits": load_digits_data,
}


def load_data(cfg: DataConfig, cache_dir: Path | None = None) -> ImageData:
    """Decode the sweep's images once and split them (see :data:`SOURCES`).

    Args:
        cfg: The sweep's data section.
        cache_dir: Reserved for the on-disk decoded cache (not used yet).
    """
    return SOURCES[cfg.source](cfg)


__all__ = ["SOURCES", "ImageData", "digits_images", "load_data"]
