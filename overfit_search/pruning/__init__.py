"""Overfitting rules and the stop/prune decision. Pure: no Keras, Ray or Optuna imports."""

from __future__ import annotations

from overfit_search.pruning.base import Firing, Rule
from overfit_search.pruning.budget import (
    BUDGETS,
    BudgetRule,
    HalvingRule,
    MedianRule,
    NoBudget,
    make_budget,
)
from overfit_search.pruning.grace import Grace
from overfit_search.pruning.judge import Decision, Outcome, OverfitJudge
from overfit_search.pruning.presets import PRESETS, preset
from overfit_search.pruning.registry import RULES, make_rule
from overfit_search.pruning.rules import (
    GapRule,
    GLRule,
    NoRule,
    PeakRule,
    PQRule,
    UPRule,
    relative_noise,
)

__all__ = [
    "BUDGETS",
    "PRESETS",
    "RULES",
    "BudgetRule",
    "Decision",
    "Firing",
    "GLRule",
    "GapRule",
    "Grace",
    "HalvingRule",
    "MedianRule",
    "NoBudget",
    "NoRule",
    "Outcome",
    "OverfitJudge",
    "PQRule",
    "PeakRule",
    "Rule",
    "UPRule",
    "make_budget",
    "make_rule",
    "preset",
    "relative_noise",
]
