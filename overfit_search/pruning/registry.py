"""Rules by name, as the sweep file's ``pruning.rule`` names them."""

from __future__ import annotations

from typing import Any

from overfit_search.pruning.base import Rule, construct
from overfit_search.pruning.rules import GapRule, GLRule, NoRule, PeakRule, PQRule, UPRule

RULES: dict[str, type] = {
    "gl": GLRule,
    "pq": PQRule,
    "up": UPRule,
    "gap": GapRule,
    "peak": PeakRule,
    "none": NoRule,
}


def make_rule(name: str, **params: Any) -> Rule:
    """Build a rule by name.

    Args:
        name: One of ``RULES`` (``gap``, ``gl``, ``none``, ``peak``, ``pq``, ``up``).
        **params: The rule's parameters, e.g. ``alpha=5.0``; missing ones take their defaults.

    Returns:
        The rule.

    Raises:
        ValueError: Unknown name (the message lists the valid ones), an unknown parameter, or a
            bad parameter value (the message names the parameter).
    """
    rule: Rule = construct("pruning rule", RULES, name, params)
    return rule
