"""Files written from a finished (or interrupted) study: trials.csv, histories.csv, best.yaml.

Reads the Optuna study and ``trials/<n>/history.csv``; imports neither TensorFlow nor Ray.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from overfit_search.config.schema import KNOBS, Sweep
from overfit_search.errors import ConfigError, FatalError
from overfit_search.layout import (
    BEST_WEIGHTS,
    CHECK_MODEL_FILE,
    HISTORIES_TRIAL,
    HISTORY_FILE,
    ResultKey,
    TrialAttr,
    param_column,
)
from overfit_search.results.storage import open_storage
from overfit_search.search_space import (
    PINNED_ATTR,
    split_space,
    train_values,
    trial_seed,
    trial_values,
)


@dataclass(frozen=True)
class BestChoice:
    """The trial chosen for export and why."""

    trial: FrozenTrial
    why: str
    pareto_numbers: tuple[int, ...] = ()


def _val(trial: FrozenTrial) -> float:
    value = trial.user_attrs.get(TrialAttr.BEST_VAL_LOSS)
    return math.inf if value is None else float(value)


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto-optimal COMPLETE trials of a multi-objective study (both values minimized).

    Optuna's ``best_trials`` leaves out trials whose constraint (``gap <= max_gap``) is
    violated, so when every trial is above ``max_gap`` it is empty; the front is then taken
    over all COMPLETE trials, so that a choice (said to be outside max_gap) still exists.
    """
    front = list(study.best_trials)
    if front:
        return front
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if t.values is not None
    ]

    def dominated(t: FrozenTrial) -> bool:
        return any(
            all(a <= b for a, b in zip(o.values, t.values, strict=True)) and o.values != t.values
            for o in done
        )

    return [t for t in done if not dominated(t)]


def pareto_numbers(study: optuna.Study) -> tuple[int, ...]:
    """Numbers of the Pareto-optimal trials of a multi-objective study (else empty)."""
    if len(study.directions) < 2:
        return ()
    return tuple(sorted(t.number for t in pareto_front(study)))


def select_best(study: optuna.Study, sweep: Sweep) -> BestChoice:
    """Pick the trial to export (DESIGN.md §5).

    ``val_loss``: the lowest ``val_loss@best`` among COMPLETE trials, whatever their gap.
    ``constrained``: the lowest val_loss among feasible COMPLETE trials (Optuna's own
    constraint-aware ``best_trial``); if none is feasible, the one with the smallest gap, said in
    ``why``. ``penalized``: the lowest penalized value. ``pareto``: the lowest-val-loss point of
    the Pareto set that meets ``max_gap``, else the lowest-val-loss Pareto point.

    Raises:
        FatalError: No trial finished COMPLETE.
    """
    complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
    if not complete:
        raise FatalError(f"study '{study.study_name}' has no COMPLETE trial to export")
    max_gap = sweep.objective.max_gap
    if len(study.directions) > 1:
        front = pareto_front(study)
        numbers = tuple(sorted(t.number for t in front))
        feasible = [t for t in front if (t.user_attrs.get(TrialAttr.GAP) or math.inf) <= max_gap]
        if feasible:
            return BestChoice(
                min(feasible, key=_val),
                "lowest val_loss on the Pareto front within max_gap",
                numbers,
            )
        return BestChoice(
            min(front, key=_val),
            "lowest val_loss on the Pareto front (none within max_gap)",
            numbers,
        )
    if sweep.objective.mode == "val_loss":
        return BestChoice(min(complete, key=_val), "lowest val_loss")
    if sweep.objective.mode == "constrained":
        feasible = [t for t in complete if t.user_attrs.get(TrialAttr.FEASIBLE)]
        if not feasible:
            trial = min(complete, key=lambda t: t.user_attrs.get(TrialAttr.GAP) or math.inf)
            return BestChoice(trial, f"no trial met max_gap {max_gap:g}: the smallest gap")
        return BestChoice(study.best_trial, f"lowest val_loss with gap <= {max_gap:g}")
    return BestChoice(
        min(complete, key=lambda t: math.inf if t.value is None else t.value),
        "lowest penalized value",
    )


