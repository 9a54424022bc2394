"""What a trial folder (``trials/<number>/``) holds: file names and the history's columns;
and the results files written by one module and read by another.

One place for the names the trainer writes and the results, runner and reuse code read, so
no module keeps its own copy and none has to import the Keras-importing trainer to learn them.
Pure: no TensorFlow, Ray or Optuna.
"""

from __future__ import annotations

from pathlib import Path

CHECK_MODEL_FILE = "check_model.json"
"""The setup check's probe table and verdict, in the results directory."""
HISTORY_FILE = "history.csv"
"""One row per epoch, :data:`HISTORY_COLUMNS`."""
HISTORY_COLUMNS = (
    "epoch",
    "val_loss",
    "train_eval_loss",
    "gap",
    "val_accuracy",
    "train_eval_accuracy",
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
