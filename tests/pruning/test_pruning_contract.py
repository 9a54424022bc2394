"""The shared contract: every rule against the same scripted curves.

Expectations are computed by hand from DESIGN.md §5 (the arithmetic is in the comments). Rule
parameters: GL alpha 5; PQ alpha 0.5, strip 3; UP 2 strips of 3; gap 0.15 for 2 epochs.
"""

from __future__ import annotations

import math

import pytest

from overfit_search.pruning import GapRule, GLRule, NoRule, OverfitJudge, PQRule, Rule, UPRule

RULES: dict[str, Rule] = {
    "gl": GLRule(alpha=5.0),
    "pq": PQRule(alpha=0.5, strip=3),
    "up": UPRule(strips=2, strip=3),
    "gap": GapRule(max_gap=0.15, patience=2),
    "none": NoRule(),
}

NOISY = [1.00, 0.90, 0.93, 0.85, 0.87, 0.80, 0.82, 0.76, 0.78, 0.72, 0.74, 0.70]

# (val_loss, train_eval_loss), epochs 1..12 (index 0 is epoch 1).
CURVES: dict[str, tuple[list[float], list[float]]] = {
    # GL 0 throughout; PQ: GL 0 -> 0; UP: equal strip ends never rise; gap 0.1.
    "flat": ([1.0] * 12, [0.9] * 12),
    # A new best every epoch: GL 0, PQ 0, strip ends fall; gap 0.1.
    "improving": ([1.0 - 0.05 * i for i in range(12)], [0.9 - 0.05 * i for i in range(12)]),
    # Bounces of at most GL 3.3% (0.93 / 0.90); strip ends 0.93, 0.80, 0.78, 0.70 fall;
    # PQ at 3: 3.33 / (1000 * (0.8933 / 0.85 - 1) = 51.0) = 0.07, at 9: 2.63 / 37.6 = 0.07,
    # at 6 and 12 GL is 0; gap 0.05.
    "noisy": (NOISY, [v - 0.05 for v in NOISY]),
    # Best at epoch 3 (0.7), then val rises while train keeps falling.
    # GL(4) = 100 * (0.72 / 0.7 - 1) = 2.9; GL(5) = 100 * (0.75 / 0.7 - 1) = 7.14 > 5 -> 5.
    # PQ(6) = 14.29 / (1000 * (0.3833 / 0.32 - 1) = 197.9) = 0.072;
    # PQ(9) = 35.71 / (1000 * (0.2333 / 0.2 - 1) = 166.7) = 0.214;
    # PQ(12) = 57.14 / (1000 * (0.1633 / 0.15 - 1) = 88.9) = 0.643 > 0.5 -> 12.
    # UP: strip ends 0.7 (3), 0.8 (6), 0.95 (9): two rises -> 9 (not before 3 * (2 + 1) = 9).
    # gap: 0.1, 0.1, 0.14, 0.27, 0.37 -> above 0.15 at epochs 4 and 5 -> 5.
    "overfit_from_3": (
        [1.0, 0.8, 0.7, 0.72, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1],
        [0.9, 0.7, 0.56, 0.45, 0.38, 0.32, 0.27, 0.23, 0.2, 0.18, 0.16, 0.15],
    ),
    # val_loss NaN at epoch 2: the trial ends there as FAIL; no rule fires before (or on) it.
    "nan_at_2": ([1.0, math.nan, 0.9, 0.8], [0.9, 0.8, 0.7, 0.6]),
    # One spike at epoch 4, then a new best at 5 and steady improvement.
    # GL(4) = 100 * (0.9 / 0.7 - 1) = 28.6 -> 4 (why grace and the median comparison exist);
    # PQ: strip ends 3, 6, 9, 12 are all new bests -> GL 0; UP: 0.7, 0.6, 0.55, 0.52 fall;
    # gap: 0.35 at 4 only (0.13 at 5) -> never two in a row.
    "spike_recovers": (
        [1.0, 0.8, 0.7, 0.9, 0.65, 0.6, 0.58, 0.56, 0.55, 0.54, 0.53, 0.52],
        [0.9, 0.7, 0.6, 0.55, 0.52, 0.48, 0.46, 0.45, 0.44, 0.43, 0.42, 0.41],
    ),
}

