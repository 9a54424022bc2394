"""Each rule's formula, threshold, reason text and eager validation (DESIGN.md §5)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from overfit_search.pruning import (
    GapRule,
    GLRule,
    Grace,
    NoRule,
    PQRule,
    Rule,
    UPRule,
)
from overfit_search.pruning.rules import generalization_loss, training_progress


@pytest.mark.parametrize(
    ("val", "expected"),
    [
        ([1.0], 0.0),
        ([1.0, 0.8], 0.0),  # a new best
        ([1.0, 0.5, 0.55], 10.0),  # 100 * (0.55 / 0.5 - 1)
        ([0.4, 0.5, 0.6], 50.0),  # E_opt is the minimum so far, not the first epoch
        ([0.0, 0.0], 0.0),  # E_opt = 0 and no rise
        ([0.0, 0.1], math.inf),  # E_opt = 0 and a rise
    ],
)
def test_generalization_loss(val: list[float], expected: float) -> None:
    assert generalization_loss(val) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("train", "strip", "expected"),
    [
        ([5.0, 1.2, 1.1, 1.0], 3, 100.0),  # 1000 * (3.3 / (3 * 1.0) - 1); epoch 1 is outside
        ([0.5, 0.5], 2, 0.0),  # flat: no progress
        ([0.2, 0.1], 2, 500.0),  # 1000 * (0.3 / 0.2 - 1)
        ([0.0, 0.0], 2, 0.0),
        ([0.1, 0.0], 2, math.inf),
    ],
)
def test_training_progress(train: list[float], strip: int, expected: float) -> None:
    assert training_progress(train, strip) == pytest.approx(expected)


def test_gl_fires_with_figure_threshold_and_epoch() -> None:
    firing = GLRule(alpha=5).check([1.0, 0.5, 0.52, 0.54], [1.0] * 4)
    assert firing is not None
    assert (firing.rule, firing.threshold, firing.epoch) == ("gl", 5.0, 4)
    assert firing.value == pytest.approx(8.0)
    assert firing.reason == "GL 8.0% > 5% at epoch 4"


@pytest.mark.parametrize(
    ("alpha", "fires"),
    [(24.9, True), (25.0, False), (30.0, False)],  # GL = 25%: fires only strictly above alpha
)
def test_gl_threshold_is_strict(alpha: float, fires: bool) -> None:
    firing = GLRule(alpha=alpha).check([1.0, 0.5, 0.625], [1.0] * 3)
    assert (firing is not None) is fires


def test_pq_only_at_strip_ends() -> None:
    val = [1.0, 0.5, 0.6, 0.7]
    train = [1.0, 0.99, 0.985, 0.98]  # almost no training progress: PQ huge
    rule = PQRule(alpha=0.5, strip=2)
    assert rule.check(val[:3], train[:3]) is None  # t = 3 does not end a strip
    firing = rule.check(val, train)
    assert firing is not None and firing.epoch == 4


def test_pq_figure_and_reason() -> None:
    # t = 4, strip 2: GL = 100 * (0.6 / 0.5 - 1) = 20; P_2 = 1000 * (0.3 / (2 * 0.1) - 1) = 500.
    val, train = [1.0, 0.5, 0.55, 0.6], [0.9, 0.5, 0.2, 0.1]
    firing = PQRule(alpha=0.03, strip=2).check(val, train)
    assert firing is not None
    assert firing.value == pytest.approx(0.04)
    assert firing.reason == "PQ 0.04 > 0.03 at epoch 4"
    assert PQRule(alpha=0.05, strip=2).check(val, train) is None


@pytest.mark.parametrize(
    ("val", "expected"),
    [
        ([1.0, 0.5, 0.55, 0.6], math.inf),  # GL 20% and P_k == 0: +inf, fires at any alpha
        ([1.0, 0.9, 0.8, 0.7], None),  # GL 0 and P_k == 0: PQ 0, never fires
    ],
)
def test_pq_without_training_progress(val: list[float], expected: float | None) -> None:
    firing = PQRule(alpha=1e9, strip=2).check(val, [0.3] * 4)
    if expected is None:
        assert firing is None
    else:
        assert firing is not None and firing.value == expected
        assert firing.reason == "PQ inf > 1e+09 at epoch 4"


def test_up_needs_successive_rising_strip_ends() -> None:
    rule = UPRule(strips=2, strip=2)
    # strip ends (epochs 2, 4, 6): 0.5 < 0.7 < 0.9
    firing = rule.check([1.0, 0.5, 0.6, 0.7, 0.8, 0.9], [0.0] * 6)
    assert firing is not None
    assert firing.reason == "val_loss up in 2 consecutive strips of 2 at epoch 6"
    assert (firing.value, firing.threshold, firing.epoch) == (2.0, 2.0, 6)
    # strip ends 0.9 > 0.5 < 0.9: only one rise
    assert rule.check([1.0, 0.9, 0.6, 0.5, 0.8, 0.9], [0.0] * 6) is None
    # a rise inside strips but not at their ends does not count
    assert rule.check([1.0, 0.9, 1.5, 0.8, 1.5, 0.7], [0.0] * 6) is None


def test_up_fires_earliest_after_strips_plus_one_strip_ends() -> None:
    rule = UPRule(strips=1, strip=3)
    val = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]  # rising every epoch
    fired = [t for t in range(1, 7) if rule.check(val[:t], [0.0] * t) is not None]
    assert fired == [6]  # E_va(6) > E_va(3); epoch 3 has no earlier strip end


def test_gap_rule_needs_patience_consecutive_epochs() -> None:
    rule = GapRule(max_gap=0.1, patience=2)
    assert rule.check([0.5, 0.5], [0.3, 0.45]) is None  # gaps 0.2, 0.05
    firing = rule.check([0.5, 0.5, 0.51], [0.45, 0.3, 0.3])  # gaps 0.05, 0.2, 0.21
    assert firing is not None
    assert (firing.rule, firing.epoch, firing.threshold) == ("gap", 3, 0.1)
    assert firing.value == pytest.approx(0.21)
    assert firing.reason == "gap 0.21 > 0.1 for 2 epochs at epoch 3"


def test_gap_equal_to_threshold_does_not_fire() -> None:
    assert GapRule(max_gap=0.25, patience=1).check([0.75], [0.5]) is None


def test_no_rule_never_fires() -> None:
    assert NoRule().check([1.0, 100.0, 1e9], [0.0, 0.0, 0.0]) is None


# Each of these fires on val [1.0, 2.0], train [0.1, 0.1] (checked below), so None means the
# non-finite value, not the curve, is why it stays silent.
TRIGGER_HAPPY: list[Rule] = [
    GLRule(),
    PQRule(strip=2),
    UPRule(strips=1, strip=1),
    GapRule(max_gap=0.0, patience=1),
]


@pytest.mark.parametrize("rule", TRIGGER_HAPPY, ids=lambda r: r.name)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rules_never_fire_on_a_non_finite_val_loss(rule: Rule, bad: float) -> None:
    assert rule.check([1.0, 2.0], [0.1, 0.1]) is not None
    assert rule.check([1.0, bad], [0.1, 0.1]) is None
    assert rule.check([bad, 2.0], [0.1, 0.1]) is None or rule.name == "gap"


@pytest.mark.parametrize("rule", [PQRule(strip=2), GapRule(max_gap=0.0, patience=1)])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_rules_on_train_loss_never_fire_on_a_non_finite_one(rule: Rule, bad: float) -> None:
    assert rule.check([1.0, 2.0], [0.1, bad]) is None


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: GLRule(alpha=-1), "gl: alpha must be > 0, got -1"),
        (lambda: GLRule(alpha=0), "gl: alpha must be > 0, got 0"),
        (lambda: GLRule(alpha=math.nan), "gl: alpha must be a finite number, got nan"),
        (lambda: GLRule(alpha="5"), "gl: alpha must be a number, got '5'"),  # type: ignore[arg-type]
        (lambda: GLRule(alpha=True), "gl: alpha must be a number, got True"),
        (lambda: PQRule(alpha=0), "pq: alpha must be > 0, got 0"),
        (lambda: PQRule(strip=1), "pq: strip must be >= 2, got 1"),
        (lambda: PQRule(strip=2.5), "pq: strip must be an integer, got 2.5"),  # type: ignore[arg-type]
        (lambda: UPRule(strips=0), "up: strips must be >= 1, got 0"),
        (lambda: UPRule(strip=0), "up: strip must be >= 1, got 0"),
        (lambda: GapRule(max_gap=-0.1), "gap: max_gap must be >= 0, got -0.1"),
        (lambda: GapRule(patience=0), "gap: patience must be >= 1, got 0"),
    ],
)
def test_rules_validate_eagerly(factory: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        factory()


def test_defaults_match_the_design() -> None:
    assert GLRule().alpha == 5.0
    assert (PQRule().alpha, PQRule().strip) == (0.5, 5)
    assert (UPRule().strips, UPRule().strip) == (3, 5)
    assert (GapRule().max_gap, GapRule().patience) == (0.15, 2)


def test_grace_suppresses_early_firing() -> None:
    val = [1.0, 2.0, 3.0]
    assert GLRule().check(val[:2], val[:2]) is not None
    graced = Grace(GLRule(), grace_epochs=2)
    assert graced.name == "gl"
    assert graced.check(val[:1], val[:1]) is None
    assert graced.check(val[:2], val[:2]) is None  # t == grace_epochs: still suppressed
    firing = graced.check(val, val)
    assert firing is not None and firing.epoch == 3


def test_grace_zero_passes_everything_through() -> None:
    assert Grace(GLRule(), grace_epochs=0).check([1.0, 2.0], [1.0, 1.0]) is not None


@pytest.mark.parametrize(
    ("grace", "message"),
    [(-1, "grace_epochs must be >= 0, got -1"), (1.5, "grace_epochs must be an integer, got 1.5")],
)
def test_grace_validates_eagerly(grace: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Grace(GLRule(), grace_epochs=grace)


@pytest.mark.parametrize(
    ("val", "patience", "fires_at"),
    [
        ([1.0, 0.8, 0.9, 0.7, 0.6], 1, 3),  # one noisy epoch is enough for Prechelt's GL
        ([1.0, 0.8, 0.9, 0.7, 0.6], 2, None),  # ...not with patience: the loss came back
        ([1.0, 0.8, 0.9, 0.95, 1.0], 2, 4),  # a rise that persists still fires
        ([1.0, 0.8, 0.9, 0.95, 1.0], 3, 5),
        ([1.0, 0.8, 0.9, 0.81, 0.9, 0.95], 2, 6),  # 0.81 is within 5%: the count restarts
    ],
)
def test_gl_patience_needs_consecutive_epochs_above_alpha(
    val: list[float], patience: int, fires_at: int | None
) -> None:
    from overfit_search.pruning import GLRule as Rule

    rule = Rule(alpha=5, patience=patience)
    fired = next(
        (t for t in range(1, len(val) + 1) if rule.check(val[:t], [0.0] * t) is not None), None
    )
    assert fired == fires_at


def test_gl_patience_must_be_a_positive_integer() -> None:
    from overfit_search.pruning import GLRule as Rule

    with pytest.raises(ValueError, match="patience"):
        Rule(alpha=5, patience=0)
