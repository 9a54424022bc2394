"""``overfit-search diagnose``: read a finished training run and say whether it overfit.

Pure: no Keras, TensorFlow, Ray or Optuna imports. The input is any of

- Keras console output: TF2 style (``120/120 [====] - 41s 342ms/step - loss: … - val_loss: …``
  after the ``Epoch n/N`` line or on the same line) and Keras 3 style (``━━━━`` bars, ANSI
  colours, carriage returns and backspaces, metrics in any order), with extra metrics, text
  before and after, a log that starts mid-run (printed epoch numbers are kept) and a truncated
  last epoch (left out, with a note);
- a ``keras.callbacks.CSVLogger`` file (its ``epoch`` column counts from 0; epochs are shown from
  1 as Keras prints them), or a trial's ``history.csv`` written by ``overfit-search run``;
- a History JSON: ``json.dump(history.history, f)``, a mapping of metric name to per-epoch list.

The analysis follows DESIGN.md §5: ``E_opt(t)`` is the lowest validation loss up to epoch ``t``
and Prechelt's generalization loss is ``GL(t) = 100 * (E_va(t) / E_opt(t) - 1)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from overfit_search.argtypes import nonneg_float, positive_int
from overfit_search.errors import ConfigError
from overfit_search.pruning.rules import generalization_loss

Verdict = Literal["overfitting", "large_gap", "underfitting", "healthy"]
LogFormat = Literal["keras-console", "csv", "history-json"]

FORMATS = (
    "understood formats: Keras console output (`Epoch n/N` lines with "
    "`... - loss: 0.41 - val_loss: 0.60`, TF2 or Keras 3 style), a CSVLogger file "
    "(header `epoch,loss,val_loss,...`), or a History JSON "
    '(`json.dump(history.history, f)`: {"loss": [...], "val_loss": [...]})'
)

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

# ---------------------------------------------------------------------------------------------
# Parsed logs


@dataclass
class TrainingLog:
    """Per-epoch metrics read from one log.

    Attributes:
        source: The file name (``<stdin>`` for standard input), used in messages.
        format: Which parser read it.
        epochs: Epoch numbers as Keras prints them (from 1), one per kept epoch.
        metrics: Metric name to per-epoch values (``nan`` where an epoch lacks it); always has
            ``loss`` and ``val_loss``.
        total_epochs: ``N`` of the last ``Epoch n/N`` line, if the log says.
        notes: What the parser left out or assumed, one sentence each.
        clean_train_loss: Whether ``loss`` is overfit-search's clean ``train_eval_loss``.
        images: ``{"train": n, "validation": m, "classes": k}`` when the log says how many images
            the fit read (``flow_from_directory``'s two ``Found n images belonging to k
            classes.`` lines, or ``image_dataset_from_directory``'s ``Using n files for
            training.`` / ``validation.``); empty otherwise.
    """

    source: str
    format: LogFormat
    epochs: list[int]
    metrics: dict[str, list[float]]
    total_epochs: int | None = None
    notes: list[str] = field(default_factory=list)
    clean_train_loss: bool = False
    images: dict[str, int] = field(default_factory=dict)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_HEADER = re.compile(r"\bEpoch\s+(\d+)\s*/\s*(\d+)")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
_METRIC = re.compile(
    rf"(?<![\w./-])([A-Za-z_][\w./-]*)\s*:\s*({_NUMBER})(?!\w)(?!\.\d)", re.IGNORECASE
)
_NOT_METRICS = frozenset({"eta", "epoch", "step", "steps"})
_FOUND = re.compile(r"\bFound (\d+) (?:images|files) belonging to (\d+) class(?:es)?\b")
_USING = re.compile(r"\bUsing (\d+) files for (training|validation)\b")


def _image_counts(text: str) -> dict[str, int]:
    """Training and validation image counts and classes printed by Keras's directory loaders
    before the first epoch: ``image_dataset_from_directory``'s ``Using n files for training.``
    and ``... for validation.``, or exactly two of ``flow_from_directory``'s ``Found n images
    belonging to k classes.`` (training, then validation, with as many classes); empty when the
    log does not say or is ambiguous (a third generator, several of a kind)."""
    first = _HEADER.search(text)
    text = text[: first.start()] if first else text
    found = [(int(n), int(k)) for n, k in _FOUND.findall(text)]
    using = _USING.findall(text)
    subsets = [subset for _, subset in using]
    if found and sorted(subsets) == ["training", "validation"]:
        counts = {subset: int(n) for n, subset in using}
        classes = found[-1][1]
        return {"train": counts["training"], "validation": counts["validation"], "classes": classes}
    if not using and len(found) == 2 and found[0][1] == found[1][1] and found[0][0] and found[1][0]:
        return {"train": found[0][0], "validation": found[1][0], "classes": found[1][1]}
    return {}


def _to_float(text: str) -> float:
    """A metric value; ``nan`` for empty cells and CSVLogger's ``NA``."""
    text = text.strip()
    if text in ("", "NA", "N/A", "None", "null"):
        return math.nan
    return float(text)


