"""bench/live_order.py: a live no-stopping sweep becomes an ordered bank, replayed in its order."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from tests.conftest import load_bench

live_order = load_bench("live_order")
candidates = load_bench("candidates")
pruning = load_bench("pruning")


def _sweep(
    folder: Path, curves: list[list[float]], stopped: int | None = None, short: int | None = None
) -> Path:
    """A ``bench/live.py`` sweep folder with ``trials.csv`` and ``histories.csv``, and its sweep
    file beside it (sampler seed 0, max epochs 8; trial ``k``'s
    learning rate is ``1e-4 * (k + 1)``; ``stopped`` marks one trial stopped early, ``short`` one
    that ran 2 epochs fewer without being stopped, as a failed one)."""
    folder.mkdir(parents=True)
    folder.with_suffix(".yaml").write_text(
        f"study: {{seed: 0, trials: {len(curves)}}}\ntrain: {{max_epochs: 8}}\n"
    )
    with (folder / "trials.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "number",
                "state",
                "param_learning_rate",
                "param_dropout",
                "epochs_run",
                "stopped_early",
                "best_val_loss",
            ]
        )
        for k, curve in enumerate(curves):
            run = len(curve) - 2 if k == short else len(curve)
            writer.writerow(
                [k, "COMPLETE", 1e-4 * (k + 1), 0.1, run, k == stopped, min(curve[:run])]
            )
    with (folder / "histories.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["trial", "epoch", "val_loss", "train_eval_loss", "gap", "epoch_seconds"])
        for k, curve in enumerate(curves):
            for e, v in enumerate(curve, start=1):
                writer.writerow([k, e, v, v / 2, v / 2, 1.0])
    return folder


def _curves(n: int = 12, epochs: int = 8) -> list[list[float]]:
    """``n`` falling curves; trial ``k`` levels off at ``1 + 0.1 * ((5 * k) % n)``."""
    return [
        [1 + 0.1 * ((5 * k) % n) + 2 * math.exp(-e) for e in range(1, epochs + 1)] for k in range(n)
    ]


def test_convert_keeps_the_trial_order_knobs_and_curves(tmp_path: Path) -> None:
    curves = _curves()
    sweep = _sweep(tmp_path / "s-none-seed0", curves)
    bank = tmp_path / "bank.csv"
    assert live_order.convert(sweep, bank) == len(curves)
    loaded = pruning.load_curves(bank)
    assert [c.key for c in loaded] == [str(k) for k in range(len(curves))]
    assert loaded[3].params["learning_rate"] == pytest.approx(4e-4)
    assert list(loaded[7].val_loss) == pytest.approx(curves[7])
    assert list(loaded[7].train_eval_loss) == pytest.approx([v / 2 for v in curves[7]])


@pytest.mark.parametrize(("stopped", "short"), [(2, None), (None, 5)])
def test_convert_refuses_a_sweep_that_stopped_trials(
    tmp_path: Path, stopped: int | None, short: int | None
) -> None:
    sweep = _sweep(tmp_path / "s", _curves(), stopped=stopped, short=short)
    with pytest.raises(ValueError, match="no stopping"):
        live_order.convert(sweep, tmp_path / "bank.csv")


def test_replay_order_runs_none_whole_and_a_rank_rule_cheaper(tmp_path: Path) -> None:
    live_order.convert(_sweep(tmp_path / "s", _curves()), tmp_path / "bank.csv")
    curves = pruning.load_curves(tmp_path / "bank.csv")
    policies = live_order.frontier_policies()
    none = live_order.row(curves, live_order.replay_order(curves, policies["none"]))
    assert none == (1.0, 1.0)
    fraction, ratio = live_order.row(curves, live_order.replay_order(curves, policies["sh-r3"]))
    assert fraction < 1.0
    assert ratio >= 1.0


def test_check_sets_the_order_replay_beside_the_live_sweep(tmp_path: Path) -> None:
    curves = _curves()
    _sweep(tmp_path / "out" / "s-none-seed0", curves)
    # a live "sh-r3" sweep of the same trials that ran each for 4 epochs
    _sweep(tmp_path / "out" / "s-sh-r3-seed0", [c[:4] for c in curves])
    lines = live_order.check([tmp_path / "out"], live_order.frontier_policies(), setups=("s",))
    assert [line.split(":")[0].split() for line in lines] == [
        ["s", "seed0", "none"],
        ["s", "seed0", "sh-r3"],
    ]
    assert "live 0.50 / " in lines[1]
    assert "first 12 of 12 trials as in the none sweep" in lines[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "s-none-seed0",
        "s-none-seed0.yaml",
        "s-sh-r3-seed0",
        "s-sh-r3-seed0.yaml",
    ]  # nothing written into the sweeps' folder


def test_main_splits_choosing_from_held_out_banks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ov-59-s0", "mn2-photos-s0"):
        live_order.convert(_sweep(tmp_path / name, _curves()), tmp_path / f"{name}.csv")
    banks = [tmp_path / "ov-59-s0.csv", tmp_path / "mn2-photos-s0.csv"]
    assert live_order.main(["--curves", *map(str, banks)]) == 0
    out = capsys.readouterr().out
    assert "choosing" in out and "1.00 / 1.000" in out
    assert live_order.main(["--held-out", "--curves", str(banks[0])]) == 2


@pytest.mark.parametrize(
    ("a", "b", "expected"), [([1, 2, 3], [1, 2, 4], 2), ([1], [1, 2], 1), ([], [1], 0)]
)
def test_shared_prefix(a: list[int], b: list[int], expected: int) -> None:
    assert live_order.shared_prefix(a, b) == expected


def test_a_grid_is_refused_on_held_out_banks() -> None:
    with pytest.raises(SystemExit) as exit_info:
        live_order.main(["--held-out", "--grid", "halving"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("weight", [0.0, 20.0])
def test_a_grid_scores_with_the_weight_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], weight: float
) -> None:
    live_order.convert(_sweep(tmp_path / "ov-59-s0", _curves()), tmp_path / "ov-59-s0.csv")
    argv = ["--curves", str(tmp_path / "ov-59-s0.csv"), "--grid", "round12-safe"]
    assert live_order.main([*argv, "--weight", str(weight)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "score" in line]
    assert len(lines) == 2
    for line in lines:
        fraction, ratio = (float(x) for x in line.rsplit("}: ", 1)[1].split(" / ")[:2])
        score = float(line.split("score ")[1].split()[0])
        assert score == pytest.approx(fraction + weight * (ratio - 1.0), abs=2e-3)


def test_the_bound_finds_the_cheapest_fixed_schedule_that_keeps_the_winner(tmp_path: Path) -> None:
    # in both orders the winner (trial 0 here, 5 there) starts last and ends first: a schedule
    # that cuts before epoch 6 loses it, one rung at epoch 6 keeping 1/24 keeps it alone
    banks = {}
    for name, winner in (("a", 0), ("b", 5)):
        curves = [[1.0 + 0.01 * k + 0.0 * e for e in range(8)] for k in range(12)]
        curves[winner] = [3.0, 3.0, 3.0, 3.0, 3.0, 0.5, 0.5, 0.5]
        live_order.convert(_sweep(tmp_path / name, curves), tmp_path / f"{name}.csv")
        banks[name] = pruning.load_curves(tmp_path / f"{name}.csv")
    lines = live_order.bound(
        banks, hits=(0.5, 1.0), max_rungs=1, default=live_order.frontier_policies()["none"]
    )
    assert len(lines) == 3
    for line in lines[:2]:
        # 12 trials x 6 epochs, then the winner alone for 2: (72 + 2) / 96
        assert f"{74 / 96:.3f} of the epochs at best (e6 keep 1/24; 100% of the orders)" in line
    assert lines[2].endswith("1.000 of the epochs, within 1 % on 100% of the orders")


def test_main_prints_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live_order.convert(_sweep(tmp_path / "ov-59-s0", _curves()), tmp_path / "ov-59-s0.csv")
    assert live_order.main(["--curves", str(tmp_path / "ov-59-s0.csv"), "--bound"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[1:]] == [
        *(f"within 1 % on {h:.0%} of the orders" for h in live_order.BOUND_HITS),
        "default, as it runs (asynchronously, 2 at a time)",
    ]


def test_a_grid_fixed_in_advance_is_reported_on_held_out_banks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_order.convert(
        _sweep(tmp_path / "mn2-photos-s0", _curves()), tmp_path / "mn2-photos-s0.csv"
    )
    argv = ["--held-out", "--curves", str(tmp_path / "mn2-photos-s0.csv"), "--grid", "round14"]
    assert live_order.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("held out live banks")
    assert sum("paired vs default" in line for line in out.splitlines()) == 3


@pytest.mark.parametrize(
    ("epoch", "place"),
    [(1, 12 / 12), (2, 12 / 12), (3, 1 / 12)],
)
def test_the_winners_place_is_its_rank_on_the_best_so_far(epoch: int, place: float) -> None:
    curves = [[1.0 + 0.01 * k] * 6 for k in range(12)]
    curves[4] = [3.0, 2.0, 0.5, 0.5, 0.5, 0.5]
    assert candidates.winner_place(curves, epoch) == place


@pytest.mark.parametrize(
    ("places", "share"),
    [
        ({"x-s0": 0.1, "x-s1": 0.1, "y-s0": 0.9, "y-s1": 0.9}, 1.0),
        ({"x-s0": 0.1, "x-s1": 0.9, "y-s0": 0.1, "y-s1": 0.9}, 0.0),
        ({"x-s0": 0.5, "x-s1": 0.5, "y-s0": 0.5, "y-s1": 0.5}, 0.0),
    ],
)
def test_the_variance_between_setups_is_measured_against_chance(
    places: dict[str, float], share: float
) -> None:
    measured, chance = live_order.between_setups(places)
    assert measured == pytest.approx(share)
    assert chance == pytest.approx(1 / 3)


def test_a_prior_from_the_same_setup_picks_the_schedule_its_orders_share(tmp_path: Path) -> None:
    # setup x's winner always starts last and ends first, at epoch 6; setup y's winner leads
    # from epoch 1. On x, x's other order says to wait for epoch 6 (12 x 6 epochs, then the
    # winner alone for 2: 74 / 96), y's order to cut at epoch 1 and lose it; y has no other order
    banks = {}
    for name, winner, late in (("x-s0", 0, True), ("x-s1", 5, True), ("y-s0", 2, False)):
        curves = [[1.0 + 0.01 * k] * 8 for k in range(12)]
        curves[winner] = [3.0] * 5 + [0.5] * 3 if late else [0.5] * 8
        live_order.convert(_sweep(tmp_path / name, curves), tmp_path / f"{name}.csv")
        banks[name] = pruning.load_curves(tmp_path / f"{name}.csv")
    lines = live_order.prior(banks, hits=(1.0,), max_rungs=1)
    same, other, every = lines[:3]
    assert same.endswith(f"{74 / 96:.3f} of the epochs, within 1 % on 100% of 2 orders")
    assert other.endswith("within 1 % on 33% of 3 orders")
    assert every.endswith(f"{74 / 96:.3f} of the epochs, within 1 % on 100% of 3 orders")
    assert lines[3].startswith("winner's place at epoch 1: mean ")
    assert len(lines) == 6


def test_main_prints_the_prior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed in (0, 1):
        name = f"ov-59-s{seed}"
        live_order.convert(_sweep(tmp_path / name, _curves()), tmp_path / f"{name}.csv")
    argv = ["--curves", str(tmp_path / "ov-59-s0.csv"), str(tmp_path / "ov-59-s1.csv")]
    assert live_order.main([*argv, "--prior"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("kept on ") for line in out) == 3 * len(live_order.BOUND_HITS)
    assert any(line.startswith("default, as it runs") for line in out)
