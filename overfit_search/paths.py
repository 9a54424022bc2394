"""Where overfit-search keeps files that outlive one sweep. Pure: no heavy imports."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The user cache folder: ``$OVERFIT_SEARCH_CACHE`` or ``~/.cache/overfit-search``.

    Returns:
        The folder (not created here).
    """
    root = os.environ.get("OVERFIT_SEARCH_CACHE") or Path.home() / ".cache" / "overfit-search"
    return Path(root)


def data_cache() -> Path:
    """Where decoded images are cached (``<cache_root>/data``), shared by every study."""
    return cache_root() / "data"
