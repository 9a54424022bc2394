"""retrain / export / confirm / best: unit tests of the bookkeeping, and the real chain."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from overfit_search import reuse
from overfit_search.cli import main
from overfit_search.config import load_sweep
from overfit_search.errors import ConfigError
from tests.conftest import tiny_sweep


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p, "no sweep.yaml here"),
        (lambda p: (p / "sweep.yaml").write_text(yaml.safe_dump(tiny_sweep())) and p, "no study"),
    ],
)
def test_resolve_rejects_a_folder_that_is_not_results(
    tmp_path: Path, make: Any, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        reuse.resolve(make(tmp_path))


FIXED = {
    "dropout": 0.2,
    "l2": 0.0,
    "learning_rate": 0.01,
    "augmentation": 0.0,
    "frozen_fraction": 0.5,
}


def test_resolve_rejects_a_sweep_that_still_has_ranges(write_sweep: Any) -> None:
    path = write_sweep(tiny_sweep(search={**FIXED, "dropout": {"low": 0.1, "high": 0.5}}))
    with pytest.raises(ConfigError, match=r"search\.dropout is still a range"):
        reuse.resolve(path)


def test_resolve_takes_a_fixed_sweep_with_its_seed_and_epochs(write_sweep: Any) -> None:
    path = write_sweep(
        tiny_sweep(
            train={"max_epochs": 7, "seed": 42},
            search=FIXED,
        )
    )
    source = reuse.resolve(path)
    assert (source.epochs, source.seed) == (7, 42)
    assert source.params["dropout"] == 0.2
    assert source.reference == {}


def test_resolve_rejects_a_sweep_whose_train_settings_are_still_ranges(write_sweep: Any) -> None:
    path = write_sweep(tiny_sweep(train={"head_epochs": {"low": 0, "high": 2}}, search=FIXED))
    with pytest.raises(ConfigError, match=r"train\.head_epochs is still a range"):
        reuse.resolve(path)


def test_resolve_refuses_trial_numbers_without_a_results_dir(write_sweep: Any) -> None:
    with pytest.raises(ConfigError, match="need a results directory"):
        reuse.resolve(write_sweep(tiny_sweep()), number=3)


def test_summarize_confirm_means_and_sds_over_the_trial_and_its_reruns() -> None:
    runs = pd.DataFrame(
        [
            {"trial": 4, "rerun": False, "val_loss": 0.30, "gap": 0.10},
            {"trial": 4, "rerun": True, "val_loss": 0.40, "gap": 0.20},
            {"trial": 4, "rerun": True, "val_loss": 0.50, "gap": 0.30},
            {"trial": 9, "rerun": False, "val_loss": 0.32, "gap": 0.05},
            {"trial": 9, "rerun": True, "val_loss": 0.34, "gap": 0.07},
        ]
    )
    table = reuse.summarize_confirm(runs)
    assert list(table.trial) == [9, 4]  # trial 9 is better on average though 4 won the study
    four = table.set_index("trial").loc[4]
    assert four.trial_val_loss == pytest.approx(0.30)
    assert four.mean_val_loss == pytest.approx(0.40)
    assert four.sd_val_loss == pytest.approx(0.10)
    assert four.mean_gap == pytest.approx(0.20)
    assert four.runs == 3


def test_confirmed_choice_needs_confirm_csv(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="overfit-search confirm"):
        reuse.confirmed_choice(tmp_path)
    pd.DataFrame({"trial": [3, 7], "mean_val_loss": [0.5, 0.4]}).to_csv(
        tmp_path / reuse.CONFIRM_FILE, index=False
    )
    assert reuse.confirmed_choice(tmp_path) == 7


@pytest.mark.parametrize(
    ("name", "exists", "match"),
    [("model.h5", False, "must end in .keras"), ("model.keras", True, "pass --force")],
)
def test_retrain_output_is_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, exists: bool, match: str
) -> None:
    target = tmp_path / name
    if exists:
        target.write_text("x")
    rc = main(["retrain", str(tmp_path), "--output", str(target)])
    assert rc == 2
    assert match in capsys.readouterr().err


# --- the real chain: sweep → best → retrain → load and predict → export → confirm -----------


@pytest.fixture(scope="module")
def finished(finished_digits_sweep: Path) -> Path:
    """The shared finished sweep (tests/conftest.py: reuse_sweep_doc): a held-out test split,
    head_epochs and finetune_lr_factor searched, three trials of up to five epochs."""
    return finished_digits_sweep


def _validation(out: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from overfit_search.data import load_data

    data = load_data(load_sweep(out / "sweep.yaml").data)
    return np.asarray(data.x_val), data.y_val, data.class_names


def _cross_entropy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    p = np.asarray(model.predict(x, verbose=0), np.float64)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))


@pytest.mark.slow
def test_best_prints_a_valid_sweep_that_repeats_the_winner(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["best", str(finished)]) == 0
    path = tmp_path / "best.yaml"
    path.write_text(capsys.readouterr().out)
    best = load_sweep(path)
    table = pd.read_csv(finished / "trials.csv")
    winner = table.loc[table.value.idxmin()]
    assert best.train.max_epochs == winner.best_epoch
    assert best.train.seed is not None
    assert best.search.dropout == pytest.approx(winner.param_dropout)
    assert best.train.head_epochs == min(winner.param_head_epochs, winner.best_epoch)
    assert best.train.finetune_lr_factor == pytest.approx(winner.param_finetune_lr_factor)
    assert reuse.resolve(path).params == {  # every knob fixed: best.yaml is retrainable as is
        k: pytest.approx(getattr(best.search, k)) for k in best.search.active_knobs()
    }


@pytest.mark.slow
def test_retrain_repeats_the_trial_and_saves_a_loadable_model(
    finished: Path, tmp_path: Path
) -> None:
    from overfit_search.training.final import load

    model_path = tmp_path / "model.keras"
    assert main(["retrain", str(finished), "--output", str(model_path)]) == 0
    metrics = json.loads(model_path.with_suffix(".metrics.json").read_text())
    assert metrics["made_by"] == "retrain"
    assert metrics["epochs"] == metrics["trial_best_epoch"]
    # same seed, same split, same epochs: the trial's val_loss again (within the 5% promise)
    assert metrics["val_loss"] == pytest.approx(metrics["trial_val_loss"], rel=0.05)
    assert metrics["matches_trial"] is True

    x_val, y_val, names = _validation(finished)
    model = load(model_path)  # a fresh load, as a user would
    assert _cross_entropy(model, x_val, y_val) == pytest.approx(metrics["val_loss"], rel=1e-4)
    assert model_path.with_suffix(".labels.txt").read_text().split() == names
    # the held-out test split: evaluated once, for this model, and said to be so
    assert 0 < metrics["test_loss"] < 10 and metrics["test_images"] > 0
    assert "never used to choose or tune" in metrics["test_note"]
    split = pd.read_csv(finished / "split.csv")
    assert (split.subset == "test").sum() == metrics["test_images"]


@pytest.mark.slow
def test_retrain_full_trains_on_validation_too(finished: Path, tmp_path: Path) -> None:
    model_path = tmp_path / "full.keras"
    assert main(["retrain", str(finished), "--full", "--output", str(model_path)]) == 0
    metrics = json.loads(model_path.with_suffix(".metrics.json").read_text())
    assert metrics["full"] is True
    assert metrics["matches_trial"] is None  # nothing held out to compare with


@pytest.mark.slow
def test_export_rebuilds_the_best_epoch_weights_without_training(
    finished: Path, tmp_path: Path
) -> None:
    from overfit_search.training.final import load

    model_path = tmp_path / "export.keras"
    assert main(["export", str(finished), "--output", str(model_path)]) == 0
    metrics = json.loads(model_path.with_suffix(".metrics.json").read_text())
    # the kept weights are the trial's best epoch: its val_loss exactly
    assert metrics["val_loss"] == pytest.approx(metrics["trial_val_loss"], rel=1e-4)
    x_val, y_val, _ = _validation(finished)
    assert _cross_entropy(load(model_path), x_val, y_val) == pytest.approx(
        metrics["val_loss"], rel=1e-4
    )


@pytest.mark.slow
def test_run_evaluates_the_chosen_trial_once_on_the_test_split(
    finished: Path, tmp_path: Path
) -> None:
    from overfit_search.layout import StudyAttr
    from overfit_search.results.dashboard import chosen_line
    from overfit_search.results.exports import load_results

    sweep, study = load_results(finished)
    test = study.user_attrs[StudyAttr.TEST_ESTIMATE]
    chosen = study.trials[test["trial"]]
    assert test["val_loss"] == chosen.user_attrs["best_val_loss"]
    assert test["optimism"] == pytest.approx(test["val_loss"] - test["test_loss"])
    split = pd.read_csv(finished / "split.csv")
    assert test["test_images"] == (split.subset == "test").sum()
    # the same weights on the same images as `export` evaluates them
    model_path = tmp_path / "export.keras"
    assert main(["export", str(finished), "--output", str(model_path)]) == 0
    metrics = json.loads(model_path.with_suffix(".metrics.json").read_text())
    assert metrics["trial"] == test["trial"]
    assert test["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)
    # said where a user looks: best.yaml, report.html, the dashboard's study note
    header = (finished / "best.yaml").read_text().splitlines()[:4]
    assert any(line.startswith("# held-out test split") for line in header), header
    assert f"test loss {test['test_loss']:.4f}" in (finished / "report.html").read_text()
    note = chosen_line(study, sweep)
    assert note is not None and f"Exported: trial {test['trial']}" in note
    assert f"test loss {test['test_loss']:.4f}" in note
    assert load_sweep(finished / "best.yaml").name  # still a valid sweep file


@pytest.mark.slow
def test_confirm_reseeds_the_top_trial_and_best_can_pick_by_it(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["confirm", str(finished), "--top", "2", "--seeds", "1"]) == 0
    table = pd.read_csv(finished / reuse.CONFIRM_FILE)
    runs = pd.read_csv(finished / "confirm_runs.csv")
    assert len(table) == 2 and set(table.runs) == {2}
    assert runs.rerun.sum() == 2
    assert runs[runs.rerun].seed.nunique() == 2
    assert all(math.isfinite(v) for v in table.mean_val_loss)
    capsys.readouterr()
    assert main(["best", str(finished), "--by", "confirmed", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    chosen = int(table.sort_values("mean_val_loss").trial.iloc[0])
    trials = pd.read_csv(finished / "trials.csv").set_index("number")
    assert doc["search"]["dropout"] == pytest.approx(trials.loc[chosen, "param_dropout"])


@pytest.mark.parametrize(("attrs", "number", "expected"), [({}, 4, 4), ({"resumed_from": 1}, 4, 1)])
def test_a_rerun_of_an_interrupted_trial_is_retrained_with_its_seed(
    attrs: dict[str, Any], number: int, expected: int
) -> None:
    from optuna.trial import TrialState, create_trial

    from overfit_search.config import sweep_from_dict
    from overfit_search.results.exports import seed_of
    from overfit_search.search_space import trial_seed

    sweep = sweep_from_dict(tiny_sweep(study={"seed": 7}))
    trial = create_trial(state=TrialState.COMPLETE, value=0.3, user_attrs=attrs)
    trial.number = number
    assert seed_of(sweep, trial) == trial_seed(sweep, expected)
