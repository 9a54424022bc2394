"""The pruning benchmark's replay on small synthetic curves (no training)."""

from __future__ import annotations

import csv
import math
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import load_bench

bench = load_bench("pruning")
policies = sys.modules["_policies"]
Curve = policies.Curve

EPOCHS = 12


def _falling(start: float, end: float, n: int = EPOCHS) -> tuple[float, ...]:
    """Smoothly falling losses from ``start`` to ``end``."""
    return tuple(end + (start - end) * 0.7**i for i in range(n))


def _overfitting(key: str, bottom_epoch: int = 4, low: float = 0.4) -> object:
    """Val loss falls until ``bottom_epoch`` then climbs 15 % an epoch; training keeps falling."""
    val = [1.0 - (1.0 - low) * e / bottom_epoch for e in range(1, bottom_epoch + 1)]
    while len(val) < EPOCHS:
        val.append(val[-1] * 1.15)
    return Curve(key, {}, tuple(val), _falling(1.0, 0.01))


def _healthy(key: str, end: float) -> object:
    """Val and train loss both fall steadily to ``end`` (no overfitting)."""
    return Curve(key, {}, _falling(1.5, end), _falling(1.4, end - 0.05))


def test_gl_stops_overfitting_curves_and_keeps_their_best() -> None:
    curves = [_overfitting(str(i)) for i in range(3)]
    result = bench.replay(curves, policies.Judge("gl", "gl", alpha=5.0))
    # best at epoch 4, GL 15 % > 5 % at epoch 5 (after the 2-epoch grace): 5 epochs each
    assert result.epochs_run == {"0": 5, "1": 5, "2": 5}
    assert result.epochs == 15
    assert result.stopped == 3
    assert result.premature == 0  # val loss only climbs after the stop
    assert result.best_val_loss == pytest.approx(0.4)
    assert result.best_epoch == 4


def test_gl_does_not_stop_healthy_curves() -> None:
    curves = [_healthy(str(i), 0.3 + 0.1 * i) for i in range(3)]
    result = bench.replay(curves, policies.Judge("gl", "gl", alpha=5.0))
    assert result.epochs == 3 * EPOCHS
    assert result.stopped == 0


def test_no_stopping_spends_every_epoch() -> None:
    curves = [_overfitting("a"), _healthy("b", 0.3), _healthy("c", 0.9)]
    result = bench.replay(curves, policies.NoStopping())
    assert result.epochs == 3 * EPOCHS
    assert result.stopped == result.pruned == 0
    assert result.best_key == "b"
    assert result.best_val_loss == pytest.approx(min(curves[1].val_loss))
    assert result.best_gap == pytest.approx(0.05, abs=1e-3)


def test_a_noise_spike_is_a_premature_stop() -> None:
    val = list(_falling(1.5, 0.2))
    val[4] = val[3] * 1.2  # one noisy epoch, then the curve goes on falling
    curve = Curve("spike", {}, tuple(val), _falling(1.4, 0.1))
    result = bench.replay([curve], policies.Judge("gl", "gl", alpha=5.0))
    assert result.epochs_run == {"spike": 5}
    assert result.premature == 1
    assert result.best_val_loss > min(val)


def test_either_counts_pruned_only_for_whoever_stopped() -> None:
    curves = [_overfitting(str(i)) for i in range(3)]
    either = policies.Either(
        "gl+asha", policies.Judge("gl", "gl", alpha=5.0), policies.RayAsha(max_t=EPOCHS)
    )
    result = bench.replay(curves, either)
    assert result.epochs_run == {"0": 5, "1": 5, "2": 5}  # gl stops all three first
    assert result.stopped == 3
    assert result.pruned == 0  # competitive (too few peers to compare), and ASHA never cut


def test_asha_cuts_bad_trials_at_its_rungs() -> None:
    asha = policies.RayAsha(max_t=EPOCHS, grace_period=2, reduction_factor=3)
    assert asha.rungs == [2, 6]
    good = [_healthy(f"good{i}", 0.2 + 0.01 * i) for i in range(3)]
    bad = [_healthy(f"bad{i}", 0.2) for i in range(3)]
    bad = [Curve(c.key, {}, tuple(v + 5.0 for v in c.val_loss), c.train_eval_loss) for c in bad]
    result = bench.replay(good + bad, asha)
    for curve in bad:  # worse than the rung-2 cutoff: stopped at epoch 2
        assert result.epochs_run[curve.key] == 2
    assert result.epochs_run["good0"] == EPOCHS  # the first trial sets the rungs, never cut
    assert result.pruned == result.stopped >= 3


