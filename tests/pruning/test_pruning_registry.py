"""Rules by name: what the sweep file's ``pruning.rule`` builds, and its error messages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from overfit_search.pruning import (
    RULES,
    GapRule,
    GLRule,
    NoRule,
    PeakRule,
    PQRule,
    UPRule,
    make_rule,
)


def test_registry_names_every_rule() -> None:
    expected = {
        "gl": GLRule,
        "pq": PQRule,
        "up": UPRule,
        "gap": GapRule,
        "peak": PeakRule,
        "none": NoRule,
    }
    assert expected == RULES


@pytest.mark.parametrize("name", sorted(RULES))
def test_make_rule_builds_each_rule_with_defaults(name: str) -> None:
    rule = make_rule(name)
    assert isinstance(rule, RULES[name])
    assert rule.name == name


@pytest.mark.parametrize(
    ("name", "params", "attrs"),
    [
        ("gl", {"alpha": 2.5}, {"alpha": 2.5}),
        ("pq", {"alpha": 0.7, "strip": 3}, {"alpha": 0.7, "strip": 3}),
        ("up", {"strips": 2}, {"strips": 2, "strip": 5}),
        ("gap", {"max_gap": 0.1, "patience": 4}, {"max_gap": 0.1, "patience": 4}),
    ],
)
def test_make_rule_passes_parameters(
    name: str, params: dict[str, Any], attrs: dict[str, Any]
) -> None:
    rule = make_rule(name, **params)
    assert {key: getattr(rule, key) for key in attrs} == attrs


def test_make_rule_takes_a_config_dump_as_is() -> None:
    # The runner calls make_rule(**sweep.pruning.rule.model_dump()), the name included.
    dump: dict[str, Any] = {"name": "pq", "alpha": 0.5, "strip": 5}
    assert isinstance(make_rule(**dump), PQRule)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("magic", {}, "unknown pruning rule 'magic'; choose one of: gap, gl, none, peak, pq, up"),
        ("GL", {}, "unknown pruning rule 'GL'; choose one of: gap, gl, none, peak, pq, up"),
        ("gl", {"alpha": -1}, "gl: alpha must be > 0, got -1"),
        ("pq", {"strip": 1}, "pq: strip must be >= 2, got 1"),
        ("up", {"strips": 0}, "up: strips must be >= 1, got 0"),
        ("up", {"strip": "5"}, "up: strip must be an integer, got '5'"),
        ("gap", {"patience": 0}, "gap: patience must be >= 1, got 0"),
        ("gap", {"max_gap": -0.5}, "gap: max_gap must be >= 0, got -0.5"),
        ("gl", {"beta": 1}, "gl: unknown parameter 'beta'; valid: alpha, patience"),
        ("pq", {"k": 5, "a": 1}, "pq: unknown parameters 'a', 'k'; valid: alpha, strip"),
        ("none", {"alpha": 5}, "none: unknown parameter 'alpha'; it takes no parameters"),
    ],
)
def test_make_rule_errors_name_the_problem(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_rule(name, **params)
