"""The results contract: every name one module writes and another reads.

- What a trial folder (``trials/<number>/``) holds: file names and the history's columns;
  and the results files written by one module and read by another.
- :class:`TrialAttr`: the user attributes stored on each Optuna trial (written by the searcher
  and the runner, read by the exports, report, reuse and CLI code); ``trials.csv`` carries
  them under the same names.
- :class:`StudyAttr`: the user attributes stored on the study.
- :class:`ResultKey`: the keys of the per-epoch result a trial reports through Ray Tune (read
  by the stopper and the searcher).
- :class:`ConfigKey`: the bookkeeping keys the searcher adds to a trial's Ray config.

One place for these names, so no module keeps its own copy and none has to import the
Keras-importing trainer or the Ray-importing orchestration to learn them;
tests/test_layout.py fails on a new literal copy. Pure: no TensorFlow, Ray or Optuna.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final


class TrialAttr:
    """Keys of the user attributes on an Optuna trial (``trial.user_attrs``)."""

    STATE: Final = "state"
    """COMPLETE / PRUNED / FAIL as this product decided (a diverged trial is FAIL here)."""
    BEST_EPOCH: Final = "best_epoch"
    BEST_VAL_LOSS: Final = "best_val_loss"
    GAP: Final = "gap"
    """val_loss - train_eval_loss at the best epoch."""
    EPOCHS_RUN: Final = "epochs_run"
    STOPPED_EARLY: Final = "stopped_early"
    STOP_RULE: Final = "stop_rule"
    STOP_REASON: Final = "stop_reason"
    MEDIAN: Final = "median"
    FEASIBLE: Final = "feasible"
    VAL_LOSS_HISTORY: Final = "val_loss_history"
    """Per-epoch val_loss (multi-objective studies only: Optuna keeps no intermediate values)."""
    TRAIN_EVAL_LOSS_HISTORY: Final = "train_eval_loss_history"
    FAIL_REASON: Final = "fail_reason"
    DIVERGED: Final = "diverged"
    """Told PRUNED to Optuna so the sampler learns from it, shown as FAIL to the user."""
    RAY_TRIAL_ID: Final = "ray_trial_id"
    RESUMED_FROM: Final = "resumed_from"
    """The number of the interrupted trial whose configuration this trial re-runs."""
    PINNED: Final = "pinned"
    """Knob values a baseline trial pins (search_space.trial_values reads them back)."""
    BASELINE: Final = "baseline"


class StudyAttr:
    """Keys of the user attributes on the Optuna study (``study.user_attrs``)."""

    SETUP_CHECK: Final = "setup_check"
    OBJECTIVE: Final = "objective"
    MAX_EPOCHS: Final = "max_epochs"
    TEST_ESTIMATE: Final = "test_estimate"
    """The chosen trial on the held-out test split (``data.test_fraction``), after the run."""


class ResultKey:
    """Keys of the per-epoch result a trial reports to Ray Tune (a row of
    :data:`HISTORY_COLUMNS`, or a failure)."""

    EPOCH: Final = "epoch"
    VAL_LOSS: Final = "val_loss"
    TRAIN_EVAL_LOSS: Final = "train_eval_loss"
    GAP: Final = "gap"
    VAL_ACCURACY: Final = "val_accuracy"
    TRAIN_EVAL_ACCURACY: Final = "train_eval_accuracy"
    FAILED: Final = "failed"
    """Present (the reason) when the trial failed; the other values are then NaN."""


class ConfigKey:
    """Keys the searcher adds to a trial's Ray config (the trainable pops them)."""

    TRIAL_NUMBER: Final = "__trial_number"
    RESUME_FROM: Final = "__resume_from"
    """The number of the interrupted trial whose checkpoint this trial resumes from."""


PARAM_PREFIX = "param_"
"""``trials.csv`` carries each Optuna parameter (a searched knob) as ``param_<knob>``."""


def param_column(knob: str) -> str:
    """The ``trials.csv`` column of a searched knob's values (``param_learning_rate``)."""
    return f"{PARAM_PREFIX}{knob}"


CRASH_REASON_FILE = "crash_reason.txt"
"""Written into ``trials/<number>/`` by a trial that ends its own worker process (the hang
watchdog): the reason the study records."""
CHECK_MODEL_FILE = "check_model.json"
"""The setup check's probe table and verdict, in the results directory."""
HISTORY_FILE = "history.csv"
"""One row per epoch, :data:`HISTORY_COLUMNS`."""
HISTORIES_TRIAL = "trial"
"""histories.csv's first column: the trial number of each history.csv row it joins."""
HISTORY_COLUMNS: tuple[str, ...] = (
    ResultKey.EPOCH,
    ResultKey.VAL_LOSS,
    ResultKey.TRAIN_EVAL_LOSS,
    ResultKey.GAP,
    ResultKey.VAL_ACCURACY,
    ResultKey.TRAIN_EVAL_ACCURACY,
    "keras_loss",
    "keras_val_loss",
    "keras_accuracy",
    "epoch_seconds",
)
BEST_WEIGHTS = "best.weights.h5"
"""The weights of the trial's best epoch (kept for the top ``train.keep_best_weights``)."""
CHECKPOINT = "checkpoint-{epoch}.weights.h5"
"""The weights after epoch ``epoch``, kept while a trial runs (deleted when it ends).

Named by its epoch so a resume never pairs a checkpoint with the wrong history: each epoch
writes its checkpoint, then its history.csv row, then deletes the previous checkpoint, so a
kill at any point leaves a checkpoint whose epoch has a history row."""
CHECKPOINT_GLOB = "checkpoint-*.weights.h5"
CHECKPOINT_TMP = "checkpoint.tmp.weights.h5"
"""Where an epoch's weights are written before they are renamed to their ``CHECKPOINT`` name; a
kill during the write leaves it behind."""


def checkpoint_path(trial_dir: Path, epoch: int) -> Path:
    """Where the weights after ``epoch`` are kept while the trial runs."""
    return trial_dir / CHECKPOINT.format(epoch=epoch)


def checkpoints(trial_dir: Path) -> dict[int, Path]:
    """A trial folder's epoch checkpoints, by epoch."""
    found = {}
    for path in trial_dir.glob(CHECKPOINT_GLOB):
        epoch = path.name.removeprefix("checkpoint-").removesuffix(".weights.h5")
        if epoch.isdigit():
            found[int(epoch)] = path
    return found


def checkpoint_files(trial_dir: Path) -> list[Path]:
    """Every checkpoint file a trial folder may hold: epoch checkpoints and a half-written one."""
    return [*checkpoints(trial_dir).values(), trial_dir / CHECKPOINT_TMP]
