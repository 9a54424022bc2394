"""Studies on a real PostgreSQL server (``study.storage: postgresql://…``): a sweep, the dashboard
on its storage, ``--resume`` to a larger trial count, and two drivers sharing one study."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from overfit_search.cli import main
from tests.conftest import digits_sweep

pytestmark = pytest.mark.slow

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PLAN = re.compile(r"study '(\w+)': (\d+) trial\(s\) done, (\d+) to run by this driver")


def _sweep(tmp_path: Path, url: str, name: str, **study: Any) -> Path:
    doc = digits_sweep(
        name,
        train={"max_epochs": 3},
        search={"l2": 1e-5, "frozen_fraction": 0.5},
        pruning={"rule": {"name": "none"}},
        study={"storage": url, "n_startup_trials": 2, **study},
        resources={"max_concurrent": 1},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def _rows_in_server(url: str, name: str) -> int:
    """Trials of study ``name`` counted by SQL in the server's own tables (not through Optuna)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM trials JOIN studies USING (study_id) WHERE study_name = :n"
            )
            return int(conn.execute(sqlalchemy.text(query), {"n": name}).scalar_one())
    finally:
        engine.dispose()


def test_sweep_into_postgres_then_dashboard_then_resume(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, out = _sweep(tmp_path, postgres_url, "pg", trials=2), tmp_path / "out"
    assert main(["run", str(sweep), "--output", str(out), "--no-progress"]) == 0
    trials = _trials(postgres_url, "pg")
    assert [t.state in FINISHED for t in trials] == [True, True]
    assert _rows_in_server(postgres_url, "pg") == 2
    assert not (out / "study.db").exists()  # the study lives in the server, not in the output
    assert yaml.safe_load((out / "sweep.yaml").read_text())["study"]["storage"] == postgres_url

    # `overfit-search dashboard <results dir>` serves the server's study: ask its API for it
    import socketserver

    serve = socketserver.BaseServer.serve_forever
    seen: dict[str, Any] = {}

    def serve_and_ask(self: Any, poll_interval: float = 0.5) -> None:
        import threading

        thread = threading.Thread(target=serve, args=(self,), daemon=True)
        thread.start()
        try:
            api = f"http://127.0.0.1:{self.server_port}/api/studies"
            seen.update(json.loads(urllib.request.urlopen(api, timeout=60).read()))
        finally:
            self.shutdown()
            thread.join()
        raise KeyboardInterrupt  # as Ctrl-C ends the command

    monkeypatch.setattr("socketserver.BaseServer.serve_forever", serve_and_ask)
    assert main(["dashboard", str(out), "--port", "0"]) == 0
    (summary,) = seen["study_summaries"]
    assert summary["study_name"] == "pg"
    monkeypatch.undo()

    # --resume continues the same study to a larger total; the finished trials stay as they were
    before = {t.number: (t.state, t.value) for t in trials}
    rc = main(
        ["run", str(sweep), "--output", str(out), "--no-progress", "--resume", "--trials", "4"]
    )
    assert rc == 0
    after = _trials(postgres_url, "pg")
    assert len(after) == 4 and all(t.state in FINISHED for t in after)
    assert {t.number: (t.state, t.value) for t in after if t.number in before} == before
    assert _rows_in_server(postgres_url, "pg") == 4


def _driver(sweep: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "overfit_search", "run", str(sweep), "--output", str(out),
         "--no-progress", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_two_drivers_share_one_study_and_fail_none_of_each_others_trials(
    tmp_path: Path, postgres_url: str
) -> None:
    beat, trials = 1, 4  # a driver that stopped beating for 3 s would lose its trials
    sweep = _sweep(tmp_path, postgres_url, "two", trials=trials, heartbeat_seconds=beat)
    first = _driver(sweep, tmp_path / "a")
    # the second driver joins while the first has a trial running, after more than the grace
    # period (3 heartbeats): only the first's heartbeats keep its running trial alive then
    deadline = time.monotonic() + 300
    while True:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the first driver started no trial"
        try:
            states = [t.state for t in _trials(postgres_url, "two")]
        except Exception:  # the first driver is still creating the tables or the study
            states = []
        if TrialState.RUNNING in states:
            break
        time.sleep(0.3)
    time.sleep(3 * beat + 1)
    second = _driver(sweep, tmp_path / "b", "--resume")
    out_a, _ = first.communicate(timeout=600)
    out_b, _ = second.communicate(timeout=600)
    assert first.returncode == 0, out_a
    assert second.returncode == 0, out_b

    all_trials = _trials(postgres_url, "two")
    failed = [
        (t.number, t.user_attrs.get("fail_reason")) for t in all_trials if t.state not in FINISHED
    ]
    assert not failed, f"{failed}\n--- first driver:\n{out_a}\n--- second driver:\n{out_b}"
    # each driver ran study.trials less the trials finished when it started; together, that
    plans = {}
    for name, output in (("a", out_a), ("b", out_b)):
        (plan,) = PLAN.findall(output)
        plans[name] = (int(plan[1]), int(plan[2]))
    assert plans["a"] == (0, trials)
    done_b, to_run_b = plans["b"]
    assert to_run_b == trials - done_b > 0  # the second driver had trials of its own to run
    assert len(all_trials) == trials + to_run_b == _rows_in_server(postgres_url, "two")
    # each trial ran in one driver: its folder is in that driver's output, never in both
    ran = {name: {int(p.name) for p in (tmp_path / name / "trials").iterdir()} for name in "ab"}
    assert not ran["a"] & ran["b"]
    assert ran["a"] | ran["b"] == {t.number for t in all_trials}
    assert (len(ran["a"]), len(ran["b"])) == (trials, to_run_b)
    # and they ran at the same time: a trial of the second started before the first's last ended
    start_b = min(t.datetime_start for t in all_trials if t.number in ran["b"])
    end_a = max(t.datetime_complete for t in all_trials if t.number in ran["a"])
    assert start_b is not None and end_a is not None and start_b < end_a
