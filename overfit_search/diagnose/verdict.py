"""The analysis of a parsed log: best epoch, onset, Prechelt's GL, gap, and the verdict."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from overfit_search.diagnose.advice import _advice
from overfit_search.diagnose.logs import LogFormat, TrainingLog
from overfit_search.errors import ConfigError
from overfit_search.pruning.rules import generalization_loss

Verdict = Literal["overfitting", "large_gap", "underfitting", "healthy"]


CAVEAT = (
    "Keras's logged training loss includes the regularization penalty (L2) and is measured with "
    "dropout and augmentation active, averaged over the epoch while the weights change; the real "
    "gap between validation and training error is usually larger than shown here. "
    "`overfit-search run` measures a clean train_eval_loss instead."
)
CAVEAT_CLEAN = (
    "The training loss here is overfit-search's clean train_eval_loss (no dropout, augmentation "
    "or L2 term), so the gap is a true generalization gap."
)

_ACCURACY_KEYS = (
    "accuracy",
    "acc",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "binary_accuracy",
    "train_eval_accuracy",
)
_LR_KEYS = ("learning_rate", "lr")


@dataclass(frozen=True)
class Thresholds:
    """The verdict's thresholds (each a ``diagnose`` option).

    Attributes:
        gl_alpha: ``overfitting`` needs GL at the last epoch >= this many percent.
        gap_ratio: ``large_gap`` when the gap at the best epoch >= this times the best val loss.
        improve_pct: ``underfitting`` when val loss fell by more than this many percent per
            epoch over the last ``window`` epochs.
        window: Epochs looked at for ``underfitting``.
        min_rise_epochs: An onset needs at least this many epochs after the best one.
        acc_near_one: Training accuracy counted as "near 1.0" for the split check.
        fast_epochs: "Within a few epochs" for the split check.
    """

    gl_alpha: float = 5.0
    gap_ratio: float = 0.5
    improve_pct: float = 1.0
    window: int = 3
    min_rise_epochs: int = 2
    acc_near_one: float = 0.97
    fast_epochs: int = 3

    def __post_init__(self) -> None:
        for name in ("gl_alpha", "gap_ratio", "improve_pct", "acc_near_one"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("window", "min_rise_epochs", "fast_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class Diagnosis:
    """What ``diagnose`` found (``--json`` prints it as one object).

    Attributes:
        source: The log's name.
        format: ``keras-console``, ``csv`` or ``history-json``.
        epochs: Printed epoch numbers of the epochs read (from 1, as Keras prints them).
        loss: Training loss per epoch (``None`` in JSON where not finite).
        val_loss: Validation loss per epoch.
        best_epoch: Epoch with the lowest finite ``val_loss``.
        best_val_loss: That loss.
        overfitting: Whether there is an onset and GL at the last epoch >= ``gl_alpha``.
        onset_epoch: The last epoch before validation loss starts rising for good while training
            loss falls; ``None`` if none.
        gl_last: Prechelt's GL at the last (finite) epoch, in percent.
        gap_at_best: ``val_loss - loss`` at the best epoch.
        gap_last: ``val_loss - loss`` at the last (finite) epoch.
        wasted_epochs: Epochs run after the best one.
        last_epoch: The last epoch analysed.
        total_epochs: ``N`` of ``Epoch n/N`` when the log says.
        val_improvement_pct: Mean fall of val loss per epoch over the last ``window`` epochs,
            in percent (negative when it rose); ``None`` with a single epoch.
        verdict: ``overfitting``, ``large_gap``, ``underfitting`` or ``healthy``.
        advice: Concrete steps, most important first.
        learning_rate: The learning rate at the best epoch when the log records it.
        nonfinite_epochs: Epochs with a NaN or infinite loss (left out of the analysis).
        diverged_epoch: First epoch of a run of non-finite losses that lasts to the end.
        metrics: Metric names found in the log.
        notes: What the parser and the analysis left out or assumed.
        caveat: What the logged training loss includes.
        thresholds: The thresholds used.
        images: Training and validation images and classes, when the log says
            (:attr:`TrainingLog.images`).
    """

    source: str
    format: LogFormat
    epochs: list[int]
    loss: list[float]
    val_loss: list[float]
    best_epoch: int
    best_val_loss: float
    overfitting: bool
    onset_epoch: int | None
    gl_last: float
    gap_at_best: float
    gap_last: float
    wasted_epochs: int
    last_epoch: int
    total_epochs: int | None
    val_improvement_pct: float | None
    verdict: Verdict
    advice: list[str]
    learning_rate: float | None
    nonfinite_epochs: list[int]
    diverged_epoch: int | None
    metrics: list[str]
    notes: list[str]
    caveat: str
    thresholds: dict[str, float]
    images: dict[str, int] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping (non-finite numbers become ``None``)."""
        return {k: _json_safe(v) for k, v in asdict(self).items()}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _accuracy_key(metrics: dict[str, list[float]]) -> str | None:
    for key in _ACCURACY_KEYS:
        val_key = "val_accuracy" if key == "train_eval_accuracy" else f"val_{key}"
        if key in metrics and val_key in metrics:
            return key
    return None