def _segment_metrics(segment: str) -> dict[str, float]:
    """``name: value`` pairs in one progress segment (ETA and friends excluded)."""
    found: dict[str, float] = {}
    for match in _METRIC.finditer(segment):
        name = match.group(1)
        if name.lower() in _NOT_METRICS:
            continue
        found[name] = float(match.group(2))
    return found


def _is_epoch_metrics(metrics: dict[str, float]) -> bool:
    return any(name.endswith("loss") for name in metrics)


def _has_validation(metrics: dict[str, float]) -> bool:
    return any(name.startswith("val_") for name in metrics)


def _epoch_range(epochs: list[int]) -> str:
    if not epochs:
        return "none"
    return str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"


def parse_console(text: str, source: str = "<log>") -> TrainingLog:
    """Read Keras console output (``model.fit`` with ``verbose=1`` or ``2``).

    Every ``Epoch n/N`` line starts an epoch; the last progress segment of that epoch that
    carries validation metrics (or, failing that, its last segment with a loss) holds its figures.
    A new run (epoch numbers restart) replaces the earlier one, with a note.

    Args:
        text: The log's text.
        source: Its name, for messages.

    Returns:
        The epochs that have a ``val_loss``, with their printed numbers.

    Raises:
        ConfigError: No ``Epoch n/N`` line with losses, or no validation metrics.
    """
    clean = _ANSI.sub("", text).replace("\b", "")
    runs: list[dict[int, dict[str, float]]] = []
    records: dict[int, dict[str, float]] = {}
    current: int | None = None
    total: int | None = None
    orphan = False

    def take(segment: str) -> None:
        nonlocal orphan
        metrics = _segment_metrics(segment)
        if not _is_epoch_metrics(metrics):
            return
        if current is None:
            orphan = True
            return
        previous = records.get(current)
        if not previous or _has_validation(metrics) or not _has_validation(previous):
            records[current] = metrics

    for line in _LINE_BREAK.split(clean):
        start = 0
        for header in _HEADER.finditer(line):
            take(line[start : header.start()])
            number = int(header.group(1))
            if current is not None and number <= current and records:
                runs.append(records)
                records = {}
            current = number
            total = int(header.group(2))
            records.setdefault(number, {})
            start = header.end()
        take(line[start:])
    runs.append(records)

    runs = [run for run in runs if any(run.values())]
    if not runs:
        raise ConfigError(f"{source}: `Epoch n/N` lines found but no losses after them; {FORMATS}")
    notes: list[str] = []
    if orphan:
        notes.append("A partial epoch before the first `Epoch n/N` line was left out.")
    if len(runs) > 1:
        notes.append(
            f"The log holds {len(runs)} training runs (epoch numbers restart); "
            f"diagnosing the last one (epochs {_epoch_range(list(runs[-1]))})."
        )
    chosen = runs[-1]
    numbers = list(chosen)
    epochs: list[int] = []
    kept: list[dict[str, float]] = []
    for number in numbers:
        metrics = chosen[number]
        if "val_loss" in metrics and "loss" in metrics:
            epochs.append(number)
            kept.append(metrics)
        elif number == numbers[-1]:
            notes.append(
                f"Epoch {number} is incomplete (the log ends before its validation metrics); "
                "left out."
            )
        else:
            notes.append(f"Epoch {number} has no val_loss (validation_freq?); left out.")
    names: list[str] = []
    for metrics in chosen.values():
        names.extend(n for n in metrics if n not in names)
    if not epochs:
        _require(source, "Keras console log", names)
    metric_table = {name: [m.get(name, math.nan) for m in kept] for name in names}
    log = _finish(source, "keras-console", epochs, metric_table, total, notes)
    log.images = _image_counts(clean)
    return log


