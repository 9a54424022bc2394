"""The setup check end to end: ``run`` resolves ``preprocess: auto`` with the probe (kept for
``--resume``, best.yaml and retrain) and refuses a backbone whose features are at chance;
``check-model`` prints the same check."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from overfit_search.cli import main
from tests.conftest import digits_sweep
from tests.models.convention_models import SIZE

# one Ray for consecutive sweep tests (tests/conftest.py): none changes the environment
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]


@pytest.fixture(scope="module")
def backbones(convention_backbone: Callable[[str], Path]) -> dict[str, Path]:
    return {c: convention_backbone(c) for c in ("tf", "dead")}


def _sweep(tmp_path: Path, backbone: Path, **sections: dict[str, Any]) -> Path:
    doc = digits_sweep(
        "probe",
        data={
            "digits_classes": [5, 6, 7, 8, 9],
            "image_size": SIZE,
            "train_per_class": 20,
            "validation_fraction": 0.3,
        },
        model={"backbone": f"file:{backbone}"},
        **sections,
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_run_refuses_a_backbone_at_chance_and_force_runs_it(
    tmp_path: Path, backbones: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _sweep(tmp_path, backbones["dead"], study={"trials": 1}, train={"max_epochs": 1})
    out = tmp_path / "out"
    rc = main(["run", str(sweep), "--output", str(out), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: setup check: "), err
    assert "do not separate the classes" in err[0] and "--force" in err[0]
    for convention in ("none", "unit", "tf", "caffe", "torch"):
        assert f"{convention} 0." in err[0]
    check = json.loads((out / "check_model.json").read_text())
    assert check["passed"] is False and check["val_images"] >= 100
    assert not (out / "trials").exists()  # no trial ran

    rc = main(["run", str(sweep), "--output", str(out), "--no-progress", "--force"])
    assert rc == 0
    study = optuna.load_study(study_name="probe", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 1
    assert study.user_attrs["setup_check"]["passed"] is False


def test_check_model_prints_the_table_and_exits_2_at_chance(
    tmp_path: Path, backbones: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _sweep(tmp_path, backbones["dead"])
    assert main(["check-model", str(sweep)]) == 2
    text = capsys.readouterr().out
    assert "FAILED: the backbone's features do not separate the classes" in text
    assert "note: train.augment_flip" not in text  # digits_sweep turns flips off

    sweep = _sweep(tmp_path, backbones["tf"], train={"augment_flip": True})
    assert main(["check-model", str(sweep), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["chosen"] == "tf" and doc["decided_by"] == "probe" and doc["passed"]
    assert any("augment_flip" in n for n in doc["notes"])
    assert main(["check-model", str(sweep)]) == 0
    text = capsys.readouterr().out
    print(text)
    assert "preprocess: tf (by the linear probe" in text
    assert "note: train.augment_flip is true" in text

    capsys.readouterr()  # the table printed above
    # auto (the default) asks the data: a mirrored digit is read as another digit.
    sweep = _sweep(tmp_path, backbones["tf"], train={"augment_flip": "auto"})
    assert main(["check-model", str(sweep), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["flip"]["flip"] is False, doc["flip"]
    assert doc["flip"]["accuracy"] - doc["flip"]["mirrored_accuracy"] > 0.05
    assert main(["check-model", str(sweep)]) == 0
    assert "note: train.augment_flip auto → false" in capsys.readouterr().out


def test_a_sweep_on_a_tf_model_probes_learns_and_resumes_with_the_same_choice(
    tmp_path: Path,
    backbones: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sweep = _sweep(
        tmp_path,
        backbones["tf"],
        study={"trials": 1, "n_startup_trials": 1},
        train={"max_epochs": 15, "augment_flip": "auto"},
        search={"learning_rate": {"low": 1e-2, "high": 5e-2, "log": True},
                "frozen_fraction": 1.0},
    )  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", str(sweep), "--output", str(out), "--no-progress"]) == 0
    assert "model.preprocess: auto -> tf" in caplog.text
    resolved = yaml.safe_load((out / "sweep.yaml").read_text())
    assert resolved["model"]["preprocess"] == "tf"
    assert yaml.safe_load((out / "best.yaml").read_text())["model"]["preprocess"] == "tf"
    assert "train.augment_flip auto → false" in caplog.text
    assert resolved["train"]["augment_flip"] is False  # digits: mirroring changes the class
    assert yaml.safe_load((out / "best.yaml").read_text())["train"]["augment_flip"] is False
    study = optuna.load_study(study_name="probe", storage=f"sqlite:///{out / 'study.db'}")
    attr = study.user_attrs["setup_check"]
    assert attr["preprocess"] == "tf" and attr["passed"] is True
    hist = pd.read_csv(out / "histories.csv")
    assert hist.val_accuracy.max() > 0.5, hist  # 5 classes: chance is 0.2
    check = json.loads((out / "check_model.json").read_text())
    trial_seconds = pd.read_csv(out / "trials.csv").seconds
    print(
        f"\nprobe {check['seconds']:.1f}s in the worker, {check['wall_seconds']:.1f}s in all; "
        f"trials {', '.join(f'{s:.1f}s' for s in trial_seconds)}; "
        f"best val_accuracy {hist.val_accuracy.max():.3f}"
    )

    caplog.clear()
    stamp = (out / "check_model.json").stat().st_mtime_ns
    rc = main(["run", str(sweep), "--output", str(out), "--no-progress", "--resume",
               "--trials", "2"])  # fmt: skip
    assert rc == 0
    assert "model.preprocess: tf, as chosen when this study started" in caplog.text
    assert "train.augment_flip: False, as chosen when this study started" in caplog.text
    assert "setup check: linear probe" not in caplog.text  # not probed again
    assert (out / "check_model.json").stat().st_mtime_ns == stamp
    assert yaml.safe_load((out / "sweep.yaml").read_text())["model"]["preprocess"] == "tf"
