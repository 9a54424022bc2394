"""Figures and report.html on hand-built frames and real (tiny) Optuna studies."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from overfit_search.cli import main
from overfit_search.config import sweep_from_dict
from overfit_search.errors import ConfigError
from overfit_search.layout import HISTORY_COLUMNS, HISTORY_FILE, ResultKey, TrialAttr, param_column
from overfit_search.results import figures
from overfit_search.results.exports import histories_frame, trials_frame
from overfit_search.results.report import improvement, split_counts, write_report

EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BUNDLE_MARKER = "* plotly.js v"

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- hand-built frames ------------------------------------------------------------------------


def _trials(**extra: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "number": [0, 1, 2, 3],
            TrialAttr.STATE: ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"],
            "value": [0.5, 0.7, 0.4, None],
            TrialAttr.BEST_EPOCH: [3, 2, 4, None],
            TrialAttr.BEST_VAL_LOSS: [0.5, 0.7, 0.4, None],
            TrialAttr.GAP: [0.05, 0.2, 0.3, None],
            TrialAttr.FEASIBLE: [True, False, False, None],
            TrialAttr.EPOCHS_RUN: [5, 3, 6, 1],
            TrialAttr.STOP_RULE: ["gl", "gl", None, None],
        }
    )
    for key, values in extra.items():
        frame[key] = values
    return frame


def _histories(trials: pd.DataFrame, epochs: int = 6) -> pd.DataFrame:
    rows = []
    for number, best in zip(trials["number"], trials[TrialAttr.BEST_EPOCH], strict=True):
        if pd.isna(best):
            continue
        for epoch in range(1, epochs + 1):
            val = 0.3 + 0.05 * (epoch - best) ** 2 + 0.01 * number
            rows.append(
                {
                    "trial": number,
                    ResultKey.EPOCH: epoch,
                    ResultKey.VAL_LOSS: val,
                    ResultKey.TRAIN_EVAL_LOSS: 1 / epoch,
                }
            )
    return pd.DataFrame(rows)


def test_learning_curves_draws_the_top_trials_best_first() -> None:
    trials = _trials()
    fig = figures.learning_curves(trials, _histories(trials), top=2)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == [
        "trial 2 val_loss",
        "trial 2 train_eval_loss",
        "trial 2 best epoch",
        "trial 0 val_loss",
        "trial 0 train_eval_loss",
        "trial 0 best epoch",
    ]
    val, train, marker = fig.data[:3]
    assert val.line.dash == "solid" and train.line.dash == "dash"
    assert val.line.color == train.line.color == marker.marker.color
    assert fig.data[3].line.color != val.line.color
    assert list(marker.x) == [4]
    assert marker.y[0] == pytest.approx(val.y[3])
    assert fig.layout.title.text and fig.layout.xaxis.title.text == "epoch"


def test_learning_curves_finds_the_best_epoch_when_the_trial_has_none() -> None:
    trials = _trials(best_epoch=[None, None, None, None])
    histories = _histories(_trials())
    fig = figures.learning_curves(trials, histories, top=1)
    assert list(fig.data[2].x) == [4]  # argmin of trial 2's val_loss


def test_learning_curves_ranks_pareto_trials_by_val_loss() -> None:
    trials = _trials().rename(columns={"value": "value_val_loss"})
    trials["value_gap"] = trials[TrialAttr.GAP]
    trials["value"] = None  # trials_frame adds it for failed trials of a Pareto study
    fig = figures.learning_curves(trials, _histories(trials), top=1)
    assert fig.data[0].name == "trial 2 val_loss"


@pytest.mark.parametrize(
    "histories",
    [pd.DataFrame(columns=["trial", ResultKey.EPOCH]), pd.DataFrame()],
    ids=["header-only", "empty"],
)
def test_learning_curves_without_histories_says_so(histories: pd.DataFrame) -> None:
    fig = figures.learning_curves(_trials(), histories)
    assert len(fig.data) == 0
    assert "no per-epoch history" in fig.layout.annotations[0].text


@pytest.mark.parametrize(("max_gap", "lines"), [(0.1, 1), (None, 0)])
def test_gap_vs_val_loss_groups_by_state_and_feasibility(max_gap: float | None, lines: int) -> None:
    fig = figures.gap_vs_val_loss(_trials(), max_gap)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"COMPLETE (feasible)", "COMPLETE (infeasible)", "PRUNED (infeasible)"}
    assert by_name["COMPLETE (feasible)"].marker.symbol == "circle"
    assert by_name["COMPLETE (infeasible)"].marker.symbol == "x"
    assert list(by_name["COMPLETE (infeasible)"].x) == [0.4]
    assert list(by_name["COMPLETE (infeasible)"].y) == [0.3]
    assert len(fig.layout.shapes) == lines
    if max_gap is not None:
        assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == max_gap
    assert fig.layout.yaxis.title.text == "gap at best epoch"


def test_gap_vs_val_loss_uses_max_gap_when_feasible_is_unknown() -> None:
    trials = _trials(feasible=[None] * 4)
    names = {t.name for t in figures.gap_vs_val_loss(trials, 0.25).data}
    assert names == {"COMPLETE (feasible)", "COMPLETE (infeasible)", "PRUNED (feasible)"}
    names = {t.name for t in figures.gap_vs_val_loss(trials, None).data}
    assert names == {"COMPLETE (unknown)", "PRUNED (unknown)"}


def test_gap_vs_val_loss_joins_the_pareto_front() -> None:
    trials = _trials(pareto=[True, False, True, False])
    front = [t for t in figures.gap_vs_val_loss(trials, 0.1).data if t.name == "Pareto front"]
    assert len(front) == 1
    assert list(front[0].x) == [0.4, 0.5]


def test_gap_vs_val_loss_with_no_values_still_draws_the_line() -> None:
    trials = _trials(value=[None] * 4)
    fig = figures.gap_vs_val_loss(trials, 0.1)
    assert len(fig.data) == 0 and len(fig.layout.shapes) == 1
    assert "no trial has a value" in fig.layout.annotations[-1].text


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"state": "PRUNED", "stop_rule": "gl"}, "PRUNED: gl"),
        ({"state": "COMPLETE", "stop_rule": "gap"}, "COMPLETE: gap"),
        ({"state": "COMPLETE", "stop_rule": None}, "COMPLETE: max_epochs"),
        ({"state": "COMPLETE", "stop_rule": math.nan}, "COMPLETE: max_epochs"),
        ({"state": "FAIL", "stop_rule": None}, "FAIL"),
        ({"state": "PRUNED", "stop_rule": "scheduler"}, "PRUNED: scheduler"),
    ],
)
def test_stop_category(row: dict[str, Any], expected: str) -> None:
    assert figures.stop_category(pd.Series(row)) == expected


def test_stop_epochs_counts_trials_per_epoch_and_reason() -> None:
    trials = _trials(epochs_run=[5, 3, 6, 3])
    fig = figures.stop_epochs(trials)
    bars = {t.name: dict(zip(t.x, t.y, strict=True)) for t in fig.data}
    assert bars == {
        "COMPLETE: gl": {5: 1},
        "COMPLETE: max_epochs": {6: 1},
        "FAIL": {3: 1},
        "PRUNED: gl": {3: 1},
    }
    assert fig.layout.barmode == "stack"
    assert sum(sum(b.values()) for b in bars.values()) == len(trials)


def test_stop_epochs_escapes_rule_names() -> None:
    fig = figures.stop_epochs(_trials(stop_rule=[EVIL, None, None, None]))
    assert all(EVIL not in t.name for t in fig.data)


def _float_study(n_complete: int, directions: int = 1) -> optuna.Study:
    study = optuna.create_study(directions=["minimize"] * directions)
    dist = {"dropout": FloatDistribution(0.0, 0.7), "lr": FloatDistribution(1e-4, 1e-1, log=True)}
    for i in range(n_complete):
        params = {"dropout": 0.05 + 0.1 * i, "lr": 10 ** (-4 + 0.4 * i)}
        value = 0.3 + params["dropout"] ** 2
        values = [value, 0.1 * i][:directions]
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dist, values=values))
    return study


@pytest.mark.parametrize("directions", [1, 2])
def test_param_importances_is_a_bar_per_parameter(directions: int) -> None:
    fig = figures.param_importances(_float_study(6, directions))
    assert fig is not None
    assert set(fig.data[0].y) == {"dropout", "lr"}
    assert sum(fig.data[0].x) == pytest.approx(1.0)
    assert fig.layout.title.text


@pytest.mark.parametrize("n_complete", [0, 1])
def test_param_importances_needs_two_complete_trials(n_complete: int) -> None:
    assert figures.param_importances(_float_study(n_complete)) is None


def test_param_importances_without_parameters_is_none() -> None:
    study = optuna.create_study()
    for v in (0.1, 0.2, 0.3):
        study.add_trial(optuna.trial.create_trial(value=v))
    assert figures.param_importances(study) is None


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000


@pytest.mark.parametrize("empty", [False, True], ids=["data", "empty"])
def test_save_pngs_writes_valid_pngs(tmp_path: Path, empty: bool) -> None:
    trials = _trials()
    histories = _histories(trials)
    if empty:
        trials, histories = pd.DataFrame(), pd.DataFrame()
    paths = figures.save_pngs(trials, histories, 0.1, tmp_path / "figures")
    assert [p.name for p in paths] == ["learning_curves.png", "gap_vs_val_loss.png"]
    for path in paths:
        _assert_png(path)


@pytest.mark.parametrize(
    ("before", "after", "delta", "pct"),
    [
        (0.8, 0.6, -0.2, -25.0),
        (0.5, 0.5, 0.0, 0.0),
        (-0.02, 0.01, 0.03, 150.0),
        (0.0, 0.1, 0.1, None),
    ],
)
def test_improvement(before: float, after: float, delta: float, pct: float | None) -> None:
    got_delta, got_pct = improvement(before, after)
    assert got_delta == pytest.approx(delta)
    assert got_pct == (None if pct is None else pytest.approx(pct))


def test_split_counts_per_class_with_totals() -> None:
    split = pd.DataFrame(
        {
            "file": list("abcde"),
            "label": ["cat", "cat", "dog", "dog", "dog"],
            "subset": ["train", "validation", "train", "train", "validation"],
            "group": [""] * 5,
        }
    )
    table = split_counts(split).set_index("class")
    assert table.loc["dog", "train"] == 2
    assert table.loc["total"].to_dict() == {"train": 3, "validation": 2, "total": 5}


# --- real results directories -----------------------------------------------------------------

# number, state, best_val_loss, gap, best_epoch, epochs_run, stop_rule, stop_reason, baseline
TRIALS = [
    (0, "COMPLETE", 0.80, 0.30, 6, 6, None, None, True),
    (1, "COMPLETE", 0.50, 0.05, 3, 5, "gl", "GL 6.1 > 5 at epoch 5", False),
    (2, "PRUNED", 0.90, 0.20, 2, 3, "gl", EVIL, False),
    (3, "COMPLETE", 0.45, 0.25, 4, 6, None, None, False),
    (4, "FAIL", None, None, None, 2, None, "diverged: NaN loss", False),
    (5, "COMPLETE", 0.60, 0.08, 5, 6, None, None, False),
]
MAX_GAP = 0.1
MAX_EPOCHS = 6


def _write_sweep(out: Path, mode: str) -> None:
    doc = {
        "name": "tiny",
        "data": {"source": "digits"},
        "train": {"max_epochs": MAX_EPOCHS},
        "objective": {"mode": mode, "max_gap": MAX_GAP},
    }
    sweep = sweep_from_dict(doc).model_dump(mode="json", exclude_none=True)
    header = "# resolved sweep as run by overfit-search 0.1.0\n"
    (out / "sweep.yaml").write_text(header + yaml.safe_dump(sweep, sort_keys=False))


def _history(best: int, run: int, val_at_best: float, gap: float) -> pd.DataFrame:
    epochs = list(range(1, run + 1))
    val = [val_at_best + 0.04 * (e - best) ** 2 for e in epochs]
    train = [v - gap - 0.01 * (e - best) for v, e in zip(val, epochs, strict=True)]
    frame = pd.DataFrame(
        {ResultKey.EPOCH: epochs, ResultKey.VAL_LOSS: val, ResultKey.TRAIN_EVAL_LOSS: train}
    )
    frame[ResultKey.GAP] = frame[ResultKey.VAL_LOSS] - frame[ResultKey.TRAIN_EVAL_LOSS]
    for column in HISTORY_COLUMNS[4:]:
        frame[column] = 0.5
    return frame[list(HISTORY_COLUMNS)]


def _add_trial(study: optuna.Study, spec: tuple[Any, ...], out: Path, mode: str) -> None:
    number, state, val, gap, best, run, rule, reason, baseline = spec
    dist = {"dropout": FloatDistribution(0.0, 0.7), "lr": FloatDistribution(1e-4, 1e-1, log=True)}
    params = {"dropout": 0.1 * number, "lr": 10 ** (-3.5 + 0.4 * number)}
    attrs: dict[str, Any] = {
        TrialAttr.EPOCHS_RUN: run,
        TrialAttr.STOP_RULE: rule,
        TrialAttr.BASELINE: baseline,
    }
    system: dict[str, Any] = {}
    values: list[float] | None = None
    if val is not None:
        attrs[TrialAttr.BEST_EPOCH] = best
        attrs[TrialAttr.BEST_VAL_LOSS] = val
        attrs[TrialAttr.GAP] = gap
        attrs[TrialAttr.FEASIBLE] = gap <= MAX_GAP
        attrs[TrialAttr.STOPPED_EARLY] = run < MAX_EPOCHS
        attrs[TrialAttr.STOP_REASON] = reason
        system["constraints:gap"] = gap - MAX_GAP
        values = [val, gap] if mode == "pareto" else [val]
        _history(best, run, val, gap).to_csv(_trial_dir(out, number) / HISTORY_FILE, index=False)
    else:
        attrs[TrialAttr.FAIL_REASON] = reason
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState[state],
            params=params,
            distributions=dist,
            values=values,
            user_attrs=attrs,
            system_attrs=system,
        )
    )


def _trial_dir(out: Path, number: int) -> Path:
    folder = out / "trials" / str(number)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _results(
    out: Path, mode: str = "constrained", specs: list[tuple[Any, ...]] | None = None
) -> optuna.Study:
    """A results directory as ``run`` leaves it, from a real sqlite study."""
    out.mkdir(parents=True, exist_ok=True)
    _write_sweep(out, mode)
    study = optuna.create_study(
        study_name="tiny",
        storage=f"sqlite:///{out / 'study.db'}",
        directions=["minimize"] * (2 if mode == "pareto" else 1),
    )
    study.set_user_attr("max_epochs", MAX_EPOCHS)
    for spec in TRIALS if specs is None else specs:
        _add_trial(study, spec, out, mode)
    trials_frame(study, out / "trials").to_csv(out / "trials.csv", index=False)
    histories_frame(out / "trials").to_csv(out / "histories.csv", index=False)
    return study


def _page(out: Path, study: optuna.Study | None = None) -> str:
    path = write_report(out, study)
    assert path == out / "report.html"
    return path.read_text(encoding="utf-8")


def _chosen_row(page: str) -> str:
    start = page.index('<tr class="chosen">')
    return page[start : page.index("</tr>", start)]


def _assert_offline_page(page: str) -> None:
    assert page.count(BUNDLE_MARKER) == 1
    assert '<script src="http' not in page
    assert "<script>alert(1)" not in page


def test_report_on_a_constrained_sweep(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    _results(out)
    page = _page(out)  # opens out/study.db itself
    _assert_offline_page(page)
    assert page.count('id="fig-') == 4  # curves, gap, stops, importance
    assert 'id="trials-table"' in page
    assert "<td>1</td>" in _chosen_row(page)  # trial 1: the best feasible one, not trial 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the stop reason, escaped
    assert "constrained: minimize val_loss with gap ≤ 0.1" in page
    assert "6 COMPLETE" not in page and "4 COMPLETE, 1 PRUNED, 1 FAIL" in page
    assert "28 of 36" in page  # epochs run vs trials × max_epochs
    assert 'id="baseline"' in page
    assert "0.8 → 0.5 (-0.3, -37.5%)" in page
    for name in ("learning_curves.png", "gap_vs_val_loss.png"):
        _assert_png(out / "figures" / name)
        assert f'href="figures/{name}"' in page


def test_report_without_a_baseline_has_no_baseline_section(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    specs = [(*spec[:8], False) for spec in TRIALS]
    study = _results(out, specs=specs)
    page = _page(out, study)
    _assert_offline_page(page)
    assert 'id="baseline"' not in page


def test_report_notes_a_baseline_that_did_not_finish(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    specs = [(*spec[:8], spec[0] == 4) for spec in TRIALS]  # trial 4 failed
    page = _page(out, _results(out, specs=specs))
    assert 'id="baseline"' not in page
    assert "The baseline (trial 4) did not finish: FAIL" in page


CHANCE_NOTE = (
    "2 of 5 finished trials never beat chance (best validation accuracy at most 0.375): "
    "trials 2, 3. Their learning rates: 0.002–0.005; the other trials: 0.00032–0.032."
)


def _four_classes(out: Path) -> None:
    labels = ["a", "b", "c", "d"] * 2  # 4 classes: chance 0.25, the bar 1.5 / 4
    pd.DataFrame({"file": list("abcdefgh"), "label": labels, "subset": ["train"] * 8}).to_csv(
        out / "split.csv", index=False
    )


def _stuck_at_chance(out: Path) -> None:
    """Trials 2, 3 (finished) and 4 (FAIL) of TRIALS never beat chance."""
    histories = pd.read_csv(out / "histories.csv")
    histories.loc[histories.trial.isin([2, 3, 4]), "val_accuracy"] = 0.3
    histories.to_csv(out / "histories.csv", index=False)
    trials = pd.read_csv(out / "trials.csv").rename(
        columns={param_column("lr"): param_column("learning_rate")}
    )
    trials.to_csv(out / "trials.csv", index=False)


def test_report_names_trials_stuck_at_chance_and_their_learning_rates(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    _results(out)
    page = _page(out)
    assert "never beat chance" not in page  # no split.csv: the classes are unknown
    _four_classes(out)
    assert "never beat chance" not in _page(out)  # every trial at 0.5
    _stuck_at_chance(out)
    page = _page(out)
    assert CHANCE_NOTE in page  # trial 4 FAILed: not counted
    # The cause follows the evidence: they fit their training images (0.5 > 0.375) ...
    assert "nothing carries over to validation" in page
    assert "train.head_epochs" not in page  # ... so the learning rate is not blamed
    histories = pd.read_csv(out / "histories.csv")
    histories.loc[histories.trial.isin([2, 3]), "train_eval_accuracy"] = 0.25
    histories.to_csv(out / "histories.csv", index=False)
    page = _page(out)
    assert "do not fit even their own training images" in page
    assert "overfit-search check-model" in page
    assert "linear probe" not in page  # no setup check ran
    # The setup check's failed probe (check_model.json) is evidence too.
    check = {
        "rows": [
            {"convention": "tf", "val_accuracy": 0.27},
            {"convention": "unit", "val_accuracy": 0.3},
        ],
        "chosen": "tf",
        "chance": 0.25,
        "passed": False,
    }
    (out / "check_model.json").write_text(json.dumps(check))
    page = _page(out)
    assert "features reached validation accuracy 0.30" in page  # the page escapes the ' before it
    assert "against chance 0.25 (preprocess tf)" in page


def test_trials_cut_after_an_epoch_or_two_are_not_called_stuck_at_chance(tmp_path: Path) -> None:
    """A budget rule stops slow starters after epoch 1: at chance then, but not stuck."""
    out = tmp_path / "tiny"
    _results(out)
    _four_classes(out)
    _stuck_at_chance(out)
    trials = pd.read_csv(out / "trials.csv")
    trials.loc[trials.number == 2, TrialAttr.EPOCHS_RUN] = 1  # cut at the first rung
    trials.to_csv(out / "trials.csv", index=False)
    page = _page(out)
    assert "1 of 4 finished trials never beat chance" in page
    assert "trial 3." in page and "trials 2, 3" not in page
    assert "(1 stopped before epoch 3 by the budget rule are not counted.)" in page
    trials.loc[trials.number == 3, TrialAttr.EPOCHS_RUN] = 2
    trials.to_csv(out / "trials.csv", index=False)
    assert "never beat chance" not in _page(out)


@pytest.mark.parametrize("stuck", [False, True])
def test_run_prints_the_chance_warning_in_its_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stuck: bool
) -> None:
    from overfit_search.orchestration import runner

    out = tmp_path / "tiny"
    study = _results(out)
    _four_classes(out)
    if stuck:
        _stuck_at_chance(out)
    done = runner.SweepResult(study=study, best=None, output=out)
    monkeypatch.setattr(runner, "run_sweep", lambda *args, **kwargs: done)
    assert main(["run", str(out / "sweep.yaml"), "--no-progress"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert (f"Warning: {CHANCE_NOTE}" in printed) is stuck
    assert ("never beat chance" in printed) is stuck


def test_report_on_a_pareto_sweep(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    study = _results(out, mode="pareto")
    trials = pd.read_csv(out / "trials.csv")
    assert {"value_val_loss", "value_gap", "pareto"} <= set(trials.columns)
    page = _page(out, study)
    _assert_offline_page(page)
    assert "Pareto set" in page
    assert "Pareto front" in page
    assert "Sorted by value_val_loss" in page
    assert '<tr class="chosen">' in page


def test_report_with_no_finished_trial(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    _results(out, specs=[])
    page = _page(out)
    _assert_offline_page(page)
    assert "No trial has finished yet" in page
    assert "No trials in this study" in page
    assert "Parameter importance needs at least 2 COMPLETE trials" in page
    for name in ("learning_curves.png", "gap_vs_val_loss.png"):
        _assert_png(out / "figures" / name)


def test_report_when_every_trial_failed(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    specs = [(n, "FAIL", None, None, None, 1, None, f"boom {n}", False) for n in range(3)]
    page = _page(out, _results(out, specs=specs))
    _assert_offline_page(page)
    assert "All 3 trials failed" in page
    assert "none: no trial finished COMPLETE" in page
    assert "boom 2" in page
    assert '<tr class="chosen">' not in page


def test_report_without_histories(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    study = _results(out)
    (out / "histories.csv").unlink()
    for path in (out / "trials").glob("*/history.csv"):
        path.unlink()
    page = _page(out, study)
    _assert_offline_page(page)
    assert "no per-epoch history" in page


def test_report_data_section_escapes_what_the_user_supplied(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    study = _results(out)
    pd.DataFrame(
        {
            "file": ["cat/a.jpg", "dog/b.jpg", "dog/c.jpg", EVIL],
            "label": ["cat", "dog", "dog", EVIL],
            "subset": ["train", "train", "validation", "validation"],
            "group": ["", "", "", ""],
        }
    ).to_csv(out / "split.csv", index=False)
    pd.DataFrame({"file": ["bad.jpg"], "reason": [EVIL]}).to_csv(out / "skipped.csv", index=False)
    check = {
        "classes": {"cat": {"train": 1, "validation": 0}, EVIL: {"train": 0, "validation": 1}},
        "unreadable": [{"path": f"x/{EVIL}.jpg", "reason": EVIL}],
        "duplicates_across_split": 1,
        "duplicate_examples": [["dog/b.jpg", f"{EVIL}.jpg"]],
        "warnings": [f"leak: {EVIL}"],
    }
    (out / "check_data.json").write_text(json.dumps(check))
    page = _page(out, study)
    _assert_offline_page(page)
    assert "Split (4 images)" in page
    assert "Skipped files (1 unreadable)" in page
    assert "Near-duplicates across the split (1)" in page
    assert "leak: &lt;script&gt;" in page
    assert "x/&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page


def test_report_says_when_check_data_is_not_json(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    study = _results(out)
    (out / "check_data.json").write_text("{not json")
    assert "could not read check_data.json" in _page(out, study)


def test_report_without_sweep_yaml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no sweep\.yaml here"):
        write_report(tmp_path)


def test_report_without_a_study_is_an_error(tmp_path: Path) -> None:
    _write_sweep(tmp_path, "constrained")
    with pytest.raises(ConfigError, match=r"no study\.db here"):
        write_report(tmp_path)


def test_report_opens_the_only_study_under_another_name(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    _results(out)
    storage = f"sqlite:///{out / 'study.db'}"
    optuna.copy_study(
        from_study_name="tiny", from_storage=storage, to_storage=storage, to_study_name="renamed"
    )
    optuna.delete_study(study_name="tiny", storage=storage)
    assert "Sweep tiny" in _page(out)


def test_importing_the_report_loads_no_heavy_modules() -> None:
    code = (
        "import sys, overfit_search.results.report\n"
        "heavy = {'tensorflow', 'keras', 'ray', 'matplotlib'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
