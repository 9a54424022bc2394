"""Run a sweep: Optuna owns the study, Ray Tune runs the trials (DESIGN.md §6)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import signal
import socket
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState

from overfit_search.config import Sweep, load_sweep
from overfit_search.data.dataset import ImageData
from overfit_search.errors import ConfigError, FatalError
from overfit_search.layout import CHECKPOINT_GLOB, StudyAttr, TrialAttr
from overfit_search.orchestration import compat
from overfit_search.orchestration.progress import SweepProgress
from overfit_search.orchestration.samplers import make_sampler
from overfit_search.pruning import OverfitJudge, make_budget, make_rule
from overfit_search.results.exports import BestChoice, clear_results, write_exports
from overfit_search.results.storage import open_storage
from overfit_search.scoring import directions
from overfit_search.search_space import PINNED_ATTR, baseline_params, baseline_pins, split_space

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
RESUMED_FROM = TrialAttr.RESUMED_FROM
"""User attribute of a trial that re-runs an interrupted trial's configuration (its number)."""


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
    """

    study: optuna.Study
    best: BestChoice | None
    output: Path
    paths: dict[str, Path] = field(default_factory=dict)
    epochs_saved: int = 0
    interrupted: str | None = None

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal number when interrupted (130 Ctrl-C, 143 SIGTERM)."""
        if self.interrupted is None:
            return 0
        return 128 + int(signal.Signals[self.interrupted])


def output_dir(sweep: Sweep, output: str | Path | None) -> Path:
    """``--output`` or results/<name>, absolute."""
    return Path(output).resolve() if output else (Path("results") / sweep.name).resolve()


def _check_data(data: ImageData, out: Path) -> None:
    """The check-data checks before the first trial: warn, never block (check_data.json)."""
    import json

    from overfit_search.data.check import check_data, leak_warning

    try:
        report = check_data(data)
    except Exception:  # a check must not cost the sweep
        logger.warning("could not check the data", exc_info=True)
        return
    (out / "check_data.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    warning = leak_warning(report)
    if warning:
        logger.warning("%s", warning)


def write_review(study: optuna.Study, out: Path) -> None:
    """report.html, its PNGs and the dashboard's figures; a failure here never fails the sweep."""
    from overfit_search.results.report import write_review as write

    try:
        write(out, study)
    except Exception:  # the trials are safe in the study; the review can be rebuilt
        logger.warning(
            "could not write the report (rebuild it with `overfit-search report %s`)",
            out,
            exc_info=True,
        )


def storage_url(sweep: Sweep, out: Path) -> str:
    """The study's storage URL: ``study.storage`` or SQLite in the output directory."""
    return sweep.study.storage or f"sqlite:///{out / 'study.db'}"


def _existing_study(url: str, name: str) -> bool:
    try:
        names = optuna.study.get_all_study_names(storage=open_storage(url))
    except Exception as exc:  # a driver missing, a server down, a bad URL: the user's setting
        shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigError(
            f"study.storage: cannot open {shown} ({type(exc).__name__}: {detail})"
        ) from None
    return name in names


def _prepare_output(sweep: Sweep, out: Path, resume: bool, overwrite: bool) -> str:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--output: cannot write to {out} ({exc.strerror})") from None
    url = storage_url(sweep, out)
    exists = _existing_study(url, sweep.name)
    if exists and overwrite:
        if sweep.study.storage:
            optuna.delete_study(study_name=sweep.name, storage=url)
        clear_results(out)
    elif exists and not resume:
        raise ConfigError(
            f"{out}: already holds study '{sweep.name}'; pass --resume to continue it or "
            "--overwrite to start afresh"
        )
    elif resume and not exists:
        logger.info("no study to resume in %s: starting a new one", out)
    return url


def _write_sweep_yaml(sweep: Sweep, out: Path) -> None:
    from overfit_search import __version__

    doc = sweep.model_dump(mode="json", exclude_none=True)
    header = f"# resolved sweep as run by overfit-search {__version__}\n"
    (out / "sweep.yaml").write_text(header + yaml.safe_dump(doc, sort_keys=False))


def _fail_unfinished(study: optuna.Study, numbers: set[int] | None, reason: str) -> int:
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


class _Heartbeat:
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

    def __enter__(self) -> _Heartbeat:
        if getattr(self.storage, "heartbeat_interval", None):
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()


def _drop_checkpoints(study: optuna.Study, out: Path) -> None:
    """Delete epoch checkpoints no resume will need: all but unfinished, interrupted trials'."""
    trials = study.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get(RESUMED_FROM) for t in trials if t.state.is_finished()}
    for t in trials:
        keep = t.state == TrialState.RUNNING or (
            t.user_attrs.get(TrialAttr.FAIL_REASON) == "interrupted" and t.number not in rerun
        )
        if not keep:
            for path in (out / "trials" / str(t.number)).glob(CHECKPOINT_GLOB):
                path.unlink(missing_ok=True)