def test_median_pruner_prunes_after_its_startup_trials() -> None:
    good = [_healthy(f"g{i}", 0.3) for i in range(5)]
    bad = Curve("bad", {}, tuple(v + 1.0 for v in good[0].val_loss), good[0].train_eval_loss)
    result = bench.replay([*good, bad], policies.OptunaMedian(n_startup_trials=5, n_warmup_steps=2))
    assert result.epochs_run["bad"] == 3  # step 2 (epoch 3) is the first after the warm-up
    assert result.pruned == 1
    early = bench.replay([bad, *good], policies.OptunaMedian(n_startup_trials=5, n_warmup_steps=2))
    assert early.epochs_run["bad"] == EPOCHS  # no completed trials yet: nothing to compare


def test_budget_cuts_the_search() -> None:
    curves = [_healthy(str(i), 0.3) for i in range(4)]
    result = bench.replay(curves, policies.NoStopping(), budget=EPOCHS + 5)
    assert result.epochs == EPOCHS + 5
    assert result.trials_started == 2
    assert result.epochs_run == {"0": EPOCHS, "1": 5}


def test_concurrency_interleaves_epochs() -> None:
    curves = [_overfitting("a"), _healthy("b", 0.3), _healthy("c", 0.3)]
    result = bench.replay(curves, policies.NoStopping(), concurrency=2, budget=4)
    assert result.epochs_run == {"a": 2, "b": 2}


def test_summary_line_and_tables(tmp_path: Path) -> None:
    curves = [_overfitting(str(i), low=0.4 + 0.05 * i) for i in range(4)]
    curves += [_healthy(str(4 + i), 0.5 + 0.1 * i) for i in range(4)]
    path = tmp_path / "curves.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["config", "epoch", "dropout", "val_loss", "train_eval_loss"])
        for curve in curves:
            for e, (v, t) in enumerate(zip(curve.val_loss, curve.train_eval_loss, strict=True)):
                writer.writerow([curve.key, e + 1, 0.1, v, t])
    loaded = bench.load_curves(path)
    assert [c.key for c in loaded] == [str(i) for i in range(8)]
    assert loaded[0].val_loss == pytest.approx(curves[0].val_loss)
    results, budget_results, budgets = bench.run_benchmark(loaded, seeds=[0, 1])
    full = 8 * EPOCHS
    line = bench.summary_line(results, full)
    assert re.fullmatch(r"summary:( [a-z0-9+-]+ \d\.\d\d/\d+\.\d{3})+", line), line
    assert " none 1.00/1.000" in line
    assert line.startswith("summary: default ")
    assert "asha @ gl budget" in budget_results and "gl @ asha budget" in budget_results
    assert len(budgets) == 2
    table = bench.markdown_tables(results, budget_results, budgets, full)
    assert table.count("| gl |") == 2
    assert bench.target_verdict(results, budget_results, full).startswith("target: gl:")


