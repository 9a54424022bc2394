"""Rules by name, as the sweep file's ``pruning.rule`` names them."""

from __future__ import annotations

import inspect
from typing import Any

from overfit_search.pruning.base import Rule
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
    cls = RULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"unknown pruning rule {name!r}; choose one of: {', '.join(sorted(RULES))}"
        )
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        valid = f"valid: {', '.join(accepted)}" if accepted else "it takes no parameters"
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(
            f"{name}: unknown parameter{plural} {', '.join(map(repr, unknown))}; {valid}"
        )
    rule: Rule = cls(**params)
    return rule
