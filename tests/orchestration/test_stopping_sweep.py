"""Issue 18's two-part policy in a real sweep: the halving budget rule stops trials under Ray and
the study, trials.csv and sweep.yaml say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from overfit_search.cli import main
from overfit_search.config import load_sweep
from overfit_search.orchestration.study import make_judge
from tests.conftest import digits_sweep

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, doc: dict[str, Any]) -> tuple[Path, list[optuna.trial.FrozenTrial]]:
    """Run sweep ``doc`` into ``tmp_path/out`` through the CLI: the folder and the trials."""
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--no-progress"]) == 0
    storage = f"sqlite:///{out / 'study.db'}"
    return out, optuna.load_study(study_name=doc["name"], storage=storage).get_trials()


def test_the_preset_stops_trials_and_records_which_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = digits_sweep(
        "stopping",
        train={"max_epochs": 4},
        study={"trials": 7, "n_startup_trials": 7, "seed": 2},
        # the fast preset with a budget rule that judges from 3 trials and tolerates no noise,
        # so that a 7-trial study is sure to see it stop trials; verify -1 lets every rung cut
        # (any ranking "held") and puts whether it checked in every halving stop's reason
        pruning={
            "preset": "fast",
            "budget": {
                "name": "halving",
                "reduction_factor": 2,
                "min_trials": 3,
                "z": 0.0,
                "verify": -1.0,
                "verify_trials": 3,
            },
        },
    )
    out, trials = _run(tmp_path, doc)
    assert len(trials) == 7
    halved = [t for t in trials if t.user_attrs.get("stop_rule") == "halving"]
    assert halved, [(t.state, t.user_attrs.get("stop_rule")) for t in trials]
    for t in halved:
        assert t.state == TrialState.PRUNED
        assert t.user_attrs["epochs_run"] in (1, 2, 4)  # the rungs of first_rung 1, factor 2
        assert "ranked out" in t.user_attrs["stop_reason"]
        reason = t.user_attrs["stop_reason"]
        assert ("held over" in reason and ">= -1)" in reason) or "not verified: " in reason, reason
        assert t.value == pytest.approx(t.user_attrs["best_val_loss"])
    table = pd.read_csv(out / "trials.csv")
    assert set(table.stop_rule.dropna()) <= {"halving", "peak"}
    assert (table.stop_rule == "halving").sum() == len(halved)

    resolved = load_sweep(out / "sweep.yaml")
    assert resolved.pruning.preset == "fast"
    assert resolved.pruning.rule.name == "peak"
    assert resolved.pruning.budget.model_dump()["min_trials"] == 3
    assert resolved.pruning.budget.model_dump()["verify"] == -1.0


def test_rays_median_comparison_and_the_end_guard_in_a_real_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = digits_sweep(
        "median-mean",
        train={"max_epochs": 3},
        study={"trials": 6, "n_startup_trials": 6, "seed": 3},
        # judged from epoch 1 on 2 peers with no tolerance, so that 6 trials see it stop some
        pruning={
            "preset": "balanced",
            "budget": {"name": "median", "grace": 1, "min_trials": 2, "z": 0.0, "against": "mean"},
            "end_guard": 2,
        },
    )
    out, trials = _run(tmp_path, doc)
    resolved = load_sweep(out / "sweep.yaml")
    assert resolved.pruning.end_guard == 2
    assert resolved.pruning.budget.model_dump()["against"] == "mean"
    judge = make_judge(resolved, [])
    assert judge.rule_until == 1  # the peak rule is asked at epoch 1 only (max_epochs 3 - 2)
    assert len(trials) == 6
    cut = [t for t in trials if t.user_attrs.get("stop_rule") == "median"]
    assert cut, [(t.state, t.user_attrs.get("stop_rule")) for t in trials]
    for t in cut:
        assert t.state == TrialState.PRUNED
        assert "peers' mean val loss since epoch 1 at epoch" in t.user_attrs["stop_reason"]
    assert not [t for t in trials if t.user_attrs.get("stop_rule") == "peak"]
