"""Objective modes, ASHA beside the overfit rule, budgets and the baseline: real sweeps on tiny
digits (Ray Tune + Optuna + Keras)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from overfit_search.cli import main
from overfit_search.config import load_sweep
from overfit_search.scoring import objective_values
from tests.conftest import digits_sweep

# one Ray for consecutive sweep tests (tests/conftest.py): none changes the environment
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]


def _doc(name: str, **over: dict[str, Any]) -> dict[str, Any]:
    doc = digits_sweep(
        name,
        search={"learning_rate": {"low": 1e-4, "high": 5e-2, "log": True}},
        pruning={"rule": {"name": "gl", "alpha": 0.5}, "grace_epochs": 1},
        study={"seed": 2},
    )
    for section, values in over.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc


def _run(tmp_path: Path, doc: dict[str, Any]) -> tuple[Path, optuna.Study, pd.DataFrame]:
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--no-progress"]) == 0
    study = optuna.load_study(study_name=doc["name"], storage=f"sqlite:///{out / 'study.db'}")
    return out, study, pd.read_csv(out / "trials.csv")


def test_pareto_with_nsga2_still_stops_overfitting_trials(tmp_path: Path) -> None:
    # 10 epochs on 10 images per class: the trials must overfit for the rule to have work (at 6
    # epochs every curve of this seed can still be falling)
    doc = _doc(
        "pareto",
        objective={"mode": "pareto"},
        study={"sampler": "nsga2"},
        train={"max_epochs": 10},
        search={"learning_rate": {"low": 3e-3, "high": 5e-2, "log": True}},
    )
    out, study, table = _run(tmp_path, doc)
    assert len(study.directions) == 2
    done = study.get_trials(states=[TrialState.COMPLETE, TrialState.PRUNED])
    for t in done:  # values are (val_loss, gap) at the best epoch
        assert t.values == pytest.approx([t.user_attrs["best_val_loss"], t.user_attrs["gap"]])
        assert len(t.user_attrs["val_loss_history"]) == t.user_attrs["epochs_run"]
    # Optuna keeps no intermediate values for multi-objective studies: the rule runs through Ray
    assert any(t.user_attrs["stopped_early"] for t in done)
    # Optuna's front leaves out trials violating the gap constraint; with none feasible, the
    # front of all COMPLETE trials is the one shown and chosen from
    complete = study.get_trials(states=[TrialState.COMPLETE])
    front_trials = list(study.best_trials) or [
        t
        for t in complete
        if not any(
            o.values[0] <= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
            for o in complete
        )
    ]
    front = {t.number for t in front_trials}
    assert front
    assert set(table.number[table.pareto]) == front
    best = load_sweep(out / "best.yaml")
    within = [t for t in front_trials if t.user_attrs["gap"] <= 0.2]
    pool = within or front_trials
    chosen = min(pool, key=lambda t: t.user_attrs["best_val_loss"])
    assert best.train.max_epochs == chosen.user_attrs["best_epoch"]
    assert best.search.dropout == pytest.approx(chosen.params["dropout"])


def test_penalized_values_add_the_gap_excess(tmp_path: Path) -> None:
    doc = _doc("penalized", objective={"mode": "penalized", "max_gap": 0.05, "penalty_weight": 2})
    _, study, _ = _run(tmp_path, doc)
    done = study.get_trials(states=[TrialState.COMPLETE, TrialState.PRUNED])
    assert done
    for t in done:
        a = t.user_attrs
        expected = objective_values("penalized", a["best_val_loss"], a["gap"], 0.05, 2.0)
        assert t.values == pytest.approx(expected)
    assert any(t.user_attrs["gap"] > 0.05 for t in done)  # the penalty bit somewhere
    assert any(t.value > t.user_attrs["best_val_loss"] for t in done)


def test_asha_beside_the_overfit_rule_records_who_stopped_each_trial(tmp_path: Path) -> None:
    doc = _doc(
        "asha",
        # a lenient overfit rule, so the budget pruner does the stopping here
        pruning={
            "rule": {"name": "gl", "alpha": 500},
            "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        },
        study={"trials": 6, "n_startup_trials": 6},
    )
    _, _, table = _run(tmp_path, doc)
    by_asha = table[table.stop_rule == "scheduler"]
    assert len(by_asha) >= 1, table[["number", "state", "epochs_run", "stop_rule"]]
    assert (by_asha.state == "PRUNED").all()
    assert (by_asha.epochs_run < 6).all()
    assert by_asha.stop_reason.str.contains("scheduler").all()
    others = table[table.stop_rule != "scheduler"]
    assert (others.state.isin(["COMPLETE", "PRUNED"])).all()


def test_epoch_budget_and_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = {"dropout": 0.1, "l2": 1e-4, "learning_rate": 3e-3, "frozen_fraction": 0.5}
    doc = _doc(
        "budget",
        search={"baseline": baseline},
        pruning={"rule": {"name": "none"}},
        study={"trials": 8, "max_total_epochs": 14},
    )
    _, study, table = _run(tmp_path, doc)
    first = study.trials[0]
    assert first.user_attrs["baseline"] is True
    assert first.params == pytest.approx(baseline)
    assert bool(table.baseline.iloc[0]) and not table.baseline.iloc[1:].any()
    # the study stops once 14 epochs were run in all, not the 8 x 6 = 48 a full search takes;
    # the trials it cut are PRUNED at their best epoch so far, not lost
    total = table.epochs_run.fillna(0).sum()
    assert 14 <= total < 20
    cut = table[table.stop_rule == "budget"]
    assert len(cut) >= 1
    assert (cut.state == "PRUNED").all() and cut.best_val_loss.notna().all()
    assert cut.stop_reason.str.contains("max_total_epochs=14").all()
    printed = capsys.readouterr().out
    assert "baseline (trial 0)" in printed.lower()
    assert not any(math.isnan(v) for v in table.best_val_loss.dropna())
