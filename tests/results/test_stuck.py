"""The likely cause of trials stuck at chance, named from the evidence (pure pandas)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from overfit_search.layout import ResultKey, TrialAttr, param_column
from overfit_search.results.stuck import stuck_cause

CLASSES = 5
BAR = 1.5 / CLASSES
LN = math.log(CLASSES)
LOSSES = [ResultKey.VAL_LOSS, ResultKey.TRAIN_EVAL_LOSS]


def _results(
    lrs: list[float],
    stuck: list[int],
    train_acc: float,
    first_loss: float = LN,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials with these learning rates; ``stuck`` ones at chance on validation, with this
    clean training accuracy and first-epoch loss; the others learn."""
    trials = pd.DataFrame(
        {
            "number": range(len(lrs)),
            TrialAttr.STATE: "COMPLETE",
            param_column("learning_rate"): lrs,
        }
    )
    rows: list[dict[str, Any]] = []
    for n in range(len(lrs)):
        at = n in stuck
        for epoch in (1, 2, 3):
            rows.append(
                {
                    "trial": n,
                    ResultKey.EPOCH: epoch,
                    ResultKey.VAL_LOSS: (first_loss if epoch == 1 else LN) if at else 0.5,
                    ResultKey.TRAIN_EVAL_LOSS: (first_loss if epoch == 1 else LN) if at else 0.3,
                    "val_accuracy": 0.2 if at else 0.9,
                    "train_eval_accuracy": train_acc if at else 0.95,
                }
            )
    return trials, pd.DataFrame(rows)


LRS = [1e-5, 1e-4, 1e-3, 1e-2, 3e-3, 3e-5]

CASES = [
    # (stuck, train_acc, first_loss, probe, cause, a phrase of the evidence)
    ([0, 1, 2, 3], 0.2, LN, None, "features", "not a learning-rate problem"),
    ([0, 1, 2, 3], 0.2, LN, None, "features", "do not fit even their own training images"),
    ([0, 1, 2, 3], 0.9, LN, None, "labels", "nothing carries over"),
    ([3], 0.2, 10 * LN, None, "learning_rate", "training diverged"),
    ([3, 4], 0.2, 10 * LN, None, "learning_rate", "the highest learning rates"),
    ([3, 4], 0.5, LN, None, "learning_rate", "the highest learning rates"),
    (
        [1],
        0.9,
        LN,
        {"passed": False, "accuracy": 0.21, "chance": 0.2, "preprocess": "tf"},
        "features",
        "linear probe",
    ),
    ([1, 2], None, LN, None, "unknown", ""),
]


@pytest.mark.parametrize(("stuck", "train_acc", "first_loss", "probe", "cause", "phrase"), CASES)
def test_the_cause_follows_the_evidence(
    stuck: list[int],
    train_acc: float | None,
    first_loss: float,
    probe: dict[str, Any] | None,
    cause: str,
    phrase: str,
) -> None:
    trials, histories = _results(LRS, stuck, train_acc if train_acc is not None else 0.0)
    if train_acc is None:
        histories = histories.drop(columns="train_eval_accuracy")
    if first_loss != LN:
        histories.loc[histories.epoch == 1, LOSSES] = [
            first_loss,
            first_loss,
        ]
        histories.loc[~histories.trial.isin(stuck), LOSSES] = 0.5
    found = stuck_cause(trials, histories, stuck, CLASSES, BAR, probe)
    assert found.cause == cause
    assert phrase in found.sentence()


def test_the_issue_case_is_not_blamed_on_the_learning_rate() -> None:
    """29 of 30 trials at chance across 1e-5..1e-2, unable to fit their training images (a
    backbone fed [-1, 1] that divides by 255 again): features, not the learning rate."""
    rng = pd.Series(range(30)).map(lambda i: 10 ** (-5 + 3 * i / 29))
    stuck = list(range(29))
    trials, histories = _results(list(rng), stuck, 0.2)
    found = stuck_cause(trials, histories, stuck, CLASSES, BAR)
    assert found.cause == "features"
    assert "train.head_epochs" not in found.sentence()
    assert "check-model" in found.sentence()


def test_a_trial_cut_before_it_was_judged_does_not_count_against_the_learning_rate() -> None:
    """Trial 6 (the highest rate) was cut by the budget rule after one epoch: the chance warning
    does not judge it, so it is no evidence that a high rate learns."""
    trials, histories = _results([*LRS, 5e-2], [3, 4], 0.5, first_loss=10 * LN)
    histories.loc[~histories.trial.isin([3, 4]), LOSSES] = 0.5
    trials[TrialAttr.EPOCHS_RUN] = [3] * len(LRS) + [1]
    trials.loc[6, TrialAttr.STATE] = "PRUNED"
    found = stuck_cause(trials, histories[histories.trial != 6], [3, 4], CLASSES, BAR)
    assert found.cause == "learning_rate"
    assert "the highest learning rates" in found.sentence()
