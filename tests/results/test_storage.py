"""Opening a study database that other processes are creating at the same moment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy.exc

from overfit_search.results import storage as storage_module
from overfit_search.results.storage import ATTEMPTS, lost_schema_race, open_storage

# What the losers printed when four processes opened one fresh SQLite file with plain
# RDBStorage (20 rounds: 17 + 7 + 3 of the 80 opens failed).
_ALEMBIC = "(sqlite3.IntegrityError) UNIQUE constraint failed: alembic_version.version_num"
_TABLE = "(sqlite3.OperationalError) table studies already exists"
_PG = 'duplicate key value violates unique constraint "pg_type_typname_nsp_index"'
# ...and a loser of four psycopg processes opening one fresh PostgreSQL database at once (3 of
# 15 rounds of the test below failed so before ProgrammingError was retried)
_PG_TABLE = '(psycopg.errors.DuplicateTable) relation "studies" already exists'


def _integrity(text: str) -> sqlalchemy.exc.IntegrityError:
    return sqlalchemy.exc.IntegrityError("INSERT", {}, Exception(text))


def _operational(text: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("CREATE", {}, Exception(text))


def _programming(text: str) -> sqlalchemy.exc.ProgrammingError:
    return sqlalchemy.exc.ProgrammingError("CREATE", {}, Exception(text))


@pytest.mark.parametrize(
    ("exc", "race"),
    [
        (_integrity(_ALEMBIC), True),
        (_operational(_TABLE), True),
        (_integrity(_PG), True),
        (_programming(_PG_TABLE), True),
        (_programming('(psycopg.errors.UndefinedTable) relation "studies" does not exist'), False),
        (_operational("(sqlite3.OperationalError) database is locked"), True),
        (_operational("(sqlite3.OperationalError) unable to open database file"), False),
        (_integrity("UNIQUE constraint failed: studies.study_name"), False),
        (ValueError("table studies already exists"), False),
    ],
)
def test_lost_schema_race_tells_a_creation_race_from_a_real_error(
    exc: BaseException, race: bool
) -> None:
    assert lost_schema_race(exc) is race


class _Flaky:
    """Stands in for RDBStorage: raises the scripted errors first, then opens."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, **kwargs: Any) -> str:
        self.calls.append((url, kwargs))
        if self.errors:
            raise self.errors.pop(0)
        return "opened"


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(storage_module.time, "sleep", waits.append)
    return waits


def test_open_storage_retries_lost_races_with_growing_waits(
    monkeypatch: pytest.MonkeyPatch, no_sleep: list[float]
) -> None:
    flaky = _Flaky([_operational(_TABLE), _integrity(_ALEMBIC)])
    monkeypatch.setattr(storage_module.optuna.storages, "RDBStorage", flaky)
    assert open_storage("sqlite:///x.db", heartbeat_interval=5) == "opened"
    assert flaky.calls == [("sqlite:///x.db", {"heartbeat_interval": 5})] * 3
    assert no_sleep == [storage_module.FIRST_WAIT_S, 2 * storage_module.FIRST_WAIT_S]


def test_open_storage_raises_a_real_error_at_once(
    monkeypatch: pytest.MonkeyPatch, no_sleep: list[float]
) -> None:
    flaky = _Flaky([_operational("unable to open database file")])
    monkeypatch.setattr(storage_module.optuna.storages, "RDBStorage", flaky)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="unable to open"):
        open_storage("sqlite:///x.db")
    assert len(flaky.calls) == 1
    assert no_sleep == []


def test_open_storage_gives_up_after_its_attempts(
    monkeypatch: pytest.MonkeyPatch, no_sleep: list[float]
) -> None:
    flaky = _Flaky([_integrity(_ALEMBIC) for _ in range(ATTEMPTS + 1)])
    monkeypatch.setattr(storage_module.optuna.storages, "RDBStorage", flaky)
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="alembic_version"):
        open_storage("sqlite:///x.db")
    assert len(flaky.calls) == ATTEMPTS
    assert len(no_sleep) == ATTEMPTS - 1


_OPENER = """
import os, sys, time
from overfit_search.results.storage import open_storage
url, go = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
storage = open_storage(url)
if len(sys.argv) > 3:  # then create (or load) that study, as a starting driver does
    import optuna

    optuna.create_study(study_name=sys.argv[3], storage=storage, load_if_exists=True)
print("opened", flush=True)
"""


@pytest.mark.parametrize("round_", range(4))
def test_processes_opening_one_fresh_database_at_once_all_succeed(
    tmp_path: Path, round_: int
) -> None:
    """The race the CI hit: the driver and a poller creating study.db's schema together."""
    _open_at_once(f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "go")


@pytest.mark.parametrize("round_", range(3))
def test_processes_opening_one_fresh_postgresql_database_at_once_all_succeed(
    tmp_path: Path, postgres_url: str, round_: int
) -> None:
    """Four drivers starting on an empty server database together: each creates the schema
    and the study, or finds them (one study, by one name)."""
    _open_at_once(postgres_url, tmp_path / "go", "drivers")
    assert optuna.get_all_study_names(storage=postgres_url) == ["drivers", "s"]


def _open_at_once(url: str, go: Path, study: str | None = None) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, url, str(go), *([study] if study else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    created = optuna.create_study(study_name="s", storage=url)
    names = optuna.get_all_study_names(storage=url)
    assert names == ([study, created.study_name] if study else [created.study_name])
