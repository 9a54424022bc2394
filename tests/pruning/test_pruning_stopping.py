"""Issue 18's two-part stopping policy: the noise estimate, the peak rule, the halving budget
rule, the judge running both, and the presets (tables of cases)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from overfit_search.pruning import (
    BUDGETS,
    PRESETS,
    HalvingRule,
    MedianRule,
    NoBudget,
    OverfitJudge,
    PeakRule,
    make_budget,
    make_rule,
    preset,
    relative_noise,
)
from overfit_search.pruning.budget import rank_correlation, ranking_held
from overfit_search.pruning.rules import running_median

JITTERY_PEERS = [[1.0, 1.1, 1.0, 1.1, 1.0], [1.05, 1.15, 1.05, 1.15, 1.05], [1.3] * 5, [1.4] * 5]
FALLING = [1.0, 0.8, 0.65, 0.55, 0.48, 0.44, 0.42, 0.41]
# A winner from the sel-59-24px bank (config 0, rounded): still falling, with bad epochs after a
# lucky low one at epoch 12. The raw rule cut it at epoch 15 (its best, 0.02, comes at 18).
NOISY_FALLING = [1.6, 1.54, 1.38, 0.98, 0.6, 0.39, 0.18, 0.11, 0.13, 0.12, 0.1, 0.05, 0.09, 0.07]
NOISY_FALLING += [0.07, 0.06, 0.05, 0.02, 0.03, 0.03]
# The winner of held-out bank ov-all10 (config 45, rounded) around its two-epoch spike: the
# smoothed mean rule cut it at epoch 17; its best (0.10) comes at epoch 22.
SPIKED_WINNER = [2.15, 1.71, 1.16, 0.73, 0.61, 0.44, 0.3, 0.28, 0.28, 0.34, 0.39, 0.19, 0.2]
SPIKED_WINNER += [0.35, 0.58, 0.29, 0.18, 0.15, 0.12, 0.14, 0.11, 0.1, 0.11, 0.12, 0.15]


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([], None),
        ([1.0, 0.5], None),  # fewer than 3 epochs
        ([1.0, 1.0, 1.0, 1.0], 0.0),  # flat
        ([1.0, 0.9, 0.8, 0.7, 0.6], 0.0),  # a straight fall is no noise
        ([1.0, 1.1, 1.0, 1.1, 1.0], 0.2 / (0.6745 * math.sqrt(6)) / 1.0),  # +-5 % zigzag
        ([1.0, math.nan, 1.0, 1.0], 0.0),  # non-finite epochs are skipped
    ],
)
def test_relative_noise(curve: list[float], expected: float | None) -> None:
    noise = relative_noise(curve)
    if expected is None:
        assert noise is None
    else:
        assert noise == pytest.approx(expected, rel=0.2, abs=1e-12)


@pytest.mark.parametrize(
    ("params", "curve", "fires_at"),
    [
        # still falling: never
        ({}, FALLING, None),
        # best at epoch 4, then climbs 10 %/epoch: fires after 3 epochs without a new best
        ({}, [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.66, 0.72], 7),
        # patience 2 fires one epoch earlier
        ({"patience": 2}, [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.66, 0.72], 6),
        # a noisy plateau (+-3 % around 0.5) does not fire at z 2
        ({}, [1.0, 0.7, 0.5, 0.52, 0.49, 0.51, 0.5, 0.52, 0.49, 0.51, 0.5, 0.52], None),
        # one spike after the best, then back down: the mean of the patience window stays low
        ({}, [1.0, 0.8, 0.6, 0.5, 0.9, 0.5, 0.49, 0.48], None),
        # with z 0 and min_rise 0 any rise over the patience window fires
        ({"z": 0.0, "min_rise": 0.0}, [1.0, 0.5, 0.51, 0.51, 0.51], 5),
        # a non-finite epoch: never (the judge fails the trial instead)
        ({}, [1.0, 0.5, 0.6, 0.7, math.inf], None),
        # smooth: a running median of 3 epochs keeps a noisy, still-falling winner
        ({}, NOISY_FALLING, 15),
        ({"smooth": 3}, NOISY_FALLING, None),
        # a real turn still fires with smoothing, one epoch later than raw (the median lags)
        ({"smooth": 3}, [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.66, 0.72, 0.8], 8),
        ({"smooth": 1}, [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.66, 0.72, 0.8], 7),
        # one lucky low epoch is not a peak when smoothed: the median never reaches it
        ({"smooth": 3}, [1.0, 0.8, 0.6, 0.3, 0.6, 0.58, 0.56, 0.55, 0.54], None),
        ({"smooth": 1}, [1.0, 0.8, 0.6, 0.3, 0.6, 0.58, 0.56, 0.55, 0.54], 7),
        # sustained: a spike that falls back is not a peak, where the window's mean says it is
        ({"smooth": 3, "patience": 4, "z": 3.0}, SPIKED_WINNER, 17),
        ({"smooth": 3, "patience": 4, "z": 3.0, "sustained": True}, SPIKED_WINNER, None),
        # ...and a real turn still fires, at the epoch the window's mean fires at
        ({"sustained": True}, [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.66, 0.72, 0.8], 7),
    ],
)
def test_peak_rule_fires_once_past_the_peak(
    params: dict[str, Any], curve: list[float], fires_at: int | None
) -> None:
    rule = PeakRule(**params)
    fired = [t for t in range(1, len(curve) + 1) if rule.check(curve[:t], curve[:t])]
    assert (fired[0] if fired else None) == fires_at


def test_peak_rule_threshold_scales_with_the_curves_noise() -> None:
    smooth = [1.0, 0.8, 0.6, 0.5, 0.54, 0.58, 0.62]  # +8-24 % above the best, smooth
    jagged = [1.0, 0.6, 0.9, 0.5, 0.54, 0.58, 0.62]  # the same end, a noisy start
    assert PeakRule().check(smooth, smooth) is not None
    assert PeakRule().check(jagged, jagged) is None
    firing = PeakRule().check(smooth, smooth)
    assert firing is not None and firing.rule == "peak" and "noise" in firing.reason


def test_smoothed_firing_names_the_running_median() -> None:
    curve = [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.66, 0.72]
    firing = PeakRule(smooth=3).check(curve, curve)
    assert firing is not None and "running median of 3" in firing.reason


@pytest.mark.parametrize(
    ("values", "width", "expected"),
    [
        ([3.0, 1.0, 2.0, 5.0], 1, [3.0, 1.0, 2.0, 5.0]),
        ([3.0, 1.0, 2.0, 5.0], 3, [3.0, 2.0, 2.0, 2.0]),
        ([3.0, 1.0, 2.0, 5.0], 2, [3.0, 2.0, 1.5, 3.5]),
        ([], 3, []),
    ],
)
def test_running_median(values: list[float], width: int, expected: list[float]) -> None:
    assert running_median(values, width) == expected


def _peers(bests: list[float], epochs: int = 4) -> list[list[float]]:
    """Flat curves at these levels (no noise), ``epochs`` long."""
    return [[b] * epochs for b in bests]


FALLING_PEERS = [[1.0 * f, 0.9 * f, 0.8 * f] for f in (1.0, 1.1, 1.2, 1.3, 1.4)]
"""Five noiseless curves falling 10 % of their start an epoch."""


@pytest.mark.parametrize(
    ("params", "own", "peers", "fires"),
    [
        # rung 1 (first_rung 1): worst of 5 with rf 3 -> out
        ({}, [2.0], _peers([1.0, 1.1, 1.2, 1.3]), True),
        # best of 5: kept
        ({}, [0.9], _peers([1.0, 1.1, 1.2, 1.3]), False),
        # only 3 others reached the rung: fewer than min_trials 5, never stops
        ({}, [2.0], _peers([1.0, 1.1, 1.2]), False),
        # min_trials 4 lets it stop
        ({"min_trials": 4}, [2.0], _peers([1.0, 1.1, 1.2]), True),
        # peers that stopped before the rung do not count at it
        ({}, [2.0, 2.0, 2.0], _peers([1.0, 1.1], 3) + _peers([1.2, 1.3], 2), False),
        # epoch 2 is not a rung of first_rung 1, rf 3 (rungs 1, 3, 9)
        ({}, [2.0, 2.0], _peers([1.0, 1.1, 1.2, 1.3]), False),
        # epoch 3 is
        ({}, [2.0, 2.0, 2.0], _peers([1.0, 1.1, 1.2, 1.3]), True),
        # ranked on the best so far: a bad last epoch does not cut a good best
        ({}, [0.9, 0.9, 3.0], _peers([1.0, 1.1, 1.2, 1.3]), False),
        # just above the cutoff but within the noise tolerance (peers jitter 10 %)
        (
            {"z": 1.0},
            [1.12],
            JITTERY_PEERS,
            False,
        ),
        # the same with z 0: out
        (
            {"z": 0.0},
            [1.12],
            JITTERY_PEERS,
            True,
        ),
    ],
)
def test_halving_rule(
    params: dict[str, Any], own: list[float], peers: list[list[float]], fires: bool
) -> None:
    firing = HalvingRule(**params).check(own, peers)
    assert (firing is not None) == fires
    if firing is not None:
        assert firing.rule == "halving" and firing.epoch == len(own)


@pytest.mark.parametrize(
    ("params", "own", "peers", "fires"),
    [
        # epoch 2 (grace 2): worse than the median of 5 peers -> out
        ({}, [2.0, 2.0], _peers([1.0, 1.1, 1.2, 1.3, 1.4]), True),
        # inside grace: never
        ({}, [2.0], _peers([1.0, 1.1, 1.2, 1.3, 1.4]), False),
        ({"grace": 1}, [2.0], _peers([1.0, 1.1, 1.2, 1.3, 1.4]), True),
        # third of six is better than the peers' median: kept (halving at rf 3 would cut it)
        ({}, [1.15, 1.15], _peers([1.0, 1.1, 1.2, 1.3, 1.4]), False),
        # the 25th percentile cuts it
        ({"percentile": 25.0}, [1.15, 1.15], _peers([1.0, 1.1, 1.2, 1.3, 1.4]), True),
        # only 4 peers reached epoch 2: fewer than min_trials 5
        ({}, [2.0, 2.0], _peers([1.0, 1.1, 1.2, 1.3]), False),
        ({}, [2.0, 2.0], _peers([1.0, 1.1, 1.2, 1.3]) + _peers([1.4], 1), False),
        # ranked on the best so far: a bad last epoch does not cut a good best
        ({}, [0.9, 3.0], _peers([1.0, 1.1, 1.2, 1.3, 1.4]), False),
        # within the noise tolerance of jittery peers, then out with z 0
        ({"min_trials": 4}, [1.1, 1.1, 1.1], JITTERY_PEERS, False),
        ({"min_trials": 4, "z": 0.0}, [1.25, 1.25, 1.25], JITTERY_PEERS, True),
        # against the peers' running mean since grace (epochs 2-3: 0.85 x 1.0 .. 1.4, median
        # 1.02) instead of their best (0.8 x ..., median 0.96): a slow starter at 1.0 is kept
        ({}, [1.3, 1.1, 1.0], FALLING_PEERS, True),
        ({"against": "mean"}, [1.3, 1.1, 1.0], FALLING_PEERS, False),
        ({"against": "mean"}, [1.3, 1.1, 1.05], FALLING_PEERS, True),
        # from grace 1 the means run over epochs 1-3 (0.9 x ..., median 1.08)
        ({"against": "mean", "grace": 1}, [1.3, 1.1, 1.05], FALLING_PEERS, False),
        # a peer stopped before the epoch does not count: 4 are too few
        ({"against": "mean"}, [1.3, 1.1, 1.05], [*FALLING_PEERS[:4], [1.0, 0.9]], False),
    ],
)
def test_median_rule(
    params: dict[str, Any], own: list[float], peers: list[list[float]], fires: bool
) -> None:
    firing = MedianRule(**params).check(own, peers)
    assert (firing is not None) == fires
    if firing is not None:
        assert firing.rule == "median" and firing.epoch == len(own)


@pytest.mark.parametrize(
    ("params", "rungs"),
    [
        ({}, [1, 3, 9, 27]),
        ({"first_rung": 2, "reduction_factor": 2.0}, [2, 4, 8, 16]),
        ({"reduction_factor": 4.0}, [1, 4, 16]),
    ],
)
def test_halving_rungs(params: dict[str, Any], rungs: list[int]) -> None:
    rule = HalvingRule(**params)
    assert [t for t in range(1, 30) if rule.is_rung(t)] == rungs


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("magic", {}, "unknown budget rule 'magic'; choose one of: halving, median, none"),
        ("halving", {"min_trials": 1}, "halving: min_trials must be >= 2, got 1"),
        ("halving", {"reduction_factor": 1}, "halving: reduction_factor must be > 1, got 1"),
        ("halving", {"z": -1}, "halving: z must be >= 0, got -1"),
        ("halving", {"eta": 3}, "halving: unknown parameter 'eta'"),
        ("halving", {"verify": 1.5}, "halving: verify must be <= 1, got 1.5"),
        ("halving", {"verify": -2}, "halving: verify must be >= -1, got -2"),
        ("halving", {"verify_trials": 2}, "halving: verify_trials must be >= 3, got 2"),
        ("median", {"percentile": 100}, "median: percentile must be < 100, got 100"),
        ("median", {"grace": 0}, "median: grace must be >= 1, got 0"),
        ("median", {"against": "last"}, "median: against must be 'best' or 'mean', got 'last'"),
        ("none", {"z": 1}, "none: unknown parameter 'z'; it takes no parameters"),
    ],
)
def test_make_budget_errors(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_budget(name, **params)


def test_budget_registry() -> None:
    assert {"halving": HalvingRule, "median": MedianRule, "none": NoBudget} == BUDGETS
    assert NoBudget().check([5.0], [[1.0]] * 9) is None


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("peak", {"patience": 0}, "peak: patience must be >= 1, got 0"),
        ("peak", {"z": -0.5}, "peak: z must be >= 0, got -0.5"),
        ("peak", {"min_rise": "1"}, "peak: min_rise must be a number, got '1'"),
        ("peak", {"smooth": 0}, "peak: smooth must be >= 1, got 0"),
    ],
)
def test_make_peak_rule_errors(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_rule(name, **params)


def _judge(**kwargs: Any) -> OverfitJudge:
    return OverfitJudge(make_rule("peak"), grace_epochs=2, budget=make_budget("halving"), **kwargs)


def test_judge_records_which_part_stopped_a_trial() -> None:
    judge = _judge()
    for i, level in enumerate([1.0, 1.1, 1.2, 1.3]):
        for epoch in range(1, 4):
            assert not judge.observe(f"p{i}", epoch, level, level).stop
    decision = judge.observe("bad", 1, 2.0, 2.0)
    assert decision.stop and decision.firing is not None and decision.firing.rule == "halving"
    outcome = judge.outcome("bad")
    assert (outcome.state, outcome.rule, outcome.stopped_early) == ("PRUNED", "halving", True)
    assert outcome.reason is not None and "ranked out" in outcome.reason
    # an overfitting trial with a competitive best is stopped by the peak rule, kept COMPLETE
    curve = [0.9, 0.5, 0.4, 0.5, 0.6, 0.7]
    stops = [judge.observe("over", e, v, 0.1).stop for e, v in enumerate(curve, start=1)]
    assert stops == [False] * 5 + [True]
    outcome = judge.outcome("over")
    assert (outcome.state, outcome.rule, outcome.best_epoch) == ("COMPLETE", "peak", 3)


def test_the_median_rules_reason_says_what_the_peers_are_judged_on() -> None:
    best = MedianRule().check([1.3, 1.1, 1.0], FALLING_PEERS)
    mean = MedianRule(against="mean", grace=1).check([1.5, 1.4, 1.3], FALLING_PEERS)
    assert best is not None and "of 5 peers' best at epoch 3" in best.reason
    assert mean is not None and "of 5 peers' mean val loss since epoch 1 at epoch 3" in mean.reason


@pytest.mark.parametrize(
    ("end_guard", "stops_at"),
    [(0, 6), (1, None), (3, None)],
)
def test_the_end_guard_keeps_the_overfitting_rule_out_of_the_last_epochs(
    end_guard: int, stops_at: int | None
) -> None:
    judge = OverfitJudge(make_rule("peak"), grace_epochs=2, max_epochs=6, end_guard=end_guard)
    curve = [0.9, 0.5, 0.4, 0.5, 0.6, 0.7]  # the peak rule fires at epoch 6
    stops = [judge.observe("over", e, v, 0.1).stop for e, v in enumerate(curve, start=1)]
    assert stops == [e == stops_at for e in range(1, 7)]


def test_the_end_guard_leaves_the_budget_rule_alone() -> None:
    judge = _judge(max_epochs=2, end_guard=2)
    for i, level in enumerate([1.0, 1.1, 1.2, 1.3]):
        assert not judge.observe(f"p{i}", 1, level, level).stop
    decision = judge.observe("bad", 1, 2.0, 2.0)
    assert decision.firing is not None and decision.firing.rule == "halving"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end_guard": -1, "max_epochs": 5}, "end_guard must be an integer >= 0, got -1"),
        ({"end_guard": 2}, r"end_guard needs max_epochs \(the trials' epoch limit\)"),
    ],
)
def test_end_guard_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OverfitJudge(make_rule("peak"), **kwargs)


def test_judge_without_budget_is_unchanged() -> None:
    judge = OverfitJudge(make_rule("gl"), grace_epochs=2)
    assert judge.budget is None
    for i in range(5):
        assert not judge.observe(f"p{i}", 1, 1.0, 1.0).stop
    assert not judge.observe("bad", 1, 9.0, 9.0).stop  # no budget rule: only the overfit rule


@pytest.mark.parametrize("level", ["safe", "balanced", "fast"])
def test_presets_build(level: str) -> None:
    settings = preset(level)
    assert set(settings) == {"rule", "budget"}
    rule = make_rule(**settings["rule"])
    budget = make_budget(**settings["budget"])
    assert rule.name == "peak" and budget.name == "halving"
    settings["rule"]["patience"] = 99  # a copy: the table is untouched
    assert PRESETS[level]["rule"]["patience"] != 99


def test_presets_are_ordered_by_aggressiveness() -> None:
    safe, balanced, fast = (PRESETS[n] for n in ("safe", "balanced", "fast"))
    assert safe["rule"]["patience"] >= balanced["rule"]["patience"] >= fast["rule"]["patience"]
    assert safe["rule"]["z"] >= balanced["rule"]["z"] >= fast["rule"]["z"]
    assert balanced["budget"]["z"] >= fast["budget"]["z"]


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown pruning preset 'turbo'; choose one of: safe"):
        preset("turbo")


@pytest.mark.parametrize(
    ("x", "y", "rho"),
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([1, 1, 2, 2], [1, 2, 3, 4], 2 / 5**0.5),  # ties share their mean rank
        ([1, 1, 1], [1, 2, 3], 0.0),  # no spread
    ],
)
def test_rank_correlation(x: list[float], y: list[float], rho: float) -> None:
    assert rank_correlation(x, y) == pytest.approx(rho)


def _wobbly(level: float, epochs: int = 8) -> list[float]:
    """A flat curve at ``level`` with 1 % epoch-to-epoch wobble."""
    return [level * (1.0 + 0.01 * (-1) ** e) for e in range(epochs)]


# six peers whose epoch-2 order is their final order, and the same six up to epoch 2 whose
# later bests come in the reverse order (slow starters win)
LEVELS = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
HELD = [_wobbly(level) for level in LEVELS]
TURNED = [_wobbly(level)[:2] + _wobbly(0.9 - 0.1 * i)[2:] for i, level in enumerate(LEVELS)]
VERIFYING = {"first_rung": 2, "reduction_factor": 4.0, "min_trials": 5, "z": 0.0}


@pytest.mark.parametrize(
    ("params", "peers", "fires", "checked"),
    [
        (VERIFYING, HELD, True, False),  # no check: the rung cuts
        (VERIFYING, TURNED, True, False),
        ({**VERIFYING, "verify": 0.3}, HELD, True, True),  # the ranking held: it cuts
        ({**VERIFYING, "verify": 0.3}, TURNED, False, False),  # it turned: the rung keeps it
        # too few trials ran twice the rung (4 epochs) to check: it cuts as without the check
        ({**VERIFYING, "verify": 0.3}, [p[:3] for p in TURNED], True, False),
        ({**VERIFYING, "verify": 0.3, "verify_trials": 7}, TURNED, True, False),
    ],
)
def test_halving_verify_cuts_only_where_the_studys_ranking_held(
    params: dict[str, Any], peers: list[list[float]], fires: bool, checked: bool
) -> None:
    trial = [1.7, 1.7]  # out of the top quarter at epoch 2 in both peer sets
    firing = HalvingRule(**params).check(trial, peers)
    assert (firing is not None) == fires
    reason = "" if firing is None else firing.reason
    held = "held over 6 trials that ran 4+ epochs (rank correlation 1.00 >= 0.3)"
    assert (held in reason) == checked
    if fires and "verify" in params and not checked:
        assert "not verified: " in reason and "trials it needs ran 4+ epochs" in reason


def test_ranking_held_reports_the_correlation_and_its_trials() -> None:
    assert ranking_held(2, HELD, 6) == (pytest.approx(1.0), 6)
    assert ranking_held(2, TURNED, 6) == (pytest.approx(-1.0), 6)
    assert ranking_held(2, HELD, 7) == (None, 6)
    # a trial with a non-finite loss is no reference
    assert ranking_held(2, [*HELD[:5], [1.0, float("nan"), *HELD[5][2:]]], 6) == (None, 5)
