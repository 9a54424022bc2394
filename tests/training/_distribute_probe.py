"""Run by tests/training/test_distribute.py in a fresh process (logical devices and XLA flags
must be set before the backend initialises): trains a small real model inside
``data_parallel(2, ...)`` over two CPU devices and prints one JSON line of what happened.

Usage: ``python -m tests.training._distribute_probe [--extended] [--steps-per-execution N]
[--raw]`` with ``KERAS_BACKEND`` set (and, for JAX,
``XLA_FLAGS=--xla_force_host_platform_device_count=2``). It compiles with
``steps_per_execution_for(N, replicas)`` (N defaults to 4), or with N as is under ``--raw``.
``--extended`` also
tries a predict inside a callback, a weights round trip, a ``PyDataset`` input and a batch that
does not split evenly between the replicas, each reported as ``"ok"`` or its error.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from overfit_search.training.distribute import data_parallel, steps_per_execution_for

BATCH = 16


def _devices() -> list[Any]:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        return ["/cpu:0", "/cpu:1"]
    names: list[Any] = keras.distribution.list_devices("cpu")
    return names


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 8x8 RGB images whose class is their brightest channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 120, (n, 8, 8, 3))
    x[np.arange(n), :, :, y] += 100
    return x.astype(np.uint8), y.astype(np.int64)


def _model() -> keras.Model:
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(4, 3)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.1)(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def _compile(model: keras.Model, learning_rate: float, steps_per_execution: int) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


def _strategy(model: keras.Model) -> tuple[str | None, int | None]:
    if keras.backend.backend() == "tensorflow":
        strategy = model.distribute_strategy
        return type(strategy).__name__, int(strategy.num_replicas_in_sync)
    distribution = keras.distribution.distribution()
    if distribution is None:
        return None, None
    return type(distribution).__name__, int(distribution.num_model_replicas)


def _attempt(check: Callable[[], object]) -> str:
    try:
        check()
    except Exception as error:  # reported, not raised
        last = traceback.format_exception_only(error)[-1].strip()
        return last[:300]
    return "ok"


class _PredictEachEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Like the trial's metric callback: predicts on held-out data after every epoch."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__()
        self.x = x
        self.shapes: list[tuple[int, ...]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.shapes.append(tuple(self.model.predict(self.x, batch_size=BATCH, verbose=0).shape))


class _Batches(keras.utils.PyDataset):  # type: ignore[misc]
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y

    def __len__(self) -> int:
        return math.ceil(len(self.x) / BATCH)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        part = slice(index * BATCH, (index + 1) * BATCH)
        return self.x[part], self.y[part]


def _extended(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    callback = _PredictEachEpoch(x[:40])
    out["predict_in_callback"] = _attempt(
        lambda: model.fit(x, y, batch_size=BATCH, epochs=1, callbacks=[callback], verbose=0)
    )
    out["predict_in_callback_shapes"] = callback.shapes

    def round_trip() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "w.weights.h5"
            before = model.predict(x[:32], batch_size=BATCH, verbose=0)
            model.save_weights(path)
            other = _model()  # built in the same scope, as run_trial would
            other.load_weights(path)
            after = other.predict(x[:32], batch_size=BATCH, verbose=0)
            if not np.allclose(before, after, atol=1e-5):
                raise AssertionError("weights differ after the round trip")
            model.load_weights(path)  # into the same (already trained) model

    out["save_load_weights"] = _attempt(round_trip)
    out["pydataset"] = _attempt(lambda: model.fit(_Batches(x, y), epochs=1, verbose=0))
    odd_x, odd_y = x[:37], y[:37]  # last batch of 5 does not split into 2
    out["uneven_last_batch_fit"] = _attempt(
        lambda: model.fit(odd_x, odd_y, batch_size=BATCH, epochs=1, verbose=0)
    )
    out["uneven_last_batch_predict"] = _attempt(
        lambda: model.predict(odd_x, batch_size=BATCH, verbose=0)
    )
    out["odd_batch_size_fit"] = _attempt(
        lambda: model.fit(x[:45], y[:45], batch_size=15, epochs=1, verbose=0)
    )
    return out


def main(extended: bool, requested: int, raw: bool) -> None:
    """Train inside ``data_parallel(2, ...)`` and print the result as one JSON line.

    Args:
        extended: Also run the checks of :func:`_extended`.
        requested: The ``steps_per_execution`` asked for.
        raw: Compile with ``requested`` as is, not with what ``steps_per_execution_for`` says.
    """
    devices = _devices()
    keras.utils.set_random_seed(0)
    x, y = _toy(192, seed=1)
    logged: list[str] = []
    result: dict[str, Any] = {"backend": keras.backend.backend()}
    with data_parallel(2, logged.append, devices=devices, batch_size=BATCH) as replicas:
        steps_per_execution = requested if raw else steps_per_execution_for(requested, replicas)
        model = _model()
        _compile(model, 1e-2, steps_per_execution)
        first = model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=True, verbose=0)
        _compile(
            model, 1e-3, steps_per_execution
        )  # a second compile with a new optimizer, as two-phase does
        second = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        probabilities = model.predict(x, batch_size=BATCH, verbose=0)
        name, in_sync = _strategy(model)
        result["steps_per_execution"] = steps_per_execution
        if extended:
            result["extended"] = _extended(model, x, y)
    result.update(
        replicas=replicas,
        strategy=name,
        replicas_in_sync=in_sync,
        losses=[float(v) for v in first.history["loss"] + second.history["loss"]],
        accuracy=float(np.mean(np.argmax(probabilities, axis=1) == y)),
        predict_shape=list(probabilities.shape),
        log=logged,
        distribution_after=type(keras.distribution.distribution()).__name__,
    )
    print("PROBE " + json.dumps(result), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    given = "--steps-per-execution" in args
    spe = int(args[args.index("--steps-per-execution") + 1]) if given else 4
    main(extended="--extended" in args, requested=spe, raw="--raw" in args)
