"""The private Optuna and Ray names in overfit_search.orchestration.compat exist, with the
shape compat expects, on the installed versions: an upgrade that moves one fails here."""

from __future__ import annotations

import inspect
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from overfit_search.orchestration import compat


def _params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_optuna_study_storage_and_trial_id() -> None:
    study = optuna.create_study()
    assert isinstance(study._storage, optuna.storages.BaseStorage)
    trial = study.ask()
    assert isinstance(trial._trial_id, int)
    assert compat.trial_id(trial) == trial._trial_id
    frozen = compat.frozen_trial(study, trial)
    assert isinstance(frozen._trial_id, int)
    assert frozen.number == trial.number
    compat.set_trial_user_attr(study, frozen, "k", 1)
    assert study.trials[0].user_attrs == {"k": 1}
    compat.set_trial_state_values(study, trial, TrialState.PRUNED, [0.5])
    assert study.trials[0].state == TrialState.PRUNED
    assert study.trials[0].values == [0.5]


def test_optuna_storage_methods() -> None:
    base = optuna.storages.BaseStorage
    assert _params(base.get_trial) == ["self", "trial_id"]
    assert _params(base.set_trial_user_attr) == ["self", "trial_id", "key", "value"]
    assert _params(base.set_trial_state_values) == ["self", "trial_id", "state", "values"]
    assert _params(optuna.storages.RDBStorage.record_heartbeat) == ["self", "trial_id"]


def test_optuna_rdb_storage_is_cached_around_its_backend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url)
    outer = compat.storage(study)
    assert hasattr(outer, "_backend"), "Optuna no longer wraps RDB storages in _CachedStorage"
    assert isinstance(compat.backend_storage(study), optuna.storages.RDBStorage)
    in_memory = optuna.create_study()
    assert compat.backend_storage(in_memory) is compat.storage(in_memory)


def test_ray_optuna_search_private_state() -> None:
    from ray.tune.search.optuna import OptunaSearch

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    searcher = OptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(0, 1)},
        metric="val_loss",
        mode="min",
        sampler=study.sampler,
        study_name=study.study_name,
        storage=compat.storage(study),
    )
    assert isinstance(compat.searcher_study(searcher), optuna.Study)
    assert compat.searcher_trials(searcher) == {}
    assert compat.searcher_completed(searcher) == set()
    assert searcher.suggest("t1") is not None
    live = compat.searcher_trials(searcher)["t1"]
    assert isinstance(live, optuna.Trial)
    searcher.on_trial_complete("t1", {"val_loss": 0.5})
    assert "t1" in compat.searcher_completed(searcher)


def test_ray_session_has_a_stop_event() -> None:
    ray_session = pytest.importorskip("ray.train._internal.session")
    assert compat.get_session() is None  # outside a trial
    session_class = ray_session._TrainSession
    # set up in reset() (called by __init__), set by finish() when Tune stops the trial
    assert "self.stop_event = threading.Event()" in inspect.getsource(session_class.reset), (
        "Ray's trial session has no stop_event: trainable._stop_requested never sees a stop"
    )
    assert "self.stop_event.set()" in inspect.getsource(session_class.finish)


def test_no_private_use_outside_compat() -> None:
    import re

    import overfit_search

    private = re.compile(
        r"\._storage\b|\._backend\b|\._trial_id\b|\._ot_study\b|\._ot_trials\b"
        r"|\._completed_trials\b|ray\.\w+\._internal|ray\._private"
    )
    package = Path(overfit_search.__file__).parent
    found = [
        f"{path.relative_to(package.parent)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, "use overfit_search.orchestration.compat:\n" + "\n".join(found)
