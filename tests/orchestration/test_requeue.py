"""Re-running interrupted and stale trials keeps what the trial was (seed, baseline, pins)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from overfit_search.orchestration.runner import RESUMED_FROM, RequeueStale, _requeue_interrupted
from overfit_search.search_space import PINNED_ATTR

DIST = {"learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}


def _failed(study: optuna.Study, reason: str, **attrs: Any) -> optuna.trial.FrozenTrial:
    trial = study.ask(DIST)
    for key, value in {"fail_reason": reason, **attrs}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, state=TrialState.FAIL)
    return study.trials[trial.number]


@pytest.mark.parametrize(
    ("attrs", "kept"),
    [
        ({}, {}),
        ({"baseline": True}, {"baseline": True}),
        (
            {"baseline": True, PINNED_ATTR: {"head_epochs": 0}},
            {"baseline": True, PINNED_ATTR: {"head_epochs": 0}},
        ),
        ({"diverged": True, "epochs_run": 3}, {}),  # only what the re-run must repeat
    ],
)
def test_interrupted_trials_rerun_with_their_params_baseline_flag_and_pins(
    attrs: dict[str, Any], kept: dict[str, Any]
) -> None:
    study = optuna.create_study()
    first = _failed(study, "interrupted", **attrs)
    _failed(study, "diverged: NaN loss")  # not interrupted: not re-run
    assert _requeue_interrupted(study, limit=5) == 1
    assert _requeue_interrupted(study, limit=5) == 0  # once each
    waiting = study.get_trials(states=[TrialState.WAITING])
    assert len(waiting) == 1
    assert waiting[0].user_attrs == {RESUMED_FROM: first.number, **kept}
    rerun = study.ask(DIST)
    assert rerun.params == first.params
    assert rerun.user_attrs == {RESUMED_FROM: first.number, **kept}


def test_a_stale_trial_reruns_with_its_pins() -> None:
    study = optuna.create_study()
    stale = _failed(study, "stale", baseline=True, **{PINNED_ATTR: {"finetune_lr_factor": 1.0}})
    RequeueStale()(study, stale)
    rerun = study.ask(DIST)
    assert rerun.params == stale.params
    assert rerun.user_attrs == {
        RESUMED_FROM: stale.number,
        "baseline": True,
        PINNED_ATTR: {"finetune_lr_factor": 1.0},
    }