# First epoch at which each rule fires on each curve (no grace); None: never.
EXPECTED: dict[str, dict[str, int | None]] = {
    "flat": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    "improving": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    "noisy": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    "overfit_from_3": {"gl": 5, "pq": 12, "up": 9, "gap": 5, "none": None},
    "nan_at_2": {"gl": None, "pq": None, "up": None, "gap": None, "none": None},
    "spike_recovers": {"gl": 4, "pq": None, "up": None, "gap": None, "none": None},
}

# The figure each firing carries on the overfitting curve.
EXPECTED_VALUE = {
    "gl": 100 * (0.75 / 0.7 - 1),
    "pq": (100 * (1.1 / 0.7 - 1)) / (1000 * ((0.18 + 0.16 + 0.15) / (3 * 0.15) - 1)),
    "up": 2.0,
    "gap": 0.75 - 0.38,
}

CASES = [(curve, rule) for curve in CURVES for rule in RULES]


def _first_non_finite(val: list[float], train: list[float]) -> int | None:
    for t, (v, tr) in enumerate(zip(val, train, strict=True), start=1):
        if not (math.isfinite(v) and math.isfinite(tr)):
            return t
    return None


@pytest.mark.parametrize(("curve", "rule_name"), CASES)
def test_rule_fires_where_expected(curve: str, rule_name: str) -> None:
    val, train = CURVES[curve]
    rule = RULES[rule_name]
    stop = _first_non_finite(val, train) or len(val)
    fired = None
    for t in range(1, stop + 1):
        firing = rule.check(val[:t], train[:t])
        if firing is not None:
            assert (firing.rule, firing.epoch) == (rule_name, t)
            fired = t
            break
    assert fired == EXPECTED[curve][rule_name]


@pytest.mark.parametrize("rule_name", ["gl", "pq", "up", "gap"])
def test_firing_figures_on_the_overfitting_curve(rule_name: str) -> None:
    val, train = CURVES["overfit_from_3"]
    t = EXPECTED["overfit_from_3"][rule_name]
    assert t is not None
    firing = RULES[rule_name].check(val[:t], train[:t])
    assert firing is not None
    assert firing.value == pytest.approx(EXPECTED_VALUE[rule_name], rel=1e-9)
    assert f"at epoch {t}" in firing.reason


@pytest.mark.parametrize(("curve", "rule_name"), CASES)
def test_judge_stops_where_the_rule_fires_or_the_loss_diverges(curve: str, rule_name: str) -> None:
    val, train = CURVES[curve]
    judge = OverfitJudge(RULES[rule_name], grace_epochs=0, compare="none")
    stopped_at = None
    for epoch, (v, tr) in enumerate(zip(val, train, strict=True), start=1):
        decision = judge.observe("t", epoch, v, tr)
        if decision.stop:
            stopped_at = epoch
            break
    outcome = judge.outcome("t")
    if curve == "nan_at_2":
        assert stopped_at == 2
        assert decision.failed == "val_loss is NaN at epoch 2" and decision.firing is None
        assert outcome.state == "FAIL" and outcome.best_epoch == 1
        return
    assert stopped_at == EXPECTED[curve][rule_name]
    if stopped_at is None:
        assert (outcome.state, outcome.stopped_early, outcome.epochs_run) == (
            "COMPLETE",
            False,
            len(val),
        )
    else:
        assert decision.firing is not None and decision.firing.rule == rule_name
        assert (outcome.state, outcome.stopped_early, outcome.rule) == ("COMPLETE", True, rule_name)
        assert outcome.epochs_run == stopped_at
