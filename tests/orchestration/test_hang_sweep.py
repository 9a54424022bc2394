"""The real thing: a trial that hangs inside a batch is ended, recorded FAIL, and the sweep goes on.

The backbone is a saved model with a Lambda layer that sleeps for an hour whenever it is called
in training mode: never while the model is built, only when Keras traces the first training
batch. No Python code of the project runs until that batch ends, so the per-batch timeout
check cannot fire; the hang watchdog must.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from overfit_search.cli import main
from overfit_search.orchestration.trainable import HANG_GRACE_ENV, HANG_GRACE_S
from tests.conftest import digits_sweep

pytestmark = pytest.mark.slow

TIMEOUT_S = 5
GRACE_S = 3  # the watchdog's grace past the timeout (30 s by default), through Ray's workers


def _hanging_backbone(path: Path) -> None:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(
        # no default for training: Keras 3.15 cannot reload a lambda's defaults
        lambda t, training: (__import__("time").sleep(3600), t)[1] if training else t,
        name="hangs_in_training",
    )(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    keras.Model(inputs, x).save(path)


def test_a_trial_hung_inside_a_batch_is_fail_and_the_next_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(HANG_GRACE_ENV, str(GRACE_S))
    backbone = tmp_path / "hangs.keras"
    _hanging_backbone(backbone)
    doc = digits_sweep(
        "hang",
        model={"backbone": f"file:{backbone}", "preprocess": "none"},
        train={"max_epochs": 2, "trial_timeout": TIMEOUT_S},
        study={"trials": 2},
        resources={"max_concurrent": 1},
    )
    sweep_path = tmp_path / "hang.yaml"
    sweep_path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"

    rc = main(["run", str(sweep_path), "--output", str(out), "--no-progress", "--unsafe-load"])

    assert rc == 1  # every trial failed: the run says so, after recording them
    study = optuna.load_study(study_name="hang", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]  # one after the other
    for t in trials:
        reason = t.user_attrs["fail_reason"]
        seconds = re.match(r"hung: still running (\d+)s after it started", reason)
        assert seconds and int(seconds[1]) >= TIMEOUT_S + GRACE_S - 1, reason
        assert int(seconds[1]) < TIMEOUT_S + HANG_GRACE_S, reason  # the workers saw GRACE_S
        assert f"past train.trial_timeout={TIMEOUT_S}s" in reason
        stacks = (out / "trials" / str(t.number) / "traceback.txt").read_text()
        assert f"thread stacks in trials/{t.number}/traceback.txt" in reason
        assert "test_hang_sweep.py" in stacks and "lambda_layer.py" in stacks, stacks