def _detect_delimiter(header: str) -> str | None:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else None


def _looks_like_csv(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = _detect_delimiter(first)
    if delimiter is None:
        return False
    columns = {c.strip().strip('"').lower() for c in first.split(delimiter)}
    return bool(columns & {"epoch", "loss", "val_loss"})


def parse_csv(text: str, source: str = "<log>") -> TrainingLog:
    """Read a CSVLogger file (or a trial's ``history.csv`` from ``overfit-search run``).

    CSVLogger numbers epochs from 0; they are shown from 1 as Keras prints them. A file with a
    ``train_eval_loss`` column is overfit-search's own (epochs from 1, clean training loss).
    ``NA`` and empty cells are NaN. A short or unreadable last row (a truncated file) is left out.

    Args:
        text: The file's text.
        source: Its name, for messages.

    Returns:
        The parsed log.

    Raises:
        ConfigError: No header, a malformed row before the last, or no validation metrics.
    """
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise ConfigError(f"{source}: empty file; {FORMATS}")
    header = lines[0][1]
    delimiter = _detect_delimiter(header) or ","
    columns = [c.strip() for c in next(csv.reader([header], delimiter=delimiter))]
    if "trial" in columns:
        raise ConfigError(
            f"{source}: holds the histories of several trials (a results histories.csv); "
            "pass one trial's trials/<n>/history.csv"
        )
    clean = "train_eval_loss" in columns
    rows: list[list[float]] = []
    notes: list[str] = []
    body = lines[1:]
    for index, (line_no, line) in enumerate(body):
        cells = next(csv.reader([line], delimiter=delimiter))
        try:
            if len(cells) != len(columns):
                raise ValueError(f"expected {len(columns)} values, found {len(cells)}")
            rows.append([_to_float(cell) for cell in cells])
        except ValueError as exc:
            if index == len(body) - 1 and rows:
                notes.append(f"Line {line_no} is incomplete (a truncated file?); left out.")
                continue
            raise ConfigError(f"{source}: line {line_no}: not a row of numbers ({exc})") from None
    _require(source, "CSV file", columns)
    table = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
    if "epoch" in table:
        offset = 0 if clean else 1
        epochs = [int(v) + offset for v in table.pop("epoch")]
        if not clean:
            notes.append("CSVLogger counts epochs from 0; shown from 1 as Keras prints them.")
    else:
        epochs = list(range(1, len(rows) + 1))
    if clean:
        if "loss" in table:
            table["keras_loss"] = table.pop("loss")
        table["loss"] = table["train_eval_loss"]
    log = _finish(source, "csv", epochs, table, None, notes)
    log.clean_train_loss = clean
    return log


def parse_history_json(text: str, source: str = "<log>") -> TrainingLog:
    """Read a History JSON: ``json.dump(history.history, f)``.

    Also accepts ``{"history": {...}, "epoch": [...]}`` (``History.epoch`` counts from 0).
    ``null`` and ``NaN`` values are NaN.

    Args:
        text: The file's text.
        source: Its name, for messages.

    Returns:
        The parsed log, epochs numbered from 1.

    Raises:
        ConfigError: Not JSON, not a mapping of lists of numbers, lists of different lengths,
            or no validation metrics.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: looks like JSON but does not parse (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); {FORMATS}"
        ) from None
    epoch_list: Any = None
    if isinstance(data, dict) and isinstance(data.get("history"), dict):
        epoch_list = data.get("epoch")
        data = data["history"]
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(v, list) for v in data.values())
    ):
        raise ConfigError(f"{source}: JSON but not a History mapping of lists; {FORMATS}")
    _require(source, "History JSON", list(data))
    table: dict[str, list[float]] = {}
    for name, values in data.items():
        try:
            table[str(name)] = [math.nan if v is None else float(v) for v in values]
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {name}: expected a list of numbers") from None
    count = len(table["loss"])
    if len(table["val_loss"]) != count:
        raise ConfigError(
            f"{source}: loss has {count} values but val_loss {len(table['val_loss'])} "
            "(validation_freq > 1?); both need one value per epoch"
        )
    notes: list[str] = []
    for name in [n for n, v in table.items() if len(v) != count]:
        notes.append(f"{name} has {len(table[name])} values for {count} epochs; left out.")
        del table[name]
    if isinstance(epoch_list, list) and len(epoch_list) == count:
        epochs = [int(e) + 1 for e in epoch_list]
    else:
        epochs = list(range(1, count + 1))
    return _finish(source, "history-json", epochs, table, None, notes)


def _require(source: str, kind: str, names: list[str]) -> None:
    """Raise a clear error unless ``loss`` and ``val_loss`` are among the metric names."""
    found = ", ".join(names) if names else "none"
    if "val_loss" not in names:
        raise ConfigError(
            f"{source}: no validation metrics (val_loss) in this {kind}; found: {found}. "
            "Fit with validation_data=... or validation_split=... so Keras reports val_loss"
        )
    if "loss" not in names and "train_eval_loss" not in names:
        raise ConfigError(f"{source}: no training loss (loss) in this {kind}; found: {found}")


def _finish(
    source: str,
    fmt: LogFormat,
    epochs: list[int],
    metrics: dict[str, list[float]],
    total: int | None,
    notes: list[str],
) -> TrainingLog:
    if not epochs:
        raise ConfigError(f"{source}: no complete epoch (with loss and val_loss) in this log")
    return TrainingLog(source, fmt, epochs, metrics, total, notes)


def parse_log(text: str, source: str = "<log>") -> TrainingLog:
    """Detect the format of a log and parse it.

    Args:
        text: The log's text.
        source: Its name, for messages.

    Returns:
        The parsed log.

    Raises:
        ConfigError: An unrecognised format (the message lists the understood ones), or a
            recognised one without usable epochs.
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ConfigError(f"{source}: empty file; {FORMATS}")
    if stripped[0] in "{[" and not _HEADER.search(text):
        return parse_history_json(stripped, source)
    if _HEADER.search(text):
        return parse_console(text, source)
    if _looks_like_csv(stripped):
        return parse_csv(stripped, source)
    raise ConfigError(f"{source}: not a training log this command understands; {FORMATS}")


def read_log(path: str | Path) -> TrainingLog:
    """Read and parse a log file, or standard input for ``-``.

    Raises:
        ConfigError: The file is missing or unreadable, or its format is not understood.
    """
    if str(path) == "-":
        return parse_log(sys.stdin.read(), "<stdin>")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if b"\0" in raw[:4096]:
        raise ConfigError(f"{path}: a binary file, not a training log; {FORMATS}")
    return parse_log(raw.decode("utf-8", errors="replace"), str(path))


# ---------------------------------------------------------------------------------------------
# Analysis


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


def _spikes(val: list[float], epochs: list[int]) -> list[int]:
    """Epochs where val loss jumped by >= 25% and came back at least half-way the next epoch."""
    found = []
    for i in range(1, len(val) - 1):
        jump = val[i] - val[i - 1]
        if val[i - 1] > 0 and jump >= 0.25 * val[i - 1] and val[i + 1] <= val[i] - 0.5 * jump:
            found.append(epochs[i])
    return found


def _train_rises(train: list[float], epochs: list[int]) -> list[int]:
    """Epochs where the training loss rose by more than 10% over the previous epoch."""
    return [
        epochs[i]
        for i in range(1, len(train))
        if train[i - 1] > 0 and train[i] > 1.10 * train[i - 1]
    ]


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


def _advice(
    *,
    verdict: Verdict,
    epochs: list[int],
    val: list[float],
    train: list[float],
    best: int,
    onset: int | None,
    gl_last: float,
    gap_at_best: float,
    improvement: float | None,
    diverged: int | None,
    split: tuple[int, float, float] | None,
    th: Thresholds,
) -> list[str]:
    """Concrete steps, ranked: divergence, stopping, the split, regularization, freezing, the
    learning rate, training longer."""
    out: list[str] = []
    best_epoch = epochs[best]
    gapping = verdict in ("overfitting", "large_gap")
    if diverged is not None:
        out.append(
            f"Training diverged at epoch {diverged} (NaN or infinite loss): lower the learning "
            "rate about 10x (or clip gradients); the figures here stop at epoch "
            f"{epochs[-1]}."
        )
    if verdict == "overfitting":
        out.append(
            f"Stop at epoch {best_epoch}: validation loss was lowest there ({val[best]:.4f}) "
            f"and rose for {epochs[-1] - best_epoch} epoch(s) after it (GL {gl_last:.1f}%) "
            f"while training loss kept falling. Retrain for {best_epoch} epochs, or use "
            "EarlyStopping(monitor='val_loss', patience=2, restore_best_weights=True)."
        )
    elif onset is not None:
        out.append(
            f"Validation loss has crept up since epoch {onset} while training loss fell "
            f"(GL {gl_last:.1f}% < {th.gl_alpha:g}%): keep the epoch-{onset} weights "
            "(restore_best_weights=True); longer runs will overfit."
        )
    if split is not None:
        epoch, acc, val_acc = split
        out.append(
            f"Check the split: training accuracy was {acc:.2f} by epoch {epoch} while "
            f"validation accuracy stalled at {val_acc:.2f}. The split may leak or be "
            "unrepresentative: near-duplicates (frames of one video, one person) on both sides, "
            "or ImageDataGenerator's validation_split, which takes the last files of each class "
            "folder; split by source (data.group_pattern) and look for duplicates across it."
        )
    if gapping:
        share = 100.0 * gap_at_best / val[best] if val[best] > 0 else math.inf
        out.append(
            f"Regularize: the gap at the best epoch is {gap_at_best:.4f} ({share:.0f}% of the "
            "validation loss). Raise dropout before the classifier (0.3-0.5), add L2 on the head "
            "(1e-4 to 1e-3) and augmentation (flips, small rotations, zoom, contrast)."
        )
        out.append(
            "Freeze more of the backbone (train the head, then only the top blocks): fewer "
            "trainable weights overfit less on a small data set."
        )
    spikes = _spikes(val, epochs)
    rises = _train_rises(train, epochs)
    reasons = []
    if verdict == "overfitting" and best <= 1 and len(val) > 2:
        reasons.append(f"validation loss was lowest already at epoch {best_epoch}")
    if spikes:
        reasons.append(f"validation loss spiked at epoch(s) {', '.join(map(str, spikes))}")
    if rises:
        reasons.append(f"training loss rose at epoch(s) {', '.join(map(str, rises))}")
    if reasons and diverged is None:
        out.append(
            f"Lower the learning rate (3-10x, or decay it): {'; '.join(reasons)}. "
            "Fine-tuning a pretrained backbone wants small steps."
        )
    if verdict == "underfitting" and improvement is not None:
        out.append(
            f"Train longer: validation loss still fell {improvement:.1f}% per epoch over the last "
            f"{min(th.window, len(val) - 1)} epoch(s); the run ended while improving."
        )
        out.append(
            "If a longer run plateaus high, freeze fewer backbone layers (fine-tune more of it), "
            "lower dropout/L2, or raise the learning rate."
        )
    if verdict == "healthy" and not out:
        if len(val) < 3:
            out.append("Train for more epochs: too few to judge overfitting.")
        else:
            out.append(
                f"Nothing urgent: validation loss is lowest at epoch {best_epoch} with a modest "
                f"gap. Keep {best_epoch} epochs, and guard longer runs with "
                "EarlyStopping(restore_best_weights=True)."
            )
    return out


# ---------------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, spec: str = ".4f") -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return format(value, spec)


_FORMAT_NAMES = {
    "keras-console": "Keras console log",
    "csv": "CSV history",
    "history-json": "History JSON",
}


def render_report(d: Diagnosis) -> str:
    """The human report: figures, verdict, ranked advice and the caveat."""
    of_total = f" of {d.total_epochs}" if d.total_epochs else ""
    lines = [
        f"{d.source}: {_FORMAT_NAMES[d.format]}, {len(d.epochs)} epoch(s) "
        f"({_epoch_range(d.epochs)}{of_total})",
        f"Verdict: {d.verdict.upper().replace('_', ' ')}",
        "",
        f"  best epoch         {d.best_epoch}  (val_loss {_fmt(d.best_val_loss)})",
    ]
    if d.onset_epoch is not None:
        lines.append(
            f"  onset              after epoch {d.onset_epoch} validation loss rises while "
            "training loss falls"
        )
    else:
        lines.append("  onset              none (validation loss does not rise for good)")
    lines += [
        f"  GL at last epoch   {_fmt(d.gl_last, '.1f')}%  (epoch {d.last_epoch}; overfitting "
        f"from {d.thresholds['gl_alpha']:g}%)",
        f"  gap at best        {_fmt(d.gap_at_best)}  (val_loss - loss at epoch {d.best_epoch})",
        f"  gap at end         {_fmt(d.gap_last)}  (epoch {d.last_epoch})",
        f"  wasted epochs      {d.wasted_epochs}"
        + (f"  (epochs {d.best_epoch + 1}-{d.last_epoch})" if d.wasted_epochs else ""),
    ]
    if d.val_improvement_pct is not None:
        lines.append(f"  val_loss trend     {-d.val_improvement_pct:+.1f}% per epoch at the end")
    if d.learning_rate is not None:
        lines.append(f"  learning rate      {d.learning_rate:.3g} at the best epoch")
    if d.diverged_epoch is not None:
        lines.append(f"  diverged           from epoch {d.diverged_epoch} (NaN/inf loss)")
    if d.images:
        lines.append(
            f"  images             {d.images['train']} training, {d.images['validation']} "
            f"validation ({100 * _validation_fraction(d.images):.0f}%), "
            f"{d.images['classes']} classes"
        )
    lines += ["", "Advice:"]
    for number, item in enumerate(d.advice, 1):
        wrapped = textwrap.wrap(item, width=92, subsequent_indent="     ")
        lines.append(f"  {number}. " + "\n".join(wrapped))
    for note in d.notes:
        lines.append("\n".join(textwrap.wrap(f"Note: {note}", width=100, subsequent_indent="  ")))
    lines.append("\n".join(textwrap.wrap(f"Caveat: {d.caveat}", 100, subsequent_indent="  ")))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Suggested sweep


def sweep_name(source: str | Path) -> str:
    """A study name from a log's file name (``diagnosed`` for standard input)."""
    text = str(source)
    if text in ("-", "<stdin>", ""):
        return "diagnosed"
    stem = Path(text).name
    for suffix in (".log", ".txt", ".out", ".csv", ".json"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("._-")
    return name or "diagnosed"


def _validation_fraction(images: dict[str, int]) -> float:
    """The validation share of the images the log's fit read."""
    return images["validation"] / (images["train"] + images["validation"])


def _sig(value: float) -> float:
    return float(f"{value:.2g}")


def _lr_range(d: Diagnosis) -> dict[str, Any]:
    """Learning-rate range centred on what the log suggests."""
    lr = d.learning_rate
    if d.diverged_epoch is not None:
        low, high = (lr / 100, lr / 3) if lr else (1e-5, 1e-3)
    elif d.verdict in ("overfitting", "large_gap"):
        early = d.onset_epoch is not None and d.epochs.index(d.onset_epoch) <= 1
        if lr:
            low, high = lr / 30, lr
        else:
            low, high = (1e-5, 1e-3) if early else (1e-5, 3e-3)
    elif d.verdict == "underfitting":
        low, high = (lr / 3, lr * 10) if lr else (1e-4, 1e-2)
    else:
        low, high = (lr / 10, lr * 3) if lr else (1e-5, 1e-2)
    low, high = max(_sig(low), 1e-8), min(_sig(high), 1.0)
    return {"low": low, "high": max(high, low), "log": True}


PLACEHOLDER_DIR = "data/REPLACE_ME"
DEFAULT_BACKBONE = "mobilenet_v2"


def suggest_sweep(
    d: Diagnosis, name: str, data_dir: str = PLACEHOLDER_DIR, backbone: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A sweep mapping whose ranges are centred on what the diagnosis suggests.

    Overfitting or a large gap leans towards more dropout, L2, augmentation and freezing and a
    lower learning rate, with ``max_epochs`` about twice the best epoch; underfitting leans the
    other way, with twice the epochs run; a healthy run gets ranges around the usual defaults.
    When the log says how many images were read for training and validation, ``data`` keeps
    that validation share. A ``tfhub:`` backbone is frozen whole (``frozen_fraction: 1.0``):
    a module can only be frozen all or nothing.

    Args:
        d: The diagnosis.
        name: The study name.
        data_dir: ``data.dir`` to write (the placeholder: the user replaces it).
        backbone: ``model.backbone`` to write; default ``mobilenet_v2``, a guess the user
            replaces.

    Returns:
        The sweep mapping and comment lines explaining it.
    """
    if d.verdict in ("overfitting", "large_gap"):
        search: dict[str, Any] = {
            "dropout": {"low": 0.2, "high": 0.6},
            "l2": {"low": 1e-5, "high": 1e-2, "log": True},
            "augmentation": {"low": 0.3, "high": 1.0},
            "frozen_fraction": {"low": 0.7, "high": 1.0},
        }
        epochs = max(2 * d.best_epoch, d.best_epoch + 5)
        why = (
            "more dropout, L2, augmentation and frozen layers and a lower learning rate; "
            f"max_epochs ~2x the best epoch ({d.best_epoch})"
        )
    elif d.verdict == "underfitting":
        search = {
            "dropout": {"low": 0.0, "high": 0.3},
            "l2": {"low": 1e-7, "high": 1e-4, "log": True},
            "augmentation": {"low": 0.0, "high": 0.5},
            "frozen_fraction": {"low": 0.0, "high": 0.8},
        }
        epochs = max(2 * d.last_epoch, 10)
        why = (
            "less regularization, more of the backbone trained, a learning rate at or above the "
            f"log's; max_epochs 2x the epochs run ({d.last_epoch})"
        )
    else:
        search = {
            "dropout": {"low": 0.0, "high": 0.5},
            "l2": {"low": 1e-6, "high": 1e-3, "log": True},
            "augmentation": {"low": 0.0, "high": 0.8},
            "frozen_fraction": {"low": 0.5, "high": 1.0},
        }
        epochs = max(d.best_epoch + 5, d.last_epoch)
        why = "ranges around the defaults, centred on the log's learning rate when it has one"
    search = {
        "dropout": search["dropout"],
        "l2": search["l2"],
        "learning_rate": _lr_range(d),
        "augmentation": search["augmentation"],
        "frozen_fraction": search["frozen_fraction"],
    }
    data: dict[str, Any] = {"source": "folder", "dir": data_dir}
    if d.images:
        data["validation_fraction"] = min(max(round(_validation_fraction(d.images), 2), 0.01), 0.9)
    if backbone is not None and backbone.startswith("tfhub:"):
        search["frozen_fraction"] = 1.0
    doc: dict[str, Any] = {
        "name": name,
        "data": data,
        "model": {"backbone": backbone or DEFAULT_BACKBONE},
        "train": {"max_epochs": min(epochs, 500)},
        "search": search,
        "objective": {"mode": "constrained", "max_gap": 0.10},
        "pruning": {"rule": {"name": "gl", "alpha": d.thresholds["gl_alpha"] or 5.0}},
    }
    comments = [
        f"Suggested by `overfit-search diagnose {d.source}`.",
        f"Verdict: {d.verdict} (best epoch {d.best_epoch} of {d.last_epoch}, GL "
        f"{_fmt(d.gl_last, '.1f')}% at the end, gap {_fmt(d.gap_at_best)} at the best epoch).",
        f"Ranges lean towards {why}.",
    ]
    if d.images:
        comments.append(
            f"data.validation_fraction: the log's {d.images['validation']} validation images of "
            f"{d.images['train'] + d.images['validation']} ({d.images['classes']} classes)."
        )
    todo = []
    if data_dir == PLACEHOLDER_DIR:
        todo.append(f"data.dir (now {data_dir}, or pass --data DIR)")
    if backbone is None:
        todo.append(f"model.backbone (now {DEFAULT_BACKBONE}, a guess; or pass --backbone SPEC)")
    if todo:
        comments.append(f"Set {' and '.join(todo)}, then: overfit-search validate FILE")
    else:
        comments.append("Check it with: overfit-search validate FILE")
    return doc, comments


def write_sweep(
    d: Diagnosis,
    out: str | Path,
    name: str | None = None,
    *,
    force: bool = False,
    data_dir: str | None = None,
    backbone: str | None = None,
) -> Path:
    """Write the suggested sweep to ``out`` after validating it.

    Args:
        d: The diagnosis.
        out: The YAML file to write.
        name: Study name; default from the log's file name.
        force: Replace an existing file.
        data_dir: ``data.dir`` (written as an absolute path); default a placeholder.
        backbone: ``model.backbone``; default ``mobilenet_v2``.

    Returns:
        The path written.

    Raises:
        ConfigError: ``out`` exists (without ``force``) or cannot be written, or ``backbone``
            is not one the sweep file accepts.
    """
    path = Path(out)
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; pass --force to replace it")
    directory = str(Path(data_dir).expanduser().resolve()) if data_dir else PLACEHOLDER_DIR
    doc, comments = suggest_sweep(d, name or sweep_name(d.source), directory, backbone)
    from overfit_search.config import sweep_from_dict

    sweep_from_dict(json.loads(json.dumps(doc)), source=str(path))
    comments[-1] = comments[-1].replace("validate FILE", f"validate {path}")
    header = [part for line in comments for part in textwrap.wrap(line, 96)]
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(doc, sort_keys=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror})") from None
    return path


# ---------------------------------------------------------------------------------------------
# Command line

EPILOG = """\
verdict rules, checked in this order (thresholds are the options above):
  overfitting   there is an onset (after the best epoch, validation loss rises for at least
                --min-rise epochs and stays at least half-way up its peak, while training loss
                falls) and Prechelt's GL at the last epoch, 100 * (val_loss / lowest val_loss
                so far - 1), is at least --gl-threshold percent (default 5)
  large_gap     the gap at the best epoch (val_loss - loss) is at least --gap-ratio (default 0.5)
                times the best val_loss
  underfitting  validation loss still fell by more than --improve-pct percent per epoch
                (default 1) over the last --window epochs (default 3)
  healthy       otherwise

input: Keras console output (TF2 or Keras 3 style; epochs keep their printed numbers), a CSVLogger
file, or a History JSON (json.dump(history.history, f)); '-' reads standard input.
Keras's logged training loss includes the L2 penalty, dropout and augmentation, so the real gap
is usually larger than the one shown. Exit codes: 0 diagnosed, 2 input not understood.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diagnose`` subcommand (its function is :func:`run`)."""
    defaults = Thresholds()
    parser = subparsers.add_parser(
        "diagnose",
        help="read a finished training log and say whether, from when and how it overfit",
        description="Read a finished Keras training run (console log, CSVLogger file or History\n"
        "JSON) and report the best epoch, whether and from when it overfit, Prechelt's GL at\n"
        "the last epoch, the gap, wasted epochs and ranked advice.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("log", metavar="FILE", help="the training log, or - for standard input")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--emit-sweep",
        metavar="OUT.yaml",
        help="write a sweep file with ranges centred on what the log suggests",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="with --emit-sweep: data.dir, the class-per-folder images (default a placeholder)",
    )
    parser.add_argument(
        "--backbone",
        metavar="SPEC",
        help="with --emit-sweep: model.backbone, e.g. mobilenet, file:PATH, tfhub:URL "
        "(default mobilenet_v2)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing OUT.yaml")
    parser.add_argument(
        "--gl-threshold",
        type=nonneg_float,
        default=defaults.gl_alpha,
        metavar="PCT",
        help="overfitting needs GL at the last epoch >= PCT percent (default %(default)s)",
    )
    parser.add_argument(
        "--gap-ratio",
        type=nonneg_float,
        default=defaults.gap_ratio,
        metavar="R",
        help="large_gap when gap at best >= R x best val_loss (default %(default)s)",
    )
    parser.add_argument(
        "--improve-pct",
        type=nonneg_float,
        default=defaults.improve_pct,
        metavar="PCT",
        help="underfitting when val_loss still falls > PCT%% per epoch (default %(default)s)",
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=defaults.window,
        metavar="N",
        help="epochs at the end looked at for underfitting (default %(default)s)",
    )
    parser.add_argument(
        "--min-rise",
        type=positive_int,
        default=defaults.min_rise_epochs,
        metavar="N",
        help="an onset needs at least N epochs after the best one (default %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``diagnose`` for parsed arguments; return the exit code.

    Raises:
        ConfigError: The input is missing or not understood, or OUT.yaml cannot be written.
    """
    thresholds = Thresholds(
        gl_alpha=args.gl_threshold,
        gap_ratio=args.gap_ratio,
        improve_pct=args.improve_pct,
        window=args.window,
        min_rise_epochs=args.min_rise,
    )
    if (args.data or args.backbone) and not args.emit_sweep:
        raise ConfigError("--data and --backbone fill the sweep of --emit-sweep OUT.yaml; pass it")
    log = read_log(args.log)
    result = diagnose(log, thresholds)
    written = None
    if args.emit_sweep:
        written = write_sweep(
            result,
            args.emit_sweep,
            sweep_name(args.log),
            force=args.force,
            data_dir=args.data,
            backbone=args.backbone,
        )
    if args.json:
        payload = result.to_json_dict()
        payload["sweep_file"] = str(written) if written else None
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(render_report(result))
        if written:
            todo = [
                setting
                for setting, given in (("data.dir", args.data), ("model.backbone", args.backbone))
                if not given
            ]
            then = f"set {' and '.join(todo)}, then " if todo else "check it with "
            print(f"\nWrote {written}: {then}`overfit-search validate {written}`.")
    return 0
