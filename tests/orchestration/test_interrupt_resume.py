"""Never lose a trial: real driver processes interrupted (SIGINT, SIGTERM) or killed (SIGKILL of
the whole process group) after some trials finished, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import digits_sweep

pytestmark = pytest.mark.slow

TRIALS = 6


def _sweep(tmp_path: Path, trials: int = TRIALS) -> Path:
    doc = digits_sweep(
        "resume",
        train={"max_epochs": 8},
        search={"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "l2": 1e-5},
        pruning={"rule": {"name": "none"}},
        study={"trials": trials, "n_startup_trials": 3, "seed": 5},
    )
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _start(sweep: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "overfit_search", "run", str(sweep), "--output", str(out),
         "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: SIGKILL takes Ray's processes too
    )  # fmt: skip


def _finished(out: Path) -> dict[int, tuple[str, float | None]]:
    db = out / "study.db"
    if not db.exists():
        return {}
    try:
        study = optuna.load_study(study_name="resume", storage=f"sqlite:///{db}")
        trials = study.get_trials(deepcopy=False)
    except Exception:  # the driver is still creating the study
        return {}
    return {
        t.number: (t.state.name, t.value)
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }


def _wait_for(out: Path, proc: subprocess.Popen[str], n: int, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while len(_finished(out)) < n:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)


def _resume_and_check(
    sweep: Path, out: Path, before: dict[int, tuple[str, float | None]], trials: int = TRIALS
) -> optuna.Study:
    proc = _start(sweep, out, "--resume")
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{out / 'study.db'}")
    after = {t.number: t for t in study.get_trials()}
    for number, (state, value) in before.items():  # nothing finished was lost or changed
        assert after[number].state.name == state
        assert after[number].value == value
    done = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == trials
    assert TrialState.RUNNING not in {t.state for t in after.values()}
    # each interrupted configuration was run again, once, with its parameters
    interrupted = [
        t for t in after.values()
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == "interrupted"
    ]  # fmt: skip
    reruns = {
        t.user_attrs["resumed_from"]: t for t in after.values() if "resumed_from" in t.user_attrs
    }
    for t in interrupted:
        if not t.params:  # killed between Optuna's ask and its sampling: nothing ran, no config
            assert not t.intermediate_values
            continue
        assert t.number in reruns, t.number
        assert reruns[t.number].params == t.params
        # ...from the interrupted trial's last epoch checkpoint when it finished an epoch
        old_history = out / "trials" / str(t.number) / "history.csv"
        if old_history.exists() and len(old_history.read_text().splitlines()) > 1:
            log = (out / "trials" / str(reruns[t.number].number) / "trial.log").read_text()
            assert f"resumed from {t.number} after epoch" in log
    # every interrupted trial was re-run: no epoch checkpoint is left behind
    assert not list((out / "trials").glob("*/checkpoint*.weights.h5"))
    return study


def test_signals_stop_cleanly_and_resume_finishes_the_study(tmp_path: Path) -> None:
    """SIGINT stops the first driver and SIGTERM the resumed one, in one study (a driver start
    per signal, not two), then a last ``--resume`` finishes it. Eight trials: even with four
    finished at the first signal, the resumed driver still has trials to run at the second."""
    trials = 8
    sweep, out = _sweep(tmp_path, trials), tmp_path / "out"
    before: dict[int, tuple[str, float | None]] = {}
    extra: tuple[str, ...] = ()
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        proc = _start(sweep, out, *extra)
        _wait_for(out, proc, len(before) + 2)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == code, (sig, output)
        assert "--resume" in output
        finished = _finished(out)
        assert len(finished) >= len(before) + 2
        assert {n: finished[n] for n in before} == before  # the first stop lost nothing
        before = finished
        study = optuna.load_study(study_name="resume", storage=f"sqlite:///{out / 'study.db'}")
        assert TrialState.RUNNING not in {t.state for t in study.get_trials()}
        assert (out / "trials.csv").exists() and (out / "best.yaml").exists()
        extra = ("--resume",)
    _resume_and_check(sweep, out, before, trials)


def test_kill_9_loses_no_finished_trial(tmp_path: Path) -> None:
    sweep, out = _sweep(tmp_path), tmp_path / "out"
    proc = _start(sweep, out)
    _wait_for(out, proc, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    before = _finished(out)
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{out / 'study.db'}")
    assert TrialState.RUNNING in {t.state for t in study.get_trials()}  # killed mid-trial
    # without --resume the output is refused, not mixed
    refused = subprocess.run(
        [sys.executable, "-m", "overfit_search", "run", str(sweep), "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "--resume" in refused.stderr
    _resume_and_check(sweep, out, before)
