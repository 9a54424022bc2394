"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import sqlalchemy
import yaml

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
MOBILENET_H5 = FIXTURES / "mobilenetv2_160_stanford_dogs.h5"
BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` (not a package) as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def write_sweep(tmp_path: Path) -> Any:
    """Write a sweep mapping (or raw text) to a YAML file and return its path."""

    def _write(doc: dict[str, Any] | str, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        path.write_text(text)
        return path

    return _write


def tiny_sweep(**sections: Any) -> dict[str, Any]:
    """A minimal valid sweep mapping on the digits source, with sections replaced."""
    doc: dict[str, Any] = {"name": "tiny", "data": {"source": "digits"}}
    doc.update(sections)
    return doc


def digits_sweep(name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small real sweep (3 digits at 16 px, 10 training images each, the builtin backbone,
    two trials at a time) for end-to-end tests; each given section updates the default one."""
    doc: dict[str, Any] = {
        "name": name,
        "data": {
            "source": "digits",
            "digits_classes": [5, 6, 7],
            "image_size": 16,
            "validation_fraction": 0.3,
            "train_per_class": 10,
        },
        "model": {"backbone": "builtin:digits_cnn"},
        "train": {"batch_size": 16, "max_epochs": 6, "augment_flip": False},
        "search": {
            "dropout": {"low": 0.0, "high": 0.5},
            "l2": {"low": 1e-6, "high": 1e-2, "log": True},
            "learning_rate": {"low": 1e-3, "high": 5e-2, "log": True},
            "augmentation": 0.0,
            "frozen_fraction": {"low": 0.0, "high": 1.0},
        },
        "objective": {"mode": "constrained", "max_gap": 0.2},
        "study": {"trials": 5, "n_startup_trials": 5, "seed": 1},
        "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
    }
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc


def fixture_digits_sweep(
    name: str, backbone: str, validation_fraction: float, **sections: dict[str, Any]
) -> dict[str, Any]:
    """Digits 5-9 at 32 px (20 training images each) on ``backbone``, usually the pretrained
    fixture (``file:{MOBILENET_H5}#mobilenetv2_1.00_160``, resized up to 160 px); each given
    section updates the default one."""
    doc: dict[str, Any] = {
        "name": name,
        "data": {
            "source": "digits",
            "image_size": 32,
            "digits_classes": [5, 6, 7, 8, 9],
            "train_per_class": 20,
            "validation_fraction": validation_fraction,
        },
        "model": {"backbone": backbone},
        "train": {"augment_flip": False},
    }
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc


# --- One finished real sweep, shared by the tests that reuse its results ---------------------


def reuse_sweep_doc() -> dict[str, Any]:
    """The sweep behind :func:`finished_digits_sweep`: the digits sweep with a held-out test
    split, the two-phase settings searched too (best.yaml and retrain must carry the sampled
    ones), an attention head and augmentation on (the exported graph must carry both)."""
    return digits_sweep(
        "reuse",
        data={"test_fraction": 0.2},  # held out from every trial, evaluated for final models
        model={"head": {"attention_heads": 2}},
        train={
            "max_epochs": 5,
            "head_epochs": {"low": 0, "high": 2},
            "finetune_lr_factor": {"low": 0.1, "high": 1.0, "log": True},
        },
        search={
            "dropout": {"low": 0.0, "high": 0.4},
            "l2": {"low": 1e-6, "high": 1e-3, "log": True},
            "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
            "augmentation": 0.3,
        },
        objective={"max_gap": 1.0},
        study={"trials": 3, "n_startup_trials": 3, "seed": 3},
    )


@pytest.fixture(scope="session")
def finished_digits_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of :func:`reuse_sweep_doc` run once through ``overfit-search run``,
    shared by tests/test_reuse.py and tests/results/test_portable_exports.py. Its users only
    read it or add files of their own (``confirm`` writes confirm.csv and confirm_runs.csv);
    ``export`` and ``retrain`` write outside it."""
    from overfit_search.cli import main

    root = tmp_path_factory.mktemp("finished")
    sweep = root / "reuse.yaml"
    sweep.write_text(yaml.safe_dump(reuse_sweep_doc()))
    out = root / "out"
    assert main(["run", str(sweep), "--output", str(out), "--no-progress"]) == 0
    return out


# --- Tiny backbones pretrained under a known input convention (tests/models/convention_models) --


@pytest.fixture(scope="session")
def convention_backbone(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``convention`` (``unit``, ``tf``, ``rescaling`` or ``dead``) → the saved backbone, made on
    first use and shared by the session (test_probe.py and test_setup_check.py both use ``tf``
    and ``dead``): each is seeded, so a second one would be the same file, ~4.5 s later. The
    tests only read them."""
    root = tmp_path_factory.mktemp("conventions")
    made: dict[str, Path] = {}

    def get(convention: str) -> Path:
        if convention not in made:
            from tests.models.convention_models import dead_backbone, pretrained_backbone

            path = root / f"{convention}.keras"
            made[convention] = (
                dead_backbone(path)
                if convention == "dead"
                else pretrained_backbone(path, convention)
            )
        return made[convention]

    return get


# --- One local Ray for consecutive in-process sweeps ------------------------------------

# What overfit_search.orchestration.launch.ray_init hands Ray's workers from the driver's
# environment (its runtime_env env_vars, fixed when Ray starts): matched by prefix, so a variable
# added there later is covered too.
_WORKER_ENV = ("OVERFIT_SEARCH_", "KERAS_", "TFHUB_", "TF_", "XLA_", "PYTHONWARNINGS")


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_WORKER_ENV)}


@dataclass
class _SharedRay:
    env: dict[str, str] | None = None  # the environment Ray was started under; None: not ours

    def start(self) -> None:
        """Start Ray exactly as a sweep does (the product's own ray_init); a sweep then finds it
        initialized and reuses it (and leaves it running) instead of starting its own."""
        from overfit_search.config import sweep_from_dict
        from overfit_search.orchestration.launch import ray_init

        if ray_init(sweep_from_dict(tiny_sweep())):
            self.env = _worker_env()

    def stop(self) -> None:
        if self.env is not None:
            import ray

            ray.shutdown()
            self.env = None


_RAY = _SharedRay()


@pytest.fixture(autouse=True)
def _shared_ray_only_where_asked(request: pytest.FixtureRequest) -> None:
    """A test that does not ask for :func:`shared_ray` never runs beside it: it may start Ray
    its own way (``ray.init`` with fake GPUs, a cluster) or change the workers' environment."""
    if "shared_ray" not in request.fixturenames:
        _RAY.stop()


@pytest.fixture(scope="session", autouse=True)
def _shared_ray_stopped_at_the_end() -> Iterator[None]:
    yield
    _RAY.stop()


@pytest.fixture
def shared_ray(_shared_ray_only_where_asked: None) -> None:
    """One local Ray (~5.5 s to start and stop on 2 cores) for the in-process sweeps of the
    modules that ask for it (``pytestmark = pytest.mark.usefixtures("shared_ray")``), kept from
    one such test to the next and stopped before any other test. Started by the product's own
    ``ray_init``; each sweep then takes the already-initialized path of ``ray_init``, as sweeps
    run one after another in one Python process (a notebook) do. Ray's workers get the driver's
    environment only when Ray starts, so when what they would get has changed since, Ray is
    started again. Modules that use this must not change that environment inside a test body
    (after this fixture ran): the workers would not see it."""
    import ray

    if _RAY.env is not None and not ray.is_initialized():
        _RAY.env = None  # shut down by someone else
    if _RAY.env is not None and _RAY.env != _worker_env():
        _RAY.stop()
    # Only a Ray of our own on this machine: never beside one a test (or RAY_ADDRESS) set up.
    if _RAY.env is None and not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):
        _RAY.start()


# --- A real PostgreSQL server (Debian's postgresql package), shared by the tests of a session ---

PG_BINARIES = "/usr/lib/postgresql/*/bin"


def _pg_bin() -> Path | None:
    """The newest PostgreSQL bin folder that has initdb and pg_ctl, or None."""
    found = [p for p in Path("/").glob(PG_BINARIES[1:]) if (p / "initdb").exists()]
    found = [p for p in found if (p / "pg_ctl").exists()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
               default=None)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` is the SQLAlchemy URL of one of its databases."""

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


def _pg_failed(done: subprocess.CompletedProcess[str], folder: Path, log: Path) -> NoReturn:
    detail = log.read_text() if log.exists() else ""
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {done.args}\n{done.stdout}{done.stderr}{detail}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start of a throwaway server on 127.0.0.1 (a free port, sockets and data
    in a temporary folder, trust authentication), stopped at the end of the session. PostgreSQL
    refuses to run as root, so as root it runs as the ``postgres`` user (else ``nobody``)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip(
            f"needs PostgreSQL's initdb and pg_ctl under {PG_BINARIES} (Debian: postgresql)"
        )
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="overfit-search-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = "nobody"
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        prefix = ["runuser", "-u", user, "--"]
    data, log = folder / "data", folder / "server.log"
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    init = subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync", "--no-instructions"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if init.returncode != 0:
        _pg_failed(init, folder, log)
    for _ in range(3):  # another process may take the free port before the server does
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
            "-c fsync=off -c synchronous_commit=off -c max_connections=200"
        )
        started = subprocess.run(
            [*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        if started.returncode == 0:
            break
    else:
        _pg_failed(started, folder, log)
    try:
        yield PostgresServer(port, folder)
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


_DATABASES = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database of the session's server for this test: its ``postgresql://`` URL."""
    slug = re.sub(r"\W", "_", request.node.name.lower())
    return postgres_server.create_database(f"t{next(_DATABASES)}_{slug}"[:63])
