"""The real thing: Ray Tune + Optuna + Keras on tiny digits, end to end through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from overfit_search.cli import main
from overfit_search.config import load_sweep
from tests.conftest import digits_sweep

# one Ray for consecutive sweep tests (tests/conftest.py): none changes the environment
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]


def _sweep(tmp_path: Path) -> Path:
    doc = digits_sweep(
        "e2e",
        train={"max_epochs": 8},
        # A hair-trigger rule and a low comparison bar so this tiny study exercises stopping.
        pruning={"rule": {"name": "gl", "alpha": 0.5}, "grace_epochs": 1, "compare_min_trials": 1},
    )
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_real_sweep_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sweep_path = _sweep(tmp_path)
    out = tmp_path / "out"
    rc = main(["run", str(sweep_path), "--output", str(out), "--no-progress"])
    assert rc == 0

    for name in ("study.db", "sweep.yaml", "split.csv", "trials.csv", "histories.csv", "best.yaml"):
        assert (out / name).is_file(), name
    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert len(trials) == 5
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert finished, [t.user_attrs for t in trials]
    histories = pd.read_csv(out / "histories.csv")
    for t in finished:
        a = t.user_attrs
        hist = histories[histories.trial == t.number].sort_values("epoch")
        assert a["epochs_run"] == len(hist) <= 8
        best_row = hist.loc[hist.val_loss.idxmin()]
        assert a["best_epoch"] == int(best_row.epoch)
        assert a["best_val_loss"] == pytest.approx(best_row.val_loss)
        assert a["gap"] == pytest.approx(best_row.val_loss - best_row.train_eval_loss)
        assert t.value == pytest.approx(a["best_val_loss"])  # scored at the best epoch
        assert a["feasible"] == (a["gap"] <= 0.2)
        assert t.constraints == {"gap": pytest.approx(a["gap"] - 0.2)}
        assert sorted(t.intermediate_values) == list(hist.epoch)
        if a["stopped_early"]:
            assert a["stop_rule"] == "gl" and "GL" in a["stop_reason"]
            assert a["epochs_run"] < 8
        # clean metrics differ from Keras's: keras_val_loss adds the L2 penalty
        assert (hist.keras_val_loss >= hist.val_loss - 1e-9).all()
        assert (out / "trials" / str(t.number) / "trial.log").is_file()
    assert any(t.user_attrs["stopped_early"] for t in finished), "the GL rule never fired"
    states = {t.state for t in trials}
    assert TrialState.RUNNING not in states

    table = pd.read_csv(out / "trials.csv")
    assert list(table.number) == [t.number for t in trials]
    assert {"state", "value", "best_epoch", "gap", "epochs_run", "stop_rule", "stop_reason"} <= set(
        table.columns
    )

    split = pd.read_csv(out / "split.csv")
    # digits with train_per_class: only the images drawn for training and validation are listed
    assert set(split.subset) == {"train", "validation"}
    assert (split.subset == "train").sum() == 30

    best = load_sweep(out / "best.yaml")  # a complete, valid sweep file
    chosen = study.best_trial
    assert best.train.max_epochs == chosen.user_attrs["best_epoch"]
    assert best.study.trials == 1
    for knob, value in chosen.params.items():
        assert getattr(best.search, knob) == pytest.approx(value)

    weights = list((out / "trials").glob("*/best.weights.h5"))
    assert 1 <= len(weights) <= 3

    # The review: report.html, its PNGs, the data check, the dashboard's figures and notes.
    assert "Learning curves" in (out / "report.html").read_text()
    assert (out / "figures" / "learning_curves.png").stat().st_size > 10_000
    check = json.loads((out / "check_data.json").read_text())
    assert check["validation_images"] == (split.subset == "validation").sum()
    system = study._storage.get_study_system_attrs(study._study_id)
    assert any(k.startswith("dashboard:plot_data:ofs-learning-curves") for k in system)
    assert any("val_loss:" in str(v) for k, v in system.items() if "note" in k)

    # A second run into the same output refuses to mix studies.
    assert main(["run", str(sweep_path), "--output", str(out), "--no-progress"]) == 2
    # --resume with the target already reached runs nothing and keeps every trial.
    assert main(["run", str(sweep_path), "--output", str(out), "--no-progress", "--resume"]) == 0
    again = optuna.load_study(study_name="e2e", storage=f"sqlite:///{out / 'study.db'}")
    assert [(t.number, t.state, t.value) for t in again.get_trials()] == [
        (t.number, t.state, t.value) for t in trials
    ]
    assert not any(math.isnan(v) for v in table.best_val_loss.dropna())
