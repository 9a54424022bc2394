"""Run by tests/training/test_distribute.py in a fresh process: a real ``run_trial`` with
``resources.gpus_per_trial: 2`` over two CPU devices standing in for the GPUs (logical
devices on TensorFlow, ``--xla_force_host_platform_device_count=2`` on JAX), two-phase,
with a training set whose last batch does not split evenly. Prints one ``PROBE {json}`` line.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import keras

from overfit_search.training import distribute
from tests.training._distribute_probe import _devices


def main() -> None:
    devices = _devices()  # before the backend starts
    distribute.visible_gpus = lambda backend: devices  # the CPUs play the trial's GPUs

    from overfit_search.data import load_data
    from overfit_search.training.trial import run_trial
    from tests.training.test_two_phase import PARAMS, _sweep

    sweep = _sweep(head_epochs=1, max_epochs=3)
    sweep.data.train_per_class = 11  # 33 images, batch 16: a last batch of 1
    sweep.resources.gpus_per_trial = 2
    data = load_data(sweep.data)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = run_trial(sweep, PARAMS, data, rows.append, Path(tmp), seed=0)
        log = (Path(tmp) / "trial.log").read_text().splitlines()
    strategy = getattr(model, "distribute_strategy", None)
    result = {
        "train_images": len(data.y_train),
        "epochs": [r["epoch"] for r in rows],
        "val_loss": [r["val_loss"] for r in rows],
        "finite": all(math.isfinite(r["val_loss"]) for r in rows),
        "strategy": type(strategy).__name__,
        "replicas_in_sync": getattr(strategy, "num_replicas_in_sync", None),
        "steps_per_execution": model.steps_per_execution,
        "distribution_after": type(keras.distribution.distribution()).__name__,
        "log": [line for line in log if "data-parallel" in line],
    }
    print("PROBE " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
