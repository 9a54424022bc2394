"""Data-parallel training over a trial's GPUs when ``resources.gpus_per_trial`` is 2 or more.

Ray hands a trial process ``resources.gpus_per_trial`` GPUs through ``CUDA_VISIBLE_DEVICES``;
:func:`data_parallel` makes Keras use all of them: a ``tf.distribute.MirroredStrategy`` scope on
the TensorFlow backend, a ``keras.distribution.DataParallel`` distribution on the JAX backend.
Build, compile and fit the model inside it; the batch size given to ``fit`` is the global batch,
split evenly between the replicas.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras

__all__ = [
    "data_parallel",
    "replicas_for",
    "steps_per_execution_for",
    "undistributed",
    "visible_gpus",
]


def replicas_for(gpus_per_trial: float) -> int:
    """How many data-parallel replicas ``resources.gpus_per_trial`` asks for.

    Args:
        gpus_per_trial: GPUs Ray reserves for one trial; fractions below 1 share a GPU.

    Returns:
        1 below 2 GPUs (no data parallelism), else the whole number of GPUs.

    Raises:
        ValueError: For a negative or non-finite value, or a non-integer above 1 (Ray accepts
            fractions only below 1).
    """
    value = float(gpus_per_trial)
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"resources.gpus_per_trial must be a finite number >= 0, got {gpus_per_trial!r}"
        )
    if value > 1 and not value.is_integer():
        raise ValueError(
            "resources.gpus_per_trial above 1 must be a whole number of GPUs (Ray allows "
            f"fractions only below 1), got {gpus_per_trial!r}"
        )
    return int(value) if value >= 2 else 1


def steps_per_execution_for(requested: int, replicas: int) -> int:
    """The ``steps_per_execution`` to compile with when training over ``replicas`` devices.

    On the TensorFlow backend, Keras 3's multi-step loop (``steps_per_execution > 1``) fails
    under a ``MirroredStrategy`` ("You must feed a value for placeholder tensor
    'while/cond/Placeholder'", keras-team/keras#19246), so it must be 1 there. The JAX
    backend's ``DataParallel`` runs several steps per call fine.

    Args:
        requested: The sweep's ``train.steps_per_execution``.
        replicas: What :func:`data_parallel` yielded.

    Returns:
        ``requested``, or 1 on the TensorFlow backend with more than one replica.
    """
    if replicas > 1 and keras.backend.backend() == "tensorflow":
        return 1
    return requested


def visible_gpus(backend: str) -> list[Any]:
    """The GPUs this process can see, as the backend names them (empty when none)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices("GPU")]
    if backend == "jax":
        import jax

        try:
            return list(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend initialised ("Unknown backend gpu")
            return []
    return []


def _device_name(device: Any) -> str:
    """A device as a short string: TF names stay as given, JAX devices become ``cpu:0``."""
    platform = getattr(device, "platform", None)
    index = getattr(device, "id", None)
    if platform is not None and index is not None:
        return f"{platform}:{index}"
    return str(device)


def _batch_note(batch_size: int | None, replicas: int) -> str:
    """``; global batch 32 = 16 per replica`` (empty without a batch size).

    A global batch that does not split evenly fails: on TensorFlow at the start of every
    ``fit`` (Keras reduces the first batch across replicas), on JAX for any such batch.
    """
    if batch_size is None:
        return ""
    if batch_size % replicas == 0:
        return f"; global batch {batch_size} = {batch_size // replicas} per replica"
    return (
        f"; global batch {batch_size} ~ {batch_size / replicas:.2f} per replica (WARNING: "
        f"not a multiple of {replicas}; uneven batches fail in Keras's fit)"
    )


@contextlib.contextmanager
def data_parallel(
    gpus_per_trial: float,
    log: Callable[[str], None],
    devices: Sequence[Any] | None = None,
    *,
    batch_size: int | None = None,
) -> Iterator[int]:
    """Train data-parallel over the trial's GPUs for the duration of the ``with`` block.

    Below 2 GPUs this does nothing and yields 1. Otherwise it picks ``int(gpus_per_trial)``
    devices and, on the TensorFlow backend, enters ``tf.distribute.MirroredStrategy(devices)``'s
    scope (a model built inside keeps the strategy for its later compiles, fits and predicts);
    on the JAX backend it sets ``keras.distribution.DataParallel(devices=...)`` as the global
    distribution and restores the previous one on exit. When fewer devices are found than
    asked for, it logs one warning line and yields 1: the trial trains on one device.

    Args:
        gpus_per_trial: The sweep's ``resources.gpus_per_trial``.
        log: Receives one line describing the set-up (or the warning), nothing below 2 GPUs.
        devices: The devices to replicate over (TF device names such as ``"/gpu:0"`` or
            ``"/cpu:1"``; JAX ``jax.Device`` objects or Keras names such as ``"cpu:0"``).
            Defaults to the visible GPUs.
        batch_size: The global batch size given to ``fit``; only used in the logged line.

    Yields:
        The number of replicas a batch is split over (1 when not data-parallel).

    Raises:
        ValueError: When ``gpus_per_trial`` is invalid (see :func:`replicas_for`).
    """
    replicas = replicas_for(gpus_per_trial)
    if replicas == 1:
        yield 1
        return
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        log(
            f"WARNING: resources.gpus_per_trial = {gpus_per_trial:g} but data-parallel "
            f"training is not supported on the {backend} backend; training on one device"
        )
        yield 1
        return
    found = list(devices) if devices is not None else visible_gpus(backend)
    if len(found) < replicas:
        log(
            f"WARNING: resources.gpus_per_trial = {gpus_per_trial:g} asks for {replicas} "
            f"devices but {len(found)} found; training on one device"
        )
        yield 1
        return
    chosen = found[:replicas]
    names = ", ".join(_device_name(device) for device in chosen)
    note = _batch_note(batch_size, replicas)
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices=[str(device) for device in chosen])
        log(f"data-parallel over {replicas} devices (MirroredStrategy): {names}{note}")
        with strategy.scope():
            yield replicas
        return
    distribution = keras.distribution.DataParallel(
        devices=[_device_name(device) for device in chosen]
    )
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    log(f"data-parallel over {replicas} devices (DataParallel): {names}{note}")
    try:
        yield replicas
    finally:
        keras.distribution.set_distribution(previous)


@contextlib.contextmanager
def undistributed() -> Iterator[None]:
    """Run the block without the JAX backend's global distribution (a no-op elsewhere).

    ``DataParallel`` splits every batch evenly over its devices, so a ``predict`` over a
    validation set whose size is not a multiple of them fails; a model trained under it
    predicts the same outside it (checked on two CPU devices). TensorFlow's
    ``MirroredStrategy`` handles uneven batches itself.
    """
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        yield
        return
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)
