"""Run a sweep: Optuna owns the study, Ray Tune runs the trials (DESIGN.md §6).

The sweep's story; its parts live beside it: the output folder and its lock
(:mod:`~overfit_search.orchestration.output`), the Optuna study
(:mod:`~overfit_search.orchestration.study`) and the Ray side
(:mod:`~overfit_search.orchestration.launch`).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from overfit_search.config import Sweep, load_sweep
from overfit_search.errors import ConfigError, FatalError
from overfit_search.layout import StudyAttr, TrialAttr
from overfit_search.orchestration.launch import ray_init, run_tune
from overfit_search.orchestration.output import (
    LOCK_FILE,
    drop_checkpoints,
    output_dir,
    output_lock,
    prepare_output,
    storage_url,
    write_check_data,
    write_review,
    write_sweep_yaml,
)
from overfit_search.orchestration.progress import SweepProgress
from overfit_search.orchestration.study import (
    RESUMED_FROM,
    RequeueStale,
    fail_unfinished,
    make_judge,
    open_study,
    requeue_interrupted,
    start_new_study,
)
from overfit_search.results.exports import BestChoice, write_exports
from overfit_search.search_space import split_space

if TYPE_CHECKING:
    from overfit_search.data.dataset import ImageData

__all__ = [
    "LOCK_FILE",
    "RESUMED_FROM",
    "RequeueStale",
    "SweepResult",
    "output_dir",
    "run_sweep",
    "storage_url",
    "write_review",
]

logger = logging.getLogger(__name__)

# The names these had when they lived here (tests and older callers import them from here).
_output_lock = output_lock
_requeue_interrupted = requeue_interrupted
_ray_init = ray_init


@dataclass
class SweepResult:
    """What a finished sweep hands back.

    Attributes:
        study: The Optuna study.
        best: The exported trial and why it was chosen (None when no trial completed).
        output: The results directory.
        paths: The files written, by name.
        epochs_saved: Epochs not run because trials were stopped early.
        interrupted: The signal that interrupted the sweep (``SIGINT``, ``SIGTERM``), or None.
        test: The chosen trial on the held-out test split (:func:`overfit_search.reuse.
            test_estimate`), or None without ``data.test_fraction``.
    """

    study: optuna.Study
    best: BestChoice | None
    output: Path
    paths: dict[str, Path] = field(default_factory=dict)
    epochs_saved: int = 0
    interrupted: str | None = None
    test: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal number when interrupted (130 Ctrl-C, 143 SIGTERM)."""
        if self.interrupted is None:
            return 0
        return 128 + int(signal.Signals[self.interrupted])


def run_sweep(
    sweep: Sweep | str | Path,
    *,
    trials: int | None = None,
    max_epochs: int | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    force: bool = False,
) -> SweepResult:
    """Run (or resume) a sweep and write its results.

    Args:
        sweep: A sweep file path or a loaded :class:`Sweep`.
        trials: Override ``study.trials`` (the total the study should reach).
        max_epochs: Override ``train.max_epochs``.
        output: Results directory (default ``results/<name>``).
        resume: Continue the study already in the output directory.
        overwrite: Delete the study already in the output directory first.
        progress: Draw the live table.
        force: Start even when the setup check finds the backbone's features at chance
            (:mod:`overfit_search.orchestration.setup_check`).

    Raises:
        ConfigError: Bad sweep, an existing study without ``resume``/``overwrite``, or a
            backbone whose features do not separate the classes (without ``force``).
        DataError: The images are missing or unusable.
        FatalError: Every trial of this run failed.
    """
    overrides: dict[str, Any] = {}
    if trials is not None:
        overrides["study.trials"] = trials
    if max_epochs is not None:
        overrides["train.max_epochs"] = max_epochs
    if isinstance(sweep, str | Path):
        sweep = load_sweep(sweep, overrides)
    elif overrides:
        from overfit_search.config import sweep_from_dict

        sweep = sweep_from_dict(
            sweep.model_dump(mode="json"), source=sweep.name, overrides=overrides
        )
    assert isinstance(sweep, Sweep)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite: choose one")

    out = output_dir(sweep, output)
    with output_lock(out):
        return _run_locked(sweep, out, resume, overwrite, progress, force)


def _prepare_backbone(sweep: Sweep) -> Sweep:
    """The sweep the trials run: a ``tfhub:`` handle resolved (downloaded once) to its local
    directory here in the driver, so a bad handle is one error before any trial (exit 2).
    ``sweep.yaml`` and ``best.yaml`` keep the handle as written."""
    if sweep.model.scheme != "tfhub":
        return sweep
    from overfit_search.models.backbones import prepare_backbone  # imports Keras

    model = prepare_backbone(sweep.model)
    logger.info("model.backbone: %s -> %s", sweep.model.backbone, model.backbone)
    return sweep.model_copy(update={"model": model})


