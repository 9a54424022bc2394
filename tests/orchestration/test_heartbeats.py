"""A shared study storage: heartbeats tell a dead driver's trials from a live one's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from overfit_search.cli import main

pytestmark = pytest.mark.slow


def test_resume_on_shared_storage_fails_only_trials_whose_driver_is_gone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    doc = {
        "name": "hb",
        "data": {"source": "digits", "digits_classes": [5, 6], "image_size": 12,
                 "train_per_class": 8},
        "model": {"backbone": "builtin:digits_cnn"},
        "train": {"batch_size": 16, "max_epochs": 2, "augment_flip": False},
        "search": {"dropout": {"low": 0.0, "high": 0.5}, "l2": 0.0, "learning_rate": 0.003,
                   "augmentation": 0.0, "frozen_fraction": 0.5},
        "study": {"trials": 1, "storage": url, "heartbeat_seconds": 1, "sampler": "random"},
        "resources": {"max_concurrent": 1},
    }  # fmt: skip
    sweep = tmp_path / "hb.yaml"
    sweep.write_text(yaml.safe_dump(doc))
    # Two other drivers' trials: one driver died (no heartbeat for > 3 s), one is alive.
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=3)
    study = optuna.create_study(study_name="hb", storage=storage)
    space = {"dropout": FloatDistribution(0.0, 0.5)}
    dead, live = study.ask(space), study.ask(space)
    storage.record_heartbeat(dead._trial_id)
    storage.record_heartbeat(live._trial_id)
    time.sleep(4.5)
    # the live driver goes on beating while ours runs, as a live driver does
    alive = threading.Event()

    def beat() -> None:
        while not alive.wait(0.5):
            storage.record_heartbeat(live._trial_id)

    storage.record_heartbeat(live._trial_id)
    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        out = tmp_path / "out"
        rc = main(["run", str(sweep), "--output", str(out), "--no-progress", "--resume"])
    finally:
        alive.set()
        beating.join()
    assert rc == 0
    trials = {t.number: t for t in optuna.load_study(study_name="hb", storage=url).get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[live.number].state == TrialState.RUNNING  # a live driver's trial is untouched
    rerun = [t for t in trials.values() if t.user_attrs.get("resumed_from") == dead.number]
    assert len(rerun) == 1 and rerun[0].state == TrialState.COMPLETE
    assert rerun[0].params["dropout"] == pytest.approx(trials[dead.number].params["dropout"])
