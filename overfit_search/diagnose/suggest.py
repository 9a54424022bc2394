"""A sweep file with ranges centred on what a diagnosis suggests."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from overfit_search.diagnose.render import _fmt, _validation_fraction
from overfit_search.diagnose.verdict import Diagnosis
from overfit_search.errors import ConfigError


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
        # The measured defaults (bench/RESULTS.md: issues 18 and 19), written out to be seen.
        "objective": {"mode": "val_loss"},
        "pruning": {"preset": "balanced"},
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
    from overfit_search.config import sweep_from_dict  # pydantic: not for --help

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
