"""Rules by name."""

from __future__ import annotations

from typing import Any

from overfit_search.pruning.base import Rule
from overfit_search.pruning.rules import GapRule, GLRule, NoRule, PQRule, UPRule

RULES: dict[str, type] = {"gl": GLRule, "pq": PQRule, "up": UPRule, "gap": GapRule, "none": NoRule}


def make_rule(name: str, **params: Any) -> Rule:
    """Build a rule by name.

    Raises:
        ValueError: Unknown name (the message lists the valid ones) or bad parameters.
    """
    if name not in RULES:
        raise ValueError(
            f"unknown pruning rule '{name}'; choose one of: {', '.join(sorted(RULES))}"
        )
    try:
        rule: Rule = RULES[name](**params)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return rule
