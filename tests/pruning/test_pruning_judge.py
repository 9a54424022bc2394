"""The judge: stop decisions per epoch and PRUNED / COMPLETE / FAIL outcomes (DESIGN.md §5)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from overfit_search.pruning import Decision, GLRule, NoRule, OverfitJudge

# With GL alpha 5 and a grace of 2: GL(3) = 100 * (0.9 / 0.8 - 1) = 12.5 -> fires at epoch 3,
# best so far 0.8 at epoch 2.
OVERFIT = [1.0, 0.8, 0.9, 1.0]


def _feed(judge: OverfitJudge, key: str, val: list[float], gap: float = 0.1) -> Decision:
    """Feed epochs until the judge says stop; train_eval_loss is ``val - gap``."""
    decision = Decision(stop=False)
    for epoch, value in enumerate(val, start=1):
        decision = judge.observe(key, epoch, value, value - gap)
        if decision.stop:
            break
    return decision


def _peers(judge: OverfitJudge, bests: list[float]) -> None:
    """Finished peers whose best val loss (from epoch 2 on) is each of ``bests``; none fires."""
    for i, best in enumerate(bests):
        assert not _feed(judge, f"peer{i}", [best + 0.2, best, best, best, best]).stop


def test_trial_without_firing_is_complete_scored_at_its_best_epoch() -> None:
    judge = OverfitJudge(GLRule())
    _feed(judge, "a", [1.0, 0.7, 0.6, 0.61])  # GL(4) = 1.7%
    out = judge.outcome("a")
    assert (out.state, out.stopped_early, out.best_epoch, out.epochs_run) == (
        "COMPLETE",
        False,
        3,
        4,
    )
    assert out.best_val_loss == 0.6 and out.gap_at_best == pytest.approx(0.1)
    assert (out.rule, out.reason, out.median) == (None, None, None)


@pytest.mark.parametrize(
    ("peer_bests", "state", "median", "clause"),
    [
        (
            [0.5, 0.6, 0.7, 0.75],
            "PRUNED",
            0.65,
            "best 0.8000 worse than median 0.6500 of 4 trials at epoch 3",
        ),
        (
            [0.5, 0.6, 0.7, 0.9, 1.0],
            "PRUNED",
            0.7,
            "best 0.8000 worse than median 0.7000 of 5 trials at epoch 3",
        ),
        (
            [0.9, 0.95, 1.0, 1.1],
            "COMPLETE",
            0.975,
            "best 0.8000 not worse than median 0.9750 of 4 trials at epoch 3 (kept)",
        ),
        (  # equal to the median is not worse
            [0.7, 0.8, 0.8, 0.9],
            "COMPLETE",
            0.8,
            "best 0.8000 not worse than median 0.8000 of 4 trials at epoch 3 (kept)",
        ),
        ([0.1, 0.1, 0.1], "COMPLETE", None, "fewer than 4 other trials to compare, kept"),
    ],
)
def test_stopped_trial_is_pruned_only_when_worse_than_the_median(
    peer_bests: list[float], state: str, median: float | None, clause: str
) -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=4)
    _peers(judge, peer_bests)
    decision = _feed(judge, "t", OVERFIT)
    assert decision.stop and decision.firing is not None and decision.firing.epoch == 3
    out = judge.outcome("t")
    assert (out.state, out.stopped_early, out.rule) == (state, True, "gl")
    assert out.reason == f"GL 12.5% > 5% at epoch 3; {clause}"
    assert out.median == (None if median is None else pytest.approx(median))
    # Scored at its best epoch so far; the epochs after the firing were never run.
    assert (out.best_epoch, out.best_val_loss, out.epochs_run) == (2, 0.8, 3)
    assert out.gap_at_best == pytest.approx(0.1)


def test_median_is_over_other_trials_best_up_to_the_firing_epoch() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=4)
    # Stopped earlier (GL 10% at epoch 3): counts with its final best, 0.5.
    assert _feed(judge, "stopped_early", [0.6, 0.5, 0.55]).stop
    # Ran longer and got good only at epoch 6: counts with its best up to epoch 5, 0.9.
    assert not _feed(judge, "late", [1.2, 1.1, 1.0, 0.95, 0.9, 0.1]).stop
    # Still running after 3 epochs: counts with what it has, 0.65.
    assert not _feed(judge, "running", [0.8, 0.7, 0.65]).stop
    # From an earlier run (resume), 2 epochs: 0.6.
    judge.seed("earlier-1", [0.7, 0.6])
    # Never peers: a diverged trial (even before its outcome), a crashed one, a seeded history
    # with a NaN, an empty seeded history.
    assert _feed(judge, "diverged", [0.3, math.nan]).failed is not None
    _feed(judge, "crashed", [0.61, 0.6])
    assert judge.outcome("crashed", failed="ResourceExhaustedError: OOM").state == "FAIL"
    judge.seed("earlier-2", [0.2, math.nan])
    judge.seed("earlier-3", [])

    # GL(5) = 100 * (0.9 / 0.7 - 1) = 28.6; peers 0.5, 0.6, 0.65, 0.9 -> median 0.625 < 0.7.
    _feed(judge, "t", [1.0, 0.9, 0.8, 0.7, 0.9])
    out = judge.outcome("t")
    assert out.median == pytest.approx(0.625)
    assert out.state == "PRUNED"
    assert out.reason == (
        "GL 28.6% > 5% at epoch 5; best 0.7000 worse than median 0.6250 of 4 trials at epoch 5"
    )


def test_verdict_is_taken_when_the_rule_fires() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=1)
    _peers(judge, [0.9])
    _feed(judge, "t", OVERFIT)
    first = judge.outcome("t")
    _peers(judge, [0.1, 0.1, 0.1])  # later, better trials do not change it
    assert judge.outcome("t") == first
    assert first.state == "COMPLETE" and first.median == pytest.approx(0.9)


def test_told_to_stop_stays_stopped() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2)
    decision = _feed(judge, "t", OVERFIT)
    assert decision.stop
    # Ray may report more epochs after the stop request: same decision, nothing recorded.
    assert judge.observe("t", 4, 0.1, 0.1) is decision
    val, train = judge.history("t")
    assert val == [1.0, 0.8, 0.9] and train == pytest.approx([0.9, 0.7, 0.8])
    assert judge.outcome("t").epochs_run == 3


@pytest.mark.parametrize(
    ("val", "train", "failed"),
    [
        (math.nan, 0.5, "val_loss is NaN at epoch 2"),
        (0.5, math.inf, "train_eval_loss is inf at epoch 2"),
        (-math.inf, 0.5, "val_loss is -inf at epoch 2"),
        (math.nan, math.nan, "val_loss is NaN at epoch 2"),
    ],
)
def test_non_finite_loss_fails_the_trial_at_once(val: float, train: float, failed: str) -> None:
    judge = OverfitJudge(NoRule(), grace_epochs=5)  # grace does not delay a failure
    assert not judge.observe("n", 1, 1.0, 0.5).stop
    decision = judge.observe("n", 2, val, train)
    assert decision == Decision(stop=True, firing=None, failed=failed)
    assert judge.observe("n", 3, 0.1, 0.1) is decision
    out = judge.outcome("n")
    assert (out.state, out.reason, out.stopped_early, out.rule) == ("FAIL", failed, False, None)
    assert (out.best_epoch, out.best_val_loss, out.epochs_run) == (1, 1.0, 2)
    assert out.gap_at_best == pytest.approx(0.5)


def test_external_failure_is_fail_even_after_a_firing() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2)
    _feed(judge, "t", OVERFIT)
    out = judge.outcome("t", failed="the trial process crashed")
    assert (out.state, out.reason, out.best_epoch) == ("FAIL", "the trial process crashed", 2)


def test_external_failure_drops_the_trial_from_later_medians() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=1)
    _feed(judge, "crashed", [0.5, 0.4])
    judge.outcome("crashed", failed="timeout")
    _feed(judge, "t", OVERFIT)
    assert judge.outcome("t").reason == (
        "GL 12.5% > 5% at epoch 3; fewer than 1 other trial to compare, kept"
    )


def test_duplicate_epochs_are_ignored_and_gaps_are_errors() -> None:
    judge = OverfitJudge(NoRule(), grace_epochs=0)
    judge.observe("x", 1, 1.0, 0.5)
    assert judge.observe("x", 1, 9.0, 9.0) == Decision(stop=False)  # a repeated result
    assert judge.history("x") == ([1.0], [0.5])
    with pytest.raises(ValueError, match=r"trial 'x': epoch 3 reported, expected epoch 2"):
        judge.observe("x", 3, 1.0, 0.5)


@pytest.mark.parametrize(
    ("min_trials", "peers", "clause"),
    [
        (3, 2, "fewer than 3 other trials to compare, kept"),
        (3, 3, "best 0.8000 worse than median 0.5000 of 3 trials at epoch 3"),
        (1, 0, "fewer than 1 other trial to compare, kept"),
        (1, 1, "best 0.8000 worse than median 0.5000 of 1 trial at epoch 3"),
        (0, 0, "no other trials to compare, kept"),
    ],
)
def test_compare_min_trials_threshold(min_trials: int, peers: int, clause: str) -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=min_trials)
    _peers(judge, [0.5] * peers)
    _feed(judge, "t", OVERFIT)
    out = judge.outcome("t")
    assert out.reason == f"GL 12.5% > 5% at epoch 3; {clause}"
    assert out.state == ("PRUNED" if "worse than" in clause else "COMPLETE")
    assert out.stopped_early


def test_compare_none_never_prunes() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare="none", compare_min_trials=0)
    _peers(judge, [0.1, 0.1, 0.1, 0.1])
    _feed(judge, "t", OVERFIT)
    out = judge.outcome("t")
    assert (out.state, out.stopped_early, out.median) == ("COMPLETE", True, None)
    assert out.reason == "GL 12.5% > 5% at epoch 3; compare: none, kept"


@pytest.mark.parametrize(("grace", "stops"), [(2, True), (3, False)])
def test_grace_epochs_in_the_judge(grace: int, stops: bool) -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=grace)
    assert _feed(judge, "t", [1.0, 0.8, 0.9]).stop is stops
    assert judge.outcome("t").stopped_early is stops
    assert OverfitJudge(GLRule()).grace_epochs == 2


def test_trial_with_no_epoch_is_fail() -> None:
    out = OverfitJudge(GLRule()).outcome("never-reported")
    assert (out.state, out.reason, out.best_epoch, out.epochs_run) == (
        "FAIL",
        "no epoch was reported",
        None,
        0,
    )


def test_seeded_trial_is_only_a_peer() -> None:
    judge = OverfitJudge(GLRule())
    judge.seed("earlier-0", [0.9, 0.7, 0.8])
    assert judge.observe("earlier-0", 4, 0.1, 0.1).stop  # never run here
    assert judge.history("earlier-0") == ([0.9, 0.7, 0.8], [])
    out = judge.outcome("earlier-0")
    assert (out.state, out.best_epoch, out.best_val_loss, out.gap_at_best) == (
        "COMPLETE",
        2,
        0.7,
        None,
    )


def test_history_is_a_copy() -> None:
    judge = OverfitJudge(NoRule())
    judge.observe("h", 1, 1.0, 0.5)
    val, _ = judge.history("h")
    val.append(0.0)
    assert judge.history("h") == ([1.0], [0.5])
    assert judge.history("unknown") == ([], [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grace_epochs": -1}, "grace_epochs must be >= 0, got -1"),
        ({"compare": "mean"}, "compare must be 'median' or 'none', got 'mean'"),
        ({"compare_min_trials": -2}, "compare_min_trials must be >= 0, got -2"),
        ({"compare_min_trials": 2.5}, "compare_min_trials must be an integer, got 2.5"),
    ],
)
def test_judge_validates_eagerly(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        OverfitJudge(GLRule(), **kwargs)
