"""DESIGN §1's first user, end to end: sweeps/deepfashion.yaml (MobileNet v1 with an attention
block before the classifier, 50 classes, SGD, two phases) through ``overfit-search run`` on
generated stand-in data of the same shape."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from PIL import Image

from overfit_search.cli import main
from overfit_search.config import load_sweep

pytestmark = pytest.mark.slow

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
CLASSES = 50
PER_CLASS = 5
SIZE = 64  # MobileNet v1 reduces 32x: a 2x2 map, so the attention block sees 4 positions


def _categories(root: Path) -> None:
    """50 class folders of small PNGs: class c has its own colour (c % 10) and stripe pattern
    (c // 10: horizontal, vertical, two diagonals, checks), plus noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    patterns = [yy // 8 % 2, xx // 8 % 2, (xx + yy) // 8 % 2, (xx - yy) // 8 % 2,
                (xx // 8 + yy // 8) % 2]  # fmt: skip
    for c in range(CLASSES):
        folder = root / f"category_{c:02d}"
        folder.mkdir(parents=True)
        hue = np.array([(37 * c) % 256, (91 * c + 60) % 256, (151 * c + 120) % 256], float)
        stripes = patterns[c // 10][..., None].astype(float)
        for i in range(PER_CLASS):
            img = 0.5 * hue + 100 * stripes + rng.normal(0, 20, (SIZE, SIZE, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")


def _mobilenet_weights(path: Path, images: Path) -> Path:
    """MobileNet v1 weights (alpha 1.0, as ``backbone: mobilenet`` builds it), made here: random
    convolutions whose BatchNormalization statistics are those of the images (one pass in
    training mode at momentum 0), so the frozen backbone's features are not all zero."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    x = np.stack([np.asarray(Image.open(f), "float32") for f in sorted(images.rglob("*.png"))])
    x = x / 127.5 - 1.0  # MobileNet's own convention
    model(x, training=True)  # sets each moving mean and variance to the batch's
    model.save_weights(path)
    return path


def test_the_deepfashion_sweep_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OVERFIT_SEARCH_CACHE", str(tmp_path / "cache"))  # Ray workers get it too
    monkeypatch.chdir(tmp_path)
    _categories(tmp_path / "deepfashion")
    weights = _mobilenet_weights(tmp_path / "mobilenet.weights.h5", tmp_path / "deepfashion")
    doc: dict[str, Any] = yaml.safe_load((SWEEPS / "deepfashion.yaml").read_text())
    # only what must shrink: the data, the image size, the weights file (no download), the
    # epochs, the batch, the trials and the machine
    doc["data"].update(dir=str(tmp_path / "deepfashion"), image_size=SIZE, validation_fraction=0.2)
    doc["model"]["weights"] = str(weights)
    doc["train"].update(batch_size=25, max_epochs=3)
    doc["study"]["trials"] = 2
    doc["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": 2}
    path = tmp_path / "deepfashion.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    sweep = load_sweep(path)  # the sweep's own settings are kept
    assert sweep.model.backbone == "mobilenet" and sweep.model.head.attention_heads == 4
    assert sweep.train.optimizer == "sgd" and sweep.train.head_epochs == 2
    assert sweep.search.baseline is not None and sweep.search.frozen_layers is not None

    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--no-progress"]) == 0

    for name in ("study.db", "sweep.yaml", "split.csv", "trials.csv", "histories.csv",
                 "best.yaml", "report.html"):  # fmt: skip
        assert (out / name).is_file(), name
    study = optuna.load_study(study_name="deepfashion", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert len(trials) == 2
    assert all(t.state != TrialState.FAIL for t in trials), [t.user_attrs for t in trials]
    assert trials[0].user_attrs["baseline"]  # the user's one-phase SGD setup ran first
    logs = [(out / "trials" / str(t.number) / "trial.log").read_text() for t in trials]
    assert "phase 1 (head)" not in logs[0] and "phase 1 (head): epochs 1-2," in logs[1]

    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2 and "FAIL" not in set(table.state)
    histories = pd.read_csv(out / "histories.csv")
    assert set(histories.trial) == {0, 1}
    # the frozen backbone's features separate the generated categories: training loss leaves
    # chance (ln 50)
    assert histories.train_eval_loss.min() < 0.9 * math.log(CLASSES), histories
    split = pd.read_csv(out / "split.csv")
    assert (split.subset == "validation").sum() == CLASSES  # one image of each category

    # the attention block sat between the backbone and the classifier
    saved = sorted((out / "trials").glob("*/best.weights.h5"))
    assert saved
    with h5py.File(saved[0]) as h5:
        names: list[str] = []
        h5.visit(names.append)
    assert any("attention" in n for n in names), names[:40]

    capsys.readouterr()
    assert main(["validate", str(out / "best.yaml")]) == 0
    best = load_sweep(out / "best.yaml")
    assert best.model.head.attention_heads == 4 and best.train.optimizer == "sgd"
    assert best.model.weights == str(weights)
    assert "Learning curves" in (out / "report.html").read_text()
