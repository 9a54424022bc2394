"""One trial: build, fit epoch by epoch, measure clean metrics, report them."""

from __future__ import annotations

import csv
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from overfit_search.config.schema import Sweep, TrainConfig
from overfit_search.data.dataset import ImageData
from overfit_search.errors import TrialError
from overfit_search.layout import (
    BEST_WEIGHTS,
    CHECKPOINT_TMP,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    ResultKey,
    checkpoint_files,
    checkpoint_path,
    checkpoints,
)
from overfit_search.models.backbones import freeze, freeze_for_trial
from overfit_search.models.build import build_model, make_optimizer
from overfit_search.search_space import two_phase
from overfit_search.training.distribute import (
    data_parallel,
    steps_per_execution_for,
    undistributed,
)
from overfit_search.training.feed import fit_inputs, predict
from overfit_search.training.metrics import accuracy, cross_entropy, eval_subset
from overfit_search.training.precision import dtype_policy

Reporter = Callable[[dict[str, Any]], None]


class TrialStopped(Exception):  # noqa: N818  (a request, not an error)
    """The orchestrator asked the trial to stop; raised between two batches."""


class _StopCheck(keras.callbacks.Callback):  # type: ignore[misc]
    """Checked after every batch (every ``train.steps_per_execution`` batches, which Keras runs in
    one call), not only at the epoch's end (an epoch can take an hour): ends training when
    ``should_stop()`` says so, or fails it past ``train.trial_timeout``."""

    def __init__(self, should_stop: Callable[[], bool] | None, timeout: float | None) -> None:
        super().__init__()
        self.should_stop = should_stop
        self.timeout = timeout
        self.started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrialStopped
        if self.timeout is not None and time.monotonic() - self.started > self.timeout:
            raise TrialError(
                f"timeout: ran past train.trial_timeout={self.timeout:g}s (during a batch)"
            )


class _EpochReporter(keras.callbacks.Callback):  # type: ignore[misc]
    """Measures the clean metrics after every epoch and hands them to ``report``."""

    def __init__(
        self,
        data: ImageData,
        subset: np.ndarray,
        report: Reporter,
        trial_dir: Path,
        keep_weights: bool,
        timeout: float | None,
        batch_size: int,
    ) -> None:
        super().__init__()
        self.data = data
        self.subset = subset
        self.report = report
        self.trial_dir = trial_dir
        self.keep_weights = keep_weights
        self.timeout = timeout
        self.batch_size = batch_size
        self.best = math.inf
        self.started = time.monotonic()
        self.epoch_started = self.started

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_started = time.monotonic()

    def _predict(self, x: np.ndarray) -> np.ndarray:
        with undistributed():  # sizes need not split evenly over the devices
            return predict(self.model, x, self.batch_size)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        number = epoch + 1  # epochs are numbered from 1, as Keras prints them
        p_val = self._predict(self.data.x_val)
        p_train = self._predict(self.data.x_train[self.subset])
        y_train = self.data.y_train[self.subset]
        val_loss = cross_entropy(p_val, self.data.y_val)
        train_loss = cross_entropy(p_train, y_train)
        penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in self.model.losses)
        row = {
            ResultKey.EPOCH: number,
            ResultKey.VAL_LOSS: val_loss,
            ResultKey.TRAIN_EVAL_LOSS: train_loss,
            ResultKey.GAP: val_loss - train_loss,
            ResultKey.VAL_ACCURACY: accuracy(p_val, self.data.y_val),
            ResultKey.TRAIN_EVAL_ACCURACY: accuracy(p_train, y_train),
            "keras_loss": float(logs.get("loss", math.nan)),
            # Keras's val_loss is the compiled loss plus the regularization penalty.
            "keras_val_loss": val_loss + penalty,
            "keras_accuracy": float(logs.get("accuracy", math.nan)),
            "epoch_seconds": time.monotonic() - self.epoch_started,
        }
        finite = math.isfinite(val_loss) and math.isfinite(train_loss)
        if finite:  # this epoch's weights, before its history row: see CHECKPOINT
            tmp = self.trial_dir / CHECKPOINT_TMP
            self.model.save_weights(tmp)
            tmp.replace(checkpoint_path(self.trial_dir, number))
        _append_history(self.trial_dir, row)
        if finite:
            for epoch, path in checkpoints(self.trial_dir).items():
                if epoch < number:
                    path.unlink(missing_ok=True)
        _log(
            self.trial_dir,
            f"epoch {number}: val_loss {val_loss:.4f} train_eval_loss {train_loss:.4f} "
            f"gap {row['gap']:.4f} val_acc {row['val_accuracy']:.3f} "
            f"keras_loss {row['keras_loss']:.4f} ({row['epoch_seconds']:.1f}s)",
        )
        if finite and val_loss < self.best:
            self.best = val_loss
            if self.keep_weights:
                self.model.save_weights(self.trial_dir / BEST_WEIGHTS)
        self.report(row)
        if not finite:
            self.model.stop_training = True
        elif self.timeout is not None and time.monotonic() - self.started > self.timeout:
            raise TrialError(
                f"timeout: ran past train.trial_timeout={self.timeout:g}s at epoch {number}"
            )


