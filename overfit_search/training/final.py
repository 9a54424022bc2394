"""Turn a trial into a model: retrain it, or rebuild it from its kept best-epoch weights.

Both paths build the exact architecture the trial trained (same sweep, parameters and seed),
save it (Keras, SavedModel or TFLite: :mod:`overfit_search.results.model_files`) next to a
labels file and a metrics JSON, and measure the clean validation loss of the saved model on the
study's split. The written model is :func:`~overfit_search.models.build.inference_model`: the
trained layers minus augmentation, every one a built-in Keras layer, so it loads without
overfit-search.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from overfit_search.config.schema import Sweep
from overfit_search.data.dataset import ImageData
from overfit_search.models.build import build_model, inference_model
from overfit_search.results.model_files import sidecars
from overfit_search.search_space import train_values
from overfit_search.training.feed import predict
from overfit_search.training.metrics import accuracy, cross_entropy, eval_subset
from overfit_search.training.precision import dtype_policy
from overfit_search.training.trial import run_trial

logger = logging.getLogger(__name__)


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
    settings = train_values(sweep, params)
    settings["head_epochs"] = min(int(settings["head_epochs"]), epochs)
    # head_epochs before max_epochs: max_epochs may not fall below it (validated on assignment)
    for name, value in settings.items():
        setattr(run_sweep.train, name, value)
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

    Weights saved by an older version, whose models held the package's custom ``Preprocess``
    and ``PositionAttention`` layers, are read into that older graph and copied into the
    built-in-layer one (:func:`copy_legacy_weights`).

    Args:
        sweep: The sweep the trial came from.
        params: Every knob's value.
        data: The study's data and split (for the class count and the check).
        weights: ``trials/<n>/best.weights.h5``.
        seed: The trial's seed.

    Returns:
        The model with those weights and its clean metrics.
    """
    model = load_trial_weights(sweep, params, data.num_classes, weights, seed)
    metrics = evaluate(
        model, data, seed=sweep.data.seed, batch_size=max(64, sweep.train.batch_size)
    )
    metrics.update(seed=seed, weights=str(weights))
    return FinalModel(model, metrics)


