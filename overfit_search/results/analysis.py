"""The figures report.html states about a sweep, computed from the results
:mod:`~overfit_search.results.reader` read: trials per state, trials stuck at chance, the
baseline's improvement, images per class and subset. No HTML, no TensorFlow or Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from overfit_search.layout import CHECK_MODEL_FILE, HISTORIES_TRIAL, ResultKey, TrialAttr
from overfit_search.results import figures
from overfit_search.results.reader import Results, _probe_evidence
from overfit_search.results.stuck import (
    CHANCE_MIN_EPOCHS,
    LR_COLUMN,
    finished_rows,
    judged_rows,
    stuck_cause,
)

CHANCE_FACTOR = 1.5
"""A finished trial whose best validation accuracy never exceeded this many times chance
(1 / classes) is reported as stuck at chance."""


def state_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per state, in the order COMPLETE, PRUNED, FAIL, RUNNING, WAITING, others.

    Args:
        trials: A trials.csv frame.

    Returns:
        State -> count (states with no trial left out).
    """
    if TrialAttr.STATE not in trials.columns:
        return {}
    found = {str(k): int(v) for k, v in trials[TrialAttr.STATE].astype(str).value_counts().items()}
    order = [*figures.STATE_COLOURS, *sorted(set(found) - set(figures.STATE_COLOURS))]
    return {s: int(found[s]) for s in order if s in found}


def at_chance(r: Results) -> tuple[list[int], float] | None:
    """Finished trials whose best validation accuracy stayed at chance.

    Args:
        r: The results (split.csv gives the number of classes; histories.csv the accuracies).

    Returns:
        The trial numbers and the accuracy bar (:data:`CHANCE_FACTOR` / classes), or None when
        the classes or accuracies are not known.
    """
    h, split = r.histories, r.split
    if split is None or "label" not in split.columns or ResultKey.VAL_ACCURACY not in h.columns:
        return None
    classes = split["label"].nunique()
    if classes < 2 or TrialAttr.STATE not in r.trials.columns:
        return None
    bar = CHANCE_FACTOR / classes
    best = h.groupby(HISTORIES_TRIAL)[ResultKey.VAL_ACCURACY].max()
    judged = judged_rows(r.trials)["number"].astype(int)
    return [n for n in judged if n in best.index and best[n] <= bar], bar


def chance_note(r: Results, probe: Mapping[str, Any] | None = None) -> str | None:
    """A warning naming the finished trials that never beat chance, or None when there are none.

    It gives their learning-rate range against the other trials' and the likely cause, named
    from the evidence (:func:`~overfit_search.results.stuck.stuck_cause`).

    Args:
        r: The results.
        probe: The setup check's result, when one ran (see ``stuck_cause``).
    """
    found = at_chance(r)
    if not found or not found[0]:
        return None
    stuck, bar = found
    finished = judged_rows(r.trials)
    short = len(finished_rows(r.trials)) - len(finished)
    note = (
        f"{len(stuck)} of {len(finished)} finished trials never beat chance (best validation "
        f"accuracy at most {bar:.3g}): trial{'s' if len(stuck) > 1 else ''} "
        f"{', '.join(map(str, stuck[:10]))}{', …' if len(stuck) > 10 else ''}."
    )
    if short:
        note += (
            f" ({short} stopped before epoch {CHANCE_MIN_EPOCHS} by the budget rule are not "
            "counted.)"
        )
    if LR_COLUMN in finished.columns:
        lr = finished.set_index("number")[LR_COLUMN]
        mine = lr[lr.index.isin(stuck)]
        others = lr[~lr.index.isin(stuck)]
        note += f" Their learning rates: {mine.min():.2g}–{mine.max():.2g}"
        note += (
            f"; the other trials: {others.min():.2g}–{others.max():.2g}." if len(others) else "."
        )
    assert r.split is not None  # at_chance found classes in it
    classes = int(r.split["label"].nunique())
    if probe is None:
        probe = _probe_evidence(r.out / CHECK_MODEL_FILE)
    cause = stuck_cause(r.trials, r.histories, stuck, classes, bar, probe)
    return f"{note} {cause.sentence()}"


def _baseline_row(trials: pd.DataFrame) -> pd.Series | None:
    if TrialAttr.BASELINE not in trials.columns or trials.empty:
        return None
    rows = trials[trials[TrialAttr.BASELINE].map(figures.truthy)]
    return None if rows.empty else rows.iloc[0]


def _finished(row: pd.Series) -> bool:
    return str(row.get(TrialAttr.STATE)) in ("COMPLETE", "PRUNED") and not pd.isna(
        row.get(TrialAttr.BEST_VAL_LOSS)
    )


def improvement(before: float, after: float) -> tuple[float, float | None]:
    """Change from ``before`` to ``after``: absolute, and percent of ``before``.

    Args:
        before: The baseline's figure.
        after: The winner's figure.

    Returns:
        ``(after - before, percent)``; percent is None when ``before`` is zero.
    """
    delta = after - before
    return delta, (100.0 * delta / abs(before) if abs(before) > 1e-12 else None)


def split_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Images per class and subset from split.csv, with a total row and column.

    Args:
        split: split.csv (``label``, ``subset`` columns).

    Returns:
        One row per class (``class``, one column per subset, ``total``), then ``total``.
    """
    table = pd.crosstab(split["label"].astype(str), split["subset"].astype(str))
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table.rename_axis(index="class", columns=None).reset_index()
