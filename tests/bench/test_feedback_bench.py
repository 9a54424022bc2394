"""The replay with sampler feedback (bench/_feedback.py): the product's TPE proposes each trial."""

from __future__ import annotations

import csv
import importlib
import math
import re
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState

from tests.conftest import load_bench

bench = load_bench("pruning")
policies = sys.modules["_policies"]
feedback = importlib.import_module("_feedback")  # bench/ is on sys.path once pruning loads
Curve = policies.Curve

EPOCHS = 10
GOOD_RATE = 1e-3


def _pool(n: int = 48, seed: int = 0) -> list[object]:
    """``n`` configurations whose final val loss grows with |log10(rate / 1e-3)| (the other knobs
    are noise): a sampler that learns from outcomes proposes rates near 1e-3."""
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(n):
        params = {
            "dropout": float(rng.uniform(0, 0.7)),
            "learning_rate": float(10 ** rng.uniform(-5, -1)),
        }
        floor = 0.2 + abs(math.log10(params["learning_rate"] / GOOD_RATE))
        val = tuple(floor + 1.0 * 0.6**e for e in range(EPOCHS))
        pool.append(Curve(str(i), params, val, tuple(v - 0.05 for v in val)))
    return pool


class _CutAtTwoWhenBad:
    """Stops (PRUNED) every trial whose val loss at epoch 2 is above 1.5."""

    name = "cut"

    def __init__(self) -> None:
        self.cut: set[str] = set()

    def start(self, key: str) -> None:
        pass

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        if epoch == 2 and val_loss > 1.5:
            self.cut.add(key)
            return True
        return False

    def end(self, key: str, stopped: bool) -> bool:
        return key in self.cut


def test_search_space_spans_each_varying_knob_with_log_for_rates() -> None:
    pool = _pool()
    space = feedback.search_space(pool)
    assert set(space) == {"dropout", "learning_rate"}
    low, high, log = space["learning_rate"]
    assert log and low == min(c.params["learning_rate"] for c in pool) and high < 0.1
    assert space["dropout"][2] is False
    fixed = [Curve(c.key, {**c.params, "l2": 1e-4}, c.val_loss, c.train_eval_loss) for c in pool]
    assert "l2" not in feedback.search_space(fixed)  # one value: not searched


def test_each_configuration_runs_once_and_the_study_holds_what_ran_and_how_it_ended() -> None:
    pool = _pool()
    feed = feedback.SamplerFeed(pool, trials=20, seed=3)
    policy = _CutAtTwoWhenBad()
    result = policies.replay(feed, policy, concurrency=2)
    assert result.trials_started == 20 and len(set(feed.order)) == 20
    told = [t for t in feed.study.trials if t.state != TrialState.FAIL]
    assert len(told) == 20  # the proposals are FAIL; the configurations run are told
    by_key = {c.key: c for c in pool}
    for trial, key in zip(told, feed.order, strict=True):
        assert trial.params == pytest.approx(by_key[key].params)  # its own recorded knobs
        assert max(trial.intermediate_values) == result.epochs_run[key]
        if key in policy.cut:
            assert trial.state == TrialState.PRUNED and result.epochs_run[key] == 2
        else:
            assert trial.state == TrialState.COMPLETE
            assert trial.value == pytest.approx(min(by_key[key].val_loss))
    assert policy.cut and len(policy.cut) < 20


def test_the_sampler_learns_from_outcomes_where_random_does_not() -> None:
    """TPE's later trials run configurations nearer the good rate than random sampling's (on 8
    seeds, TPE 0.66 decades from it on average, random 0.91, when written)."""

    def late_distance(sampler: str, seed: int) -> float:
        pool = _pool(n=96, seed=seed)
        feed = feedback.SamplerFeed(pool, trials=24, seed=seed, sampler=sampler)
        policies.replay(feed, policies.NoStopping(), concurrency=2)
        by_key = {c.key: c for c in pool}
        late = feed.order[12:]
        return statistics.fmean(
            abs(math.log10(by_key[k].params["learning_rate"] / GOOD_RATE)) for k in late
        )

    tpe = statistics.fmean(late_distance("tpe", s) for s in range(8))
    rnd = statistics.fmean(late_distance("random", s) for s in range(8))
    assert tpe < 0.8 * rnd, (tpe, rnd)


