"""Turn a trial into a model: retrain it, or rebuild it from its kept best-epoch weights.

Both paths build the exact architecture the trial trained (same sweep, parameters and seed),
save it in Keras format next to a labels file and a metrics JSON, and measure the clean
validation loss of the saved model on the study's split.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from overfit_search.config.schema import Sweep
from overfit_search.data.dataset import ImageData
from overfit_search.models.build import build_model
from overfit_search.search_space import two_phase
from overfit_search.training.feed import predict
from overfit_search.training.metrics import accuracy, cross_entropy, eval_subset
from overfit_search.training.precision import dtype_policy
from overfit_search.training.trial import run_trial


@dataclass
class FinalModel:
    """A model made from a trial, and what was measured on it.

    Attributes:
        model: The Keras model (inputs: uint8-range RGB images at ``data.image_size``).
        metrics: Clean ``val_loss``, ``val_accuracy``, ``train_eval_loss``, ``gap`` of the
            saved weights, plus how it was made (epochs, seed, seconds, full).
        history: Per-epoch rows of a retrain (empty for an export).
    """

    model: keras.Model
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def evaluate(
    model: keras.Model, data: ImageData, seed: int, batch_size: int = 64
) -> dict[str, Any]:
    """Clean metrics of ``model`` on the split (the same definitions as a trial's epochs).

    Args:
        model: The model.
        data: The study's data and split.
        seed: ``data.seed`` (picks the same training subset a trial measures).
        batch_size: Prediction batch size.

    Returns:
        ``val_loss``, ``val_accuracy``, ``train_eval_loss``, ``train_eval_accuracy``, ``gap``.
    """
    subset = eval_subset(len(data.y_train), len(data.y_val), seed=seed)
    p_val = predict(model, data.x_val, batch_size)
    x_train = data.x_train[subset]
    p_train = predict(model, x_train, batch_size)
    val_loss = cross_entropy(p_val, data.y_val)
    train_loss = cross_entropy(p_train, data.y_train[subset])
    return {
        "val_loss": val_loss,
        "val_accuracy": accuracy(p_val, data.y_val),
        "train_eval_loss": train_loss,
        "train_eval_accuracy": accuracy(p_train, data.y_train[subset]),
        "gap": val_loss - train_loss,
    }


def evaluate_on(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 64
) -> tuple[float, float]:
    """Clean cross-entropy and accuracy of ``model`` on ``(x, y)``."""
    p = predict(model, x, batch_size)
    return cross_entropy(p, y), accuracy(p, y)


def _merged(data: ImageData) -> ImageData:
    """Training = train + validation (``--full``); validation kept only to satisfy the trainer."""
    return ImageData(
        x_train=np.concatenate([np.asarray(data.x_train), np.asarray(data.x_val)]),
        y_train=np.concatenate([data.y_train, data.y_val]),
        x_val=data.x_val,
        y_val=data.y_val,
        class_names=data.class_names,
        split=data.split,
        content_hash=data.content_hash,
    )


def retrain(
    sweep: Sweep,
    params: dict[str, Any],
    data: ImageData,
    epochs: int,
    seed: int,
    *,
    full: bool = False,
    workdir: Path | None = None,
) -> FinalModel:
    """Train a configuration for a fixed number of epochs, as its trial did.

    Args:
        sweep: The sweep the trial came from.
        params: Every knob's value.
        data: The study's data and split.
        epochs: Epochs to train (the trial's best epoch).
        seed: The trial's seed (the same seed repeats the trial).
        full: Train on train + validation (the validation metrics are then not held out).
        workdir: Where the run's log and history go (a temporary folder when None).

    Returns:
        The model after ``epochs`` epochs and its clean metrics.
    """
    run_sweep = sweep.model_copy(deep=True)
    head_epochs, lr_factor = two_phase(sweep, params)
    # head_epochs first: max_epochs may not fall below it (validated on assignment)
    run_sweep.train.head_epochs = min(head_epochs, epochs)
    run_sweep.train.finetune_lr_factor = lr_factor
    params = {k: v for k, v in params.items() if k not in run_sweep.train.knobs()}
    run_sweep.train.max_epochs = epochs
    run_sweep.train.keep_best_weights = 0
    run_sweep.train.trial_timeout = None
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="overfit-search-retrain-") as tmp:
        folder = workdir or Path(tmp)
        model = run_trial(
            run_sweep, params, _merged(data) if full else data, rows.append, folder, seed=seed
        )
    metrics = evaluate(
        model, data, seed=sweep.data.seed, batch_size=max(64, sweep.train.batch_size)
    )
    metrics.update(
        epochs=epochs, seed=seed, full=full, seconds=round(time.monotonic() - started, 2)
    )
    return FinalModel(model, metrics, rows)


def from_weights(
    sweep: Sweep, params: dict[str, Any], data: ImageData, weights: Path, seed: int
) -> FinalModel:
    """Rebuild a trial's model and load its kept best-epoch weights (no training).

    Args:
        sweep: The sweep the trial came from.
        params: Every knob's value.
        data: The study's data and split (for the class count and the check).
        weights: ``trials/<n>/best.weights.h5``.
        seed: The trial's seed.

    Returns:
        The model with those weights and its clean metrics.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    with dtype_policy(sweep.train.mixed_precision):  # as the trial computed
        built = build_model(sweep, params, data.num_classes, seed=seed)
    built.model.load_weights(weights)
    metrics = evaluate(
        built.model, data, seed=sweep.data.seed, batch_size=max(64, sweep.train.batch_size)
    )
    metrics.update(seed=seed, weights=str(weights))
    return FinalModel(built.model, metrics)


def save(final: FinalModel, path: Path, class_names: list[str], info: dict[str, Any]) -> list[Path]:
    """Save the model (``.keras``), its labels (one per line) and a metrics JSON beside it.

    Args:
        final: The model and its metrics.
        path: The ``.keras`` file to write.
        class_names: Output index -> class name.
        info: Extra facts for the metrics JSON (trial number, the trial's own val_loss, …).

    Returns:
        The written files: model, labels, metrics.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    final.model.save(path)
    labels = path.with_suffix(".labels.txt")
    labels.write_text("".join(f"{name}\n" for name in class_names))
    metrics = path.with_suffix(".metrics.json")
    metrics.write_text(json.dumps({**info, **final.metrics}, indent=2, default=str) + "\n")
    return [path, labels, metrics]


def load(path: Path) -> keras.Model:
    """Load a model saved by :func:`save` (registers the package's custom layers first).

    Args:
        path: The ``.keras`` file.

    Returns:
        The model.
    """
    import overfit_search.models.layers  # noqa: F401  (registers Preprocess, PositionAttention)

    return keras.models.load_model(path)