def _append_history(trial_dir: Path, row: dict[str, Any]) -> None:
    path = trial_dir / HISTORY_FILE
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _log(trial_dir: Path, message: str) -> None:
    with (trial_dir / "trial.log").open("a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def _compile(
    model: keras.Model, train: TrainConfig, learning_rate: float, replicas: int = 1
) -> None:
    model.compile(
        optimizer=make_optimizer(train.optimizer, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution_for(train.steps_per_execution, replicas),
    )


def _trainable_count(layer: keras.layers.Layer) -> int:
    return len(getattr(layer, "trainable_weights", []))


def _epochs(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


def run_trial(
    sweep: Sweep,
    params: dict[str, Any],
    data: ImageData,
    report: Reporter,
    trial_dir: Path,
    seed: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    resume_from: Path | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> keras.Model:
    """Train one configuration and report clean metrics after every epoch.

    With ``train.head_epochs > 0`` (or a sampled ``params["head_epochs"]``; likewise
    ``finetune_lr_factor``) training has two phases, as in the Keras transfer-learning
    guide: the head trains with the whole backbone frozen for ``head_epochs`` epochs; then the
    trial's ``frozen_fraction`` / ``frozen_layers`` applies, the model is recompiled (Keras
    needs that after a change of ``trainable``) with a fresh optimizer at ``learning_rate *
    train.finetune_lr_factor``, and training goes on up to ``max_epochs``. Epochs are
    numbered on across the phases (1..head_epochs, then head_epochs+1..max_epochs), so the
    reports, history.csv and stopping see one run. A stop in the head phase (a non-finite
    loss) skips the second phase.

    With ``resources.gpus_per_trial`` of 2 or more the trial trains data-parallel over its GPUs
    (:func:`~overfit_search.training.distribute.data_parallel`).

    Args:
        sweep: The sweep (model, train, data and resources sections).
        params: The trial's knob values (searched and fixed).
        data: Decoded images and the split, shared by every trial.
        report: Called once per epoch with a row of :data:`HISTORY_COLUMNS`; the caller may
            stop the trial from inside it.
        trial_dir: ``trials/<number>/``: log, history.csv and best-epoch weights go here.
        seed: Seeds weights init, shuffling, dropout and augmentation.
        callbacks: Extra Keras callbacks, run after the reporter in both phases.
        resume_from: The folder of an interrupted trial of the same configuration and seed: its
            epochs are reported again from its history.csv and training goes on from its last
            epoch checkpoint (the optimizer's state starts afresh). Ignored without one.
        should_stop: Polled after every ``train.steps_per_execution`` batches; when it returns
            True the trial ends at once (:class:`TrialStopped`), with no report for the
            unfinished epoch.

    Returns:
        The model with the weights of the last epoch run.

    Raises:
        TrialError: The trial ran past ``train.trial_timeout``.
        TrialStopped: ``should_stop`` said so.
    """
    trial_dir.mkdir(parents=True, exist_ok=True)
    for stale in (
        trial_dir / HISTORY_FILE,
        trial_dir / BEST_WEIGHTS,
        *checkpoint_files(trial_dir),
    ):
        stale.unlink(missing_ok=True)
    done, checkpoint = resumable(resume_from, sweep.train.max_epochs)
    keras.backend.clear_session()  # workers are reused across trials
    keras.utils.set_random_seed(seed)
    with data_parallel(
        sweep.resources.gpus_per_trial,
        lambda line: _log(trial_dir, line),
        batch_size=sweep.train.batch_size,
    ) as replicas:
        return _train(
            sweep,
            params,
            data,
            report,
            trial_dir,
            seed,
            callbacks,
            done,
            checkpoint,
            resume_from,
            should_stop,
            replicas,
        )


def _train(
    sweep: Sweep,
    params: dict[str, Any],
    data: ImageData,
    report: Reporter,
    trial_dir: Path,
    seed: int,
    callbacks: Sequence[keras.callbacks.Callback],
    done: list[dict[str, Any]],
    checkpoint: Path | None,
    resume_from: Path | None,
    should_stop: Callable[[], bool] | None,
    replicas: int,
) -> keras.Model:
    """:func:`run_trial`'s work, inside its device set-up (``replicas`` devices)."""
    train = sweep.train
    with dtype_policy(train.mixed_precision) as policy:  # layers keep it after the block
        built = build_model(sweep, params, data.num_classes, seed=seed)
    backbone = built.backbone
    _log(
        trial_dir,
        f"params {params}; backbone layers frozen {built.frozen_layers}/{built.backbone_layers}, "
        f"batchnorm {sweep.model.batchnorm}; "
        f"train {len(data.y_train)} validation {len(data.y_val)} images; "
        f"backend {keras.backend.backend()}; dtype policy {policy}",
    )
    subset = eval_subset(len(data.y_train), len(data.y_val), seed=sweep.data.seed)
    reporter = _EpochReporter(
        data,
        subset,
        report,
        trial_dir,
        keep_weights=train.keep_best_weights > 0,
        timeout=train.trial_timeout,
        batch_size=max(64, train.batch_size),
    )
    learning_rate = float(params["learning_rate"])
    head_epochs, lr_factor = two_phase(sweep, params)
    head_epochs = min(head_epochs, train.max_epochs) if backbone is not None else 0
    start = 0
    if done:
        assert resume_from is not None and checkpoint is not None
        start = len(done)
        built.model.load_weights(checkpoint)
        # interrupted again before its next epoch ends, this trial resumes from here too
        shutil.copyfile(checkpoint, checkpoint_path(trial_dir, start))
        best_epoch = int(min(done, key=lambda row: row["val_loss"])["epoch"])
        if checkpoint.name == checkpoint_path(resume_from, best_epoch).name:
            # exactly the best epoch's weights, even if a kill came before their own save
            shutil.copyfile(checkpoint, trial_dir / BEST_WEIGHTS)
        elif (resume_from / BEST_WEIGHTS).exists():
            shutil.copyfile(resume_from / BEST_WEIGHTS, trial_dir / BEST_WEIGHTS)
        _log(trial_dir, f"resumed from {resume_from.name} after epoch {start} (its checkpoint)")
        for row in done:  # all rows before any report: the copied checkpoint needs them
            _append_history(trial_dir, row)
        for row in done:  # the judge and the study see the whole run, from epoch 1
            reporter.best = min(reporter.best, float(row["val_loss"]))
            report(row)

    stop_check = [_StopCheck(should_stop, train.trial_timeout)]

    # JAX's data parallelism needs every batch to split evenly, the last one included
    even = replicas if keras.backend.backend() == "jax" else 1

    def fit(first_epoch: int, last_epoch: int) -> None:
        built.model.fit(
            **fit_inputs(
                data.x_train, data.y_train, train.batch_size, seed + first_epoch, multiple_of=even
            ),
            initial_epoch=first_epoch,
            epochs=last_epoch,
            verbose=0,
            callbacks=[*stop_check, reporter, *callbacks],
        )

    if 0 < head_epochs <= start:  # resuming in the fine-tuning phase
        assert backbone is not None
        freeze_for_trial(backbone, params, sweep.model.batchnorm)
        learning_rate *= lr_factor
    elif head_epochs > 0:
        assert backbone is not None
        freeze(backbone, 1.0, None)  # the whole backbone: BN layers run in inference mode
        _compile(built.model, train, learning_rate, replicas)
        _log(
            trial_dir,
            f"phase 1 (head): {_epochs(1, head_epochs)}, whole backbone frozen "
            f"({_trainable_count(backbone.model)} trainable backbone weights), "
            f"learning rate {learning_rate:g}",
        )
        fit(start, head_epochs)
        if head_epochs >= train.max_epochs or built.model.stop_training:
            return _finished(built.model, trial_dir)
        frozen = freeze_for_trial(backbone, params, sweep.model.batchnorm)
        learning_rate *= lr_factor
        _log(
            trial_dir,
            f"phase 2 (fine-tune): {_epochs(head_epochs + 1, train.max_epochs)}, backbone "
            f"layers frozen {frozen}/{built.backbone_layers} "
            f"({_trainable_count(backbone.model)} trainable backbone weights), "
            f"learning rate {learning_rate:g}",
        )
    _compile(built.model, train, learning_rate, replicas)
    fit(max(head_epochs, start), train.max_epochs)
    return _finished(built.model, trial_dir)


def _finished(model: keras.Model, trial_dir: Path) -> keras.Model:
    for path in checkpoint_files(trial_dir):  # only an interrupted trial keeps one
        path.unlink(missing_ok=True)
    return model


def resumable(folder: Path | None, max_epochs: int) -> tuple[list[dict[str, Any]], Path | None]:
    """Where an interrupted trial can be resumed from.

    Args:
        folder: The interrupted trial's folder (None: nothing to resume).
        max_epochs: ``train.max_epochs``; at least one epoch is always left to train.

    Returns:
        The history rows of the epochs to replay and the checkpoint to load, the weights after
        the last of them; ``([], None)`` when there is no usable checkpoint. The checkpoint is
        the latest whose epoch has a history row (a kill between writing a checkpoint and its
        row leaves the previous epoch's). A trial killed after its last epoch replays all but
        that epoch and trains it once more, from that epoch's own weights.
    """
    if folder is None:
        return [], None
    try:
        with (folder / HISTORY_FILE).open(newline="") as fh:
            rows = [
                {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(fh)
            ]
    except (OSError, ValueError):
        return [], None
    finite = [
        r for r in rows if math.isfinite(r["val_loss"]) and math.isfinite(r["train_eval_loss"])
    ]
    if not finite or [r["epoch"] for r in finite] != list(range(1, len(finite) + 1)):
        return [], None
    saved = checkpoints(folder)
    usable = [epoch for epoch in saved if epoch <= len(finite)]
    if not usable:
        return [], None
    epoch = max(usable)
    return finite[: min(epoch, max_epochs - 1)], saved[epoch]