def test_cli_quick_prints_summary_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "curves.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["config", "epoch", "val_loss", "train_eval_loss"])
        for i, curve in enumerate([_overfitting("0"), _healthy("1", 0.3), _healthy("2", 0.6)]):
            for e, (v, t) in enumerate(zip(curve.val_loss, curve.train_eval_loss, strict=True)):
                writer.writerow([i, e + 1, v, t])
    assert bench.main(["--quick", "--curves", str(path), "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"summary:( [a-z0-9+-]+ \d\.\d\d/\d+\.\d{3})+", lines[-1]), lines[-1]
    assert lines[-1].startswith("summary: default ")
    assert " gl " in lines[-1] and " none 1.00/1.000" in lines[-1]
    assert lines[-2].startswith("target: default: ")


def _pool(n: int = 12) -> list[object]:
    """Half overfitting (various bottoms), half healthy (various levels)."""
    return [_overfitting(str(i), low=0.3 + 0.05 * i) for i in range(n // 2)] + [
        _healthy(str(n // 2 + i), 0.35 + 0.1 * i) for i in range(n // 2)
    ]


def test_random_subsets_draw_from_the_pool_without_repeats() -> None:
    pool = _pool()
    subsets = bench.random_subsets(pool, 4, 5)
    assert len(subsets) == 4 and all(len(s) == 5 for s in subsets)
    assert all(len({c.key for c in s}) == 5 for s in subsets)
    assert len({tuple(c.key for c in s) for s in subsets}) == 4  # different searches
    assert subsets == bench.random_subsets(pool, 4, 5)  # seeded
    assert len(bench.random_subsets(pool, 1, 99)[0]) == len(pool)


def test_top_k_trains_everything_one_epoch_then_the_best_k() -> None:
    pool = _pool()
    result = policies.top_k(pool, 2)
    assert result.epochs == len(pool) - 2 + 2 * EPOCHS
    # the overfitting curves start lowest (0.85 .. at epoch 1), so "0" and "1" go on
    assert sorted(k for k, e in result.epochs_run.items() if e == EPOCHS) == ["0", "1"]
    assert result.best_val_loss == pytest.approx(min(min(c.val_loss) for c in pool[:2]))


def test_subset_benchmark_scores_every_policy_against_no_stopping(tmp_path: Path) -> None:
    scores = bench.subset_benchmark(_pool(), 3, size=8)
    expected = {"default", "safe", "fast", "gl", "median", "asha", "none", "top3", "top5"}
    assert expected | {"default-at-gl"} <= set(scores)
    assert all(
        a.fraction <= g.fraction for a, g in zip(scores["default-at-gl"], scores["gl"], strict=True)
    )
    assert all(len(v) == 3 for v in scores.values())
    assert all(s.fraction == 1.0 and s.ratio == 1.0 for s in scores["none"])
    assert all(0 < s.fraction <= 1.0 and s.ratio >= 1.0 for v in scores.values() for s in v)
    # the default's overfitting curves are stopped by its peak rule, and it says so
    assert any(s.stopped_by.get("peak") for s in scores["default"])
    table = bench.frontier_table({"pool": scores})
    assert table.splitlines()[2].startswith("| default | ")
    png = bench.plot_frontier({"pool": scores}, tmp_path / "frontier.png")
    assert png.stat().st_size > 1000
    verdict = bench.frontier_verdict(scores)
    assert verdict.startswith("target: default: epoch fraction ")


def test_ray_median_stopping_rule_stops_a_trial_worse_than_the_running_means() -> None:
    good = [_healthy(f"g{i}", 0.3) for i in range(3)]
    bad = Curve("bad", {}, tuple(v + 1.0 for v in good[0].val_loss), good[0].train_eval_loss)
    result = bench.replay([*good, bad], policies.RayMedianStopping(grace_period=2))
    assert result.epochs_run["bad"] == 2  # judged from the grace period on, 3 others there
    assert result.pruned == 1 and all(result.epochs_run[c.key] == EPOCHS for c in good)
    early = bench.replay([bad, *good], policies.RayMedianStopping(grace_period=2))
    assert early.epochs_run["bad"] == EPOCHS  # nobody to compare with yet


def _tested(key: str, val: tuple[float, ...], test_offset: float) -> object:
    """A healthy curve whose test loss is its val loss plus ``test_offset``."""
    return Curve(key, {}, val, _falling(1.4, 0.05), test_loss=tuple(v + test_offset for v in val))


def test_the_exported_trials_test_loss_scores_what_stopping_cost(tmp_path: Path) -> None:
    # "late" wins on val loss only after epoch 6; before that "early" leads. Its test loss is
    # worse than its val loss says (the winner's curse), so losing it costs less on test.
    late = _tested("late", tuple([1.0] * 6 + [0.2] * (EPOCHS - 6)), 0.3)
    early = _tested("early", tuple([0.6] * EPOCHS), 0.0)
    full = bench.replay([early, late], policies.NoStopping())
    assert (full.best_key, full.best_epoch) == ("late", 7)
    assert full.best_test_loss == pytest.approx(0.5)
    cut = bench.replay([early, late], policies.RayAsha(max_t=EPOCHS, grace_period=2))
    assert cut.best_key == "early" and cut.best_test_loss == pytest.approx(0.6)
    score = bench.Score.against(cut, full, {})
    assert score.ratio == pytest.approx(3.0) and score.test_ratio == pytest.approx(1.2)
    path = tmp_path / "bank.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["config", "epoch", "val_loss", "train_eval_loss", "test_loss"])
        for curve in (early, late):
            for e in range(EPOCHS):
                writer.writerow(
                    [curve.key, e + 1, curve.val_loss[e], curve.train_eval_loss[e],
                     curve.test_loss[e]]
                )  # fmt: skip
    assert {c.key: c.test_loss for c in bench.load_curves(path)}["late"] == late.test_loss
    table = bench.frontier_table({"bank": {"asha": [score], "none": [score]}})
    assert table.splitlines()[0].endswith("/ test ratio |")
    assert table.splitlines()[2].endswith(" / 1.200 |")
    verdict = bench.frontier_verdict({"default": [score], "none": [score]})
    assert verdict.endswith("the exported trial's test loss ratio 1.2000")
    # a bank without a test split: NaN, and no test column
    untested = bench.replay([_healthy("a", 0.3), _healthy("b", 0.4)], policies.NoStopping())
    assert math.isnan(bench.Score.against(untested, untested, {}).test_ratio)


@pytest.mark.parametrize(
    ("crossing", "rho", "top_quarter", "keep"),
    [
        (False, 1.0, 1.0, 1 / 24),  # the early ranking is the final one: keep only the leader
        (True, -1.0, 0.0, 1.0),  # the ranking flips after epoch 3: the winner is last early
    ],
)
def test_predictability_measures_how_much_a_rank_rule_must_keep(
    crossing: bool, rho: float, top_quarter: float, keep: float
) -> None:
    pool = []
    for i in range(30):
        early = 1.0 + 0.01 * i  # config 0 leads early
        late = (1.0 - 0.01 * i) if crossing else early - 0.5  # config 29 wins if crossing
        val = tuple([early] * 3 + [min(early, late) - 0.5] * (EPOCHS - 3))
        pool.append(Curve(str(i), {}, val, _falling(1.0, 0.01)))
    rows = bench.predictability(pool, n_searches=50)
    assert [r.epoch for r in rows] == list(range(1, EPOCHS))
    first = rows[0]
    assert first.rho == pytest.approx(rho)
    assert first.winner_top_quarter == pytest.approx(top_quarter)
    assert first.keep_needed == pytest.approx(keep)
    assert first.one_rung == pytest.approx(1 / EPOCHS + (1 - 1 / EPOCHS) * keep)
    assert rows[3].rho == pytest.approx(1.0)  # from epoch 4 on the ranking is the final one
    table = bench.predictability_table({"pool": rows}, (2, 4, 99))
    assert table.splitlines()[2].startswith("| pool | ") and " – |" in table


def test_cli_predictability_prints_one_row_per_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bank.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["config", "epoch", "val_loss", "train_eval_loss"])
        for i in range(30):
            for e, v in enumerate(_falling(1.5, 0.2 + 0.01 * i)):
                writer.writerow([i, e + 1, v, 0.1])
    assert bench.main(["--predictability", "--curves", str(path), "--seeds", "20"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7 and lines[2].startswith("| bank | 1.00 / ")
    # the cheapest schedules: every curve starts at 1.5 and is ranked for good from epoch 2,
    # so keep the leader after epoch 2: (24 x 2 + 10) / (24 x 12) of the epochs
    assert lines[4] == "| bank | ≤ 1 rung | ≤ 2 rungs | ≤ 3 rungs |"
    assert lines[6] == "| bank |" + " 0.20 (e2 keep 1/24) |" * 3


def _crossing_pool(crossing: bool) -> list[Curve]:
    """30 curves ranked by ``i`` for 3 epochs; from epoch 4 on by ``-i`` if ``crossing``."""
    pool = []
    for i in range(30):
        early = 1.0 + 0.01 * i
        late = (1.0 - 0.01 * i) if crossing else early - 0.5
        val = tuple([early] * 3 + [min(early, late) - 0.5] * (EPOCHS - 3))
        pool.append(Curve(str(i), {}, val, _falling(1.0, 0.01)))
    return pool


@pytest.mark.parametrize(
    ("crossing", "rungs", "fraction"),
    [
        # the first epoch's ranking is final: keep only the leader after epoch 1
        (False, (1,), (24 + 1 * (EPOCHS - 1)) / (24 * EPOCHS)),
        # the ranking flips after epoch 3: no rung before epoch 4 can keep the winner
        (True, (4,), (24 * 4 + 1 * (EPOCHS - 4)) / (24 * EPOCHS)),
    ],
)
def test_cheapest_schedules_keep_the_winner_at_the_least_spend(
    crossing: bool, rungs: tuple[int, ...], fraction: float
) -> None:
    one, two = bench.cheapest_schedules(bench.schedules(_crossing_pool(crossing), 2, n_searches=40))
    assert one.rungs == rungs and one.keeps == (1 / 24,)
    assert one.fraction == pytest.approx(fraction)
    assert one.hit == 1.0
    assert two.fraction == pytest.approx(fraction)  # a second rung cannot do better here
    table = bench.schedule_table({"pool": [one, two]})
    assert table.splitlines()[0] == "| bank | ≤ 1 rung | ≤ 2 rungs |"
    assert table.splitlines()[2] == f"| pool | {fraction:.2f} (e{rungs[0]} keep 1/24) | " + (
        f"{fraction:.2f} ({two.label()}) |"
    )


def test_a_second_rung_pays_where_a_gentle_early_cut_keeps_the_late_winner() -> None:
    # 24 curves: at epoch 1 the bottom half is hopeless and stays so; the top half's ranking
    # flips at epoch 6. One rung keeps 1/2 at epoch 1 (156/288 of the epochs) or waits to
    # epoch 6 (150/288); two rungs cut half at epoch 1, then all but the leader at epoch 6.
    pool = []
    for i in range(24):
        hopeless = i >= 12
        first = 2.0 + i if hopeless else 1.0 + 0.01 * i
        settled = first if hopeless else 0.5 - 0.01 * i
        val = tuple([first] * 5 + [settled] * (EPOCHS - 5))
        pool.append(Curve(str(i), {}, val, _falling(1.0, 0.01)))
    one, two = bench.cheapest_schedules(bench.schedules(pool, 2, n_searches=5))
    assert (one.rungs, one.fraction) == ((6,), pytest.approx(150 / 288))
    assert (two.rungs, two.fraction) == ((1, 6), pytest.approx(90 / 288))
    assert two.label() == "e1 keep 1/2, e6 keep 1/24"  # 1 of the 12 survivors


def test_one_fixed_schedule_must_keep_the_winner_on_every_bank_or_pooled() -> None:
    s = bench.Schedule
    early, late, mid = ((1,), (1 / 4,)), ((6,), (1 / 4,)), ((2,), (1 / 2,))
    per_bank = {
        # early is cheapest on a but misses on b; late reaches 90 % on both; mid misses on a
        # (85 %) but reaches 92.5 % pooled
        "a": [s(*early, 0.3, 0.95), s(*late, 0.5, 0.99), s(*mid, 0.1, 0.85)],
        "b": [s(*early, 0.3, 0.60), s(*late, 0.6, 0.92), s(*mid, 0.1, 1.0)],
    }
    picked = bench.fixed_schedule(per_bank)
    assert picked is not None and [x.fraction for x in picked] == [0.5, 0.6]
    pooled = bench.fixed_schedule(per_bank, pooled=True)
    assert pooled is not None and pooled[0].rungs == (2,)
    lines = bench.fixed_schedule_lines(per_bank, {"c": [s(*late, 0.4, 0.8)]}).splitlines()
    assert lines[0] == (
        "one schedule, 90 % on each of the choosing banks: e6 keep 1/4, 0.55 of the epochs on "
        "average"
    )
    assert lines[3] == "  held out c: 0.40 of the epochs, 80%"
    assert lines[4].startswith("one schedule, 90 % pooled over the choosing banks: e2 keep 1/2")
    assert len(lines) == 7  # c has no e2 schedule: no held-out line
    assert bench.fixed_schedule({"a": [s(*early, 0.3, 0.5)]}) is None
