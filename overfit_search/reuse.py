"""Reuse a finished sweep: ``retrain``, ``export`` and ``confirm`` (DESIGN.md §7).

This module resolves what to reuse (a results directory and a trial, or a ``best.yaml``), loads
the study's data with its saved split, and hands the Keras work to
:mod:`overfit_search.training.final` (imported lazily, so ``--help`` stays fast).
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from overfit_search.config import load_sweep
from overfit_search.config.knobs import KNOBS_BY_NAME
from overfit_search.config.schema import Sweep
from overfit_search.errors import ConfigError
from overfit_search.layout import ResultKey, TrialAttr
from overfit_search.search_space import split_space, trial_seed

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from overfit_search.data.dataset import ImageData

logger = logging.getLogger(__name__)

CONFIRM_FILE = "confirm.csv"
RETRAIN_TOLERANCE = 0.05
"""Relative val_loss difference above which a same-seed retrain is reported as not matching."""


@dataclass(frozen=True)
class Source:
    """A configuration to reuse.

    Attributes:
        sweep: The sweep it came from (or the best.yaml itself).
        params: Every knob's value.
        epochs: Epochs to train (the trial's best epoch, or best.yaml's ``max_epochs``).
        seed: The trial's seed.
        trial: The study's trial, when reused from a results directory.
        out: The results directory, if any.
    """

    sweep: Sweep
    params: dict[str, Any]
    epochs: int
    seed: int
    trial: FrozenTrial | None = None
    out: Path | None = None

    @property
    def reference(self) -> dict[str, Any]:
        """The trial's own numbers (empty for a best.yaml)."""
        if self.trial is None:
            return {}
        a = self.trial.user_attrs
        return {
            "trial": self.trial.number,
            "trial_val_loss": a.get(TrialAttr.BEST_VAL_LOSS),
            "trial_gap": a.get(TrialAttr.GAP),
            "trial_best_epoch": a.get(TrialAttr.BEST_EPOCH),
        }


def resolve(path: str | Path, number: int | None = None, by: str = "value") -> Source:
    """What to reuse: a results directory (its best trial, or ``number``) or a ``best.yaml``.

    Args:
        path: A results directory, or a sweep file whose knobs are all fixed (``best.yaml``).
        number: A trial number (results directory only).
        by: ``value`` (the study's choice) or ``confirmed`` (lowest mean val_loss in
            confirm.csv).

    Raises:
        ConfigError: Not a results directory or a fixed sweep file; unknown trial; no
            confirm.csv for ``by="confirmed"``.
    """
    from overfit_search.results.exports import load_results, pick_trial, seed_of, trial_params

    where = Path(path)
    if where.is_dir():
        sweep, study = load_results(where)
        if number is None and by == "confirmed":
            number = confirmed_choice(where)
        trial = pick_trial(study, sweep, number)
        epochs = int(trial.user_attrs.get(TrialAttr.BEST_EPOCH) or sweep.train.max_epochs)
        return Source(
            sweep, trial_params(sweep, trial), epochs, seed_of(sweep, trial), trial, where
        )
    if number is not None or by != "value":
        raise ConfigError(f"{where}: --trial and --by need a results directory")
    sweep = load_sweep(where)
    space, fixed = split_space(sweep.search, sweep.train)
    if space:
        name = sorted(space)[0]
        section = KNOBS_BY_NAME[name].section
        raise ConfigError(
            f"{where}: {section}.{name} is still a range; give a results directory or "
            "the best.yaml it wrote (every knob fixed)"
        )
    return Source(sweep, fixed, sweep.train.max_epochs, trial_seed(sweep, 0))


def load_split_data(source: Source) -> ImageData:
    """Load the sweep's data; check it against the saved split.csv when there is one.

    Raises:
        DataError: The data is missing or unusable.
    """
    from overfit_search.data import load_data
    from overfit_search.paths import data_cache

    data = load_data(source.sweep.data, cache_dir=data_cache())
    saved = source.out / "split.csv" if source.out is not None else None
    if saved is not None and saved.is_file():
        before = pd.read_csv(saved, usecols=["file", "subset"])
        now = data.split[["file", "subset"]]
        old = set(map(tuple, before.itertuples(index=False)))
        new = set(map(tuple, now.itertuples(index=False)))
        if old != new:
            logger.warning(
                "the data changed since the sweep: %d image(s) differ from %s; the retrained "
                "model will not repeat the trial exactly",
                len(old ^ new),
                saved,
            )
    return data