def _learning_rate(metrics: dict[str, list[float]], index: int) -> float | None:
    for key in _LR_KEYS:
        values = metrics.get(key)
        if values is not None and index < len(values):
            value = values[index]
            if math.isfinite(value) and value > 0:
                return value
    return None


def _improvement_pct(val: list[float], window: int) -> float | None:
    """Mean relative fall of val loss per epoch over the last ``window`` epochs, in percent."""
    steps = min(window, len(val) - 1)
    if steps < 1:
        return None
    start, end = val[-1 - steps], val[-1]
    if start <= 0:
        return 0.0
    if end <= 0:
        return 100.0
    return 100.0 * (1.0 - float((end / start) ** (1.0 / steps)))


def _onset(val: list[float], train: list[float], best: int, min_rise: int) -> bool:
    """Whether val loss rises for good after ``best`` while training loss falls.

    "For good": at least ``min_rise`` epochs follow the best one, the last val loss is above
    the best and at least half-way up the highest val loss since the best (a spike that came
    back down is not an onset), and the last training loss is below the one at the best epoch.
    """
    if len(val) - 1 - best < min_rise:
        return False
    peak = max(val[best:])
    rise = val[-1] - val[best]
    return rise > 0 and rise >= 0.5 * (peak - val[best]) and train[-1] < train[best]


def _split_suspect(
    metrics: dict[str, list[float]], idx: list[int], epochs: list[int], th: Thresholds
) -> tuple[int, float, float] | None:
    """(epoch, training accuracy, validation accuracy) when training accuracy is near 1.0
    within the first ``fast_epochs`` epochs while validation accuracy stalls after it."""
    key = _accuracy_key(metrics)
    if key is None:
        return None
    val_key = "val_accuracy" if key == "train_eval_accuracy" else f"val_{key}"
    acc = [metrics[key][i] for i in idx]
    val_acc = [metrics[val_key][i] for i in idx]
    for i in range(min(th.fast_epochs, len(acc))):
        if not (math.isfinite(acc[i]) and acc[i] >= th.acc_near_one):
            continue
        later = [v for v in val_acc[i:] if math.isfinite(v)]
        if not later or not math.isfinite(val_acc[i]):
            return None
        stalled = max(later) - val_acc[i] < 0.03
        if stalled and acc[i] - max(later) >= 0.1:
            return epochs[idx[i]], acc[i], max(later)
        return None
    return None


