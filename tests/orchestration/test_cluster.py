"""A real two-node Ray cluster on this machine, the second node without the output folder.

The head node runs as usual. The second node's processes run in a private mount namespace
with an empty tmpfs over the folder that holds the sweep's output folder: like another
machine, they cannot see or write the driver's results. Both nodes declare one (fake) GPU and
two CPUs, so with ``gpus_per_trial: 0.5`` and ``cpus_per_trial: 0.5`` the GPUs, not the CPUs,
bound how many trials a node runs at once. Every Ray process the test starts is ended by its
process group, never by ``ray stop`` (which would end other Ray instances on the machine).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import digits_sweep

pytestmark = pytest.mark.slow


def _can_unshare() -> str | None:
    """Why a private mount namespace cannot be made here (None when it can)."""
    if shutil.which("unshare") is None:
        return "no unshare binary (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot create a private mount namespace: {probe.stderr.strip()[:200]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


GRACE_S = 5
"""How long a node's `ray start --block` gets to end on SIGTERM before its group is SIGKILLed.
The head node's never ended on SIGTERM alone (measured: still running, its GCS too, after the
20 s this waited before), so a longer wait only delays the SIGKILL; the second node's `ray
start` ends in under a second."""


def _end(proc: subprocess.Popen[bytes]) -> None:
    """End a `ray start --block` and every process of its group (raylet, GCS, workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _wait_for_nodes(address: str, count: int, env: dict[str, str], timeout: float = 90) -> None:
    script = (
        "import ray, sys\n"
        f"ray.init(address={address!r}, logging_level='ERROR')\n"
        "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
    )
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
        )
        seen = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        if seen == str(count):
            return
        time.sleep(2)
    raise AssertionError(f"the cluster never had {count} nodes: {seen}")


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(address, hidden folder): a head node and a second node that cannot see ``hidden``."""
    why = _can_unshare()
    if why:
        pytest.skip(why)
    hidden = tmp_path / "driver"
    hidden.mkdir()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus=2", "--num-gpus=1", "--disable-usage-stats", "--block"]
    head = subprocess.Popen(
        [
            _ray_bin(),
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            *common,
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = [head]
    try:
        _wait_for_nodes(address, 1, env)
        worker_cmd = (
            f"mount -t tmpfs tmpfs {hidden} && exec {_ray_bin()} start --address={address} "
            f"--node-ip-address=127.0.0.1 {' '.join(common)}"
        )
        worker = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", worker_cmd],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(worker)
        _wait_for_nodes(address, 2, env)
        yield address, hidden
    finally:
        for proc in reversed(started):
            _end(proc)


_RESOURCES = re.compile(
    r"^(\S+ \S+) ray resources: node (\w+), (.*?), GPU ids \[(.*?)\]", re.MULTILINE
)


def test_sweep_on_a_two_node_cluster_without_a_shared_filesystem(
    two_node_cluster: tuple[str, Path],
) -> None:
    address, hidden = two_node_cluster
    out = hidden / "out"
    doc = digits_sweep(
        "cluster",
        train={"max_epochs": 3},
        study={"trials": 8, "n_startup_trials": 8},
        resources={
            "cpus_per_trial": 0.5,
            "gpus_per_trial": 0.5,
            "max_concurrent": None,
            "ray_address": address,
        },
    )
    sweep = hidden.parent / "cluster.yaml"
    sweep.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "overfit_search",
            "run",
            str(sweep),
            "--output",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # The results folder is complete, written by the driver alone.
    for name in ("study.db", "sweep.yaml", "trials.csv", "histories.csv", "best.yaml",
                 "report.html"):  # fmt: skip
        assert (out / name).exists(), name
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 8
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"}, trials[["number", "state"]]

    nodes: dict[str, list[tuple[float, float]]] = {}
    remote = 0
    for number in trials["number"]:
        folder = out / "trials" / str(number)
        log = (folder / "trial.log").read_text()
        match = _RESOURCES.search(log)
        assert match is not None, log
        stamp, node, how, gpus = match.groups()
        assert gpus.strip("'\" ") == "0", log
        remote += how.startswith("no shared filesystem")
        history = pd.read_csv(folder / "history.csv")
        assert len(history) >= 1 and history["epoch"].iloc[0] == 1
        stamps = re.findall(r"^(\S+ \S+) ", log, re.MULTILINE)
        start = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()
        end = datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S").timestamp()
        nodes.setdefault(node, []).append((start, end))
    assert len(nodes) == 2, f"trials ran on {len(nodes)} node(s): {sorted(nodes)}"
    assert remote >= 1  # the second node's trials sent their folders through Ray

    # Never more than two half-GPU trials at once on a node's one GPU. Log stamps are whole
    # seconds, so a trial that starts in the second another ended is not counted against it.
    for node, spans in nodes.items():
        for start, _ in spans:
            running = sum(s <= start < e for s, e in spans)
            assert running <= 2, f"node {node}: {running} trials at once on one GPU"

    # The kept best-epoch weights of the chosen trial reached the results folder too.
    header = (out / "best.yaml").read_text().splitlines()[0]
    chosen = re.search(r"best configuration: trial (\d+)", header)
    assert chosen is not None, header
    assert bool(trials.set_index("number").loc[int(chosen.group(1)), "has_weights"])
    assert (out / "trials" / chosen.group(1) / "best.weights.h5").exists()