def retrain(
    source: Source,
    output: Path,
    *,
    full: bool = False,
    tolerance: float = RETRAIN_TOLERANCE,
    fmt: str = "keras",
) -> dict[str, Any]:
    """Retrain the configuration and save it; compare with the trial's own val_loss.

    Args:
        source: What to retrain.
        output: The model to write (see :mod:`overfit_search.results.model_files`).
        full: Train on train + validation.
        tolerance: Relative val_loss difference from the trial still called a match.
        fmt: ``keras``, ``savedmodel`` or ``tflite``.

    Returns:
        The metrics written to the JSON beside the model (``matches_trial`` is None when
        there is nothing to compare with, e.g. ``full`` or a best.yaml).
    """
    from overfit_search.training import final

    data = load_split_data(source)
    model = final.retrain(source.sweep, source.params, data, source.epochs, source.seed, full=full)
    info: dict[str, Any] = {"made_by": "retrain", **source.reference, "params": source.params}
    ref = source.reference.get("trial_val_loss")
    matches: bool | None = None
    if ref is not None and not full:
        diff = abs(model.metrics["val_loss"] - float(ref)) / max(abs(float(ref)), 1e-12)
        matches = diff <= tolerance
        info["relative_difference"] = diff
        if not matches:
            logger.warning(
                "retrained val_loss %.4f differs from trial %s's %.4f by %.1f%% (> %.0f%%): "
                "training is not exactly repeatable here (GPU kernels, thread order) or the "
                "data changed",
                model.metrics["val_loss"],
                source.reference.get("trial"),
                float(ref),
                100 * diff,
                100 * tolerance,
            )
    info["matches_trial"] = matches
    info.update(_test_metrics(model.model, data))
    final.save(model, output, data.class_names, info, fmt)
    return {**info, **model.metrics}


def _test_metrics(model: Any, data: ImageData) -> dict[str, Any]:
    """The held-out test split's loss and accuracy for the final model (empty without one)."""
    if data.x_test is None or data.y_test is None or not len(data.y_test):
        return {}
    from overfit_search.training.final import evaluate_on

    loss, acc = evaluate_on(model, data.x_test, data.y_test)
    logger.info("held-out test split: loss %.4f, accuracy %.3f", loss, acc)
    return {
        "test_loss": loss,
        "test_accuracy": acc,
        "test_images": len(data.y_test),
        "test_note": "held-out test split, evaluated once for this final model; never used to "
        "choose or tune it",
    }


def test_estimate(out: Path, number: int, data: ImageData | None = None) -> dict[str, Any] | None:
    """The chosen trial's kept best-epoch weights on the held-out test split, once.

    What a user should expect of the exported model on new data, and how far its
    ``val_loss@best`` (the number that chose it among many trials) is from that: ``optimism``
    is ``val_loss@best`` minus the test loss, as in ``bench/selection.py`` (negative: the
    validation number was optimistic). None without a test split (``data.test_fraction``) or
    kept weights. ``data``: the sweep's data, test split included, when the caller holds it
    already (``run`` does); otherwise it is loaded and checked against split.csv.
    """
    from overfit_search.layout import BEST_WEIGHTS

    source = resolve(out, number)
    weights = out / "trials" / str(number) / BEST_WEIGHTS
    if not source.sweep.data.test_fraction or not weights.is_file():
        return None
    if data is None:
        data = load_split_data(source)
    if data.x_test is None or data.y_test is None or not len(data.y_test):
        return None
    from overfit_search.training.final import evaluate_on, load_trial_weights

    model = load_trial_weights(source.sweep, source.params, data.num_classes, weights, source.seed)
    loss, acc = evaluate_on(model, data.x_test, data.y_test)
    assert source.trial is not None
    val = float(source.trial.user_attrs[TrialAttr.BEST_VAL_LOSS])
    return {
        "trial": number,
        "test_loss": loss,
        "test_accuracy": acc,
        "test_images": len(data.y_test),
        "val_loss": val,
        "optimism": val - loss,
    }


def test_line(estimate: dict[str, Any]) -> str:
    """One line for the run summary and best.yaml: the pick on the test split."""
    diff = estimate["optimism"]
    how = "optimistic" if diff < 0 else "pessimistic"
    return (
        f"held-out test split ({estimate['test_images']} images, never seen by a trial): "
        f"test loss {estimate['test_loss']:.4f}, accuracy {estimate['test_accuracy']:.3f}; "
        f"val_loss@best {estimate['val_loss']:.4f} was {abs(diff):.4f} {how}"
    )


def export(source: Source, output: Path, fmt: str = "keras") -> dict[str, Any]:
    """Save the trial's kept best-epoch weights as a ready model (no training).

    Args:
        source: The trial (from a results directory).
        output: The model to write (see :mod:`overfit_search.results.model_files`).
        fmt: ``keras``, ``savedmodel`` or ``tflite``.

    Raises:
        ConfigError: The trial's weights were not kept (only the top ``keep_best_weights``).
    """
    from overfit_search.layout import BEST_WEIGHTS
    from overfit_search.training import final

    assert source.out is not None and source.trial is not None
    weights = source.out / "trials" / str(source.trial.number) / BEST_WEIGHTS
    if not weights.is_file():
        raise ConfigError(
            f"{weights}: not kept (train.keep_best_weights keeps the top "
            f"{source.sweep.train.keep_best_weights}); use `overfit-search retrain "
            f"{source.out} --trial {source.trial.number}` instead"
        )
    data = load_split_data(source)
    model = final.from_weights(source.sweep, source.params, data, weights, source.seed)
    info: dict[str, Any] = {"made_by": "export", **source.reference, "params": source.params}
    info.update(_test_metrics(model.model, data))
    final.save(model, output, data.class_names, info, fmt)
    return {**info, **model.metrics}


