"""The rejected candidate budget rules of issue 18 round 7 (bench/candidates.py)."""

from __future__ import annotations

import pytest

from overfit_search.pruning.budget import rank_correlation
from tests.conftest import load_bench

candidates = load_bench("candidates")

PEERS = [[1.0, 0.8, 0.6, 0.5, 0.45, 0.42, 0.41, 0.40] for _ in range(5)]


@pytest.mark.parametrize(
    ("curve", "fires"),
    [
        ([1.2, 1.0, 0.9, 0.9, 0.9, 0.9], True),  # flat far above the study's best 0.40
        ([2.0, 1.8, 1.6, 1.3, 1.0, 0.7], False),  # 0.1 an epoch for 10 more epochs: can win
        ([1.2, 1.0, 0.9, 0.9], False),  # before its grace period
    ],
)
def test_reach_stops_only_a_trial_that_cannot_catch_the_studys_best(
    curve: list[float], fires: bool
) -> None:
    rule = candidates.ReachRule(horizon=16, grace=4, window=3, z=0.0)
    assert (rule.check(curve, PEERS) is not None) is fires


def test_reach_waits_for_enough_peers() -> None:
    rule = candidates.ReachRule(horizon=16, grace=4, window=3, z=0.0, min_trials=6)
    assert rule.check([1.2, 1.0, 0.9, 0.9, 0.9, 0.9], PEERS) is None


def test_the_backtest_refuses_a_rung_that_would_have_cut_the_studys_winner() -> None:
    # at rung 2 the winner-to-be (best 0.30) was the worst of the five finished trials
    late_winner = [1.5, 1.4, 0.9, 0.5, 0.30]
    early = [[0.6, 0.55, 0.5, 0.5, 0.5] for _ in range(4)]
    trial = [1.4, 1.3]
    plain = candidates.HalvingRule(first_rung=2, reduction_factor=4.0, min_trials=5, z=0.0)
    tested = candidates.BacktestedHalving(first_rung=2, reduction_factor=4.0, min_trials=5, z=0.0)
    assert plain.check(trial, [*early, late_winner]) is not None
    assert tested.check(trial, [*early, late_winner]) is None
    # when the winners led at the rung, the backtest keeps the stop
    assert tested.check(trial, [*early, [0.5, 0.45, 0.4, 0.35, 0.30]]) is not None


def test_every_candidate_of_every_grid_builds_and_an_unknown_one_is_refused() -> None:
    for grid in candidates.GRIDS.values():
        for name, budget, params in grid:
            judge = candidates.candidate(name, 20, budget, **params)
            assert judge.name == name
    with pytest.raises(ValueError, match="schedule, trust, kept, checked or guarded"):
        candidates.candidate("oracle", 20)


# five peers at epochs 1-6: bests so far 0.9, 1.0, 1.1, 1.2, 1.3 at epoch 1; 0.5 ... 0.9 at 6
SCHEDULE_PEERS = [[0.9 + 0.1 * i] * 5 + [0.5 + 0.1 * i] for i in range(5)]


@pytest.mark.parametrize(
    ("trial", "fires"),
    [
        ([1.05], False),  # epoch 1 keeps 1/2: 1.05 is inside the best half of six
        ([1.25], True),  # outside it
        ([1.25, 1.25], False),  # epoch 2 is no rung
        ([0.9] * 5 + [0.45], False),  # epoch 6 keeps 1/6: only the best of six
        ([0.9] * 5 + [0.55], True),  # second best of six
    ],
)
def test_a_schedule_cuts_each_rung_at_its_own_share(trial: list[float], fires: bool) -> None:
    rule = candidates.ScheduleHalving(rungs=(1, 6), keeps=(1 / 2, 1 / 6), min_trials=5, z=0.0)
    assert (rule.check(trial, SCHEDULE_PEERS) is not None) is fires


def test_a_schedule_waits_for_peers_and_refuses_rungs_out_of_order() -> None:
    rule = candidates.ScheduleHalving(rungs=(1, 6), keeps=(1 / 2, 1 / 6), min_trials=7, z=0.0)
    assert rule.check([1.25], SCHEDULE_PEERS) is None
    with pytest.raises(ValueError, match="must increase"):
        candidates.ScheduleHalving(rungs=(6, 1), keeps=(1 / 2, 1 / 6))


def _noisy(level: float, epochs: int = 8) -> list[float]:
    """A curve at ``level`` with 10 % epoch-to-epoch wobble (so the measured noise is large)."""
    return [level * (1.0 + 0.1 * (-1) ** e) for e in range(epochs)]


