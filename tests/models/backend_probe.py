"""Run in a subprocess by test_backends.py: one backend's trial, build, freeze and BN checks.

The Keras backend is fixed when Keras is first imported, so each backend needs its own
process: ``KERAS_BACKEND=jax python -m tests.models.backend_probe OUT_DIR`` writes
``OUT_DIR/result.json``. Kept free of pytest so the child starts quickly.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from overfit_search.config import sweep_from_dict
from overfit_search.config.schema import ModelConfig
from overfit_search.data import load_data
from overfit_search.errors import ConfigError
from overfit_search.models.backbones import build_backbone
from overfit_search.models.build import build_model
from overfit_search.models.builtin import load_builtin
from overfit_search.training.trial import run_trial

DATA: dict[str, Any] = {
    "source": "digits",
    "image_size": 16,
    "digits_classes": [5, 6, 7],
    "train_per_class": 10,
}
PARAMS: dict[str, Any] = {
    "dropout": 0.2,
    "l2": 1e-3,
    "learning_rate": 3e-3,
    "augmentation": 0.3,
    "frozen_fraction": 0.5,
}


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def _trial(work: Path) -> dict[str, Any]:
    """A real two-phase trial: 1 head epoch, 2 fine-tuning epochs (30 images, batch 15)."""
    sweep = sweep_from_dict(
        {
            "name": "backend",
            "data": DATA,
            "model": {"backbone": "builtin:digits_cnn"},
            "train": {
                "batch_size": 15,  # 30 training images: no ragged batch, fewer JAX compiles
                "max_epochs": 3,
                "head_epochs": 1,
                "finetune_lr_factor": 1.0,
                "augment_flip": False,
            },
        }
    )
    data = load_data(sweep.data)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    model = run_trial(sweep, PARAMS, data, rows.append, work / "trial", seed=0)
    return {
        "rows": rows,
        "seconds": time.monotonic() - started,
        "trainable_weights": len(model.trainable_weights),
        "best_weights_saved": (work / "trial" / "best.weights.h5").is_file(),
        "log": (work / "trial" / "trial.log").read_text(),
    }


def _bn_backbone(path: Path) -> None:
    """A small Conv-BN-ReLU backbone saved as a ``file:`` model (6 layers after the input)."""
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for i in range(2):
        x = keras.layers.Conv2D(8, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    keras.Model(inputs, x, name="bn_backbone").save(path)


def _freeze_and_bn(work: Path, batchnorm: str) -> dict[str, Any]:
    """Freeze half of a BN backbone, train two steps: a frozen BN must not move."""
    path = work / "bn_backbone.keras"
    _bn_backbone(path)
    model = {"backbone": f"file:{path}", "preprocess": "unit", "batchnorm": batchnorm}
    sweep = sweep_from_dict({"name": "bn", "data": DATA, "model": model})
    keras.utils.set_random_seed(0)
    built = build_model(sweep, {**PARAMS, "augmentation": 0.0}, num_classes=3)
    backbone = built.model.get_layer("bn_backbone")
    bns = [backbone.get_layer("bn0"), backbone.get_layer("bn1")]
    before = [[_numpy(w) for w in bn.weights] for bn in bns]
    built.model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(30, 16, 16, 3)).astype("uint8")
    built.model.fit(x, rng.integers(0, 3, size=30), batch_size=15, epochs=1, verbose=0)
    moved = [
        [not np.allclose(b, _numpy(w)) for b, w in zip(old, bn.weights, strict=True)]
        for old, bn in zip(before, bns, strict=True)
    ]
    return {
        "frozen_layers": built.frozen_layers,
        "layer_trainable": {
            lay.name: lay.trainable
            for lay in backbone.layers
            if not isinstance(lay, keras.layers.InputLayer)
        },
        "trainable_weights": len(built.model.trainable_weights),
        "non_trainable_weights": len(built.model.non_trainable_weights),
        # per BN layer: gamma, beta, moving_mean, moving_variance changed by training?
        "bn_moved": {bn.name: flags for bn, flags in zip(bns, moved, strict=True)},
    }


def _mobilenet_counts(batchnorm: str) -> dict[str, Any]:
    sweep = sweep_from_dict(
        {
            "name": "mnv2",
            "data": {"source": "digits", "image_size": 32},
            "model": {"backbone": "mobilenet_v2", "weights": "none", "batchnorm": batchnorm},
        }
    )
    built = build_model(sweep, PARAMS, num_classes=3)
    backbone = built.model.get_layer("mobilenetv2_1.00_32")
    bns = [lay for lay in backbone.layers if isinstance(lay, keras.layers.BatchNormalization)]
    return {
        "frozen_layers": built.frozen_layers,
        "trainable_weights": len(built.model.trainable_weights),
        "non_trainable_weights": len(built.model.non_trainable_weights),
        "bn_trainable": sum(lay.trainable for lay in bns),
        "bn_total": len(bns),
    }


def _tfhub_message() -> str:
    try:
        build_backbone(ModelConfig(backbone="tfhub:/no/such/module"), 16)
    except ConfigError as exc:
        return str(exc)
    return ""


def main(out: Path) -> None:
    """Run every check under the current backend and write ``out/result.json``."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    builtin = load_builtin("digits_cnn", 16)
    result: dict[str, Any] = {
        "backend": keras.backend.backend(),
        # the cached pretrained builtin, whichever backend pretrained it
        "builtin_checksums": [float(np.abs(_numpy(w)).sum()) for w in builtin.weights],
        "trial": _trial(out),
        "bn": {mode: _freeze_and_bn(out, mode) for mode in ("frozen", "train")},
        "mobilenet_v2": {mode: _mobilenet_counts(mode) for mode in ("frozen", "train")},
        "tfhub_message": _tfhub_message(),
    }
    result["seconds"] = time.monotonic() - started
    (out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