def _ranked(study: optuna.Study, sweep: Sweep) -> list[FrozenTrial]:
    """COMPLETE trials, feasible ones first (constrained), then by the study's value."""
    from optuna.trial import TrialState

    def key(t: FrozenTrial) -> tuple[bool, float]:
        infeasible = sweep.objective.mode == "constrained" and not t.user_attrs.get(
            TrialAttr.FEASIBLE
        )
        value = (
            t.user_attrs.get(TrialAttr.BEST_VAL_LOSS) if t.values and len(t.values) > 1 else t.value
        )
        return infeasible, math.inf if value is None else float(value)

    return sorted(study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]), key=key)


def confirm(out: Path, top: int, seeds: int) -> pd.DataFrame:
    """Retrain the ``top`` trials with ``seeds`` other seeds each; write confirm.csv.

    Each rerun trains for the epochs its trial ran and is scored like a trial: val_loss and
    gap at its own best epoch. The summary's mean and sd are over the trial itself and its
    reruns.

    Returns:
        One row per trial: number, the trial's val_loss and gap, mean/sd over runs, n.
    """
    from overfit_search.results.exports import load_results, seed_of, trial_params
    from overfit_search.training import final

    sweep, study = load_results(out)
    ranked = _ranked(study, sweep)[:top]
    if not ranked:
        raise ConfigError(f"{out}: no COMPLETE trial to confirm")
    data = load_split_data(Source(sweep, {}, 0, 0, None, out))
    runs: list[dict[str, Any]] = []
    for trial in ranked:
        a = trial.user_attrs
        runs.append(
            {"trial": trial.number, "seed": seed_of(sweep, trial), "rerun": False,
             "val_loss": a.get(TrialAttr.BEST_VAL_LOSS), "gap": a.get(TrialAttr.GAP),
             TrialAttr.BEST_EPOCH: a.get(TrialAttr.BEST_EPOCH)}
        )  # fmt: skip
        epochs = int(a.get(TrialAttr.EPOCHS_RUN) or sweep.train.max_epochs)
        for k in range(1, seeds + 1):
            seed = seed_of(sweep, trial) + 7919 * k
            made = final.retrain(sweep, trial_params(sweep, trial), data, epochs, seed)
            best = min(made.history, key=lambda row: row[ResultKey.VAL_LOSS])
            runs.append(
                {
                    "trial": trial.number,
                    "seed": seed,
                    "rerun": True,
                    "val_loss": best[ResultKey.VAL_LOSS],
                    "gap": best[ResultKey.GAP],
                    TrialAttr.BEST_EPOCH: best[ResultKey.EPOCH],
                }
            )
            logger.info(
                "trial %d seed %d: val_loss %.4f gap %.4f (epoch %d)",
                trial.number,
                seed,
                best[ResultKey.VAL_LOSS],
                best[ResultKey.GAP],
                best[ResultKey.EPOCH],
            )
    table = summarize_confirm(pd.DataFrame(runs))
    pd.DataFrame(runs).to_csv(out / "confirm_runs.csv", index=False)
    table.to_csv(out / CONFIRM_FILE, index=False)
    return table


def summarize_confirm(runs: pd.DataFrame) -> pd.DataFrame:
    """Per trial: the trial's own val_loss/gap and mean ± sd over all its runs."""
    rows = []
    for number, group in runs.groupby("trial", sort=False):
        own = group[~group.rerun]
        vals = [float(v) for v in group.val_loss if pd.notna(v)]
        gaps = [float(v) for v in group.gap if pd.notna(v)]
        rows.append(
            {
                "trial": int(str(number)),
                "trial_val_loss": float(own.val_loss.iloc[0]) if len(own) else math.nan,
                "trial_gap": float(own.gap.iloc[0]) if len(own) else math.nan,
                "mean_val_loss": statistics.fmean(vals) if vals else math.nan,
                "sd_val_loss": statistics.stdev(vals) if len(vals) > 1 else math.nan,
                "mean_gap": statistics.fmean(gaps) if gaps else math.nan,
                "sd_gap": statistics.stdev(gaps) if len(gaps) > 1 else math.nan,
                "runs": len(vals),
            }
        )
    return pd.DataFrame(rows).sort_values("mean_val_loss", kind="stable").reset_index(drop=True)


def confirmed_choice(out: Path) -> int:
    """The trial with the lowest mean val_loss in confirm.csv.

    Raises:
        ConfigError: No confirm.csv (run ``overfit-search confirm`` first).
    """
    path = out / CONFIRM_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing; run `overfit-search confirm {out}` first")
    table = pd.read_csv(path)
    return int(table.sort_values("mean_val_loss", kind="stable").trial.iloc[0])
