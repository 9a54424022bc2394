"""The orchestration benchmark (bench/overhead.py) end to end on a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BENCH_DIR

BENCH = BENCH_DIR / "overhead.py"


@pytest.mark.slow
def test_loop_run_and_many_trials_report_and_the_summary_comes_last(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--trials",
            "2",
            "--epochs",
            "1",
            "--many",
            "20",
            "--parts",
            "loop,run,many",
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=dict(os.environ, PYTHONPATH=str(BENCH_DIR.parent)),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = {
        r["part"]: r for r in (json.loads(x) for x in done.stdout.splitlines() if x[:1] == "{")
    }
    assert records["loop"]["trials"] == records["run"]["trials"] == 2
    assert records["loop"]["epochs"] == records["run"]["epochs"] == 2  # no stopping in either
    assert 0 < records["run"]["startup_to_first_trial_s"] < records["run"]["command_s"]
    many = records["many"]
    assert many["trials"] == 20 and many["trials_per_s"] > 0
    assert many["exports_20_s"] > 0 and many["report_4_s"] > 0
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("overhead_ratio=") and "trials_per_s=" in last, last
