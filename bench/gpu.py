"""The trainer, packed trials and mixed precision on a GPU, side by side in one run (issue 21).

MobileNetV2 (``model.weights: none``: throughput does not depend on the weights) at 224 px,
5 classes. Parts, each printing one JSON line per measurement:

- ``a``: training images/s of one trial of the project's trainer (``run_trial``) against a bare
  ``keras`` ``fit`` of the same model (same head, optimizer and ``steps_per_execution``) at
  batch 128; synthetic uint8 images, the same array for both;
- ``b``: total training images/s of 4 trials packed on one GPU through the real Ray + Optuna
  path (``overfit-search run``, ``resources.gpus_per_trial: 0.25``, batch 32) against one
  such trial alone;
- ``c``: ``train.mixed_precision: true`` against float32 at batch 128, both through the trainer;
- ``d``: a short transfer sweep (8 trials; 4 with ``--tiny``) end to end through the CLI.

Training images/s in ``a`` and ``c`` count training steps only: from the first training batch
of an epoch to its last (the trainer's clean evaluation passes are outside), the median of the
epochs after the first (which compiles). In ``b`` each trial's rate is its training images over
its median ``epoch_seconds`` after the first epoch (that figure includes the trainer's
evaluation passes); the packed total is the sum over the 4 trials, which run at the same time.
The last line is a summary of every ratio. Run::

    KERAS_BACKEND=jax python bench/gpu.py [--parts a,b,c,d] [--out DIR]   # on the GPU machine
    python bench/gpu.py --tiny [--parts a,c,d]   # CPU, seconds: 16 px, the builtin CNN, no GPUs

On the GPU machine ``bash .gpu_carry/run_on_gpu.sh`` (built by ``bench/gpu_carry.sh``) runs it.
With ``--out`` the lines are also written to ``DIR/gpu.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # Ray workers share the GPU
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PARTS = ("a", "b", "c", "d")
PARAMS = {
    "dropout": 0.2,
    "l2": 1e-5,
    "learning_rate": 1e-3,
    "augmentation": 0.0,
    "frozen_fraction": 0.0,
}
"""One configuration: the whole backbone trains (the slowest, most GPU-bound case)."""


def settings(tiny: bool) -> dict[str, Any]:
    """Image size, batch sizes, image counts, epochs and resources of the full or tiny run."""
    if tiny:
        return {
            "size": 16,
            "backbone": {"backbone": "builtin:digits_cnn"},
            "batch": 16,
            "images": 64,
            "epochs": 2,
            "packed_batch": 16,
            "packed_per_class": 8,
            "packed_epochs": 2,
            "packed_resources": {"cpus_per_trial": 0.5, "gpus_per_trial": 0},
            "single_resources": {"cpus_per_trial": 0.5, "gpus_per_trial": 0},
            "sweep_size": 16,
            "sweep_model": {"backbone": "builtin:digits_cnn"},
            "sweep_trials": 4,  # two rounds of two 1-CPU trials on 2 cores
            "sweep_epochs": 1,
            "sweep_resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        }
    return {
        "size": 224,
        "backbone": {"backbone": "mobilenet_v2", "weights": "none"},
        "batch": 128,
        "images": 128 * 12,
        "epochs": 4,
        "packed_batch": 32,
        "packed_per_class": 160,  # 800 images: 25 steps of 32 an epoch
        "packed_epochs": 4,
        "packed_resources": {"cpus_per_trial": 3, "gpus_per_trial": 0.25},
        "single_resources": {"cpus_per_trial": 3, "gpus_per_trial": 0.25},
        "sweep_size": 96,
        "sweep_model": {"backbone": "mobilenet_v2", "weights": "none"},
        "sweep_trials": 8,
        "sweep_epochs": 3,
        "sweep_resources": {"cpus_per_trial": 3, "gpus_per_trial": 0.25},
    }


class Emitter:
    """Prints one JSON line per measurement (and appends it to ``gpu.jsonl`` under ``out``)."""

    def __init__(self, out: Path | None, tiny: bool) -> None:
        self.file = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            self.file = (out / "gpu.jsonl").open("a")
        self.common = {"tiny": tiny}

    def __call__(self, **fields: Any) -> None:
        line = json.dumps({**fields, **self.common})
        print(line, flush=True)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()


def backend_info() -> dict[str, Any]:
    """The Keras backend and the devices it sees."""
    import keras

    backend = keras.backend.backend()
    devices: list[str] = []
    if backend == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices()]
    elif backend == "torch":
        import torch

        devices = ["cuda"] if torch.cuda.is_available() else ["cpu"]
    return {"backend": backend, "keras": keras.__version__, "devices": devices}


def _timer() -> Any:
    """A Keras callback timing each epoch's training batches (first begin to last end)."""
    import keras

    class TrainTimer(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.first: float | None = None
            self.last = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.first = None

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if self.first is None:
                self.first = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if self.first is not None:
                self.seconds.append(self.last - self.first)

    return TrainTimer()


def images_per_s(n: int, seconds: list[float]) -> float:
    """``n`` images over the median epoch after the first (the first compiles)."""
    later = seconds[1:] or seconds
    return n / statistics.median(later)


def synthetic_data(n: int, size: int, classes: int = 5) -> Any:
    """``ImageData`` of ``n`` random uint8 training images (and a few validation ones)."""
    import numpy as np
    import pandas as pd

    from overfit_search.data.dataset import ImageData

    rng = np.random.default_rng(0)
    n_val = max(classes, n // 8)
    return ImageData(
        x_train=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        y_train=(np.arange(n) % classes).astype(np.int32),
        x_val=rng.integers(0, 256, (n_val, size, size, 3), dtype=np.uint8),
        y_val=(np.arange(n_val) % classes).astype(np.int32),
        class_names=[f"c{i}" for i in range(classes)],
        split=pd.DataFrame(columns=["file", "label", "subset", "group"]),
    )


def trainer_sweep(cfg: dict[str, Any], mixed: bool) -> Any:
    """The sweep one in-process trial of parts a and c trains with."""
    from overfit_search.config import sweep_from_dict

    return sweep_from_dict(
        {
            "name": "gpu-bench",
            "data": {"source": "digits", "image_size": cfg["size"]},
            "model": cfg["backbone"],
            "train": {
                "batch_size": cfg["batch"],
                "max_epochs": cfg["epochs"],
                "head_epochs": 0,
                "keep_best_weights": 0,
                "mixed_precision": mixed,
            },
            "pruning": {"rule": {"name": "gl", "alpha": 1e9}},
        }
    )


def run_trainer(cfg: dict[str, Any], data: Any, mixed: bool) -> dict[str, Any]:
    """One trial of the project's trainer; training images/s and the epochs' figures."""
    import keras

    from overfit_search.training.trial import run_trial

    sweep = trainer_sweep(cfg, mixed)
    timer = _timer()
    rows: list[dict[str, Any]] = []
    keras.backend.clear_session()
    with tempfile.TemporaryDirectory(prefix="ofbench-gpu-") as tmp:
        model = run_trial(sweep, PARAMS, data, rows.append, Path(tmp), seed=0, callbacks=[timer])
    n = len(data.y_train)
    return {
        "images_per_s": round(images_per_s(n, timer.seconds), 1),
        "train_seconds": [round(s, 3) for s in timer.seconds],
        "epoch_seconds": [round(float(r["epoch_seconds"]), 3) for r in rows],
        "steps_per_execution": int(model.steps_per_execution),
        "dtype_policy": str(model.dtype_policy.name),
    }


def run_bare(cfg: dict[str, Any], data: Any, steps_per_execution: int) -> dict[str, Any]:
    """A bare ``keras`` ``fit`` of the same model (the project's ``build_model``, compiled as
    the trainer compiles it): no callbacks but the timer, no validation, no evaluation."""
    import keras

    from overfit_search.models.build import build_model, make_optimizer

    keras.backend.clear_session()
    sweep = trainer_sweep(cfg, mixed=False)
    model = build_model(sweep, PARAMS, 5, seed=0).model
    model.compile(
        optimizer=make_optimizer(sweep.train.optimizer, PARAMS["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    timer = _timer()
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=cfg["batch"],
        epochs=cfg["epochs"],
        callbacks=[timer],
        verbose=0,
    )
    return {
        "images_per_s": round(images_per_s(len(data.y_train), timer.seconds), 1),
        "train_seconds": [round(s, 3) for s in timer.seconds],
        "steps_per_execution": steps_per_execution,
    }


def cli(args: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``overfit-search ARGS`` in a fresh process (Ray stays out of this one); seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "overfit_search", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"overfit-search {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return time.monotonic() - started


def write_sweep(path: Path, doc: dict[str, Any]) -> Path:
    """Write a sweep mapping as YAML."""
    import yaml

    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sweep_doc(
    name: str, size: int, per_class: int, batch: int, epochs: int, trials: int, **kw: Any
) -> dict[str, Any]:
    """A digits sweep (5 classes) searching the learning rate and dropout, stopping off."""
    return {
        "name": name,
        "data": {
            "source": "digits",
            "digits_classes": [5, 6, 7, 8, 9],
            "image_size": size,
            "validation_fraction": 0.2,
            "train_per_class": per_class,
        },
        "model": kw["model"],
        "train": {
            "batch_size": batch,
            "max_epochs": epochs,
            "head_epochs": 0,
            "augment_flip": False,
            "keep_best_weights": 0,
        },
        "search": {
            "dropout": {"low": 0.0, "high": 0.5},
            "l2": 1e-5,
            "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "augmentation": 0.0,
            "frozen_fraction": 0.0,
        },
        "pruning": kw.get("pruning", {"rule": {"name": "gl", "alpha": 1e9}}),
        "study": {"trials": trials, "sampler": "random", "seed": 0},
        "resources": kw["resources"],
    }


def trial_rates(output: Path) -> list[dict[str, Any]]:
    """Per trial of a finished sweep: training images, epochs, images/s (see the docstring)."""
    rates = []
    for history in sorted(output.glob("trials/*/history.csv")):
        with history.open() as f:
            seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
        rates.append({"trial": history.parent.name, "epoch_seconds": seconds})
    return rates


def part_b(cfg: dict[str, Any], emit: Emitter, tmp: Path) -> dict[str, float]:
    """4 trials packed on one GPU against one trial alone, through the CLI."""
    per_class = cfg["packed_per_class"]
    n_train = 0
    results: dict[str, float] = {}
    for label, trials, resources in (
        ("one_trial", 1, cfg["single_resources"]),
        ("four_packed", 4, {**cfg["packed_resources"], "max_concurrent": 4}),
    ):
        doc = sweep_doc(
            f"gpu-b-{label}",
            cfg["size"],
            per_class,
            cfg["packed_batch"],
            cfg["packed_epochs"],
            trials,
            model=cfg["backbone"],
            resources=resources,
        )
        path = write_sweep(tmp / f"b-{label}.yaml", doc)
        output = tmp / f"b-{label}"
        wall = cli(["run", str(path), "--output", str(output), "--no-progress", "--force"])
        n_train = n_train or round(5 * per_class * (1 - doc["data"]["validation_fraction"]))
        rates = trial_rates(output)
        total = sum(images_per_s(n_train, r["epoch_seconds"]) for r in rates)
        results[label] = total
        emit(
            part="b",
            what=label,
            trials=len(rates),
            batch=cfg["packed_batch"],
            resources=resources,
            train_images=n_train,
            images_per_s=round(total, 1),
            epoch_seconds=[[round(s, 3) for s in r["epoch_seconds"]] for r in rates],
            wall_s=round(wall, 1),
        )
    ratio = results["four_packed"] / results["one_trial"]
    emit(part="b", what="ratio four_packed / one_trial", value=round(ratio, 3), target=2.5)
    return {"b packed/one": ratio}


def part_d(cfg: dict[str, Any], emit: Emitter, tmp: Path) -> dict[str, float]:
    """A short transfer sweep end to end through the CLI."""
    doc = sweep_doc(
        "gpu-d",
        cfg["sweep_size"],
        20,
        16,
        cfg["sweep_epochs"],
        cfg["sweep_trials"],
        model=cfg["sweep_model"],
        resources=cfg["sweep_resources"],
        pruning={"rule": {"name": "gl", "alpha": 5.0}, "grace_epochs": 1},
    )
    path = write_sweep(tmp / "d.yaml", doc)
    output = tmp / "d"
    wall = cli(["run", str(path), "--output", str(output), "--no-progress", "--force"])
    trials = trial_rates(output)
    emit(
        part="d",
        what="sweep through the CLI",
        trials=len(trials),
        epochs=sum(len(t["epoch_seconds"]) for t in trials),
        model=cfg["sweep_model"],
        image_size=cfg["sweep_size"],
        resources=cfg["sweep_resources"],
        wall_s=round(wall, 1),
    )
    return {"d trials": float(len(trials))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny sizes: seconds")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts, e.g. a,c,d")
    parser.add_argument("--out", type=Path, help="also write the lines to OUT/gpu.jsonl")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {','.join(PARTS)}")
    cfg = settings(args.tiny)
    emit = Emitter(args.out, args.tiny)
    started = time.monotonic()
    emit(part="setup", **backend_info(), parts=parts)
    summary: dict[str, float] = {}
    failed: dict[str, str] = {}
    data = synthetic_data(cfg["images"], cfg["size"]) if {"a", "c"} & set(parts) else None
    float32: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="ofbench-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        for part in parts:
            part_started = time.monotonic()
            try:
                if part in ("a", "c") and float32 is None:
                    float32 = run_trainer(cfg, data, mixed=False)
                    emit(part=part, what="trainer float32", batch=cfg["batch"], **float32)
                if part == "a":
                    assert float32 is not None
                    bare = run_bare(cfg, data, float32["steps_per_execution"])
                    emit(part="a", what="bare keras fit float32", batch=cfg["batch"], **bare)
                    ratio = float32["images_per_s"] / bare["images_per_s"]
                    emit(part="a", what="ratio trainer / bare", value=round(ratio, 3), target=0.9)
                    summary["a trainer/bare"] = ratio
                elif part == "c":
                    assert float32 is not None
                    mixed = run_trainer(cfg, data, mixed=True)
                    emit(part="c", what="trainer mixed_precision", batch=cfg["batch"], **mixed)
                    ratio = mixed["images_per_s"] / float32["images_per_s"]
                    emit(part="c", what="ratio mixed / float32", value=round(ratio, 3))
                    summary["c mixed/float32"] = ratio
                elif part == "b":
                    summary.update(part_b(cfg, emit, tmp))
                elif part == "d":
                    summary.update(part_d(cfg, emit, tmp))
            except Exception as error:  # one part failing still reports the others
                failed[part] = f"{type(error).__name__}: {error}"[-2000:]
                emit(part=part, what="failed", error=failed[part])
            emit(part=part, what="part seconds", value=round(time.monotonic() - part_started, 1))
    emit(
        part="summary",
        ratios={k: round(v, 3) for k, v in summary.items()},
        failed=failed,
        seconds=round(time.monotonic() - started, 1),
    )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
