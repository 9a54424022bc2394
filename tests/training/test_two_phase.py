"""Two-phase fine-tuning: head first with the backbone frozen, then the trial's freezing."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import keras
import pytest

from overfit_search.config import sweep_from_dict
from overfit_search.data import load_data
from overfit_search.errors import ConfigError
from overfit_search.training.trial import run_trial
from tests.conftest import tiny_sweep

PARAMS: dict[str, Any] = {
    "dropout": 0.1,
    "l2": 1e-4,
    "learning_rate": 3e-3,
    "augmentation": 0.0,
    "frozen_fraction": 0.5,
}
# digits_cnn: conv0 pool0 conv1 pool1 conv2 pool2 conv3; frozen_fraction 0.5 of its 7 layers
# freezes round(3.5) = 4 (conv0..pool1), leaving conv2 and conv3 (kernel + bias each); the
# log counts its 8 layers with the InputLayer.
FINETUNE_BACKBONE_WEIGHTS = 4


class _Recorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Per epoch: the backbone's trainable weights and the optimizer's learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []
        self.backbone_trainable: list[int] = []
        self.learning_rates: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epochs.append(epoch + 1)
        backbone = self.model.get_layer("digits_cnn")
        self.backbone_trainable.append(len(backbone.trainable_weights))
        lr = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        self.learning_rates.append(float(lr))


def _sweep(head_epochs: int, max_epochs: int) -> Any:
    return sweep_from_dict(
        tiny_sweep(
            data={
                "source": "digits",
                "image_size": 16,
                "digits_classes": [5, 6, 7],
                "train_per_class": 10,
            },
            model={"backbone": "builtin:digits_cnn"},
            train={
                "batch_size": 16,
                "max_epochs": max_epochs,
                "head_epochs": head_epochs,
                "finetune_lr_factor": 0.1,
                "augment_flip": False,
            },
        )
    )


def test_two_phases_number_epochs_on_and_refreeze(tmp_path: Path) -> None:
    sweep = _sweep(head_epochs=2, max_epochs=4)
    data = load_data(sweep.data)
    rows: list[dict[str, Any]] = []
    recorder = _Recorder()
    model = run_trial(sweep, PARAMS, data, rows.append, tmp_path, seed=0, callbacks=[recorder])

    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["val_loss"]) and math.isfinite(r["gap"]) for r in rows)
    with (tmp_path / "history.csv").open() as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4]
    assert recorder.epochs == [1, 2, 3, 4]
    assert recorder.backbone_trainable == [0, 0] + [FINETUNE_BACKBONE_WEIGHTS] * 2
    lr = PARAMS["learning_rate"]
    assert recorder.learning_rates[:2] == pytest.approx([lr, lr])
    assert recorder.learning_rates[2:] == pytest.approx([lr * 0.1, lr * 0.1])
    final_lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert final_lr == pytest.approx(lr * 0.1)

    log = (tmp_path / "trial.log").read_text()
    assert "phase 1 (head): epochs 1-2, whole backbone frozen (0 trainable backbone weights)" in log
    assert (
        f"phase 2 (fine-tune): epochs 3-4, backbone layers frozen 4/8 "
        f"({FINETUNE_BACKBONE_WEIGHTS} trainable backbone weights), learning rate 0.0003" in log
    )


def test_head_only_when_head_epochs_equal_max_epochs(tmp_path: Path) -> None:
    # A retrain whose best epoch fell in the head phase: the head trains, nothing else.
    sweep = _sweep(head_epochs=2, max_epochs=2)
    data = load_data(sweep.data)
    rows: list[dict[str, Any]] = []
    recorder = _Recorder()
    run_trial(sweep, PARAMS, data, rows.append, tmp_path, seed=0, callbacks=[recorder])
    assert [r["epoch"] for r in rows] == [1, 2]
    assert recorder.backbone_trainable == [0, 0]
    assert "phase 2" not in (tmp_path / "trial.log").read_text()


def test_no_head_phase_by_default(tmp_path: Path) -> None:
    sweep = _sweep(head_epochs=0, max_epochs=2)
    rows: list[dict[str, Any]] = []
    recorder = _Recorder()
    run_trial(
        sweep, PARAMS, load_data(sweep.data), rows.append, tmp_path, seed=0, callbacks=[recorder]
    )
    assert [r["epoch"] for r in rows] == [1, 2]
    assert recorder.backbone_trainable == [FINETUNE_BACKBONE_WEIGHTS] * 2
    assert recorder.learning_rates == pytest.approx([PARAMS["learning_rate"]] * 2)
    assert "phase" not in (tmp_path / "trial.log").read_text()


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"max_epochs": 3, "head_epochs": 4}, "train.head_epochs: must be at most"),
        ({"head_epochs": -1}, "train.head_epochs"),
        ({"finetune_lr_factor": 0}, "train.finetune_lr_factor"),
    ],
)
def test_two_phase_settings_are_validated(train: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep_from_dict(tiny_sweep(train=train))


def test_defaults_are_one_phase() -> None:
    train = sweep_from_dict(tiny_sweep()).train
    assert train.head_epochs == 0
    assert train.finetune_lr_factor == 0.1
