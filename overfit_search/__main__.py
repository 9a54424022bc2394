"""``python -m overfit_search``."""

from __future__ import annotations

from overfit_search.cli import main_entry

main_entry()
