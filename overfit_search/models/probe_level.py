"""The setup check's significance level, apart from :mod:`overfit_search.models.probe` so that
``check-model``'s help is built without importing numpy."""

from __future__ import annotations

ALPHA = 0.01
"""Family-wise level of the setup check: the best convention's validation accuracy must have a
one-sided binomial p-value below ``ALPHA / conventions tried`` (Bonferroni) against chance."""
