"""Ray Tune's OptunaSearch, with the bookkeeping this product needs (DESIGN.md §5-6).

Upstream ``OptunaSearch`` (Ray 2.5x-2.60, read in its source) tells every scheduler-stopped
trial COMPLETE with its last reported value, uses ``NopPruner`` and drops intermediate values
in multi-objective studies. This subclass overrides ``suggest``, ``on_trial_result`` and
``on_trial_complete`` so the study shows PRUNED / COMPLETE / FAIL as the overfit judge decided,
scored at the best epoch, with per-epoch values kept. The parent's private state it needs is
reached through :mod:`overfit_search.orchestration.compat` only, whose test fails loudly on a
Ray upgrade that moves it; the Ray range is pinned in pyproject.toml.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from overfit_search.config.schema import Sweep
from overfit_search.layout import CRASH_REASON_FILE, ConfigKey, ResultKey, TrialAttr
from overfit_search.orchestration import compat
from overfit_search.orchestration.progress import SweepProgress
from overfit_search.pruning import Outcome, OverfitJudge
from overfit_search.scoring import constrains_gap, counts_for_best, is_feasible, objective_values
from overfit_search.search_space import trial_values

logger = logging.getLogger(__name__)

_DIVERGED = re.compile(r"(val_loss|train_eval_loss) is (NaN|inf|-inf) at epoch")
BROKEN_AFTER = 5
"""If the first this-many trials all FAIL with one error, the setup is broken: stop the sweep."""

TRIAL_NUMBER_KEY = ConfigKey.TRIAL_NUMBER
RESUME_KEY = ConfigKey.RESUME_FROM


class OverfitOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna what the overfit judge decided.

    Args:
        study: The study (its storage, name, sampler and directions are used).
        space: Searched knobs as Optuna distributions.
        fixed: Knobs with a fixed value, passed to every trial.
        judge: The decision object the stopper feeds (shared, both run in the driver).
        sweep: The sweep (objective, max_epochs).
        progress: The live table to update as trials start and finish.
        trials_dir: The results' ``trials/`` folder, where a trial whose process ended may
            have left its reason (:data:`CRASH_REASON_FILE`).
    """

    def __init__(
        self,
        study: optuna.Study,
        space: dict[str, optuna.distributions.BaseDistribution],
        fixed: dict[str, Any],
        judge: OverfitJudge,
        sweep: Sweep,
        progress: SweepProgress | None = None,
        trials_dir: Path | None = None,
    ) -> None:
        multi = len(study.directions) > 1
        super().__init__(
            space=space,
            metric=[ResultKey.VAL_LOSS, ResultKey.GAP] if multi else ResultKey.VAL_LOSS,
            mode=["min", "min"] if multi else "min",
            sampler=study.sampler,
            study_name=study.study_name,
            storage=compat.storage(study),
        )
        self._fixed = dict(fixed)
        self._judge = judge
        self._sweep = sweep
        self._progress = progress
        self._trials_dir = trials_dir
        self._multi = multi
        self._reported: dict[str, set[int]] = {}
        self._numbers: dict[str, int] = {}
        self._ended: list[tuple[str, str | None]] = []  # (state, reason) in completion order
        self.broken: str | None = None
        """The error shared by the first :data:`BROKEN_AFTER` trials, all FAIL: a broken setup."""

    @property
    def _study(self) -> optuna.Study:
        study = compat.searcher_study(self)
        assert study is not None, "the parent sets up the study in __init__"
        return study

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.broken is not None:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's "no more trials"
        with warnings.catch_warnings():
            # Optuna warns that heartbeats belong to Study.optimize; the runner beats for us
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            params = super().suggest(trial_id)
        if params is None:
            return None
        ot_trial = compat.searcher_trials(self)[trial_id]
        self._numbers[trial_id] = ot_trial.number
        ot_trial.set_user_attr(TrialAttr.RAY_TRIAL_ID, trial_id)
        storage = compat.backend_storage(self._study)
        if isinstance(storage, optuna.storages.RDBStorage) and storage.heartbeat_interval:
            storage.record_heartbeat(compat.trial_id(ot_trial))  # alive from the start
        if self._progress is not None:
            self._progress.trial_started(ot_trial.number)
        config = {
            **trial_values(self._fixed, params, ot_trial.user_attrs),
            TRIAL_NUMBER_KEY: ot_trial.number,
        }
        resumed = ot_trial.user_attrs.get(TrialAttr.RESUMED_FROM)
        if resumed is not None:
            config[RESUME_KEY] = int(resumed)
        return config

    def running_storage_ids(self) -> list[int]:
        """Storage ids of the trials this driver runs now (for heartbeats)."""
        return [
            compat.trial_id(t)
            for key, t in list(compat.searcher_trials(self).items())
            if key not in compat.searcher_completed(self)
        ]

    def trial_number(self, trial_id: str) -> int | None:
        """The Optuna trial number of a Ray trial id."""
        return self._numbers.get(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in compat.searcher_completed(self):
            return
        self._record(trial_id, result)

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        if ResultKey.FAILED in result or ResultKey.EPOCH not in result:
            return
        epoch = int(result[ResultKey.EPOCH])
        seen = self._reported.setdefault(trial_id, set())
        if epoch in seen:
            return
        seen.add(epoch)
        try:
            self._judge.observe(
                trial_id,
                epoch,
                float(result[ResultKey.VAL_LOSS]),
                float(result[ResultKey.TRAIN_EVAL_LOSS]),
            )
        except ValueError:  # out-of-order epoch: the stopper has logged it already
            return
        val = float(result[ResultKey.VAL_LOSS])
        if not self._multi and math.isfinite(val):
            compat.searcher_trials(self)[trial_id].report(val, epoch)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id in compat.searcher_completed(self) or trial_id not in compat.searcher_trials(
            self
        ):
            return
        if result:
            self._record(trial_id, result)
        failed = (result or {}).get(ResultKey.FAILED)
        if error and not failed:
            failed = self._crash_reason(self._numbers.get(trial_id))
        outcome = self._judge.outcome(trial_id, failed=failed)
        self._note_end(outcome.state, outcome.reason)
        ot_trial = compat.searcher_trials(self)[trial_id]
        try:
            self._tell(ot_trial, trial_id, outcome)
        except Exception:  # never lose the sweep over one bookkeeping error
            logger.exception("could not record trial %s", ot_trial.number)
        compat.searcher_completed(self).add(trial_id)
        if self._progress is not None:
            frozen = compat.frozen_trial(self._study, ot_trial)
            values = frozen.values or [None]
            state = str(frozen.user_attrs.get(TrialAttr.STATE) or frozen.state.name)
            self._progress.trial_finished(
                state,
                values[0],
                ot_trial.number,
                int(frozen.user_attrs.get(TrialAttr.EPOCHS_RUN) or 0),
                counts_for_best(
                    self._sweep.objective.mode, state, frozen.user_attrs.get(TrialAttr.FEASIBLE)
                ),
            )

    def _crash_reason(self, number: int | None) -> str:
        """Why trial ``number``'s process died: what it wrote before ending itself, if it did."""
        if self._trials_dir is not None and number is not None:
            try:
                text = (self._trials_dir / str(number) / CRASH_REASON_FILE).read_text().strip()
            except OSError:
                text = ""
            if text:
                return text.splitlines()[0]
        return f"the trial process crashed (see trials/{number}/)"

    def _note_end(self, state: str, reason: str | None) -> None:
        self._ended.append((state, reason))
        first = self._ended[:BROKEN_AFTER]
        if self.broken is None and len(first) == BROKEN_AFTER:
            reasons = {_generic(r) for s, r in first if s == "FAIL"}
            if all(s == "FAIL" for s, _ in first) and len(reasons) == 1:
                self.broken = first[0][1] or "unknown error"

    def finish_cut_short(self, rule: str, reason: str) -> int:
        """Record trials that a study budget ended without a result (Ray does not report them).

        A trial with at least one finite epoch is PRUNED at its best epoch so far, with
        ``rule`` and ``reason``; one without is FAIL with ``reason``.

        Returns:
            How many trials were recorded.
        """
        count = 0
        for trial_id, ot_trial in list(compat.searcher_trials(self).items()):
            if trial_id in compat.searcher_completed(self):
                continue
            outcome = self._judge.outcome(trial_id)
            if outcome.state == "FAIL":
                outcome = dataclasses.replace(outcome, reason=f"{reason} before its first epoch")
            else:
                outcome = dataclasses.replace(
                    outcome, state="PRUNED", rule=rule, reason=reason, stopped_early=True
                )
            try:
                self._tell(ot_trial, trial_id, outcome)
            except Exception:
                logger.exception("could not record trial %s", ot_trial.number)
                continue
            compat.searcher_completed(self).add(trial_id)
            count += 1
        return count

    def _tell(self, ot_trial: optuna.Trial, trial_id: str, outcome: Outcome) -> None:
        objective = self._sweep.objective
        val_hist, train_hist = self._judge.history(trial_id)
        state = outcome.state
        rule, reason = outcome.rule, outcome.reason
        max_epochs = self._sweep.train.max_epochs
        if state == "COMPLETE" and not outcome.stopped_early and outcome.epochs_run < max_epochs:
            # Stopped by the Ray scheduler (ASHA) or a study budget, not by the overfit rule.
            state, rule = "PRUNED", "scheduler"
            reason = f"stopped by the scheduler after epoch {outcome.epochs_run}"
        attrs: dict[str, Any] = {
            TrialAttr.STATE: state,
            TrialAttr.BEST_EPOCH: outcome.best_epoch,
            TrialAttr.BEST_VAL_LOSS: outcome.best_val_loss,
            TrialAttr.GAP: outcome.gap_at_best,
            TrialAttr.EPOCHS_RUN: outcome.epochs_run,
            TrialAttr.STOPPED_EARLY: outcome.stopped_early or rule == "scheduler",
            TrialAttr.STOP_RULE: rule,
            TrialAttr.STOP_REASON: reason,
            TrialAttr.MEDIAN: outcome.median,
        }
        if self._multi:  # Optuna keeps no intermediate values for multi-objective studies
            attrs[TrialAttr.VAL_LOSS_HISTORY] = val_hist
        attrs[TrialAttr.TRAIN_EVAL_LOSS_HISTORY] = train_hist
        feasible = is_feasible(outcome.gap_at_best, objective.max_gap)
        if state != "FAIL":
            attrs[TrialAttr.FEASIBLE] = feasible
        for key, value in attrs.items():
            ot_trial.set_user_attr(key, _jsonable(value))
        if constrains_gap(objective.mode) and state != "FAIL" and outcome.gap_at_best is not None:
            ot_trial.set_constraint("gap", outcome.gap_at_best - objective.max_gap)
        note = _note(ot_trial.number, attrs, objective.max_gap) + _curves_brief(
            val_hist, train_hist
        )
        _save_note(ot_trial, note)
        if state == "FAIL" or outcome.best_val_loss is None or outcome.gap_at_best is None:
            ot_trial.set_user_attr(TrialAttr.FAIL_REASON, reason or "no finite epoch")
            finite = [v for v in val_hist if math.isfinite(v)]
            if not self._multi and finite and _DIVERGED.match(reason or ""):
                # FAIL for the user (trials.csv, report), but TPE ignores FAIL trials and would
                # propose the same learning rates again: tell Optuna PRUNED at the last finite
                # val_loss so the sampler counts the configuration among the bad ones.
                ot_trial.set_user_attr(TrialAttr.DIVERGED, True)
                _tell_pruned(self._study, ot_trial, [finite[-1]])
                return
            self._study.tell(ot_trial, state=TrialState.FAIL)
            return
        values = objective_values(
            objective.mode,
            outcome.best_val_loss,
            outcome.gap_at_best,
            objective.max_gap,
            objective.penalty_weight,
        )
        if state == "PRUNED":
            _tell_pruned(self._study, ot_trial, values)
        else:
            self._study.tell(ot_trial, values)


def _generic(reason: str | None) -> str | None:
    """A failure reason without the trial's own folder, so equal errors compare equal."""
    return None if reason is None else re.sub(r"\s*\(see trials/\d+/?\)", "", reason)


def _tell_pruned(study: optuna.Study, trial: optuna.Trial, values: list[float]) -> None:
    """Tell PRUNED with the trial's best value so far (``Study.tell`` would use the last).

    Mirrors optuna.study._tell for PRUNED (Optuna 5.0): sampler post-processing, then store.
    """
    frozen = compat.frozen_trial(study, trial)
    try:
        study.sampler.after_trial(study, frozen, TrialState.PRUNED, values)
    finally:
        compat.set_trial_state_values(study, trial, TrialState.PRUNED, values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _note(number: int, attrs: dict[str, Any], max_gap: float) -> str:
    lines = [f"## Trial {number}: {attrs[TrialAttr.STATE]}"]
    if attrs[TrialAttr.BEST_EPOCH] is not None:
        lines.append(
            f"- best epoch {attrs[TrialAttr.BEST_EPOCH]} of {attrs[TrialAttr.EPOCHS_RUN]}: "
            f"val_loss {attrs[TrialAttr.BEST_VAL_LOSS]:.4f}, gap {attrs[TrialAttr.GAP]:.4f}"
        )
        ok = "feasible" if attrs.get(TrialAttr.FEASIBLE) else "infeasible"
        lines.append(f"- {ok}: gap {attrs[TrialAttr.GAP]:.4f} vs max_gap {max_gap:g}")
    if attrs[TrialAttr.STOP_REASON]:
        lines.append(f"- stopped: {attrs[TrialAttr.STOP_REASON]}")
    else:
        lines.append("- ran to max_epochs")
    return "\n".join(lines)


def _curves_brief(val: list[float], train: list[float]) -> str:
    """One Markdown line per curve: first → lowest (epoch) → last."""
    lines = []
    for name, curve in (("val_loss", val), ("train_eval_loss", train)):
        finite = [(i + 1, v) for i, v in enumerate(curve) if math.isfinite(v)]
        if not finite:
            continue
        low_epoch, low = min(finite, key=lambda item: item[1])
        lines.append(
            f"- {name}: {finite[0][1]:.4f} → lowest {low:.4f} (epoch {low_epoch}) → "
            f"last {finite[-1][1]:.4f} (epoch {finite[-1][0]})"
        )
    return "".join(f"\n{line}" for line in lines)


def _save_note(trial: optuna.Trial, text: str) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:  # the dashboard is optional at run time
        return
    try:
        save_note(trial, text)
    except Exception:
        logger.debug("could not save the note of trial %s", trial.number, exc_info=True)