def load_trial_weights(
    sweep: Sweep, params: dict[str, Any], num_classes: int, weights: Path, seed: int
) -> keras.Model:
    """The trial's model (as :func:`build_model` makes it) with a kept weights file loaded.

    Args:
        sweep: The sweep the trial came from.
        params: Every knob's value.
        num_classes: Output classes.
        weights: ``trials/<n>/best.weights.h5`` (of this version or an older one).
        seed: The trial's seed.

    Returns:
        The model, augmentation included (see :func:`inference_model`).
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    with dtype_policy(sweep.train.mixed_precision):  # as the trial computed
        built = build_model(sweep, params, num_classes, seed=seed)
    try:
        built.model.load_weights(weights)
    except ValueError as exc:  # a file of the custom-layer graph (older versions)
        with dtype_policy(sweep.train.mixed_precision):
            old = build_model(sweep, params, num_classes, seed=seed, legacy=True)
        try:
            old.model.load_weights(weights)
        except ValueError:
            raise exc from None
        logger.info("%s: weights of the older custom-layer model, copied over", weights)
        copy_legacy_weights(old.model, built.model)
    return built.model


def copy_legacy_weights(old: keras.Model, new: keras.Model) -> None:
    """Copy the weights of a ``build_model(..., legacy=True)`` model into the built-in one.

    Layers are matched by name; ``PositionAttention`` (``attention``) goes to the built-in
    block's ``attention_mha`` and ``attention_norm``; ``Preprocess`` has no weights (the new
    preprocessing layers hold fixed constants of their own).

    Args:
        old: The model with the custom layers, weights loaded.
        new: The model of built-in layers, the same sweep and parameters.
    """
    from overfit_search.models.layers import PositionAttention

    for layer in old.layers:
        if isinstance(layer, PositionAttention):
            assert layer.mha is not None
            new.get_layer(f"{layer.name}_mha").set_weights(layer.mha.get_weights())
            new.get_layer(f"{layer.name}_norm").set_weights(layer.norm.get_weights())
        elif layer.weights:
            new.get_layer(layer.name).set_weights(layer.get_weights())


def save(
    final: FinalModel,
    path: Path,
    class_names: list[str],
    info: dict[str, Any],
    fmt: str = "keras",
) -> list[Path]:
    """Save the inference model, its labels (one per line) and a metrics JSON beside it.

    The model written is :func:`inference_model` of ``final.model``: built-in Keras layers only,
    no augmentation. See :mod:`overfit_search.results.model_files` for the formats.

    Args:
        final: The model and its metrics.
        path: The ``.keras`` or ``.tflite`` file, or the SavedModel directory, to write (an
            existing one is replaced: the CLI checked ``--force``).
        class_names: Output index -> class name.
        info: Extra facts for the metrics JSON (trial number, the trial's own val_loss, …).
        fmt: ``keras``, ``savedmodel`` or ``tflite``.

    Returns:
        The written paths: model, labels, metrics.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_model(inference_model(final.model), path, fmt)
    labels, metrics = sidecars(path)
    labels.write_text("".join(f"{name}\n" for name in class_names))
    doc = {**info, **final.metrics, "format": fmt}
    metrics.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return [path, labels, metrics]


def write_model(model: keras.Model, path: Path, fmt: str) -> None:
    """Write ``model`` to ``path`` in ``fmt`` (``savedmodel`` and ``tflite``: TensorFlow only).

    Args:
        model: The inference model.
        path: The file (keras, tflite) or directory (savedmodel); replaced if it exists.
        fmt: ``keras``, ``savedmodel`` or ``tflite``.

    Raises:
        ValueError: Unknown format.
    """
    if fmt == "keras":
        model.save(path)
    elif fmt == "savedmodel":
        if path.is_dir():
            shutil.rmtree(path)
        model.export(str(path), format="tf_saved_model", verbose=False)
    elif fmt == "tflite":
        import tensorflow as tf

        # TFLite's converter cannot take mixed-precision graphs (float16 Mul in Rescaling:
        # "Could not translate MLIR to FlatBuffer"): it gets the float32 twin.
        lite = float32_model(model)
        with tempfile.TemporaryDirectory(prefix="overfit-search-tflite-") as tmp:
            saved = Path(tmp) / "saved_model"
            lite.export(str(saved), format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            path.write_bytes(converter.convert())
    else:
        raise ValueError(f"unknown model format {fmt!r}")


def _all_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer`` and every layer nested in it (a backbone is a model inside the model)."""
    found = [layer]
    for inner in getattr(layer, "layers", []):
        found += _all_layers(inner)
    return found


_MIXED_TO_FLOAT32 = {"mixed_float16": "float32", "mixed_bfloat16": "float32"}


def _to_float32(config: Any) -> Any:
    """A model config with every mixed dtype policy (and the float16 tensors it made) float32."""
    if isinstance(config, list):
        return [_to_float32(item) for item in config]
    if not isinstance(config, dict):
        return config
    out = {key: _to_float32(value) for key, value in config.items()}
    if out.get("class_name") == "DTypePolicy":
        name = out.get("config", {}).get("name")
        out["config"] = {**out["config"], "name": _MIXED_TO_FLOAT32.get(name, name)}
    elif out.get("class_name") == "__keras_tensor__" and out["config"].get("dtype") in (
        "float16",
        "bfloat16",
    ):
        out["config"] = {**out["config"], "dtype": "float32"}
    return out


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` computing in float32: itself, or for a mixed-precision model a float32 twin.

    Mixed precision keeps variables in float32, so the twin (the same config with every mixed
    policy made float32) takes the weights as they are.

    Args:
        model: A model :func:`build_model` made, perhaps under a mixed dtype policy.

    Returns:
        A model of float32 layers with ``model``'s weights.
    """
    mixed = any(
        str(getattr(layer.dtype_policy, "name", "")).startswith("mixed_")
        for layer in _all_layers(model)
    )
    if not mixed:
        return model
    config = _to_float32(keras.saving.serialize_keras_object(model))
    twin: keras.Model = keras.saving.deserialize_keras_object(config)
    twin.set_weights(model.get_weights())
    return twin


def load(path: Path) -> keras.Model:
    """Load a ``.keras`` model saved by :func:`save`, or by an older version of the package.

    A model this version wrote needs nothing from the package; one an older version wrote holds
    its custom layers, which this registers first.

    Args:
        path: The ``.keras`` file.

    Returns:
        The model.
    """
    import overfit_search.models.layers  # noqa: F401  (registers Preprocess, PositionAttention)

    return keras.models.load_model(path)
