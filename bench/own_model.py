"""A user's own saved model with default settings, against a plain Optuna TPE loop (issue 15).

The task, built offline: a small CNN whose first layer is ``Rescaling(1/255)`` (it expects raw
0-255 pixels) is pretrained on scikit-learn's digits 0-4 and saved as ``pretrained.keras``, its
feature extractor a nested model named ``backbone``; the transfer task is digits 5-9 as a folder
of PNGs with ``train/`` (20 per class) and ``validation/`` (60 per class) class folders.

Side by side, in one run, the same trials x epochs:

- ``overfit-search``: ``overfit-search run`` on a sweep file naming only the data folder and
  ``file:pretrained.keras#backbone``: every other setting at its default (preprocess auto,
  augment_flip auto, the default knobs and ranges, the default stopping and objective);
- ``optuna``: what a user writes instead: an Optuna TPE loop (seeded) over the same five knobs
  and ranges, the same model (backbone from the file, frozen from the input side, GAP, dropout,
  Dense with L2), Adam, raw pixels in (the model scales them itself), Keras augmentation layers
  scaled by the strength, every trial trained for all epochs; its score is the lowest clean
  validation cross-entropy over the epochs.

Both are scored on the clean validation cross-entropy (no L2 term) at the best epoch.

Usage::

    python bench/own_model.py [--trials 30] [--epochs 20] [--work DIR]

Prints one JSON line per arm and a summary line last:
``own-model ratio=R overfit-search=A optuna=B epochs=E1/E2``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PRETRAIN = (0, 1, 2, 3, 4)
TRANSFER = (5, 6, 7, 8, 9)
SIZE = 32
TRAIN_PER_CLASS = 20
VAL_PER_CLASS = 60


def _digits(classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Digits of these classes as RGB uint8 at SIZE px, labels 0..k-1."""
    from PIL import Image
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = np.isin(y, classes)
    images = (x[keep].reshape(-1, 8, 8) * (255 / 16)).astype(np.uint8)
    big = np.stack(
        [np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in images]
    )
    rgb = np.repeat(big[..., None], 3, axis=-1)
    labels = np.searchsorted(np.array(classes), y[keep])
    return rgb, labels


def build_task(work: Path) -> tuple[Path, Path]:
    """Write pretrained.keras and the PNG folder; return their paths (cached in ``work``)."""
    import keras
    from PIL import Image

    model_path, data_dir = work / "pretrained.keras", work / "digits"
    if model_path.exists() and (data_dir / "validation").is_dir():
        return model_path, data_dir
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    x, y = _digits(PRETRAIN)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    for i, filters in enumerate((16, 32, 64)):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"c{i}")(h)
        h = keras.layers.MaxPooling2D(name=f"p{i}")(h)
    backbone = keras.Model(inputs, h, name="backbone")
    top = keras.Input((SIZE, SIZE, 3))
    out = keras.layers.Dense(len(PRETRAIN), activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(backbone(top))
    )
    model = keras.Model(top, out)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(x.astype("float32"), y, epochs=10, batch_size=64, verbose=0)
    model.save(model_path)

    x, y = _digits(TRANSFER)
    rng = np.random.default_rng(0)
    for label, name in enumerate(TRANSFER):
        idx = rng.permutation(np.flatnonzero(y == label))
        for side, chosen in (
            ("train", idx[:TRAIN_PER_CLASS]),
            ("validation", idx[TRAIN_PER_CLASS : TRAIN_PER_CLASS + VAL_PER_CLASS]),
        ):
            folder = data_dir / side / f"digit{name}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                Image.fromarray(x[i]).save(folder / f"{i}.png")
    return model_path, data_dir