def diagnose(log: TrainingLog, thresholds: Thresholds | None = None) -> Diagnosis:
    """Analyse a parsed log: best epoch, onset, GL, gaps, verdict and advice.

    Epochs whose ``loss`` or ``val_loss`` is NaN or infinite are listed and left out of the
    analysis. The verdict is checked in this order: ``overfitting`` (an onset and GL at the last
    epoch >= ``gl_alpha``), ``large_gap`` (gap at the best epoch >= ``gap_ratio`` times the best
    val loss), ``underfitting`` (val loss fell by more than ``improve_pct`` percent per epoch
    over the last ``window`` epochs), ``healthy``.

    Args:
        log: The parsed log.
        thresholds: The verdict's thresholds (defaults: see :class:`Thresholds`).

    Returns:
        The diagnosis.

    Raises:
        ConfigError: No epoch has a finite loss and val_loss.
    """
    th = thresholds or Thresholds()
    all_val = log.metrics["val_loss"]
    all_train = log.metrics["loss"]
    finite = [
        i
        for i in range(len(log.epochs))
        if math.isfinite(all_val[i]) and math.isfinite(all_train[i])
    ]
    nonfinite = [log.epochs[i] for i in range(len(log.epochs)) if i not in set(finite)]
    if not finite:
        raise ConfigError(
            f"{log.source}: every epoch's loss or val_loss is NaN or infinite; training "
            f"diverged from epoch {log.epochs[0]}: lower the learning rate"
        )
    diverged = None
    if nonfinite and nonfinite[-1] == log.epochs[-1]:
        tail = [e for e in log.epochs if e > log.epochs[finite[-1]]]
        diverged = tail[0]
    epochs = [log.epochs[i] for i in finite]
    val = [all_val[i] for i in finite]
    train = [all_train[i] for i in finite]
    best = min(range(len(val)), key=lambda i: (val[i], i))
    best_val = val[best]
    gl_last = generalization_loss(val)
    gap_at_best = best_val - train[best]
    gap_last = val[-1] - train[-1]
    onset = epochs[best] if _onset(val, train, best, th.min_rise_epochs) else None
    overfitting = onset is not None and gl_last >= th.gl_alpha
    improvement = _improvement_pct(val, th.window)
    verdict: Verdict
    if overfitting:
        verdict = "overfitting"
    elif gap_at_best >= th.gap_ratio * best_val:
        verdict = "large_gap"
    elif improvement is not None and improvement > th.improve_pct:
        verdict = "underfitting"
    else:
        verdict = "healthy"
    notes = list(log.notes)
    if nonfinite:
        notes.append(
            f"Epoch(s) {', '.join(map(str, nonfinite))} have a NaN or infinite loss; left out "
            "of the analysis."
        )
    if len(epochs) < 3:
        notes.append(f"Only {len(epochs)} epoch(s): too few to see trends.")
    learning_rate = _learning_rate(log.metrics, finite[best])
    split = _split_suspect(log.metrics, finite, log.epochs, th)
    advice = _advice(
        verdict=verdict,
        epochs=epochs,
        val=val,
        train=train,
        best=best,
        onset=onset,
        gl_last=gl_last,
        gap_at_best=gap_at_best,
        improvement=improvement,
        diverged=diverged,
        split=split,
        th=th,
    )
    return Diagnosis(
        source=log.source,
        format=log.format,
        epochs=list(log.epochs),
        loss=list(all_train),
        val_loss=list(all_val),
        best_epoch=epochs[best],
        best_val_loss=best_val,
        overfitting=overfitting,
        onset_epoch=onset,
        gl_last=gl_last,
        gap_at_best=gap_at_best,
        gap_last=gap_last,
        wasted_epochs=epochs[-1] - epochs[best],
        last_epoch=epochs[-1],
        total_epochs=log.total_epochs,
        val_improvement_pct=improvement,
        verdict=verdict,
        advice=advice,
        learning_rate=learning_rate,
        nonfinite_epochs=nonfinite,
        diverged_epoch=diverged,
        metrics=list(log.metrics),
        notes=notes,
        caveat=CAVEAT_CLEAN if log.clean_train_loss else CAVEAT,
        thresholds={k: float(v) for k, v in asdict(th).items()},
        images=dict(log.images),
    )
