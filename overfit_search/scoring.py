"""Objective values of a finished trial (DESIGN.md §5). Pure."""

from __future__ import annotations

from typing import Literal

Mode = Literal["val_loss", "constrained", "pareto", "penalized"]
Direction = Literal["minimize", "maximize"]


def objective_values(
    mode: Mode, best_val_loss: float, gap: float, max_gap: float, penalty_weight: float
) -> list[float]:
    """The value(s) told to Optuna for a trial scored at its best epoch.

    Args:
        mode: ``val_loss`` (val_loss; the gap is reported, not a constraint),
            ``constrained`` (val_loss; the gap is a constraint), ``pareto`` (val_loss and gap,
            both minimized) or ``penalized``.
        best_val_loss: ``val_loss@best``.
        gap: ``gap@best``.
        max_gap: The largest acceptable gap.
        penalty_weight: Weight of the gap above ``max_gap`` (penalized only).
    """
    if mode == "pareto":
        return [best_val_loss, gap]
    if mode == "penalized":
        return [best_val_loss + penalty_weight * max(0.0, gap - max_gap)]
    return [best_val_loss]


def directions(mode: Mode) -> list[Direction]:
    """Optuna study directions for an objective mode."""
    return ["minimize", "minimize"] if mode == "pareto" else ["minimize"]


def is_feasible(gap: float | None, max_gap: float) -> bool:
    """Whether a trial's gap at its best epoch is within ``max_gap``."""
    return gap is not None and gap <= max_gap


def constrains_gap(mode: Mode) -> bool:
    """Whether trials of ``mode`` get Optuna's gap constraint (``gap - max_gap <= 0``).

    ``penalized`` folds the gap into the value (a constraint too would count it twice) and
    ``val_loss`` leaves it out of the choice.
    """
    return mode in ("constrained", "pareto")


def counts_for_best(mode: Mode, state: str, feasible: bool | None) -> bool:
    """Whether a finished trial can be the export's choice (``select_best``), so the live
    table's "best" shows what the run would export: COMPLETE trials only, and with
    ``constrained`` or ``pareto`` only those within ``max_gap``."""
    if state != "COMPLETE":
        return False
    return bool(feasible) if constrains_gap(mode) else True