def trials_frame(study: optuna.Study, trials_dir: Path | None = None) -> pd.DataFrame:
    """One row per trial: number, state, value(s), params, best_epoch, gap, stop rule, seconds."""
    front = set(pareto_numbers(study))
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        # a diverged trial is FAIL; Optuna holds it as PRUNED only to steer the sampler
        state = "FAIL" if a.get(TrialAttr.DIVERGED) else t.state.name
        row: dict[str, Any] = {"number": t.number, TrialAttr.STATE: state}
        if t.values is not None and len(t.values) > 1:
            row["value_val_loss"], row["value_gap"] = t.values
        else:
            row["value"] = t.value
        row.update({param_column(k): v for k, v in t.params.items()})
        # trials.csv columns carry the user attributes' names
        row.update(
            {
                TrialAttr.BEST_EPOCH: a.get(TrialAttr.BEST_EPOCH),
                TrialAttr.BEST_VAL_LOSS: a.get(TrialAttr.BEST_VAL_LOSS),
                TrialAttr.GAP: a.get(TrialAttr.GAP),
                TrialAttr.FEASIBLE: a.get(TrialAttr.FEASIBLE),
                TrialAttr.EPOCHS_RUN: a.get(TrialAttr.EPOCHS_RUN),
                TrialAttr.STOPPED_EARLY: a.get(TrialAttr.STOPPED_EARLY),
                TrialAttr.STOP_RULE: a.get(TrialAttr.STOP_RULE),
                TrialAttr.STOP_REASON: a.get(TrialAttr.STOP_REASON) or a.get(TrialAttr.FAIL_REASON),
                TrialAttr.BASELINE: bool(a.get(TrialAttr.BASELINE, False)),
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None,
            }
        )
        if a.get(PINNED_ATTR):  # a baseline's own train settings, e.g. head_epochs=0
            pins = sorted(a[PINNED_ATTR].items())
            row[TrialAttr.PINNED] = ", ".join(f"{k}={v:g}" for k, v in pins)
        if front or len(study.directions) > 1:
            row["pareto"] = t.number in front
        if trials_dir is not None:
            row["has_weights"] = (trials_dir / str(t.number) / BEST_WEIGHTS).exists()
        rows.append(row)
    return pd.DataFrame(rows)


def histories_frame(trials_dir: Path) -> pd.DataFrame:
    """Every trial's per-epoch history.csv, with a ``trial`` column."""
    frames = []
    if trials_dir.is_dir():
        for folder in sorted(trials_dir.iterdir(), key=lambda p: (len(p.name), p.name)):
            path = folder / HISTORY_FILE
            if folder.name.isdigit() and path.exists() and path.stat().st_size:
                frame = pd.read_csv(path)
                frame.insert(0, HISTORIES_TRIAL, int(folder.name))
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[HISTORIES_TRIAL, ResultKey.EPOCH])
    return pd.concat(frames, ignore_index=True)


def baseline_summary(study: optuna.Study, best: FrozenTrial) -> str | None:
    """One line on how the winner compares with the baseline trial (``search.baseline``).

    Returns:
        None when there is no finished baseline trial.
    """
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    base = next(
        (
            t
            for t in study.get_trials(deepcopy=False, states=finished)
            if t.user_attrs.get(TrialAttr.BASELINE)
            and t.user_attrs.get(TrialAttr.BEST_VAL_LOSS) is not None
        ),
        None,
    )
    if base is None:
        return None
    if base.number == best.number:
        return f"Baseline (trial {base.number}) is the winner: no configuration beat it"
    parts = []
    for label, key in (("val_loss", TrialAttr.BEST_VAL_LOSS), ("gap", TrialAttr.GAP)):
        before, after = base.user_attrs.get(key), best.user_attrs.get(key)
        if before is None or after is None:
            continue
        pct = f" ({100 * (after - before) / abs(before):+.1f}%)" if abs(before) > 1e-12 else ""
        parts.append(f"{label} {before:.4f} → {after:.4f}{pct}")
    return f"Against the baseline (trial {base.number}): " + ", ".join(parts)


def load_results(out: Path) -> tuple[Sweep, optuna.Study]:
    """Open a results directory: the sweep as run and its study.

    Args:
        out: The directory ``run`` wrote (holds sweep.yaml and the study).

    Returns:
        ``(sweep, study)``.

    Raises:
        ConfigError: Not a results directory, or its study cannot be opened.
    """
    from overfit_search.config import load_sweep

    sweep_file = out / "sweep.yaml"
    if not sweep_file.is_file():
        raise ConfigError(f"{out}: no sweep.yaml here: not a results directory")
    sweep = load_sweep(sweep_file)
    return sweep, open_study(out, sweep)


def open_study(out: Path, sweep: Sweep) -> optuna.Study:
    """Open the study of a results directory.

    Uses ``study.storage`` of the sweep, else ``sqlite:///<out>/study.db``; the study named
    like the sweep, else the only study there.

    Args:
        out: The results directory.
        sweep: The sweep as run.

    Returns:
        The study.

    Raises:
        ConfigError: No study.db, or no study that can be told apart.
    """
    url = sweep.study.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"{out}: no study.db here: the sweep has not run")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    names = optuna.get_all_study_names(storage=storage)
    if sweep.name in names:
        name = sweep.name
    elif len(names) == 1:
        name = names[0]
    else:
        raise ConfigError(
            f"{out}: no study named '{sweep.name}' among the {len(names)} studies in {url}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def pick_trial(study: optuna.Study, sweep: Sweep, number: int | None = None) -> FrozenTrial:
    """The trial to reuse: ``number`` when given (it must have finished), else the best.

    Raises:
        ConfigError: ``number`` is not a finished (COMPLETE or PRUNED) trial.
        FatalError: No trial finished COMPLETE (and no number was given).
    """
    if number is None:
        return select_best(study, sweep).trial
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number and trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return trial
    finished = [
        t.number
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE, TrialState.PRUNED])
    ]
    raise ConfigError(
        f"--trial: no finished trial {number} in study '{study.study_name}' "
        f"(finished: {', '.join(map(str, finished)) or 'none'})"
    )


