"""Before the first trial: resolve ``preprocess: auto`` and check the backbone's features.

The probe itself (:mod:`overfit_search.models.probe`) needs Keras, and the sweep driver does
not import it: a TensorFlow import there costs seconds and hundreds of MB for the whole sweep,
and on a GPU machine TensorFlow would take the GPU's memory in the driver, away from the trials.
So the probe runs as one Ray task with a trial's resources (``max_calls=1``: its worker process
exits afterwards and gives its memory back), on a small seeded sample of the images (sent
through the object store; never the whole data set). Its result decides ``model.preprocess``
for a guessed ``file:``/``tfhub:`` convention, which :func:`resolve_setup` writes into the
sweep the results keep (sweep.yaml, hence best.yaml, retrain, export and ``--resume``), and
whether the sweep may start at all.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from overfit_search.config import Sweep
from overfit_search.data.dataset import ImageData
from overfit_search.errors import ConfigError
from overfit_search.layout import CHECK_MODEL_FILE, StudyAttr
from overfit_search.models.flips import FlipVerdict
from overfit_search.models.probe import ProbeResult, flip_note, probe_sample

logger = logging.getLogger(__name__)

CHECK_FILE = CHECK_MODEL_FILE
"""The setup check's table and verdict, in the results directory."""
STUDY_ATTR = StudyAttr.SETUP_CHECK
"""Study user attribute: the chosen convention, how it was decided, the verdict and seconds."""
MIN_TIMEOUT_S = 120.0
"""With ``train.trial_timeout`` set, the probe may take ``max(this, 2 * trial_timeout)``
seconds (worker start and the framework import included) before it is abandoned."""


def _probe_task(
    model_json: dict[str, Any],
    image_size: int,
    sample: tuple[Any, Any, Any, Any],
    num_classes: int,
    mirror: bool = False,
) -> dict[str, Any]:
    """The Ray task: build the backbone in a worker and probe it (Keras loads here only)."""
    from overfit_search.config.schema import ModelConfig
    from overfit_search.models.probe import probe_backbone

    try:
        cfg = ModelConfig.model_validate(model_json)
        result = probe_backbone(cfg, image_size, sample, num_classes, mirror=mirror)
    except ConfigError as exc:  # a missing file, an unknown layer: the user's input
        return {"config_error": str(exc)}
    return {"result": result.to_dict()}


def _stored(out: Path, section: str, key: str) -> Any:
    """``section.key`` of the sweep.yaml an earlier run of this study wrote, or None."""
    try:
        doc = yaml.safe_load((out / "sweep.yaml").read_text())
        return doc[section][key]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def stored_preprocess(out: Path) -> str | None:
    """``model.preprocess`` of the sweep.yaml an earlier run of this study wrote, or None."""
    value = _stored(out, "model", "preprocess")
    return str(value) if value else None


def _with_flip(sweep: Sweep, flip: bool) -> Sweep:
    train = sweep.train.model_copy(update={"augment_flip": flip})
    return sweep.model_copy(update={"train": train})


def _resolve_flip(sweep: Sweep, result: ProbeResult | None, out: Path, resume: bool) -> Sweep:
    """``train.augment_flip: auto`` made true or false: as an earlier run of the study chose
    (``--resume``), else by the probe's flip check, else (no probe) flips on, as before auto."""
    if sweep.train.augment_flip != "auto":
        return sweep
    stored = _stored(out, "train", "augment_flip") if resume else None
    if isinstance(stored, bool):
        logger.info("train.augment_flip: %s, as chosen when this study started", stored)
        return _with_flip(sweep, stored)
    if result is not None and result.flip is not None:
        verdict = FlipVerdict(**result.flip)
        logger.info("%s", verdict.sentence())
        return _with_flip(sweep, verdict.flip)
    logger.warning("train.augment_flip: auto -> true (the flip check could not run)")
    return _with_flip(sweep, True)


def _with_preprocess(sweep: Sweep, preprocess: str) -> Sweep:
    model = sweep.model.model_copy(update={"preprocess": preprocess})
    return sweep.model_copy(update={"model": model})


