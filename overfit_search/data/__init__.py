"""Image sources, splits and the shared decoded data. No Keras, Ray or Optuna imports.

:func:`load_data` dispatches on ``data.source`` through :data:`SOURCES`:

- ``folder``: a class-per-folder directory (or ``train/`` + ``validation/``) decoded once
  with Pillow, cached on disk when given a cache folder (:mod:`overfit_search.data.folder`,
  :mod:`overfit_search.data.cache`).
- ``digits``: scikit-learn's bundled 8x8 digits, upscaled (:mod:`overfit_search.data.digits`).

Splits are in :mod:`overfit_search.data.split`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from overfit_search.config.schema import DataConfig
from overfit_search.data.dataset import ImageData
from overfit_search.data.digits import digits_images, load_digits_data
from overfit_search.data.folder import load_folder_data
from overfit_search.data.split import SORTED_SPLIT_WARNING, sorted_split_warning
from overfit_search.errors import DataError

Loader = Callable[[DataConfig, Path | None, int | None], ImageData]
"""``(data section, cache folder or None, split seed or None for data.seed) -> ImageData``."""

SOURCES: dict[str, Loader] = {
    "folder": load_folder_data,
    "digits": load_digits_data,
}
"""``data.source`` name -> loader."""


def load_data(
    cfg: DataConfig, cache_dir: Path | None = None, rng_seed: int | None = None
) -> ImageData:
    """Decode the sweep's images once and split them.

    Args:
        cfg: The sweep's data section.
        cache_dir: Folder of the on-disk decoded cache (folder source): a second load of
            the same files decodes nothing and memory-maps the cached arrays. ``None``:
            decode into memory, no cache.
        rng_seed: Seed of the split (and of the ``train_per_class`` draw), overriding
            ``cfg.seed``; ``None`` uses ``cfg.seed``.

    Returns:
        The decoded, split data.

    Raises:
        DataError: Unknown source, or the data is missing or unusable (one-line message
            naming the setting and the folder).
    """
    try:
        loader = SOURCES[cfg.source]
    except KeyError:
        raise DataError(
            f"data.source: unknown source '{cfg.source}'; choose one of: "
            f"{', '.join(sorted(SOURCES))}"
        ) from None
    data = loader(cfg, cache_dir, rng_seed)
    if cfg.test_fraction:
        from overfit_search.data.holdout import hold_out_test

        data = hold_out_test(data, cfg.test_fraction, cfg.seed if rng_seed is None else rng_seed)
    return data


__all__ = [
    "SORTED_SPLIT_WARNING",
    "SOURCES",
    "ImageData",
    "Loader",
    "digits_images",
    "load_data",
    "sorted_split_warning",
]
