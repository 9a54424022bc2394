"""The sweep's Optuna study: its storage and heartbeats, its interrupted and stale trials, the
attributes and baseline of a new study, and the judge seeded with earlier trials."""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState

from overfit_search.config import Sweep
from overfit_search.layout import StudyAttr, TrialAttr
from overfit_search.orchestration import compat
from overfit_search.orchestration.samplers import make_sampler
from overfit_search.pruning import OverfitJudge, make_budget, make_rule
from overfit_search.results.storage import open_storage
from overfit_search.scoring import directions
from overfit_search.search_space import PINNED_ATTR, baseline_params, baseline_pins

logger = logging.getLogger(__name__)

RESUMED_FROM = TrialAttr.RESUMED_FROM
"""User attribute of a trial that re-runs an interrupted trial's configuration (its number)."""


def fail_unfinished(study: optuna.Study, numbers: set[int] | None, reason: str) -> int:
    """Mark RUNNING trials FAIL (ours when ``numbers`` is given, else all); return how many."""
    count = 0
    for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING]):
        if numbers is not None and t.number not in numbers:
            continue
        compat.set_trial_user_attr(study, t, TrialAttr.FAIL_REASON, reason)
        compat.set_trial_user_attr(study, t, TrialAttr.STATE, "FAIL")
        study.tell(t.number, state=TrialState.FAIL)
        count += 1
    return count


class RequeueStale:
    """Optuna's stale-trial callback: enqueue the configuration of a dead driver's trial again."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        logger.warning("trial %d: its driver stopped beating; running it again", trial.number)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs=_rerun_attrs(trial))


def _storage(sweep: Sweep, url: str) -> optuna.storages.RDBStorage:
    """Local SQLite as is; a shared storage with heartbeats (DESIGN.md §6)."""
    if not sweep.study.storage:
        return open_storage(url)
    beat = sweep.study.heartbeat_seconds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return open_storage(
            url,
            heartbeat_interval=beat,
            grace_period=3 * beat,
            heartbeat_stale_trial_callback=RequeueStale(),
        )


class Heartbeat:
    """Marks the driver's running trials alive every ``heartbeat_interval`` seconds."""

    def __init__(self, storage: Any, running: Any) -> None:
        self.storage = storage
        self.running = running
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def _loop(self) -> None:
        interval = self.storage.heartbeat_interval or 30
        while not self.stop.wait(interval):
            try:  # the searcher's dict may change under us; a database hiccup may happen
                for trial_id in self.running():
                    self.storage.record_heartbeat(trial_id)
            except Exception:  # never kill the beating: the next interval tries again
                logger.debug("heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeat:
        if getattr(self.storage, "heartbeat_interval", None):
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()


def _rerun_attrs(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """User attributes of a trial's re-run: where it resumes from, and what it was."""
    attrs: dict[str, Any] = {RESUMED_FROM: trial.number}
    if trial.user_attrs.get(TrialAttr.BASELINE):
        attrs[TrialAttr.BASELINE] = True
    if trial.user_attrs.get(PINNED_ATTR):
        attrs[PINNED_ATTR] = trial.user_attrs[PINNED_ATTR]
    return attrs


def requeue_interrupted(study: optuna.Study, limit: int) -> int:
    """Enqueue the configurations of interrupted trials again (once each); return how many."""
    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get(RESUMED_FROM) for t in trials}
    count = 0
    for t in trials:
        if count >= limit:
            break
        interrupted = (
            t.state == TrialState.FAIL and t.user_attrs.get(TrialAttr.FAIL_REASON) == "interrupted"
        )
        if interrupted and t.number not in taken and t.params:
            study.enqueue_trial(t.params, user_attrs=_rerun_attrs(t))
            count += 1
    return count


def open_study(sweep: Sweep, url: str) -> optuna.Study:
    """Create the study or load the one there, its trials left RUNNING by a dead driver failed
    ("interrupted")."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(sweep, url)
    study = optuna.create_study(
        study_name=sweep.name,
        storage=storage,
        sampler=make_sampler(sweep.study),
        directions=list(directions(sweep.objective.mode)),
        load_if_exists=True,
    )
    # A local SQLite study has one driver: a RUNNING trial there was interrupted. On a shared
    # server database only heartbeats can tell: fail (and re-run) the trials of dead drivers,
    # never those of a live one.
    if not sweep.study.storage:
        fail_unfinished(study, None, "interrupted")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return study


def start_new_study(study: optuna.Study, sweep: Sweep) -> None:
    """A study with no finished trial: its objective and epoch limit, and the baseline trial
    (when the search space has one) enqueued first."""
    study.set_user_attr(StudyAttr.OBJECTIVE, sweep.objective.model_dump())
    study.set_user_attr(StudyAttr.MAX_EPOCHS, sweep.train.max_epochs)
    base = baseline_params(sweep.search, sweep.train)
    if base is not None:
        attrs: dict[str, Any] = {TrialAttr.BASELINE: True}
        pins = baseline_pins(sweep.search, sweep.train)
        if pins:
            attrs[PINNED_ATTR] = pins
        study.enqueue_trial(base, user_attrs=attrs, skip_if_exists=True)


def make_judge(sweep: Sweep, finished_before: list[optuna.trial.FrozenTrial]) -> OverfitJudge:
    """The sweep's overfitting judge, seeded with the loss curves of earlier trials that did
    not fail."""
    rule = make_rule(**sweep.pruning.rule.model_dump())
    budget = sweep.pruning.budget
    judge = OverfitJudge(
        rule,
        grace_epochs=sweep.pruning.grace_epochs,
        compare=sweep.pruning.compare,
        compare_min_trials=sweep.pruning.compare_min_trials,
        budget=make_budget(**budget.model_dump()) if budget.name != "none" else None,
        max_epochs=sweep.train.max_epochs,
        end_guard=sweep.pruning.end_guard,
    )
    for t in finished_before:
        hist = t.user_attrs.get(TrialAttr.VAL_LOSS_HISTORY) or [
            t.intermediate_values[k] for k in sorted(t.intermediate_values)
        ]
        if t.state != TrialState.FAIL and hist:
            judge.seed(f"earlier-{t.number}", hist)
    return judge
