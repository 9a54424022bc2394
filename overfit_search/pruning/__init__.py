"""Overfitting rules and the stop/prune decision. Pure: no Keras, Ray or Optuna imports."""

from __future__ import annotations

from overfit_search.pruning.base import Firing, Rule
from overfit_search.pruning.grace import Grace
from overfit_search.pruning.judge import Decision, Outcome, OverfitJudge
from overfit_search.pruning.registry import RULES, make_rule
from overfit_search.pruning.rules import GapRule, GLRule, NoRule, PQRule, UPRule

__all__ = [
    "RULES",
    "Decision",
    "Firing",
    "GLRule",
    "GapRule",
    "Grace",
    "NoRule",
    "Outcome",
    "OverfitJudge",
    "PQRule",
    "Rule",
    "UPRule",
    "make_rule",
]
