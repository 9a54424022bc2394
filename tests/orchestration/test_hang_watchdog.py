"""The hang watchdog: a trial stuck past ``train.trial_timeout`` ends its worker, saying why."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from overfit_search.orchestration import trainable
from overfit_search.orchestration.searcher import CRASH_REASON_FILE
from overfit_search.orchestration.trainable import HangWatchdog, hang_deadline


@pytest.mark.parametrize(
    ("timeout", "deadline"), [(1.0, 31.0), (60.0, 90.0), (300.0, 330.0), (3600.0, 3960.0)]
)
def test_deadline_is_the_timeout_plus_a_grace(
    timeout: float, deadline: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(trainable.HANG_GRACE_ENV, raising=False)
    assert hang_deadline(timeout) == pytest.approx(deadline)


@pytest.mark.parametrize(("timeout", "deadline"), [(1.0, 3.5), (60.0, 66.0), (3600.0, 3960.0)])
def test_the_environment_replaces_the_grace(
    timeout: float, deadline: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(trainable.HANG_GRACE_ENV, "2.5")
    assert hang_deadline(timeout) == pytest.approx(deadline)


def _stuck_in_a_kernel(release: threading.Event) -> None:
    release.wait(30)


def test_a_hung_trial_leaves_its_reason_and_stacks_then_ends_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainable, "HANG_GRACE_S", 0.2)
    ended: list[int] = []
    release = threading.Event()
    stuck = threading.Thread(target=_stuck_in_a_kernel, args=(release,), daemon=True)
    stuck.start()
    try:
        with HangWatchdog(tmp_path, 0.1, end_process=ended.append):
            deadline = time.monotonic() + 10
            while not ended and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        release.set()
    assert ended == [trainable.HANG_EXIT_CODE]
    reason = (tmp_path / CRASH_REASON_FILE).read_text()
    assert reason.startswith(
        "hung: still running 0s after it started, past train.trial_timeout=0.1s"
    )
    assert reason.strip() in (tmp_path / "trial.log").read_text()
    assert "_stuck_in_a_kernel" in (tmp_path / "traceback.txt").read_text()


def test_a_trial_that_ends_in_time_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainable, "HANG_GRACE_S", 0.05)
    ended: list[int] = []
    with HangWatchdog(tmp_path, 0.05, end_process=ended.append):
        pass
    time.sleep(0.3)  # well past the deadline
    assert ended == []
    assert not any(tmp_path.iterdir())
