from __future__ import annotations

import math

import pytest

from overfit_search.pruning import (
    RULES,
    GapRule,
    GLRule,
    Grace,
    NoRule,
    PQRule,
    UPRule,
    make_rule,
)
from overfit_search.pruning.rules import generalization_loss, training_progress


def test_generalization_loss_is_percent_above_best() -> None:
    assert generalization_loss([1.0, 0.5, 0.55]) == pytest.approx(10.0)
    assert generalization_loss([1.0, 0.8]) == 0.0


def test_training_progress() -> None:
    # mean 1.1 / min 1.0 -> 1000 * 0.1
    assert training_progress([5.0, 1.2, 1.1, 1.0], strip=3) == pytest.approx(100.0)


def test_gl_fires_with_figure_and_epoch_in_reason() -> None:
    firing = GLRule(alpha=5).check([1.0, 0.5, 0.52, 0.54], [1.0] * 4)
    assert firing is not None
    assert (firing.rule, firing.epoch) == ("gl", 4)
    assert firing.value == pytest.approx(8.0)
    assert firing.reason == "GL 8.0% > 5% at epoch 4"
    assert GLRule(alpha=10).check([1.0, 0.5, 0.52, 0.54], [1.0] * 4) is None


def test_pq_only_at_strip_ends() -> None:
    val = [1.0, 0.5, 0.6, 0.7]
    train = [1.0, 0.99, 0.985, 0.98]  # nearly no progress: PQ huge
    assert PQRule(alpha=0.5, strip=2).check(val[:3], train[:3]) is None  # t=3 not a strip end
    firing = PQRule(alpha=0.5, strip=2).check(val, train)
    assert firing is not None and firing.epoch == 4


def test_up_needs_consecutive_rising_strip_ends() -> None:
    rule = UPRule(strips=2, strip=2)
    assert rule.check([1.0, 0.5, 0.6, 0.7, 0.8, 0.9], [0.0] * 6) is not None
    assert rule.check([1.0, 0.9, 0.6, 0.5, 0.8, 0.9], [0.0] * 6) is None


def test_gap_rule_patience() -> None:
    rule = GapRule(max_gap=0.1, patience=2)
    assert rule.check([0.5, 0.5], [0.3, 0.45]) is None
    firing = rule.check([0.5, 0.5, 0.5], [0.45, 0.3, 0.3])
    assert firing is not None and firing.epoch == 3 and "for 2 epochs" in firing.reason


def test_grace_suppresses_early_firing() -> None:
    val = [1.0, 2.0, 3.0]
    assert GLRule().check(val[:2], val[:2]) is not None
    assert Grace(GLRule(), grace_epochs=2).check(val[:2], val[:2]) is None
    assert Grace(GLRule(), grace_epochs=2).check(val, val) is not None


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("gl", {"alpha": -1}, r"gl: alpha must be > 0, got -1"),
        ("pq", {"strip": 1}, r"pq: strip must be >= 2"),
        ("up", {"strips": 0}, r"up: strips must be >= 1"),
        ("gap", {"patience": 0}, r"gap: patience must be >= 1"),
        ("gl", {"beta": 1}, r"gl: .*beta"),
        ("magic", {}, r"unknown pruning rule 'magic'; choose one of: gap, gl, none, pq, up"),
    ],
)
def test_registry_validates_eagerly(name: str, params: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_rule(name, **params)


def test_registry_builds_every_rule() -> None:
    for name in RULES:
        assert make_rule(name).name == name
    assert isinstance(make_rule("none"), NoRule)


# The shared contract: every rule against the same scripted curves (val, train_eval).
CURVES: dict[str, tuple[list[float], list[float]]] = {
    "flat": ([1.0] * 12, [1.0] * 12),
    "improving": ([1.0 - 0.05 * i for i in range(12)], [0.9 - 0.05 * i for i in range(12)]),
    "noisy": (
        [1.0, 0.9, 0.92, 0.85, 0.87, 0.82, 0.84, 0.8, 0.81, 0.79, 0.8, 0.78],
        [0.9 - 0.03 * i for i in range(12)],
    ),
    "overfit_from_3": (
        [1.0, 0.8, 0.7, 0.75, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5],
        [0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.04],
    ),
    "nan_at_2": ([1.0, math.nan, 0.9, 0.8], [1.0, math.nan, 0.9, 0.8]),
    "spike_recovers": (
        [1.0, 0.8, 0.7, 0.95, 0.65, 0.6, 0.55, 0.5, 0.48, 0.46, 0.44, 0.42],
        [0.9 - 0.05 * i for i in range(12)],
    ),
}

RULE_CASES = {
    "gl": GLRule(alpha=5.0),
    "pq": PQRule(alpha=0.5, strip=4),
    "up": UPRule(strips=2, strip=3),
    "gap": GapRule(max_gap=0.3, patience=2),
    "none": NoRule(),
}

# First epoch (after a grace of 2) at which each rule fires on each curve; None: never.
EXPECTED: dict[str, dict[str, int | None]] = {
    "flat": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    "improving": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    "noisy": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    # GL(4) = 7.1%; PQ(4) = 7.1 / P_4 (1000*(0.625/0.4-1)=562.5) tiny,
    # PQ(8) = 57.1/(1000*(0.2125/0.1-1)) ~ 0.05, PQ(12) = 114.3/(1000*(0.0575/0.04-1)) ~ 0.26:
    # never; UP: ends 6 (0.9) > 3 (0.7) and 9 (1.2) > 6 -> 9;
    # gap: 0.35 at 4, 0.5 at 5 -> epochs 4,5 > 0.3 -> 5
    "overfit_from_3": {"gl": 4, "pq": None, "up": 9, "gap": 5, "none": None},
    "nan_at_2": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    # GL(4) = 100*(0.95/0.7-1) = 35.7% -> fires at 4 (a spike): the median comparison is what
    # keeps such a trial COMPLETE; PQ at 4: P_4 = 1000*(0.825/0.75-1)=100 -> 0.36 < 0.5
    "spike_recovers": {"gl": 4, "pq": None, "up": None, "gap": None, "none": None},
}


def _first_firing(rule: object, val: list[float], train: list[float]) -> int | None:
    graced = Grace(rule, grace_epochs=2)  # type: ignore[arg-type]
    for t in range(1, len(val) + 1):
        if any(not math.isfinite(v) for v in val[:t]):
            return None  # the judge ends a NaN trial as FAIL before any rule sees it
        firing = graced.check(val[:t], train[:t])
        if firing is not None:
            assert firing.epoch == t
            return t
    return None


@pytest.mark.parametrize("curve", sorted(CURVES))
@pytest.mark.parametrize("rule_name", sorted(RULE_CASES))
def test_rule_contract(curve: str, rule_name: str) -> None:
    val, train = CURVES[curve]
    assert _first_firing(RULE_CASES[rule_name], val, train) == EXPECTED[curve][rule_name]
