from __future__ import annotations

import math

import pytest

from overfit_search.pruning import GLRule, NoRule, OverfitJudge

OVERFIT = [1.0, 0.8, 0.9, 1.0]  # GL fires at epoch 3 (12.5%) after a grace of 2


def _feed(judge: OverfitJudge, key: str, curve: list[float]) -> None:
    for epoch, value in enumerate(curve, start=1):
        if judge.observe(key, epoch, value, value * 0.5).stop:
            return


def _peers(judge: OverfitJudge, bests: list[float]) -> None:
    for i, best in enumerate(bests):
        _feed(judge, f"peer{i}", [best + 0.2, best, best, best, best])


def test_complete_without_firing_scores_best_epoch() -> None:
    judge = OverfitJudge(GLRule(), grace_epochs=2)
    _feed(judge, "a", [1.0, 0.7, 0.6, 0.61])
    out = judge.outcome("a")
    assert (out.state, out.stopped_early, out.best_epoch, out.epochs_run) == (
        "COMPLETE",
        False,
        3,
        4,
    )
    assert out.best_val_loss == 0.6 and out.gap_at_best == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("peer_bests", "state", "fragment"),
    [
        ([0.5, 0.6, 0.7, 0.75], "PRUNED", "worse than median 0.6500 of 4 trials at epoch 3"),
        ([0.9, 0.95, 1.0, 1.1], "COMPLETE", "not worse than median 0.9750 of 4 trials"),
        ([0.5, 0.6, 0.7], "COMPLETE", "fewer than 4 other trials to compare, kept"),
    ],
)
def test_stopped_trial_pruned_only_when_worse_than_median(
    peer_bests: list[float], state: str, fragment: str
) -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=4)
    _peers(judge, peer_bests)
    _feed(judge, "t", OVERFIT)
    out = judge.outcome("t")
    assert out.state == state and out.stopped_early
    assert out.rule == "gl" and out.reason is not None
    assert out.reason.startswith("GL 12.5% > 5% at epoch 3; ")
    assert fragment in out.reason
    assert (out.best_epoch, out.epochs_run) == (2, 3)


def test_median_uses_peers_best_up_to_same_epoch_and_final_best_of_short_ones() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=2)
    # A long peer that only gets good after epoch 3 counts with its best up to epoch 3 (1.0);
    # a peer that stopped after 2 epochs counts with its final best (0.5).
    _feed(judge, "late", [1.2, 1.1, 1.0, 0.1, 0.1])
    judge.seed("short", [0.6, 0.5])
    _feed(judge, "t", OVERFIT)
    out = judge.outcome("t")
    assert out.median == pytest.approx(0.75)
    assert out.state == "PRUNED"


def test_verdict_is_fixed_when_the_rule_fires() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare_min_trials=1)
    _peers(judge, [0.9])
    _feed(judge, "t", OVERFIT)
    _peers(judge, [0.1, 0.1, 0.1])  # later, better trials do not change it
    assert judge.outcome("t").state == "COMPLETE"


def test_nan_fails_at_once_and_is_never_a_peer() -> None:
    judge = OverfitJudge(NoRule(), grace_epochs=0, compare_min_trials=0)
    assert not judge.observe("n", 1, 1.0, 0.5).stop
    decision = judge.observe("n", 2, math.nan, 0.5)
    assert decision.stop and decision.failed == "val_loss is nan at epoch 2"
    assert judge.observe("n", 3, 0.1, 0.1) is decision
    out = judge.outcome("n")
    assert out.state == "FAIL" and out.best_epoch == 1 and out.reason == decision.failed


def test_external_failure_and_duplicate_epochs() -> None:
    judge = OverfitJudge(NoRule(), grace_epochs=0)
    judge.observe("x", 1, 1.0, 0.5)
    judge.observe("x", 1, 9.0, 9.0)  # Ray repeats the last result: ignored
    assert judge.history("x") == ([1.0], [0.5])
    out = judge.outcome("x", failed="ResourceExhaustedError: OOM")
    assert out.state == "FAIL" and out.reason == "ResourceExhaustedError: OOM"


def test_compare_none_never_prunes() -> None:
    judge = OverfitJudge(GLRule(alpha=5), grace_epochs=2, compare="none", compare_min_trials=0)
    _peers(judge, [0.1, 0.1, 0.1, 0.1])
    _feed(judge, "t", OVERFIT)
    out = judge.outcome("t")
    assert out.state == "COMPLETE" and out.stopped_early and "compare: none" in (out.reason or "")
