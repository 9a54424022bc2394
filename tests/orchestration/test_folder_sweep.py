"""A real sweep on a class-per-folder directory with a keras.applications backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from PIL import Image

from overfit_search import run_sweep
from overfit_search.cli import main
from overfit_search.config import sweep_from_dict
from overfit_search.results.exports import best_sweep, trial_params
from overfit_search.search_space import split_space

# one Ray for consecutive sweep tests (tests/conftest.py): none changes the environment
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]


def test_folder_sweep_with_mobilenet_v2(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls, shade in (("A", 60), ("B", 190)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(shade, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i:02d}.jpg")
    (tmp_path / "imgs" / "A" / "broken.jpg").write_bytes(b"\xff\xd8\xff\x00garbage")
    doc = {
        "name": "folder",
        "data": {
            "source": "folder",
            "dir": str(tmp_path / "imgs"),
            "image_size": 32,
            "validation_fraction": 0.25,
        },
        "model": {"backbone": "mobilenet_v2", "weights": "none"},
        "train": {"batch_size": 8, "max_epochs": 2, "optimizer": "sgd", "head_epochs": 1},
        "search": {
            "dropout": 0.1,
            "l2": 0.0,
            "augmentation": 0.2,
            "frozen_fraction": 0.5,
            "learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        },
        "study": {"trials": 2, "sampler": "random", "seed": 3},
        "resources": {"max_concurrent": 2},
    }
    # the user's one-phase setup as the baseline of a two-phase sweep
    doc["search"]["baseline"] = {"learning_rate": 0.01, "head_epochs": 0}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    result = run_sweep(tmp_path / "s.yaml", output=tmp_path / "out", progress=False)
    trials = result.study.get_trials()
    assert len(trials) == 2
    assert trials[0].params["learning_rate"] == 0.01 and trials[0].user_attrs["baseline"]
    logs = [(tmp_path / "out" / "trials" / str(n) / "trial.log").read_text() for n in (0, 1)]
    assert "phase 1 (head)" not in logs[0] and "phase 1 (head): epoch 1," in logs[1]
    sweep = sweep_from_dict(doc)
    assert [trial_params(sweep, t).get("head_epochs") for t in trials] == [0, None]
    fixed = split_space(sweep.search)[1]
    assert [best_sweep(sweep, t, fixed)["train"]["head_epochs"] for t in trials] == [0, 1]
    table = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert table.pinned.iloc[0] == "head_epochs=0" and table.pinned.iloc[1:].isna().all()
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.user_attrs for t in trials]
    assert all(t.user_attrs["epochs_run"] == 2 for t in trials)
    assert (tmp_path / "out" / "skipped.csv").read_text().startswith("file,reason\nA/broken.jpg,")
    split = (tmp_path / "out" / "split.csv").read_text()
    assert split.count("validation") == 6 and "broken.jpg" not in split


def test_every_trial_failing_is_exit_1_with_the_reason_and_tracebacks_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "name": "failing",
        "data": {
            "source": "digits",
            "digits_classes": [1, 2],
            "image_size": 12,
            "train_per_class": 8,
        },
        "model": {"backbone": "builtin:digits_cnn"},
        # every trial runs past its time limit in its first epoch
        "train": {"max_epochs": 3, "trial_timeout": 0.001},
        "study": {"trials": 2, "sampler": "random"},
        "resources": {"max_concurrent": 2},
    }
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(doc))
    rc = main(["run", str(tmp_path / "f.yaml"), "--output", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "all 2 trial(s) failed; first reason: TrialError: timeout" in err
    study = optuna.load_study(
        study_name="failing", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    )
    for trial in study.get_trials():
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["fail_reason"].startswith("TrialError: timeout: ran past")
        traceback = tmp_path / "out" / "trials" / str(trial.number) / "traceback.txt"
        assert "TrialError" in traceback.read_text()
    assert (tmp_path / "out" / "trials.csv").read_text().count("FAIL") == 2


def test_a_broken_setup_stops_the_sweep_after_five_alike_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "name": "broken",
        "data": {"source": "digits", "digits_classes": [1, 2], "image_size": 12,
                 "train_per_class": 8},
        "model": {"backbone": "builtin:digits_cnn"},
        "train": {"max_epochs": 3, "trial_timeout": 0.001},
        "study": {"trials": 12, "sampler": "random"},
        "resources": {"max_concurrent": 2},
    }  # fmt: skip
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(doc))
    rc = main(["run", str(tmp_path / "b.yaml"), "--output", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "the first 5 trials all failed with the same error" in err
    assert "TrialError: timeout" in err
    trials = (tmp_path / "out" / "trials.csv").read_text().splitlines()[1:]
    assert 5 <= len(trials) <= 6  # at most the one already running when the fifth failed


def test_out_of_memory_trials_fail_with_the_reason_and_the_sweep_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a head of 10^9 units asks TensorFlow for 384 GB: a real ResourceExhaustedError, at once
    doc = {
        "name": "oom",
        "data": {"source": "digits", "digits_classes": [1, 2], "image_size": 12,
                 "train_per_class": 8},
        "model": {"backbone": "builtin:digits_cnn", "head": {"hidden_units": 10**9}},
        "train": {"max_epochs": 2},
        "study": {"trials": 2, "sampler": "random"},
        "resources": {"max_concurrent": 1},
    }  # fmt: skip
    (tmp_path / "oom.yaml").write_text(yaml.safe_dump(doc))
    rc = main(
        ["run", str(tmp_path / "oom.yaml"), "--output", str(tmp_path / "out"), "--no-progress"]
    )
    assert rc == 1  # every trial failed: said, with the first reason
    assert "out of memory (ResourceExhaustedError" in capsys.readouterr().err
    study = optuna.load_study(
        study_name="oom", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    )
    assert len(study.trials) == 2  # the first OOM did not end the sweep
    for trial in study.trials:
        assert trial.user_attrs["fail_reason"].startswith("out of memory")
        assert (
            "ResourceExhaustedError"
            in (tmp_path / "out" / "trials" / str(trial.number) / "traceback.txt").read_text()
        )
