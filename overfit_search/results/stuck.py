"""Why trials sat at chance: the likely cause named from the evidence a sweep leaves.

A sweep whose trials never beat chance has one of a few causes, and each leaves its own trace:

- the backbone's features cannot separate the classes as they are fed (a wrong input
  convention, a backbone that does not fit these images, wrong labels): the setup check's
  linear probe is near chance, and the trials cannot even fit their training images
  (``train_eval_accuracy`` at chance too), whatever their learning rate;
- labels or split: the trials fit their training images, but nothing carries over to
  validation;
- a learning rate that wrecks the pretrained weights: the first epoch's clean losses are far
  above a uniform guess (ln classes), and the stuck trials are the high-learning-rate ones.

Pure pandas over trials.csv and histories.csv rows; no TensorFlow, Ray or Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from overfit_search.layout import HISTORIES_TRIAL, ResultKey, TrialAttr, param_column

LR_COLUMN = param_column("learning_rate")
"""trials.csv's column of the learning rate, when it is searched."""
DIVERGED_FACTOR = 2.0
"""A first epoch whose clean loss exceeds this many times ln(classes) diverged."""
WHOLE_RANGE = 0.75
"""Stuck trials spread over at least this share of the finished trials' log learning-rate span
sit at chance "across the whole range"."""

CHANCE_MIN_EPOCHS = 3
"""Only trials that ran this many epochs are judged against chance: a trial the budget rule cut
after an epoch or two (a slow start, ranked early) has not had the time to learn."""


def finished_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The COMPLETE and PRUNED rows of trials.csv."""
    return trials[trials[TrialAttr.STATE].isin(["COMPLETE", "PRUNED"])]


def judged_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished rows that ran :data:`CHANCE_MIN_EPOCHS` epochs (all, when not recorded)."""
    finished = finished_rows(trials)
    if TrialAttr.EPOCHS_RUN not in finished.columns:
        return finished
    ran = pd.to_numeric(finished[TrialAttr.EPOCHS_RUN], errors="coerce")
    return finished[ran.isna() | (ran >= CHANCE_MIN_EPOCHS)]


@dataclass(frozen=True)
class StuckCause:
    """The likely cause of trials stuck at chance.

    Attributes:
        cause: ``features``, ``labels``, ``learning_rate`` or ``unknown``.
        evidence: What in the results points there (one or more sentences).
        advice: What to do about it.
    """

    cause: str
    evidence: str
    advice: str

    def sentence(self) -> str:
        """Evidence and advice as one text for a warning."""
        return f"{self.evidence} {self.advice}"


_ADVICE = {
    "features": (
        "Check how the images reach the backbone: run `overfit-search check-model SWEEP`, which "
        "probes every input convention, and set model.preprocess to the one that separates the "
        "classes; if none does, the backbone does not fit these images (another backbone, or "
        "unfreeze it), or the labels are wrong (overfit-search check-data)."
    ),
    "labels": (
        "Check the labels and the split (overfit-search check-data): classes that mean "
        "different things in training and validation, or a split by a hidden factor "
        "(data.group_pattern), look like this."
    ),
    "learning_rate": (
        "A learning rate too high for the unfrozen backbone layers wrecks the pretrained "
        "weights: train the head first (train.head_epochs) and fine-tune at a small "
        "train.finetune_lr_factor, or lower search.learning_rate.high."
    ),
    "unknown": (
        "Possible causes: an input convention the backbone was not trained on "
        "(overfit-search check-model), labels that do not match the images "
        "(overfit-search check-data), or a learning rate that wrecks the pretrained weights "
        "(train.head_epochs, a small train.finetune_lr_factor)."
    ),
}


def _lr_span(lrs: pd.Series) -> float:
    """Decades between the lowest and highest learning rate (0 for fewer than two)."""
    lrs = lrs.dropna()
    lrs = lrs[lrs > 0]
    if len(lrs) < 2:
        return 0.0
    return math.log10(float(lrs.max()) / float(lrs.min()))


def _first_epoch_losses(histories: pd.DataFrame, stuck: list[int]) -> pd.Series:
    """Each stuck trial's clean loss at its first epoch (the larger of val and train_eval)."""
    h = histories[histories[HISTORIES_TRIAL].isin(stuck)]
    cols = [c for c in (ResultKey.VAL_LOSS, ResultKey.TRAIN_EVAL_LOSS) if c in h.columns]
    if h.empty or not cols or ResultKey.EPOCH not in h.columns:
        return pd.Series(dtype=float)
    first = h.sort_values(ResultKey.EPOCH).groupby(HISTORIES_TRIAL).head(1)
    first = first.set_index(HISTORIES_TRIAL)
    return first[cols].max(axis=1)


