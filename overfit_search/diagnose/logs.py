"""Read a training log: Keras console output, a CSVLogger file or a History JSON."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from overfit_search.errors import ConfigError

LogFormat = Literal["keras-console", "csv", "history-json"]

FORMATS = (
    "understood formats: Keras console output (`Epoch n/N` lines with "
    "`... - loss: 0.41 - val_loss: 0.60`, TF2 or Keras 3 style), a CSVLogger file "
    "(header `epoch,loss,val_loss,...`), or a History JSON "
    '(`json.dump(history.history, f)`: {"loss": [...], "val_loss": [...]})'
)


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