def _rerun_attrs(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """User attributes of a trial's re-run: where it resumes from, and what it was."""
    attrs: dict[str, Any] = {RESUMED_FROM: trial.number}
    if trial.user_attrs.get(TrialAttr.BASELINE):
        attrs[TrialAttr.BASELINE] = True
    if trial.user_attrs.get(PINNED_ATTR):
        attrs[PINNED_ATTR] = trial.user_attrs[PINNED_ATTR]
    return attrs


def _requeue_interrupted(study: optuna.Study, limit: int) -> int:
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
    with _output_lock(out):
        return _run_locked(sweep, out, resume, overwrite, progress, force)


@contextlib.contextmanager
def _output_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the run: a second ``run`` on the same output is refused."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = (out / LOCK_FILE).open("a+")
    except OSError as exc:
        raise ConfigError(f"--output: cannot write to {out} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"{out}: another overfit-search run is writing here ({holder}); wait for it "
                "to end or pass another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


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
    url = _prepare_output(sweep, out, resume, overwrite)

    from overfit_search.data import load_data, sorted_split_warning
    from overfit_search.paths import data_cache

    if sweep.data.split == "sorted":
        logger.warning("%s", sorted_split_warning(sweep.data.validation_fraction))
    data = load_data(sweep.data, cache_dir=data_cache())
    for warning in data.warnings:
        logger.warning("%s", warning)
    _check_data(data, out)
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
    _write_sweep_yaml(sweep, out)
    if data.skipped:
        logger.warning(
            "%d unreadable image(s) skipped; listed in %s", len(data.skipped), out / "skipped.csv"
        )
        pd.DataFrame(data.skipped, columns=["file", "reason"]).to_csv(
            out / "skipped.csv", index=False
        )

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
        _fail_unfinished(study, None, "interrupted")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
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
        requeued = _requeue_interrupted(study, to_run)
        if requeued:
            logger.info("re-running %d interrupted configuration(s) first", requeued)
    if setup is not None:
        study.set_user_attr(STUDY_ATTR, study_attr(setup))
    if not finished_before:
        study.set_user_attr(StudyAttr.OBJECTIVE, sweep.objective.model_dump())
        study.set_user_attr(StudyAttr.MAX_EPOCHS, sweep.train.max_epochs)
        base = baseline_params(sweep.search, sweep.train)
        if base is not None:
            attrs: dict[str, Any] = {TrialAttr.BASELINE: True}
            pins = baseline_pins(sweep.search, sweep.train)
            if pins:
                attrs[PINNED_ATTR] = pins
            study.enqueue_trial(base, user_attrs=attrs, skip_if_exists=True)

    rule = make_rule(**sweep.pruning.rule.model_dump())
    budget = sweep.pruning.budget
    judge = OverfitJudge(
        rule,
        grace_epochs=sweep.pruning.grace_epochs,
        compare=sweep.pruning.compare,
        compare_min_trials=sweep.pruning.compare_min_trials,
        budget=make_budget(**budget.model_dump()) if budget.name != "none" else None,
    )
    for t in finished_before:
        hist = t.user_attrs.get(TrialAttr.VAL_LOSS_HISTORY) or [
            t.intermediate_values[k] for k in sorted(t.intermediate_values)
        ]
        if t.state != TrialState.FAIL and hist:
            judge.seed(f"earlier-{t.number}", hist)

    tracker = SweepProgress(sweep.name, to_run, already=done_before, enabled=progress)
    trial_data = data.without_test()  # the test split stays out of every trial
    interrupted, broken = _run_tune(
        trial_sweep, study, space, fixed, judge, trial_data, out, to_run, tracker, ray_started
    )

    _fail_unfinished(study, tracker.numbers if sweep.study.storage else None, "interrupted")
    _drop_checkpoints(study, out)
    best = write_exports(study, sweep, out, fixed)
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
    saved = 0
    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE, TrialState.PRUNED]):
        if t.user_attrs.get(TrialAttr.STOPPED_EARLY) and t.user_attrs.get(TrialAttr.EPOCHS_RUN):
            saved += sweep.train.max_epochs - int(t.user_attrs[TrialAttr.EPOCHS_RUN])
    result = SweepResult(study, best, out, paths, saved, interrupted)
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


def _first_fail_reason(study: optuna.Study) -> str:
    for t in study.get_trials(deepcopy=False, states=[TrialState.FAIL]):
        if t.user_attrs.get(TrialAttr.FAIL_REASON):
            return str(t.user_attrs[TrialAttr.FAIL_REASON])
    return "unknown"


def _address(sweep: Sweep) -> str | None:
    """The Ray cluster the sweep attaches to (``resources.ray_address`` or ``RAY_ADDRESS``)."""
    return sweep.resources.ray_address or os.environ.get("RAY_ADDRESS") or None