def trial_params(sweep: Sweep, trial: FrozenTrial) -> dict[str, Any]:
    """Every knob's value for ``trial``: its parameters over its pins over the sweep's fixed ones.

    Pins are the baseline's values of train settings the sweep fixes (``search.baseline``).
    """
    return trial_values(split_space(sweep.search)[1], trial.params, trial.user_attrs)


def seed_of(sweep: Sweep, trial: FrozenTrial) -> int:
    """The seed the trial trained with (a re-run of an interrupted trial keeps that one's)."""
    return trial_seed(sweep, int(trial.user_attrs.get(TrialAttr.RESUMED_FROM, trial.number)))


def best_sweep(sweep: Sweep, trial: FrozenTrial, fixed: dict[str, Any]) -> dict[str, Any]:
    """A complete sweep file with the trial's values fixed and max_epochs = its best epoch."""
    doc = sweep.model_dump(mode="json", exclude_none=True)
    search = {k: v for k, v in doc["search"].items() if k not in (*KNOBS, "baseline")}
    values = trial_values(fixed, trial.params, trial.user_attrs)
    for knob in sweep.search.active_knobs():
        search[knob] = values[knob]
    doc["search"] = search
    doc["name"] = f"{sweep.name}-best"
    epochs = int(trial.user_attrs.get(TrialAttr.BEST_EPOCH) or sweep.train.max_epochs)
    doc["train"]["max_epochs"] = epochs
    doc["train"].update(train_values(sweep, values))
    doc["train"]["head_epochs"] = min(doc["train"]["head_epochs"], epochs)
    doc["study"]["trials"] = 1
    doc["study"].pop("storage", None)
    doc["train"]["seed"] = seed_of(sweep, trial)
    return doc


def keep_top_weights(study: optuna.Study, trials_dir: Path, keep: int) -> list[int]:
    """Delete best-epoch weights of all but the ``keep`` lowest-val-loss finished trials."""
    finished = [
        t
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE, TrialState.PRUNED])
        if t.user_attrs.get(TrialAttr.BEST_VAL_LOSS) is not None
    ]
    ranked = sorted(finished, key=_val)
    kept = [t.number for t in ranked[:keep]]
    if trials_dir.is_dir():
        for folder in trials_dir.iterdir():
            path = folder / BEST_WEIGHTS
            if path.exists() and (not folder.name.isdigit() or int(folder.name) not in kept):
                path.unlink()
    return kept


def write_exports(
    study: optuna.Study, sweep: Sweep, out: Path, fixed: dict[str, Any]
) -> BestChoice | None:
    """Write trials.csv, histories.csv and best.yaml; return the chosen trial (None if none)."""
    trials_dir = out / "trials"
    keep_top_weights(study, trials_dir, sweep.train.keep_best_weights)
    trials_frame(study, trials_dir).to_csv(out / "trials.csv", index=False)
    histories_frame(trials_dir).to_csv(out / "histories.csv", index=False)
    try:
        choice = select_best(study, sweep)
    except FatalError:
        (out / "best.yaml").unlink(missing_ok=True)
        return None
    doc = best_sweep(sweep, choice.trial, fixed)
    attrs = choice.trial.user_attrs
    header = (
        f"# overfit-search best configuration: trial {choice.trial.number} ({choice.why})\n"
        f"# val_loss {attrs[TrialAttr.BEST_VAL_LOSS]:.4f} at epoch "
        f"{attrs[TrialAttr.BEST_EPOCH]}, gap {attrs[TrialAttr.GAP]:.4f}\n"
    )
    (out / "best.yaml").write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return choice


def clear_results(out: Path) -> None:
    """Remove a previous study's files from an output directory (``--overwrite``)."""
    for name in (
        "study.db",
        "trials.csv",
        "histories.csv",
        "best.yaml",
        "split.csv",
        "sweep.yaml",
        "report.html",
        "check_data.json",
        CHECK_MODEL_FILE,
        "skipped.csv",
        "confirm.csv",
        "confirm_runs.csv",
    ):
        (out / name).unlink(missing_ok=True)
    for name in ("trials", "ray", "figures"):
        shutil.rmtree(out / name, ignore_errors=True)
