"""Image sources, splits and the shared decoded data. No Keras, Ray or Optuna imports.

:func:`load_data` dispatches on ``data.source`` through :data:`SOURCES`:

- ``folder``: a class-per-folder directory (or ``train/`` + ``validation/``) decoded once
  with Pillow, cached on disk when given a cache folder (:mod:`overfit_search.data.folder`,
  :mod:`overfit_search.data.cache`).
- ``digits``: scikit-learn's bundled 8x8 digits, upscaled (:mod:`overfit_search.data.digits`).

Splits are in :mod:`overfit_search.data.split`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overfit_search.errors import DataError

if TYPE_CHECKING:  # the package itself stays light (numpy, pandas, Pillow load on first use)
    from overfit_search.config.schema import DataConfig
    from overfit_search.data.dataset import ImageData
    from overfit_search.data.digits import digits_images
    from overfit_search.data.split import SORTED_SPLIT_WARNING, sorted_split_warning

Loader = Callable[["DataConfig", Path | None, int | None], "ImageData"]
"""``(data section, cache folder or None, split seed or None for data.seed) -> ImageData``."""

_LAZY = {
    "ImageData": "overfit_search.data.dataset",
    "digits_images": "overfit_search.data.digits",
    "SORTED_SPLIT_WARNING": "overfit_search.data.split",
    "sorted_split_warning": "overfit_search.data.split",
}
"""Names of this package imported from their module on first use (PEP 562)."""


def _sources() -> dict[str, Loader]:
    """:data:`SOURCES`, made (importing the loaders) on first use, then the same dict."""
    made: dict[str, Loader] | None = globals().get("SOURCES")
    if made is None:
        from overfit_search.data.digits import load_digits_data
        from overfit_search.data.folder import load_folder_data

        made = {"folder": load_folder_data, "digits": load_digits_data}
        globals()["SOURCES"] = made
    return made


def __getattr__(name: str) -> Any:
    if name == "SOURCES":
        return _sources()
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SOURCES: dict[str, Loader]
"""``data.source`` name -> loader (imported on first use)."""


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
    sources = _sources()
    try:
        loader = sources[cfg.source]
    except KeyError:
        raise DataError(
            f"data.source: unknown source '{cfg.source}'; choose one of: "
            f"{', '.join(sorted(sources))}"
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