def test_a_search_is_seeded_and_stops_when_the_pool_runs_out() -> None:
    pool = _pool(n=10)
    a = feedback.SamplerFeed(pool, trials=24, seed=1)
    b = feedback.SamplerFeed(pool, trials=24, seed=1)
    ra = policies.replay(a, policies.NoStopping())
    rb = policies.replay(b, policies.NoStopping())
    assert a.order == b.order and ra.epochs == rb.epochs == 10 * EPOCHS


def test_feedback_benchmark_scores_every_policy_against_no_stopping_at_the_same_seed() -> None:
    scores = bench.feedback_benchmark(_pool(), 2, trials=12)
    assert {"default", "safe", "fast", "asha", "median", "ray-median", "none"} <= set(scores)
    assert all(len(v) == 2 for v in scores.values())
    assert all(s.fraction == 1.0 and s.ratio == 1.0 for s in scores["none"])
    assert all(0 < s.fraction <= 1.0 for v in scores.values() for s in v)
    assert any(s.fraction < 1.0 for s in scores["asha"])


def test_cli_feedback_quick_prints_summary_last_and_leaves_small_banks_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def write(path: Path, pool: list[object]) -> Path:
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["config", "epoch", "dropout", "learning_rate", "val_loss", "train_eval_loss"]
            )
            for curve in pool:
                for e, (v, t) in enumerate(zip(curve.val_loss, curve.train_eval_loss, strict=True)):
                    p = curve.params
                    writer.writerow([curve.key, e + 1, p["dropout"], p["learning_rate"], v, t])
        return path

    big = write(tmp_path / "big.csv", _pool(n=bench.FEEDBACK_MIN_POOL))
    small = write(tmp_path / "small.csv", _pool(n=6))
    argv = ["--feedback", "--quick", "--seeds", "1", "--curves", str(big), "--curves", str(small)]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("small.csv: 6 configs, too few for --feedback; left out" in x for x in lines)
    assert any("TPE searches of 24 trials (2 side by side) with feedback" in x for x in lines)
    assert re.fullmatch(r"summary:( [a-z0-9+-]+ \d\.\d\d/\d+\.\d{3})+", lines[-1]), lines[-1]
    assert lines[-1].startswith("summary: default ") and " none 1.00/1.000" in lines[-1]


def _setting(fraction: float, ratio: float, spread: float) -> tuple[float, float, list]:
    """A setting whose searches scatter by ``spread`` around (fraction, ratio)."""
    pairs = [(fraction + d, ratio) for d in (-spread, 0.0, spread)]
    return fraction, ratio, pairs


@pytest.mark.parametrize(
    ("rows", "weight", "picked"),
    [
        # one clear optimum: picked, though another has a better ratio
        ([_setting(0.3, 1.05, 0.0), _setting(0.9, 1.0, 0.0)], 5.0, 0),
        # a tie within the optimum's standard error: the better ratio wins
        ([_setting(0.40, 1.05, 0.3), _setting(0.60, 1.02, 0.3)], 5.0, 1),
        # the same two with no scatter: no tie, the lower score wins
        ([_setting(0.40, 1.05, 0.0), _setting(0.60, 1.02, 0.0)], 5.0, 0),
        # a heavy weight on quality changes the optimum itself
        ([_setting(0.40, 1.05, 0.0), _setting(0.60, 1.02, 0.0)], 20.0, 1),
    ],
)
def test_one_se_pick_breaks_ties_within_noise_towards_quality(
    rows: list, weight: float, picked: int
) -> None:
    choose = load_bench("choose_default")
    assert choose.one_se_pick(rows, weight) == picked