def stuck_cause(
    trials: pd.DataFrame,
    histories: pd.DataFrame,
    stuck: list[int],
    classes: int,
    bar: float,
    probe: Mapping[str, Any] | None = None,
) -> StuckCause:
    """Name the likely cause of ``stuck`` trials never beating chance.

    Args:
        trials: trials.csv (``number``, ``state``, ``param_learning_rate`` when searched,
            ``epochs_run`` when recorded).
        histories: histories.csv (``trial``, ``epoch``, ``val_loss``, ``train_eval_loss``,
            ``train_eval_accuracy``).
        stuck: Finished trials whose best validation accuracy stayed at or below ``bar``.
        classes: Number of classes.
        bar: The accuracy at or below which a trial counts as at chance.
        probe: The setup check's result when one ran: ``passed`` (bool), ``accuracy``,
            ``chance``, ``preprocess`` (the convention chosen).

    Returns:
        The cause, with the evidence and the advice.
    """
    evidence: list[str] = []
    if probe is not None and probe.get("passed") is False:
        evidence.append(
            f"The setup check's linear probe on the backbone's features reached validation "
            f"accuracy {float(probe.get('accuracy', float('nan'))):.2f} against chance "
            f"{float(probe.get('chance', 1 / classes)):.2f} (preprocess "
            f"{probe.get('preprocess', '?')}): the features do not separate the classes."
        )
    # the trials the chance warning judged: one cut after an epoch or two is neither stuck nor not
    finished = judged_rows(trials)
    lr = (
        finished.set_index("number")[LR_COLUMN]
        if LR_COLUMN in finished.columns
        else pd.Series(dtype=float)
    )
    stuck_lr, other_lr = lr[lr.index.isin(stuck)], lr[~lr.index.isin(stuck)]
    whole_range = False
    if len(stuck_lr) >= 2 and _lr_span(lr) > 0:
        whole_range = _lr_span(stuck_lr) >= WHOLE_RANGE * _lr_span(lr)
    high_only = (
        len(stuck_lr) > 0 and len(other_lr) > 0 and float(stuck_lr.min()) > float(other_lr.max())
    )
    highest = (
        f"They are the highest learning rates ({float(stuck_lr.min()):.2g}–"
        f"{float(stuck_lr.max()):.2g}; the others: {float(other_lr.min()):.2g}–"
        f"{float(other_lr.max()):.2g})."
        if high_only
        else ""
    )
    first = _first_epoch_losses(histories, stuck)
    diverged = len(first) > 0 and (first > DIVERGED_FACTOR * math.log(classes)).mean() > 0.5
    fit_train: bool | None = None
    if ResultKey.TRAIN_EVAL_ACCURACY in histories.columns:
        best_train = histories[histories[HISTORIES_TRIAL].isin(stuck)].groupby(HISTORIES_TRIAL)[
            ResultKey.TRAIN_EVAL_ACCURACY
        ]
        best = best_train.max().dropna()
        if len(best):
            fit_train = bool((best > bar).mean() > 0.5)

    if whole_range:
        evidence.append(
            f"They sit at chance across the learning rates {float(stuck_lr.min()):.2g}–"
            f"{float(stuck_lr.max()):.2g}, most of the range searched: not a learning-rate "
            "problem."
        )
    if diverged and not whole_range:
        evidence.append(
            f"Their first epoch's clean loss ({float(first.median()):.3g} median) is far above "
            f"a uniform guess (ln {classes} = {math.log(classes):.3g}): training diverged."
        )
        if high_only:
            evidence.append(highest)
        return StuckCause("learning_rate", " ".join(evidence), _ADVICE["learning_rate"])
    if fit_train is False:
        evidence.append(
            "They do not fit even their own training images (clean training accuracy at "
            "chance too)."
        )
        return StuckCause("features", " ".join(evidence), _ADVICE["features"])
    if probe is not None and probe.get("passed") is False:
        return StuckCause("features", " ".join(evidence), _ADVICE["features"])
    if fit_train is True and (whole_range or not high_only):
        evidence.append(
            "They fit their training images (clean training accuracy above chance) but nothing "
            "carries over to validation."
        )
        return StuckCause("labels", " ".join(evidence), _ADVICE["labels"])
    if high_only:
        evidence.append(highest)
        return StuckCause("learning_rate", " ".join(evidence), _ADVICE["learning_rate"])
    if whole_range:
        return StuckCause("features", " ".join(evidence), _ADVICE["features"])
    return StuckCause("unknown", " ".join(evidence), _ADVICE["unknown"])
