"""Every private Optuna and Ray name this product relies on, in one place.

Neither library offers these through public API (checked on Optuna 5.0 and Ray 2.60, the
versions pinned in pyproject.toml):

- Optuna: a study's storage (``Study._storage``, wrapped by ``_CachedStorage._backend`` for
  RDB storages), a trial's storage id (``Trial._trial_id`` / ``FrozenTrial._trial_id``; public
  ``study.tell`` takes a number, but setting a user attribute or PRUNED values on a trial that
  is not the objective's own needs the id).
- Ray Tune: ``OptunaSearch``'s private ``_ot_study``, ``_ot_trials`` and ``_completed_trials``
  (the subclass in :mod:`~overfit_search.orchestration.searcher` takes over its bookkeeping),
  and the trial session's ``stop_event`` (``ray.train._internal.session.get_session``), set
  when Tune asks a function trainable to stop.

tests/orchestration/test_compat.py checks each of them on the installed versions, so an
upgrade that moves one fails there, by name, rather than deep inside a sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from ray.tune.search.optuna import OptunaSearch


def storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The study's storage (Optuna keeps it private: ``Study._storage``)."""
    found: optuna.storages.BaseStorage = study._storage
    return found


def backend_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The study's storage under Optuna's cache (an RDB storage is wrapped in one)."""
    outer = storage(study)
    inner: optuna.storages.BaseStorage = getattr(outer, "_backend", outer)
    return inner


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a trial (not its number)."""
    return int(trial._trial_id)


def frozen_trial(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as the storage holds it now."""
    return storage(study).get_trial(trial_id(trial))


def set_trial_user_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    """Set a user attribute on any trial of the study (``Trial.set_user_attr`` needs a live
    ``Trial``; a RUNNING trial read back with ``get_trials`` is a ``FrozenTrial``)."""
    storage(study).set_trial_user_attr(trial_id(trial), key, value)


def set_trial_state_values(
    study: optuna.Study,
    trial: optuna.Trial | FrozenTrial,
    state: TrialState,
    values: Sequence[float] | None,
) -> None:
    """Store a trial's final state and values (what ``Study.tell`` does after the sampler)."""
    storage(study).set_trial_state_values(trial_id(trial), state, values)


def searcher_study(searcher: OptunaSearch) -> optuna.Study | None:
    """The study ``OptunaSearch`` created or loaded (None before its ``__init__`` sets it up)."""
    study: optuna.Study | None = searcher._ot_study
    return study


def searcher_trials(searcher: OptunaSearch) -> dict[str, optuna.Trial]:
    """``OptunaSearch``'s live Optuna trials by Ray trial id (the same dict, not a copy)."""
    trials: dict[str, optuna.Trial] = searcher._ot_trials
    return trials


def searcher_completed(searcher: OptunaSearch) -> set[str]:
    """The Ray trial ids ``OptunaSearch`` has told the study about (the same set)."""
    completed: set[str] = searcher._completed_trials
    return completed


def get_session() -> Any:
    """The Ray Train/Tune session of the calling trial (has ``stop_event``), or None."""
    from ray.train._internal.session import get_session as private_get_session

    return private_get_session()
