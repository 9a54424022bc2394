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
    with pytest.raises(ValueError, match="guarded, msr, calib, audit or fractions"):
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


# four peers at epochs 1-3: running means since epoch 1 of 1.0, 0.9, 0.8 (x 1.0, 1.1, 1.2, 1.3)
MEAN_PEERS = [[1.0 * f, 0.9 * f, 0.8 * f] for f in (1.0, 1.1, 1.2, 1.3)]


@pytest.mark.parametrize(
    ("settings", "trial", "fires"),
    [
        ({}, [1.2], True),  # epoch 1: above the median of 1.0 .. 1.3 (1.15)
        ({}, [1.1], False),
        # epoch 3: peers' bests are 0.80-1.04 (median 0.92), their running means 0.90-1.17
        # (median 1.035): 1.0 is above the first and judged against the second
        ({}, [1.3, 1.1, 1.0], False),
        ({}, [1.3, 1.1, 1.05], True),
        ({"grace": 2}, [1.2], False),  # before the grace epoch
        # from grace 2 the means run over epochs 2..3: 0.85-1.105, median 0.9775
        ({"grace": 2}, [1.3, 1.1, 1.0], True),
        ({"min_trials": 5}, [1.2], False),  # four peers are too few
        ({"percentile": 25.0}, [1.1], True),  # the lower quartile of 1.0 .. 1.3 is 1.075
    ],
)
def test_the_running_mean_median_judges_the_best_so_far_against_the_peers_means(
    settings: dict[str, float], trial: list[float], fires: bool
) -> None:
    rule = candidates.RunningMeanMedian(**{"grace": 1, "min_trials": 3, **settings})
    assert (rule.check(trial, MEAN_PEERS) is not None) is fires


def test_the_running_mean_median_tolerates_the_measured_noise() -> None:
    # zigzagging peers (about 22 % noise); their running means' median at epoch 3 is 1.112
    noisy = [[1.0 * f, 1.1 * f, 0.8 * f] for f in (1.0, 1.1, 1.2, 1.3)]
    trial = [1.3, 1.25, 1.2]  # 8 % above it
    assert candidates.RunningMeanMedian(z=0.0).check(trial, noisy) is not None
    assert candidates.RunningMeanMedian(z=1.0).check(trial, noisy) is None


def test_the_running_mean_median_replays_as_rays_median_stopping_rule() -> None:
    import numpy as np

    policies = __import__("sys").modules["_policies"]
    rng = np.random.default_rng(13)
    curves = []
    for i in range(12):
        start, floor, rate = rng.uniform(1.0, 2.5), rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6)
        val = tuple(
            floor + (start - floor) * np.exp(-rate * e) + rng.normal(0, 0.02) for e in range(12)
        )
        curves.append(policies.Curve(f"c{i}", {}, val, val))
    ours = candidates.candidate("msr", 12, msr={"grace": 1, "min_trials": 3}, peak=False)
    for concurrency in (1, 2):
        rays = policies.replay(curves, policies.RayMedianStopping(grace_period=1), concurrency)
        mine = policies.replay(curves, ours, concurrency)
        assert mine.epochs_run == rays.epochs_run
        assert rays.pruned > 0


# four finished trials (horizon 4): the winner (0.5 at the end) is third at epoch 1
FINISHED = [[1.0, 0.9, 0.8, 0.8], [1.1, 1.0, 0.9, 0.9], [1.2, 0.9, 0.6, 0.5], [1.3, 1.2, 1.1, 1.0]]


@pytest.mark.parametrize(
    ("peers", "margin", "floor", "keep"),
    [
        (FINISHED, 1.0, 0.0, 3 / 4),  # the winner was third of four at epoch 1
        (FINISHED, 2.0, 0.0, 3 / 2),  # a margin of 2: keep all
        (FINISHED[:3], 1.0, 0.0, None),  # three finished: too few to audit
        ([*FINISHED, [0.4]], 1.0, 0.0, 3 / 4),  # a running trial is not in the audit
        ([*FINISHED[:2], FINISHED[3], [0.9, 0.8, 0.7, 0.5]], 1.0, 0.0, 1 / 4),  # a winner led
        ([*FINISHED[:2], FINISHED[3], [0.9, 0.8, 0.7, 0.5]], 1.0, 0.5, 1 / 2),  # at least floor
    ],
)
def test_the_audit_keeps_the_share_that_kept_the_studys_winner(
    peers: list[list[float]], margin: float, floor: float, keep: float | None
) -> None:
    rule = candidates.AuditedHalving(4, min_ref=4, margin=margin, floor=floor, first_rung=1)
    assert rule.keep(1, peers) == (None if keep is None else pytest.approx(keep))


@pytest.mark.parametrize(
    ("trial", "fires"),
    [
        ([1.25], False),  # inside the best 3/4 of five at epoch 1
        ([1.35], True),  # last of five: out
        ([1.35, 1.2], False),  # epoch 2 is no rung (rungs 1, 4)
    ],
)
def test_an_audited_rung_cuts_outside_its_share(trial: list[float], fires: bool) -> None:
    rule = candidates.AuditedHalving(
        4, min_ref=4, margin=1.0, first_rung=1, reduction_factor=4.0, min_trials=4, z=0.0
    )
    assert (rule.check(trial, FINISHED) is not None) is fires


@pytest.mark.parametrize(
    ("trial", "quantile", "fires"),
    [
        # the largest fall from epoch 1 is the winner's, 0.5 / 1.2: 1.25 x 0.417 = 0.52 > 0.5
        ([1.25], 0.0, True),
        ([1.15], 0.0, False),  # 1.15 x 0.417 = 0.48: it could still win
        ([1.15], 0.5, True),  # a median fall (0.8 / 1.0 = 0.8) could not take it there
        ([0.9, 0.8, 0.7, 0.6], 0.0, False),  # at the horizon nothing is left to save
    ],
)
def test_calibrated_reach_stops_what_even_the_largest_fall_leaves_behind(
    trial: list[float], quantile: float, fires: bool
) -> None:
    rule = candidates.CalibratedReach(4, grace=1, min_ref=4, quantile=quantile)
    assert (rule.check(trial, FINISHED) is not None) is fires