def _load_folder(side: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    classes = sorted(p.name for p in side.iterdir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((side / name).glob("*.png")):
            xs.append(np.asarray(Image.open(f).convert("RGB")))
            ys.append(label)
    return np.stack(xs), np.array(ys)


def run_optuna(model_path: Path, data_dir: Path, trials: int, epochs: int) -> dict[str, Any]:
    """The plain Optuna TPE loop a user would write over the same model, data and ranges."""
    import keras
    import optuna

    xt, yt = _load_folder(data_dir / "train")
    xv, yv = _load_folder(data_dir / "validation")
    xt, xv = xt.astype("float32"), xv.astype("float32")
    classes = int(yt.max()) + 1

    def clean_ce(model: keras.Model) -> float:
        p = np.clip(model.predict(xv, verbose=0, batch_size=256), 1e-7, 1.0)
        return float(-np.mean(np.log(p[np.arange(len(yv)), yv])))

    def objective(trial: optuna.Trial) -> float:
        keras.backend.clear_session()
        keras.utils.set_random_seed(trial.number)
        dropout = trial.suggest_float("dropout", 0.0, 0.7)
        l2 = trial.suggest_float("l2", 1e-6, 1e-2, log=True)
        lr = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
        aug = trial.suggest_float("augmentation", 0.0, 1.0)
        frozen = trial.suggest_float("frozen_fraction", 0.5, 1.0)
        full = keras.saving.load_model(model_path, compile=False)
        backbone = full.get_layer("backbone")
        layers = [lay for lay in backbone.layers if not isinstance(lay, keras.layers.InputLayer)]
        n_frozen = round(frozen * len(layers))
        for i, lay in enumerate(layers):
            lay.trainable = i >= n_frozen
        inputs = keras.Input((SIZE, SIZE, 3))
        h = inputs
        if aug > 0:
            h = keras.layers.RandomFlip("horizontal")(h)
            h = keras.layers.RandomRotation(0.1 * aug)(h)
            h = keras.layers.RandomZoom(0.15 * aug)(h)
            h = keras.layers.RandomTranslation(0.1 * aug, 0.1 * aug)(h)
            h = keras.layers.RandomContrast(0.3 * aug, value_range=(0, 255))(h)
        h = keras.layers.GlobalAveragePooling2D()(backbone(h))
        h = keras.layers.Dropout(dropout)(h)
        out = keras.layers.Dense(
            classes, activation="softmax", kernel_regularizer=keras.regularizers.L2(l2)
        )(h)
        model = keras.Model(inputs, out)
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
        best = math.inf
        for _ in range(epochs):
            model.fit(xt, yt, batch_size=32, epochs=1, verbose=0, shuffle=True)
            best = min(best, clean_ce(model))
        return best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return {
        "arm": "optuna",
        "best_val_loss": study.best_value,
        "epochs": trials * epochs,
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_tool(
    model_path: Path, data_dir: Path, work: Path, trials: int, epochs: int
) -> dict[str, Any]:
    """``overfit-search run`` on a sweep file with every setting but data and model default."""
    import csv

    import yaml

    sweep = {
        "name": "own_model",
        "data": {"source": "folder", "dir": str(data_dir), "image_size": SIZE},
        "model": {"backbone": f"file:{model_path}#backbone"},
        "study": {"trials": trials},
        "train": {"max_epochs": epochs},
    }
    path = work / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    out = work / "results"
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "overfit_search", "run", str(path), "--output", str(out)]
    proc = subprocess.run(
        [*cmd, "--overwrite", "--no-progress"], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise SystemExit(f"overfit-search run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rows = list(csv.DictReader((out / "trials.csv").open()))
    done = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED") and r.get("value")]
    resolved = yaml.safe_load((out / "sweep.yaml").read_text())
    return {
        "arm": "overfit-search",
        "best_val_loss": min(float(r["value"]) for r in done),
        "epochs": sum(int(float(r["epochs_run"] or 0)) for r in rows),
        "seconds": round(seconds, 1),
        "preprocess": resolved.get("model", {}).get("preprocess"),
        "augment_flip": resolved.get("train", {}).get("augment_flip"),
    }


def main(argv: list[str] | None = None) -> int:
    """Build the task, run both arms, print JSON lines and the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/overfit-search-own-model"))
    parser.add_argument("--arms", default="overfit-search,optuna")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model_path, data_dir = build_task(args.work)
    results: dict[str, dict[str, Any]] = {}
    for arm in args.arms.split(","):
        if arm == "optuna":
            results[arm] = run_optuna(model_path, data_dir, args.trials, args.epochs)
        elif arm == "overfit-search":
            results[arm] = run_tool(model_path, data_dir, args.work, args.trials, args.epochs)
        print(json.dumps(results[arm]), flush=True)
    if len(results) == 2:
        a, b = results["overfit-search"], results["optuna"]
        print(
            f"own-model ratio={a['best_val_loss'] / b['best_val_loss']:.3f} "
            f"overfit-search={a['best_val_loss']:.4f} optuna={b['best_val_loss']:.4f} "
            f"epochs={a['epochs']}/{b['epochs']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