def test_trust_cuts_without_tolerance_only_where_the_studys_ranking_held() -> None:
    # 4.8 % above the rung's cutoff at epoch 2: inside the default's tolerance (1 x noise, 24 %)
    trial = [1.25, 1.15]
    rule = candidates.TrustHalving(
        rho=0.5, trusted_z=0.0, min_ref=4, first_rung=2, reduction_factor=4.0, min_trials=5
    )
    levels = (1.0, 1.2, 1.4, 1.6, 1.8)
    held = [_noisy(level) for level in levels]  # the epoch-2 order is the final order
    assert rule.check(trial, held) is not None
    assert rule.rule.check(trial, held) is None  # the default's rung keeps it
    # the same peers up to epoch 2, their later bests in the reverse order: not trusted
    turned = [_noisy(level)[:2] + _noisy(0.9 - 0.1 * i)[2:] for i, level in enumerate(levels)]
    assert rank_correlation([min(p[:2]) for p in turned], [min(p) for p in turned]) < 0
    assert rule.check(trial, turned) is None
    # too few reference trials that ran twice the rung: not trusted either
    assert rule.check(trial, [p[:3] for p in held]) is None


def _smooth(level: float, epochs: int = 8) -> list[float]:
    """A curve falling smoothly to ``level`` (its measured noise is 0)."""
    return [level * (1.0 + 0.02 * (epochs - e)) for e in range(epochs)]


def test_kept_measures_the_tolerance_on_the_curves_the_rung_keeps() -> None:
    # at epoch 2 the rung keeps 1 in 4 of six; the two best peers are smooth, the rest noisy
    peers = [_smooth(0.5), _smooth(0.52), *(_noisy(level) for level in (1.0, 1.1, 1.2))]
    trial = [0.8, 0.6]  # above the cutoff by a little, inside the noisy curves' tolerance
    kept = candidates.KeptNoiseHalving(first_rung=2, reduction_factor=4.0, min_trials=5, z=1.0)
    default = candidates.HalvingRule(first_rung=2, reduction_factor=4.0, min_trials=5, z=1.0)
    assert default.check(trial, peers) is None
    firing = kept.check(trial, peers)
    assert firing is not None and firing.threshold == pytest.approx(0.0, abs=1e-9)
    # too few kept peers to measure them on: the default's tolerance, and the trial stays
    assert (
        candidates.KeptNoiseHalving(
            min_kept=3, first_rung=2, reduction_factor=4.0, min_trials=5, z=1.0
        ).check(trial, peers)
        is None
    )
    # a trial inside the cutoff is kept whatever the noise
    assert kept.check([0.8, 0.5], peers) is None


def test_checked_cuts_only_at_a_rung_whose_ranking_held_in_the_study() -> None:
    trial = [1.8, 1.7]  # far outside the epoch-2 cutoff of any of the peer sets below
    levels = (1.0, 1.2, 1.4, 1.6, 1.8)
    held = [_noisy(level) for level in levels]
    turned = [_noisy(level)[:2] + _noisy(0.9 - 0.1 * i)[2:] for i, level in enumerate(levels)]
    settings = {"first_rung": 2, "reduction_factor": 4.0, "min_trials": 5}
    keep = candidates.CheckedHalving(rho=0.5, min_ref=4, untrusted="keep", **settings)
    default = candidates.HalvingRule(**settings)
    assert default.check(trial, turned) is not None  # the default would cut it either way
    assert keep.check(trial, held) is not None
    assert keep.check(trial, turned) is None
    short = [p[:3] for p in held]  # no trial ran twice the rung: nothing is known yet
    assert keep.check(trial, short) is None
    fallback = candidates.CheckedHalving(rho=0.5, min_ref=4, untrusted="default", **settings)
    assert fallback.check(trial, short) is not None
    assert fallback.check(trial, turned) is None
    with pytest.raises(ValueError, match="'keep' or 'default'"):
        candidates.CheckedHalving(untrusted="always", **settings)


def test_the_end_guard_keeps_the_rule_out_of_the_last_epochs() -> None:
    class Always:
        name = "peak"

        def check(self, val_loss: list[float], train_eval_loss: list[float]) -> object:
            return "fired"

    guard = candidates.EndGuard(Always(), horizon=10, last=2)
    assert guard.name == "peak"
    fired = [t for t in range(1, 11) if guard.check([1.0] * t, [1.0] * t) is not None]
    assert fired == list(range(1, 9))