def _ray_init(sweep: Sweep) -> bool:
    """Start (or join) Ray; return True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    env = {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # fractional GPUs: packed trials share memory
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "PYTHONWARNINGS": "ignore",
        # a stopped trial ends at its next batch (training/trial.py), but the clean metrics
        # after an epoch can take a while on big data: wait for it before reusing the worker,
        # or Ray fails the next trial ("reuse requires reset_config() ... return True")
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": "600",
    }
    passed = ("KERAS_BACKEND", "OVERFIT_SEARCH_CACHE", "OVERFIT_SEARCH_UNSAFE_LOAD")
    for key in (*passed, "TFHUB_CACHE_DIR", "TF_CPP_MIN_LOG_LEVEL"):
        if key in os.environ:
            env[key] = os.environ[key]
    # Only an address the user gave (the sweep, or RAY_ADDRESS as Ray's own tools read it):
    # never attach on a guess to a stale `ray start` left on this machine.
    address = _address(sweep) or "local"
    kwargs: dict[str, Any] = {
        "address": address,
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "runtime_env": {"env_vars": env},
    }
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        setting = "resources.ray_address" if sweep.resources.ray_address else "RAY_ADDRESS"
        raise ConfigError(f"{setting}: cannot connect to {address}: {exc}") from None
    return True


def _run_tune(
    sweep: Sweep,
    study: optuna.Study,
    space: dict[str, Any],
    fixed: dict[str, Any],
    judge: OverfitJudge,
    data: Any,
    out: Path,
    to_run: int,
    tracker: SweepProgress,
    ray_started: bool = False,
) -> tuple[str | None, str | None]:
    """Run ``to_run`` trials through Ray Tune.

    ``ray_started``: Ray was started for this sweep already (by the setup check); it is shut
    down at the end here as if this call had started it.

    Returns:
        The signal that interrupted it (``SIGINT``/``SIGTERM``) or None, and the broken-setup
        error or None.
    """
    if to_run == 0:
        if ray_started:
            import ray

            ray.shutdown()
        return None, None
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from overfit_search.orchestration.relay import needs_sink, start_sink, write_token
    from overfit_search.orchestration.schedulers import make_scheduler
    from overfit_search.orchestration.searcher import OverfitOptunaSearch
    from overfit_search.orchestration.stopper import OverfitStopper
    from overfit_search.orchestration.trainable import train_trial

    searcher = OverfitOptunaSearch(
        study, space, fixed, judge, sweep, progress=tracker, trials_dir=out / "trials"
    )
    started_ray = _ray_init(sweep) or ray_started
    res = sweep.resources
    max_concurrent = res.max_concurrent
    if max_concurrent is None:
        cluster = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = cluster.get("CPU", 1)
        gpus = cluster.get("GPU", 0)
        by_cpu = int(cpus // res.cpus_per_trial) or 1
        by_gpu = int(gpus // res.gpus_per_trial) if res.gpus_per_trial else by_cpu
        max_concurrent = max(1, min(by_cpu, by_gpu or 1))
    search_alg = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    scheduler = make_scheduler(sweep)
    token = write_token(out)
    sink = start_sink(out, token) if needs_sink(_address(sweep)) else None
    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            data=data,
            sweep_json=sweep.model_dump(mode="json"),
            output=str(out),
            token=token if sink is not None else None,
        ),
        {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial},
    )
    stopper = OverfitStopper(judge, sweep.study.max_total_epochs)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=to_run,
            reuse_actors=True,
            time_budget_s=sweep.study.timeout,
        ),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str(out),
            stop=stopper,
            verbose=0,
            progress_reporter=None,
            log_to_file=True,
        ),
    )
    interrupted: str | None = None
    # Ray Tune's own SIGINT handler swallows the first Ctrl-C without telling us. Instead we
    # catch SIGINT and SIGTERM, remember which, and ask Ray for its graceful stop through
    # SIGUSR1 (the handler tune.run always installs); a second signal stops at once.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if interrupted is not None:
            raise KeyboardInterrupt
        interrupted = signal.Signals(signum).name
        logger.warning("%s: stopping the running trials (again to stop at once)", interrupted)
        os.kill(os.getpid(), signal.SIGUSR1)

    for sig in previous:
        signal.signal(sig, on_signal)
    storage = compat.backend_storage(study)  # Optuna wraps RDB in a cache
    try:
        with tracker, _Heartbeat(storage, searcher.running_storage_ids):
            tuner.fit()
    except KeyboardInterrupt:
        interrupted = interrupted or "SIGINT"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_ray:
            ray.shutdown()
    if not interrupted:  # trials a study budget ended are PRUNED at their best so far, not lost
        if stopper.stop_all():
            budget = f"study.max_total_epochs={sweep.study.max_total_epochs} reached"
            searcher.finish_cut_short("budget", budget)
        elif sweep.study.timeout is not None:
            searcher.finish_cut_short("timeout", f"study.timeout={sweep.study.timeout:g}s reached")
    return interrupted, searcher.broken
