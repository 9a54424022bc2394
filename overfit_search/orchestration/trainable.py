"""The Ray Tune function trainable: one trial in a (reused) worker process."""

from __future__ import annotations

import math
import os
import re
import traceback
from pathlib import Path
from typing import Any

from ray import tune

from overfit_search.config.schema import Sweep
from overfit_search.data.dataset import ImageData
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


def _stop_requested() -> bool:
    """Whether Ray has asked this trial to stop (it sets the session's stop event first, then
    waits TUNE_FUNCTION_THREAD_TIMEOUT_S for the training thread before reusing the worker)."""
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return bool(session is not None and session.stop_event.is_set())
    except Exception:  # private Ray API (pinned <2.61): without it, epochs end as before
        return False


def train_trial(
    config: dict[str, Any], data: ImageData, sweep_json: dict[str, Any], output: str
) -> None:
    """Run one trial and report every epoch to Ray Tune.

    A trial that raises reports one last result with a ``failed`` reason (and its traceback
    is kept in ``trials/<number>/traceback.txt``) instead of crashing the Ray trial, so the
    reason reaches the study. Ray's own stop request (``SystemExit``) passes through.
    """
    from overfit_search.training.trial import TrialStopped, run_trial  # Keras: worker only

    params = dict(config)
    number = int(params.pop(TRIAL_NUMBER_KEY))
    resume_from = params.pop(RESUME_KEY, None)
    sweep = Sweep.model_validate(sweep_json)
    trial_dir = Path(output) / "trials" / str(number)
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "traceback.txt").unlink(missing_ok=True)
    import ray

    with (trial_dir / "trial.log").open("a") as fh:  # the resources Ray gave this trial
        gpus = ray.get_gpu_ids()
        fh.write(f"ray resources: GPU ids {gpus}, CUDA_VISIBLE_DEVICES "
                 f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}\n")  # fmt: skip
    last_epoch = 0

    def report(row: dict[str, Any]) -> None:
        nonlocal last_epoch
        last_epoch = int(row["epoch"])
        tune.report(dict(row))

    # A re-run of an interrupted trial keeps that trial's seed: the same configuration again.
    seed = trial_seed(sweep, number if resume_from is None else int(resume_from))
    try:
        earlier = None if resume_from is None else trial_dir.parent / str(resume_from)
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
        tune.report(
            {"epoch": last_epoch + 1, "val_loss": nan, "train_eval_loss": nan, "failed": reason}
        )
