"""The selection benchmark's replay on small synthetic banks (no training)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.conftest import load_bench

bench = load_bench("selection")
Run = bench.Run


def _run(
    key: str,
    val: list[float],
    gap: float = 0.1,
    test: list[float] | None = None,
    reseed: list[float] | None = None,
) -> object:
    """A run whose train_eval loss sits ``gap`` under val_loss; test defaults to val_loss."""
    test = test or list(val)
    return Run(
        key,
        tuple(val),
        tuple(v - gap for v in val),
        tuple(test),
        tuple(0.9 for _ in val),
        tuple(reseed or ()),
    )


def test_run_scores_at_its_best_epoch() -> None:
    run = _run("a", [0.9, 0.5, 0.4, 0.6, 0.8], gap=0.2, test=[1.0, 0.7, 0.45, 0.5, 0.9])
    assert run.best == 2
    assert run.val == pytest.approx(0.4)
    assert run.gap == pytest.approx(0.2)
    assert run.test == pytest.approx(0.45)  # the kept weights, not the lowest test epoch
    assert run.smoothed(1) == pytest.approx((0.5 + 0.4 + 0.6) / 3)
    assert _run("b", [0.3, 0.5]).smoothed(1) == pytest.approx(0.4)  # clipped at epoch 1


def test_constrained_takes_the_lowest_feasible_else_the_smallest_gap() -> None:
    runs = [_run("0", [0.2], gap=0.3), _run("1", [0.3], gap=0.05), _run("2", [0.25], gap=0.08)]
    assert bench.constrained(0.10)(runs) == 2
    assert bench.constrained(0.01)(runs) == 1  # none feasible: the smallest gap
    assert bench.constrained(2.0, relative=True)(runs) == 0  # 0.3 <= 2 * 0.2


def test_pareto_front_and_knee() -> None:
    runs = [
        _run("0", [0.10], gap=1.0),
        _run("1", [0.12], gap=0.2),  # the knee: almost the lowest val, a fifth of the gap
        _run("2", [0.50], gap=0.0),
        _run("3", [0.60], gap=0.5),  # dominated
    ]
    assert bench.pareto_front(runs) == [0, 1, 2]
    assert bench.pareto_knee(runs) == 1
    assert bench.pareto_knee(runs[:1]) == 0


def test_smoothed_rule_passes_over_a_lucky_dip() -> None:
    lucky = _run("lucky", [0.8, 0.2, 0.8], test=[0.8, 0.7, 0.8])  # one noisy low epoch
    steady = _run("steady", [0.3, 0.25, 0.3], test=[0.3, 0.28, 0.3])
    rules = bench.rules()
    assert rules[bench.BASELINE]([lucky, steady]) == 0
    assert rules["smoothed best±1"]([lucky, steady]) == 1


def test_replay_ratio_better_and_optimism() -> None:
    lucky = _run("lucky", [0.8, 0.2, 0.8], test=[0.8, 0.7, 0.8])
    steady = _run("steady", [0.3, 0.25, 0.3], test=[0.3, 0.28, 0.3])
    out = bench.replay([lucky, steady], sweeps=5, size=2, seed=0)
    base, smooth = out[bench.BASELINE], out["smoothed best±1"]
    assert base.sweeps == 5 and base.ratio == pytest.approx(1.0) and base.better == 0.0
    assert smooth.ratio == pytest.approx(0.28 / 0.7)
    assert smooth.better == 1.0 and smooth.worse == 0.0
    assert base.optimism[0] == pytest.approx(0.2 - 0.7)
    assert out[bench.ORACLE].test[0] == pytest.approx(0.28)
    assert not any(name.endswith("(reseeded pool)") for name in out)  # no second seeds


def test_reseed_rule_is_replayed_on_the_reseeded_pool() -> None:
    runs = [
        _run("0", [0.2], reseed=[0.6], test=[0.6]),  # lucky seed: the mean sees through it
        _run("1", [0.3], reseed=[0.3], test=[0.3]),
        _run("2", [0.5], reseed=[0.5], test=[0.5]),
        _run("3", [0.9]),
    ]
    out = bench.replay(runs, sweeps=4, size=3, seed=1)
    mean = out["reseed mean k=2 (reseeded pool)"]
    assert mean.sweeps == 4
    assert mean.test == [pytest.approx(0.3)] * 4
    assert mean.base == [pytest.approx(0.6)] * 4
    assert mean.extra_epochs[0] == pytest.approx(1.0)  # one more epoch per epoch


def _write_bank(path: Path, runs: list[object]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["config", "epoch", "val_loss", "train_eval_loss", "test_loss", "test_accuracy"]
        )
        for run in runs:
            for e in range(run.epochs):
                writer.writerow(
                    [
                        run.key,
                        e + 1,
                        run.val_loss[e],
                        run.train_eval_loss[e],
                        run.test_loss[e],
                        run.test_accuracy[e],
                    ]
                )


def test_load_bank_joins_the_second_seed(tmp_path: Path) -> None:
    runs = [_run(str(i), [0.9 - 0.1 * i, 0.5, 0.7]) for i in range(3)]
    _write_bank(tmp_path / "s.csv", runs)
    _write_bank(tmp_path / "s-seed2.csv", [_run("1", [0.4, 0.35, 0.6])])
    loaded = bench.load_bank(tmp_path / "s.csv")
    assert [r.key for r in loaded] == ["0", "1", "2"]
    assert loaded[0].val_loss == runs[0].val_loss
    assert loaded[1].reseed_val_loss == (0.4, 0.35, 0.6)
    assert loaded[0].reseed_val_loss == ()
    assert list(bench.banks(tmp_path)) == ["s"]


def test_cli_quick_prints_the_default_summary_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for setup, shift in (("a", 0.0), ("b", 0.1), ("c", 0.2)):
        runs = [
            _run(str(i), [0.9, 0.3 + 0.02 * i + shift, 0.35 + shift], gap=0.03 * i)
            for i in range(8)
        ]
        _write_bank(tmp_path / f"{setup}.csv", runs)
    argv = ["--quick", "--banks", str(tmp_path), "--choosing", "a", "--sweeps", "20", "--size", "5"]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"default \d+\.\d{3} better=\d\.\d{3}", lines[-1]), lines[-1]
    assert lines[-2].startswith("previous default (constrained gap<=0.10) ")
    assert lines[-3].startswith("chosen on a: ")
    assert any(line.startswith("## held out: b, c") for line in lines)


@pytest.mark.slow
def test_quick_on_the_committed_banks(capsys: pytest.CaptureFixture[str]) -> None:
    if not bench.banks(bench.BANKS):
        pytest.skip("no committed selection banks")
    assert bench.main(["--quick"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"default \d+\.\d{3} better=\d\.\d{3}", last), last
