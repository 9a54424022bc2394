"""Trial folders on a Ray cluster without a shared filesystem.

A trial writes ``trials/<number>/`` (history.csv, trial.log, best-epoch weights, the epoch
checkpoint a resume needs). When the worker runs where the driver's output folder is, it
writes there. On another machine that folder is not there (or is another machine's folder of
the same name), so the trial writes a scratch folder of its own and sends what changed to a
:class:`ResultsSink` actor that runs on the driver's node and writes the real folder. The
trial sends before every result it reports to Ray Tune, so when the driver sees epoch ``n``,
its files as of epoch ``n`` are already in the results folder.

Which case applies is found out, not configured: the driver writes a random token to
:data:`TOKEN_FILE` in the output folder, and a worker that reads the same token there shares
the driver's filesystem.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import ray

logger = logging.getLogger(__name__)

TOKEN_FILE = ".driver-token"
"""In the output folder: the running sweep's token (see :func:`write_token`)."""

SINK_PREFIX = "overfit-search-sink-"
SYNC_TIMEOUT_S = 120.0
"""How long a trial waits for the driver's node to take its files before it gives up (the
files stay in the worker's scratch folder and the trial goes on)."""


def write_token(out: Path) -> str:
    """Write a fresh token to ``out/`` (:data:`TOKEN_FILE`) and return it."""
    token = uuid.uuid4().hex
    (out / TOKEN_FILE).write_text(token + "\n")
    return token


def shares_output(output: str | Path, token: str) -> bool:
    """Whether this process sees the driver's output folder (the token there is ``token``)."""
    try:
        return (Path(output) / TOKEN_FILE).read_text().strip() == token
    except OSError:
        return False


def needs_sink(ray_address: str | None) -> bool:
    """Whether trials may run where the output folder is not: an attached cluster (nodes may
    join later) or a Ray instance with more than one node."""
    if ray_address:
        return True
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    return len(alive) > 1


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.replace(path)


class ResultsSink:
    """Writes the trial files that workers on other machines send (runs on the driver's node).

    Args:
        out: The results folder.
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _folder(self, relative: str) -> Path:
        folder = (self.out / relative).resolve()
        if not folder.is_relative_to(self.out.resolve()):
            raise ValueError(f"{relative!r} is outside the results folder")
        return folder

    def put(self, relative: str, files: dict[str, bytes | None]) -> int:
        """Write (bytes) or delete (None) files in ``out/<relative>/``; return how many."""
        folder = self._folder(relative)
        for name, data in files.items():
            path = folder / Path(name).name  # flat folders: a name never climbs out
            if data is None:
                path.unlink(missing_ok=True)
            else:
                _atomic_write(path, data)
        return len(files)

    def get(self, relative: str) -> dict[str, bytes]:
        """The files of ``out/<relative>/`` (empty when it does not exist)."""
        folder = self._folder(relative)
        if not folder.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}

    def ping(self) -> str:
        """This actor's node id (the driver's)."""
        return str(ray.get_runtime_context().get_node_id())


def start_sink(out: Path, token: str) -> Any:
    """Start the :class:`ResultsSink` actor on this (the driver's) node, named by ``token``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor: Any = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3)(ResultsSink)
    handle = actor.options(
        name=SINK_PREFIX + token,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
    ).remote(str(out))
    ray.get(handle.ping.remote())  # up before the first trial needs it
    return handle


class TrialFolder:
    """Where one trial writes its folder, and how that folder reaches the driver.

    Args:
        output: The driver's results folder.
        token: The sweep's token (:func:`write_token`).
        number: The trial's number.
        scratch: Parent of the scratch folders on a machine without the output folder
            (default: :func:`scratch_root`).
    """

    def __init__(
        self, output: str | Path, token: str, number: int, scratch: Path | None = None
    ) -> None:
        self.output = Path(output)
        self.token = token
        self.number = number
        self.shared = shares_output(output, token)
        self.sink: Any = None
        if self.shared:
            self.root = self.output
        else:
            base = scratch or scratch_root()
            self.root = base / "overfit-search" / token
            self.sink = ray.get_actor(SINK_PREFIX + token)
        self.path = self.root / "trials" / str(number)
        self._sent: dict[str, tuple[int, int]] = {}

    def earlier(self, number: int) -> Path:
        """The folder of an earlier trial this one resumes from, fetched here if need be."""
        folder = self.root / "trials" / str(number)
        if self.sink is not None:
            files = ray.get(self.sink.get.remote(f"trials/{number}"), timeout=SYNC_TIMEOUT_S)
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                _atomic_write(folder / name, data)
        return folder

    def sync(self, timeout: float = SYNC_TIMEOUT_S) -> None:
        """Send the files that changed (and the names that went) since the last sync."""
        if self.sink is None:
            return
        now = self._stamps()
        files: dict[str, bytes | None] = {n: None for n in self._sent if n not in now}
        for name, stamp in now.items():
            if self._sent.get(name) != stamp:
                with contextlib.suppress(OSError):  # gone since: the next sync says so
                    files[name] = (self.path / name).read_bytes()
        if not files:
            return
        try:
            ray.get(self.sink.put.remote(f"trials/{self.number}", files), timeout=timeout)
        except Exception:  # the trial goes on; the next sync sends these files again
            logger.warning("could not send trial %d's files to the driver", self.number)
            return
        self._sent = {n: s for n, s in now.items() if n in files or self._sent.get(n) == s}

    def close(self) -> None:
        """Send what is left and remove the scratch folder (only what the driver has)."""
        if self.sink is None:
            return
        self.sync()
        if self.path.is_dir() and all(
            self._sent.get(name) == stamp for name, stamp in self._stamps().items()
        ):
            shutil.rmtree(self.path, ignore_errors=True)

    def _stamps(self) -> dict[str, tuple[int, int]]:
        """Name -> (mtime_ns, size) of the folder's files (not the hidden partial writes)."""
        stamps: dict[str, tuple[int, int]] = {}
        if self.path.is_dir():
            for p in self.path.iterdir():
                if p.is_file() and not p.name.startswith("."):
                    st = p.stat()
                    stamps[p.name] = (st.st_mtime_ns, st.st_size)
        return stamps


def scratch_root() -> Path:
    """The scratch parent of this machine (the system's temporary folder)."""
    return Path(os.environ.get("OVERFIT_SEARCH_SCRATCH") or tempfile.gettempdir())
