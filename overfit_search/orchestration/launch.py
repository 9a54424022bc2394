"""The Ray side of a sweep: start or join Ray, and run the trials through Ray Tune."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import optuna

from overfit_search.config import Sweep
from overfit_search.errors import ConfigError
from overfit_search.orchestration import compat
from overfit_search.orchestration.progress import SweepProgress
from overfit_search.orchestration.study import Heartbeat
from overfit_search.pruning import OverfitJudge

logger = logging.getLogger(__name__)


def _address(sweep: Sweep) -> str | None:
    """The Ray cluster the sweep attaches to (``resources.ray_address`` or ``RAY_ADDRESS``)."""
    return sweep.resources.ray_address or os.environ.get("RAY_ADDRESS") or None


def ray_init(sweep: Sweep) -> bool:
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
    passed = (
        "KERAS_BACKEND",
        "OVERFIT_SEARCH_CACHE",
        "OVERFIT_SEARCH_UNSAFE_LOAD",
        "OVERFIT_SEARCH_HANG_GRACE_S",  # trainable.HANG_GRACE_ENV
    )
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


def run_tune(
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
    started_ray = ray_init(sweep) or ray_started
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
        with tracker, Heartbeat(storage, searcher.running_storage_ids):
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
