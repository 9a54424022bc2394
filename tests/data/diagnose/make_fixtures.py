"""Regenerate the real Keras 3 fixtures used by tests/test_diagnose.py.

Run from the repository root (takes ~20 s on CPU)::

    KERAS_BACKEND=tensorflow python tests/data/diagnose/make_fixtures.py

A tiny MLP on a noisy synthetic task overfits within a few epochs. The same seeded fit is run
twice: ``verbose=1`` (progress bars with ``━``, ANSI colours, ``\\r`` and backspaces, as
captured from a pipe) and ``verbose=2`` with EarlyStopping, ReduceLROnPlateau and CSVLogger,
whose ``history.history`` is also dumped as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FIT = r"""
import json, sys
import numpy as np
import keras

keras.utils.set_random_seed(0)
verbose, csv_path, json_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
x = rng.normal(size=(160, 20)).astype("float32")
y = (x[:, 0] + 0.5 * rng.normal(size=160) > 0).astype("int32")
xv = rng.normal(size=(80, 20)).astype("float32")
yv = (xv[:, 0] + 0.5 * rng.normal(size=80) > 0).astype("int32")
model = keras.Sequential([
    keras.Input((20,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(2, activation="softmax"),
])
model.compile(
    optimizer=keras.optimizers.Adam(0.01),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1")],
)
callbacks = []
if csv_path != "-":
    callbacks = [
        keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True, verbose=1),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, verbose=1),
        keras.callbacks.CSVLogger(csv_path),
    ]
print("Training tiny model")
history = model.fit(
    x, y, validation_data=(xv, yv), epochs=8, batch_size=32, verbose=verbose, callbacks=callbacks
)
print("done")
if json_path != "-":
    with open(json_path, "w") as fh:
        json.dump({k: [float(v) for v in vs] for k, vs in history.history.items()}, fh)
"""


def main() -> None:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = [
        ("1", "-", "-", "keras3_verbose1.log"),
        (
            "2",
            str(HERE / "keras3_csvlogger.csv"),
            str(HERE / "keras3_history.json"),
            "keras3_verbose2_callbacks.log",
        ),
    ]
    for verbose, csv_path, json_path, log_name in runs:
        out = subprocess.run(
            [sys.executable, "-c", FIT, verbose, csv_path, json_path],
            check=True,
            capture_output=True,
            env=env,
        ).stdout
        (HERE / log_name).write_bytes(out)
    print(json.dumps(sorted(p.name for p in HERE.iterdir())))


if __name__ == "__main__":
    main()
