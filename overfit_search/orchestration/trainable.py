"""The Ray Tune function trainable: one trial in a (reused) worker process."""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from overfit_search.config.schema import Sweep
from overfit_search.data.dataset import ImageData
from overfit_search.layout import CRASH_REASON_FILE, ResultKey
from overfit_search.orchestration.relay import TrialFolder
from overfit_search.orchestration.searcher import RESUME_KEY, TRIAL_NUMBER_KEY
from overfit_search.search_space import trial_seed

_OOM = ("ResourceExhaustedError", "MemoryError", "OutOfMemoryError", "XlaRuntimeError")


def failure_reason(exc: BaseException) -> str:
    """One line for the study: the error, with out-of-memory said plainly and how to avoid it."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(exc)).strip()
    first = (text.splitlines() or [""])[0]
    name = type(exc).__name__
    if name in _OOM and (name != "XlaRuntimeError" or "RESOURCE_EXHAUSTED" in text):
        return (
            f"out of memory ({name}: {first[:300]}); lower train.batch_size or "
            "data.image_size, or give each trial more of a GPU (resources.gpus_per_trial)"
        )
    return f"{name}: {first}"[:500]


HANG_GRACE_S = 30.0
"""The hang watchdog waits this long (or a tenth of ``train.trial_timeout`` if that is longer)
past the timeout: time for the per-batch check to fail the trial the normal way first."""

HANG_GRACE_ENV = "OVERFIT_SEARCH_HANG_GRACE_S"
"""Seconds that replace :data:`HANG_GRACE_S` when set (the driver passes it to Ray's workers):
a shorter grace for tests whose trials hang on purpose."""

HANG_EXIT_CODE = 70


def hang_deadline(trial_timeout: float) -> float:
    """Seconds after its start at which a trial still running is taken to hang.

    ``train.trial_timeout`` is checked after every compiled call of batches and every epoch,
    which fails the trial cleanly and keeps its worker. A trial that gets past the timeout by
    this much never reached such a check: it hangs inside a batch, an evaluation, model
    building or data loading, where no Python code of ours runs.
    """
    grace = float(os.environ.get(HANG_GRACE_ENV) or HANG_GRACE_S)
    return trial_timeout + max(grace, 0.1 * trial_timeout)


class HangWatchdog:
    """Ends the worker process of a trial that hangs past its timeout, saying why first.

    Nothing can interrupt a thread stuck in a TensorFlow or JAX kernel, so the watchdog, a
    daemon timer thread, writes the reason to ``trials/<n>/`` (:data:`CRASH_REASON_FILE`,
    which the searcher records as the trial's FAIL reason, and ``trial.log``), dumps every
    thread's stack to ``traceback.txt``, and ends the process. Ray Tune then sees the
    trial's actor die, the study records FAIL, and the next trial starts in a new worker.

    Args:
        trial_dir: The trial's folder.
        trial_timeout: ``train.trial_timeout`` in seconds.
        end_process: Called with :data:`HANG_EXIT_CODE` to end the process (``os._exit``:
            no cleanup, since a hung thread could block it).
        before_exit: Called after the reason is written, before the process ends (sends the
            trial's files to a driver on another machine).
    """

    def __init__(
        self,
        trial_dir: Path,
        trial_timeout: float,
        end_process: Callable[[int], object] = os._exit,
        before_exit: Callable[[], object] | None = None,
    ) -> None:
        self.trial_dir = trial_dir
        self._before_exit = before_exit
        self.trial_timeout = trial_timeout
        self.deadline = hang_deadline(trial_timeout)
        self._end_process = end_process
        self._started = 0.0  # set when the trial enters
        self._timer = threading.Timer(self.deadline, self._fire)
        self._timer.daemon = True
        self._lock = threading.Lock()
        self._done = False

    def __enter__(self) -> HangWatchdog:
        self._started = time.monotonic()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:  # a trial that ended is never ended by a late firing
            self._done = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        seconds = time.monotonic() - self._started
        reason = (
            f"hung: still running {seconds:.0f}s after it started, past "
            f"train.trial_timeout={self.trial_timeout:g}s, without finishing a batch to stop "
            f"at; its worker process was ended (thread stacks in trials/{self.trial_dir.name}/"
            "traceback.txt)"
        )
        try:
            (self.trial_dir / CRASH_REASON_FILE).write_text(reason + "\n")
            with (self.trial_dir / "trial.log").open("a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {reason}\n")
            with (self.trial_dir / "traceback.txt").open("w") as fh:
                faulthandler.dump_traceback(fh, all_threads=True)
            if self._before_exit is not None:  # the reason reaches a driver elsewhere
                self._before_exit()
        finally:
            self._end_process(HANG_EXIT_CODE)


def _stop_requested() -> bool:
    """Whether Ray has asked this trial to stop (it sets the session's stop event first, then
    waits TUNE_FUNCTION_THREAD_TIMEOUT_S for the training thread before reusing the worker)."""
    try:
        from overfit_search.orchestration.compat import get_session

        session = get_session()
        return bool(session is not None and session.stop_event.is_set())
    except Exception:  # private Ray API (pinned <2.61): without it, epochs end as before
        return False


def train_trial(
    config: dict[str, Any],
    data: ImageData,
    sweep_json: dict[str, Any],
    output: str,
    token: str | None = None,
) -> None:
    """Run one trial and report every epoch to Ray Tune.

    A trial that raises reports one last result with a ``failed`` reason (and its traceback
    is kept in ``trials/<number>/traceback.txt``) instead of crashing the Ray trial, so the
    reason reaches the study. Ray's own stop request (``SystemExit``) passes through.

    ``token``: the sweep's :mod:`~overfit_search.orchestration.relay` token. With it, a
    worker that does not see the driver's ``output`` folder (another machine of a cluster
    without a shared filesystem) writes a scratch folder and sends its files to the driver.
    """
    from overfit_search.training.trial import TrialStopped, run_trial  # Keras: worker only

    params = dict(config)
    number = int(params.pop(TRIAL_NUMBER_KEY))
    resume_from = params.pop(RESUME_KEY, None)
    sweep = Sweep.model_validate(sweep_json)
    folder = TrialFolder(output, token, number) if token else None
    trial_dir = folder.path if folder else Path(output) / "trials" / str(number)
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "traceback.txt").unlink(missing_ok=True)
    (trial_dir / CRASH_REASON_FILE).unlink(missing_ok=True)
    import ray

    with (trial_dir / "trial.log").open("a") as fh:  # where Ray ran this trial, and on what
        node = ray.get_runtime_context().get_node_id()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        fh.write(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} ray resources: node {node}, {where(folder)}, "
            f"GPU ids {ray.get_gpu_ids()}, CUDA_VISIBLE_DEVICES {visible!r}\n"
        )

    def sync() -> None:
        if folder:
            folder.sync()

    last_epoch = 0

    def report(row: dict[str, Any]) -> None:
        nonlocal last_epoch
        last_epoch = int(row[ResultKey.EPOCH])
        sync()  # the driver has this epoch's files before it sees the epoch
        tune.report(dict(row))

    # A re-run of an interrupted trial keeps that trial's seed: the same configuration again.
    seed = trial_seed(sweep, number if resume_from is None else int(resume_from))
    timeout = sweep.train.trial_timeout
    try:
        earlier = None
        if resume_from is not None:
            earlier = (
                folder.earlier(int(resume_from)) if folder else trial_dir.parent / str(resume_from)
            )
        last_words = (lambda: folder.sync(timeout=10.0)) if folder else None
        watchdog = HangWatchdog(trial_dir, timeout, before_exit=last_words) if timeout else None
        with watchdog or contextlib.nullcontext():
            run_trial(
                sweep,
                params,
                data,
                report,
                trial_dir,
                seed=seed,
                resume_from=earlier,
                should_stop=_stop_requested,
            )
    except TrialStopped:
        return  # stopped by the stopper or the scheduler: already recorded from its reports
    except Exception as exc:
        (trial_dir / "traceback.txt").write_text(traceback.format_exc())
        reason = failure_reason(exc)
        nan = math.nan
        sync()
        tune.report(
            {
                ResultKey.EPOCH: last_epoch + 1,
                ResultKey.VAL_LOSS: nan,
                ResultKey.TRAIN_EVAL_LOSS: nan,
                ResultKey.FAILED: reason,
            }
        )
    finally:
        if folder:
            folder.close()


def where(folder: TrialFolder | None) -> str:
    """How the trial's folder reaches the results (trial.log says it)."""
    if folder is None or folder.shared:
        return "writing the results folder"
    return f"no shared filesystem: writing {folder.path}, sent to the driver"
