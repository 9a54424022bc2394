"""Read a results directory once (DESIGN.md §7): sweep.yaml, trials.csv, histories.csv, the
study, and when present split.csv, skipped.csv, check_data.json and check_model.json.
No TensorFlow or Ray.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from overfit_search.config import load_sweep
from overfit_search.config.schema import Sweep
from overfit_search.errors import ConfigError, FatalError
from overfit_search.results.exports import (
    BestChoice,
    histories_frame,
    open_study,
    select_best,
    trials_frame,
)


@dataclass
class Results:
    """What a results directory holds, read once.

    Attributes:
        out: The directory.
        sweep: The sweep as run.
        study: Its study.
        trials: trials.csv (or rebuilt from the study when missing).
        histories: histories.csv (or rebuilt from ``trials/<n>/history.csv``).
        split: split.csv, when present.
        skipped: skipped.csv, when present.
        check: check_data.json, when present (or a string saying why it could not be read).
        choice: The chosen trial, None when no trial finished COMPLETE.
        version: The package version that ran the sweep (from sweep.yaml's header).
    """

    out: Path
    sweep: Sweep
    study: optuna.Study
    trials: pd.DataFrame
    histories: pd.DataFrame
    split: pd.DataFrame | None
    skipped: pd.DataFrame | None
    check: dict[str, Any] | str | None
    choice: BestChoice | None
    version: str | None

    @property
    def max_gap(self) -> float:
        """The objective's max_gap."""
        return float(self.sweep.objective.max_gap)


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _read_check(path: Path) -> dict[str, Any] | str | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"could not read {path.name}: {exc}"
    return doc if isinstance(doc, dict) else f"{path.name} is not a JSON object"


def _version(sweep_file: Path) -> str | None:
    first = sweep_file.read_text(encoding="utf-8").splitlines()[:1]
    marker = "run by overfit-search "
    if first and marker in first[0]:
        return first[0].split(marker, 1)[1].strip()
    return None


def read_results(out: Path, study: optuna.Study | None = None) -> Results:
    """Read a results directory.

    Args:
        out: The directory ``run`` wrote.
        study: The study, when the caller has it open (else opened with :func:`open_study`).

    Returns:
        The results.

    Raises:
        ConfigError: No sweep.yaml (not a results directory), or no study.
    """
    sweep_file = out / "sweep.yaml"
    if not sweep_file.is_file():
        raise ConfigError(f"{out}: no sweep.yaml here: not a results directory")
    sweep = load_sweep(sweep_file)
    if study is None:
        study = open_study(out, sweep)
    trials = _read_csv(out / "trials.csv")
    histories = _read_csv(out / "histories.csv")
    try:
        choice: BestChoice | None = select_best(study, sweep)
    except FatalError:
        choice = None
    return Results(
        out=out,
        sweep=sweep,
        study=study,
        trials=trials_frame(study, out / "trials") if trials is None else trials,
        histories=histories_frame(out / "trials") if histories is None else histories,
        split=_read_csv(out / "split.csv"),
        skipped=_read_csv(out / "skipped.csv"),
        check=_read_check(out / "check_data.json"),
        choice=choice,
        version=_version(sweep_file),
    )


def _probe_evidence(path: Path) -> dict[str, Any] | None:
    """What the setup check's check_model.json says, in ``stuck_cause``'s terms, or None."""
    doc = _read_check(path)
    if not isinstance(doc, dict) or not doc.get("rows"):
        return None
    try:
        return {
            "passed": bool(doc["passed"]),
            "accuracy": max(float(row["val_accuracy"]) for row in doc["rows"]),
            "chance": float(doc["chance"]),
            "preprocess": doc.get("chosen", "?"),
        }
    except (KeyError, TypeError, ValueError):
        return None