def _run_probe(sweep: Sweep, data: ImageData) -> tuple[dict[str, Any] | None, bool]:
    """Run the probe task; return its answer (None when it could not run) and whether this
    call started Ray (the caller's sweep keeps it and shuts it down)."""
    import ray

    from overfit_search.orchestration.launch import ray_init

    started = ray_init(sweep)
    res = sweep.resources
    task = ray.remote(
        num_cpus=res.cpus_per_trial, num_gpus=min(1.0, res.gpus_per_trial), max_calls=1
    )(_probe_task)
    sample = probe_sample(data, sweep.study.seed)
    ref = task.remote(
        sweep.model.model_dump(mode="json"),
        sweep.data.image_size,
        sample,
        data.num_classes,
        sweep.train.augment_flip == "auto",
    )
    limit = sweep.train.trial_timeout
    timeout = None if limit is None else max(MIN_TIMEOUT_S, 2 * limit)
    try:
        return ray.get(ref, timeout=timeout), started
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        logger.warning("setup check: the backbone probe took over %.0fs; skipped", timeout)
    except Exception as exc:  # a check must not cost the sweep: the trials will say more
        text = str(exc).strip().splitlines()
        logger.warning("setup check: the backbone probe failed (%s)", text[-1] if text else exc)
    return None, started


def resolve_setup(
    sweep: Sweep, data: ImageData, out: Path, *, resume: bool, force: bool
) -> tuple[Sweep, ProbeResult | None, bool]:
    """Resolve ``preprocess: auto`` and run the setup check, before the first trial.

    On ``--resume`` the convention an earlier run chose (its sweep.yaml) is reused and nothing
    is probed again, so every trial of a study sees the same inputs.

    Args:
        sweep: The sweep as loaded.
        data: The decoded data (the probe samples its training and validation splits).
        out: The results directory (``check_model.json`` is written there).
        resume: Whether this run continues an existing study.
        force: Start even when the check finds the features at chance.

    Returns:
        The sweep with the chosen convention, the probe's result (None when it did not run),
        and whether Ray was started here (the caller shuts it down).

    Raises:
        ConfigError: The backbone cannot be built, or (without ``force``) its features do not
            separate the classes under any convention tried.
    """
    note = flip_note(sweep)
    if note:
        logger.info("note: %s", note)
    stored = stored_preprocess(out) if resume else None
    if stored is not None:
        if sweep.model.preprocess == "auto" and stored != "auto":
            logger.info("model.preprocess: %s, as chosen when this study started", stored)
            sweep = _with_preprocess(sweep, stored)
        return _resolve_flip(sweep, None, out, resume), None, False
    start = time.perf_counter()
    answer, started = _run_probe(sweep, data)
    if answer is None:
        return _resolve_flip(sweep, None, out, resume), None, started
    if "config_error" in answer:
        _shutdown(started)
        raise ConfigError(answer["config_error"])
    result = ProbeResult.from_dict(answer["result"])
    seconds = time.perf_counter() - start
    if note:
        result.notes.append(note)
    (out / CHECK_FILE).write_text(
        json.dumps({**result.to_dict(), "wall_seconds": seconds}, indent=2) + "\n"
    )
    logger.info(
        "setup check: linear probe of the frozen backbone on %d training / %d validation "
        "images (%.1fs in the worker, %.1fs in all):",
        result.train_images,
        result.val_images,
        result.seconds,
        seconds,
    )
    for line in result.table().splitlines():
        logger.info("  %s", line)
    if result.decided_by == "probe":
        logger.info("model.preprocess: auto -> %s (the probe's choice)", result.chosen)
        sweep = _with_preprocess(sweep, result.chosen)
    logger.info("setup check: %s", result.verdict())
    if not result.passed:
        if not force:
            _shutdown(started)
            raise ConfigError(f"setup check: {result.verdict()}")
        logger.warning("setup check failed; going on (--force)")
    return _resolve_flip(sweep, result, out, resume), result, started


def study_attr(result: ProbeResult) -> dict[str, Any]:
    """What the study keeps of the check (:data:`STUDY_ATTR`)."""
    return {
        "preprocess": result.chosen,
        "decided_by": result.decided_by,
        "passed": result.passed,
        "ok": result.ok,
        "probe_seconds": round(result.seconds, 2),
        "val_accuracy": {r.convention: round(r.val_accuracy, 4) for r in result.rows},
    }


def _shutdown(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
