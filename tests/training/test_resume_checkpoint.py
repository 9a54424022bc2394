"""An interrupted trial resumes from its last epoch checkpoint, in either training phase."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from overfit_search.data import load_data
from overfit_search.training.trial import checkpoint_path, checkpoints, resumable, run_trial
from tests.training.test_two_phase import PARAMS, _Recorder, _sweep


class _InterruptError(Exception):
    pass


def _interrupted_after(epochs: int) -> Any:
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        if row["epoch"] == epochs:
            raise _InterruptError  # as a killed driver leaves it: after the checkpoint

    return rows, report


def _resume(sweep: Any, data: Any, tmp_path: Path) -> tuple[list[dict[str, Any]], _Recorder]:
    """Run the trial again in ``tmp_path/1``, resuming from ``tmp_path/0``, seed 3."""
    rows: list[dict[str, Any]] = []
    recorder = _Recorder()
    run_trial(
        sweep, PARAMS, data, rows.append, tmp_path / "1", seed=3,
        callbacks=[recorder], resume_from=tmp_path / "0",
    )  # fmt: skip
    return rows, recorder


@pytest.mark.parametrize(
    ("head_epochs", "stop_after", "trainable_after"),
    [(0, 2, [4, 4]), (3, 2, [0, 4]), (2, 3, [4])],  # plain; inside phase 1; inside phase 2
)
def test_resume_replays_the_finished_epochs_and_trains_the_rest(
    tmp_path: Path, head_epochs: int, stop_after: int, trainable_after: list[int]
) -> None:
    sweep = _sweep(head_epochs=head_epochs, max_epochs=4)
    data = load_data(sweep.data)
    first, report = _interrupted_after(stop_after)
    with pytest.raises(_InterruptError):
        run_trial(sweep, PARAMS, data, report, tmp_path / "0", seed=3)
    assert list(checkpoints(tmp_path / "0")) == [stop_after]  # the earlier ones were deleted

    rows, recorder = _resume(sweep, data, tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for before, again in zip(first, rows[:stop_after], strict=True):
        assert again["val_loss"] == pytest.approx(before["val_loss"])  # replayed, not retrained
    assert recorder.epochs == list(range(stop_after + 1, 5))  # only the rest was trained
    assert recorder.backbone_trainable == trainable_after
    assert all(math.isfinite(r["val_loss"]) for r in rows)
    assert f"resumed from 0 after epoch {stop_after}" in (tmp_path / "1" / "trial.log").read_text()
    assert checkpoints(tmp_path / "1") == {}  # a finished trial keeps no checkpoint
    history = (tmp_path / "1" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4


def _history(folder: Path, val_losses: list[float]) -> None:
    lines = ["epoch,val_loss,train_eval_loss"]
    lines += [f"{n},{v},0.1" for n, v in enumerate(val_losses, start=1)]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("saved", "losses", "max_epochs", "replay", "load"),
    [
        ([1], [0.5], 4, 1, 1),
        ([1, 2], [0.5], 4, 1, 1),  # killed after epoch 2's checkpoint, before its history row
        ([1, 2], [0.5, 0.4], 4, 2, 2),  # ...after the row, before epoch 1's was deleted
        ([2], [0.5, 0.4], 4, 2, 2),
        ([3], [0.5, 0.4], 4, 0, None),  # a checkpoint with no history row: not trusted
        ([], [0.5, 0.4], 4, 0, None),
        ([2], [0.5, 0.4, math.nan], 4, 2, 2),  # epoch 3 diverged: it has no checkpoint
        ([4], [0.5, 0.4, 0.3, 0.2], 4, 3, 4),  # killed after its last epoch: train it again
    ],
)
def test_resumable_pairs_a_checkpoint_with_its_epochs_at_every_kill_point(
    tmp_path: Path,
    saved: list[int],
    losses: list[float],
    max_epochs: int,
    replay: int,
    load: int | None,
) -> None:
    _history(tmp_path, losses)
    for epoch in saved:
        checkpoint_path(tmp_path, epoch).write_bytes(b"")
    rows, checkpoint = resumable(tmp_path, max_epochs)
    assert [r["epoch"] for r in rows] == list(range(1, replay + 1))
    assert checkpoint == (None if load is None else checkpoint_path(tmp_path, load))


def test_resumable_without_a_folder_or_history(tmp_path: Path) -> None:
    assert resumable(None, 4) == ([], None)
    checkpoint_path(tmp_path, 1).write_bytes(b"")
    assert resumable(tmp_path, 4) == ([], None)


def test_without_a_checkpoint_the_trial_starts_afresh(tmp_path: Path) -> None:
    sweep = _sweep(head_epochs=0, max_epochs=2)
    data = load_data(sweep.data)
    (tmp_path / "0").mkdir()
    _, recorder = _resume(sweep, data, tmp_path)
    assert recorder.epochs == [1, 2]


@pytest.mark.parametrize(
    ("steps_per_execution", "polls_per_epoch"),
    [(1, 2), (2, 1), (8, 1)],  # 30 images, batch 16: 2 batches an epoch
)
def test_a_stop_request_ends_the_trial_between_batches(
    tmp_path: Path, steps_per_execution: int, polls_per_epoch: int
) -> None:
    from overfit_search.training.trial import TrialStopped

    sweep = _sweep(head_epochs=0, max_epochs=4)
    sweep.train.steps_per_execution = steps_per_execution
    data = load_data(sweep.data)
    rows: list[dict[str, Any]] = []
    polls = 0

    def should_stop() -> bool:  # says stop at its first poll in epoch 2
        nonlocal polls
        polls += 1
        return polls > polls_per_epoch

    with pytest.raises(TrialStopped):
        run_trial(sweep, PARAMS, data, rows.append, tmp_path, seed=0, should_stop=should_stop)
    assert [r["epoch"] for r in rows] == [1]  # no report for the unfinished epoch
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 2
    assert polls == polls_per_epoch + 1


def test_steps_per_execution_gives_the_same_training(tmp_path: Path) -> None:
    # Several batches per compiled call is a speed setting only: same batches, same updates.
    histories = []
    for spe in (1, 3):
        sweep = _sweep(head_epochs=1, max_epochs=3)
        sweep.train.steps_per_execution = spe
        rows: list[dict[str, Any]] = []
        run_trial(sweep, PARAMS, load_data(sweep.data), rows.append, tmp_path / str(spe), seed=5)
        histories.append([r[k] for r in rows for k in ("train_eval_loss", "val_loss")])
    assert histories[0] == pytest.approx(histories[1], rel=1e-4)
    assert histories[0][1] > histories[0][-1] + 0.1  # it did train


def test_trial_timeout_is_checked_between_batches_not_only_after_epochs(tmp_path: Path) -> None:
    from overfit_search.errors import TrialError

    sweep = _sweep(head_epochs=0, max_epochs=4)
    sweep.train.trial_timeout = 1e-6
    rows: list[dict[str, Any]] = []
    with pytest.raises(TrialError, match=r"trial_timeout=1e-06s \(during a batch\)"):
        run_trial(sweep, PARAMS, load_data(sweep.data), rows.append, tmp_path, seed=0)
    assert rows == []  # it never reached the end of its first epoch


def _interrupted_twice(
    tmp_path: Path, between: Callable[[list[dict[str, Any]]], None] = lambda rows: None
) -> None:
    """Trial 0 interrupted after epoch 2; trial 1 resumes from it and is interrupted at its first
    replayed epoch. ``between`` sees trial 0's rows before trial 1 starts."""
    sweep = _sweep(head_epochs=0, max_epochs=4)
    data = load_data(sweep.data)
    first, report = _interrupted_after(2)
    with pytest.raises(_InterruptError):
        run_trial(sweep, PARAMS, data, report, tmp_path / "0", seed=3)
    between(first)
    _, report = _interrupted_after(1)
    with pytest.raises(_InterruptError):
        run_trial(sweep, PARAMS, data, report, tmp_path / "1", seed=3, resume_from=tmp_path / "0")


def test_a_resumed_trial_interrupted_again_keeps_the_checkpoint_it_resumed_from(
    tmp_path: Path,
) -> None:
    _interrupted_twice(tmp_path)
    rows, checkpoint = resumable(tmp_path / "1", 4)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert checkpoint == checkpoint_path(tmp_path / "1", 2)


@pytest.mark.parametrize("best_saved", [True, False])
def test_resume_takes_the_best_weights_from_the_checkpoint_when_its_epoch_was_the_best(
    tmp_path: Path, best_saved: bool
) -> None:
    """A kill between the best epoch's history row and its best-weights save loses nothing."""

    def check_and_kill(first: list[dict[str, Any]]) -> None:
        assert first[1]["val_loss"] < first[0]["val_loss"]  # epoch 2, the checkpoint's, is best
        if not best_saved:  # the kill came before epoch 2's save: the file holds epoch 1's
            (tmp_path / "0" / "best.weights.h5").write_bytes(b"epoch 1")

    _interrupted_twice(tmp_path, check_and_kill)
    copied = (tmp_path / "1" / "best.weights.h5").read_bytes()
    assert copied == checkpoint_path(tmp_path / "0", 2).read_bytes()