def _run_locked(
    sweep: Sweep, out: Path, resume: bool, overwrite: bool, progress: bool, force: bool = False
) -> SweepResult:
    trial_sweep = _prepare_backbone(sweep)  # a bad handle leaves no study behind
    url = prepare_output(sweep, out, resume, overwrite)

    from overfit_search.data import load_data, sorted_split_warning
    from overfit_search.paths import data_cache

    if sweep.data.split == "sorted":
        logger.warning("%s", sorted_split_warning(sweep.data.validation_fraction))
    data = load_data(sweep.data, cache_dir=data_cache())
    for warning in data.warnings:
        logger.warning("%s", warning)
    write_check_data(data, out)
    data.split.to_csv(out / "split.csv", index=False)
    from overfit_search.orchestration.setup_check import STUDY_ATTR, resolve_setup, study_attr

    # The probe builds the backbone, so it sees the resolved tfhub: directory; what it decides
    # goes into both the sweep the trials run and the sweep the results keep.
    trial_sweep, setup, ray_started = resolve_setup(
        trial_sweep, data.without_test(), out, resume=resume, force=force
    )
    sweep = sweep.model_copy(
        update={
            "model": sweep.model.model_copy(update={"preprocess": trial_sweep.model.preprocess}),
            "train": trial_sweep.train,
        }
    )
    write_sweep_yaml(sweep, out)
    if data.skipped:
        logger.warning(
            "%d unreadable image(s) skipped; listed in %s", len(data.skipped), out / "skipped.csv"
        )
        pd.DataFrame(data.skipped, columns=["file", "reason"]).to_csv(
            out / "skipped.csv", index=False
        )

    study = open_study(sweep, url)
    finished_before = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    done_before = sum(t.state != TrialState.FAIL for t in finished_before)
    to_run = max(0, sweep.study.trials - done_before)
    logger.info(
        "study '%s': %d trial(s) done, %d to run by this driver (study.trials = %d)",
        sweep.name,
        done_before,
        to_run,
        sweep.study.trials,
    )
    space, fixed = split_space(sweep.search, sweep.train)
    if to_run:
        requeued = requeue_interrupted(study, to_run)
        if requeued:
            logger.info("re-running %d interrupted configuration(s) first", requeued)
    if setup is not None:
        study.set_user_attr(STUDY_ATTR, study_attr(setup))
    if not finished_before:
        start_new_study(study, sweep)
    judge = make_judge(sweep, finished_before)

    tracker = SweepProgress(sweep.name, to_run, already=done_before, enabled=progress)
    trial_data = data.without_test()  # the test split stays out of every trial
    interrupted, broken = run_tune(
        trial_sweep, study, space, fixed, judge, trial_data, out, to_run, tracker, ray_started
    )

    fail_unfinished(study, tracker.numbers if sweep.study.storage else None, "interrupted")
    drop_checkpoints(study, out)
    best = write_exports(study, sweep, out, fixed)
    test = None
    if best is not None and sweep.data.test_fraction and not interrupted:
        test = _test_estimate(study, best, out, data)
    write_review(study, out)
    paths = {
        n: out / n
        for n in (
            "study.db",
            "sweep.yaml",
            "split.csv",
            "trials.csv",
            "histories.csv",
            "best.yaml",
            "report.html",
            "trials",
        )
        if (out / n).exists()
    }
    saved = _epochs_saved(study, sweep.train.max_epochs)
    result = SweepResult(study, best, out, paths, saved, interrupted, test)
    ran = tracker.done
    if broken is not None and not interrupted:
        from overfit_search.orchestration.searcher import BROKEN_AFTER

        raise FatalError(
            f"the first {BROKEN_AFTER} trials all failed with the same error, so the setup is "
            f"broken rather than a configuration; stopped the sweep: {broken} "
            f"(tracebacks in {out / 'trials'})"
        )
    if ran and tracker.counts["FAIL"] == ran and not interrupted:
        raise FatalError(
            f"all {ran} trial(s) failed; first reason: {_first_fail_reason(study)} "
            f"(tracebacks in {out / 'trials'})"
        )
    return result


def _epochs_saved(study: optuna.Study, max_epochs: int) -> int:
    """Epochs not run because trials were stopped early (of ``max_epochs`` each)."""
    saved = 0
    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE, TrialState.PRUNED]):
        if t.user_attrs.get(TrialAttr.STOPPED_EARLY) and t.user_attrs.get(TrialAttr.EPOCHS_RUN):
            saved += max_epochs - int(t.user_attrs[TrialAttr.EPOCHS_RUN])
    return saved


def _test_estimate(
    study: optuna.Study, best: BestChoice, out: Path, data: ImageData
) -> dict[str, Any] | None:
    """Evaluate the chosen trial once on the test split; keep it in the study and best.yaml.

    ``data`` is the sweep's data as this run loaded it (the test split the trials never saw).

    A failure here never fails the sweep: ``overfit-search export`` evaluates it again.
    """
    from overfit_search.reuse import test_estimate, test_line

    try:
        estimate = test_estimate(out, best.trial.number, data)
    except Exception:
        logger.warning("could not evaluate the chosen trial on the test split", exc_info=True)
        return None
    if estimate is None:
        return None
    study.set_user_attr(StudyAttr.TEST_ESTIMATE, estimate)
    logger.info("trial %d on the %s", best.trial.number, test_line(estimate))
    path = out / "best.yaml"
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)
        header = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        lines.insert(header, f"# {test_line(estimate)}\n")
        path.write_text("".join(lines))
    return estimate


def _first_fail_reason(study: optuna.Study) -> str:
    for t in study.get_trials(deepcopy=False, states=[TrialState.FAIL]):
        if t.user_attrs.get(TrialAttr.FAIL_REASON):
            return str(t.user_attrs[TrialAttr.FAIL_REASON])
    return "unknown"
