"""Open an Optuna RDB storage that another process may be creating at the same moment.

Optuna's ``RDBStorage`` creates its tables and stamps the schema version the first time a
database is opened, with no lock around it. Two processes opening a fresh ``study.db`` at once
(a driver starting while ``overfit-search dashboard``, a second driver or a script polls the
file) race there, and the loser fails with ``table studies already exists`` or ``UNIQUE
constraint failed: alembic_version.version_num`` although the database is fine. Opening it again
finds the schema the winner made, so the loser retries instead of failing the sweep.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import optuna
import sqlalchemy.exc

logger = logging.getLogger(__name__)

ATTEMPTS = 6
"""Times a storage is opened before a schema-creation race is reported as an error."""

FIRST_WAIT_S = 0.05
"""Wait after the first lost race; it doubles after each further one (about 1.5 s in all)."""

_RACE_ERRORS = (
    sqlalchemy.exc.IntegrityError,
    sqlalchemy.exc.OperationalError,
    # PostgreSQL (psycopg): CREATE TABLE lost is DuplicateTable, a ProgrammingError
    sqlalchemy.exc.ProgrammingError,
)
"""The error classes a lost schema-creation race is raised as (with one of _RACE_SIGNS)."""

_RACE_SIGNS = (
    "already exists",  # CREATE TABLE lost: SQLite "table x already exists", PostgreSQL
    # 'relation "studies" already exists' (psycopg.errors.DuplicateTable)
    "alembic_version",  # the schema stamp inserted twice
    "version_info",  # Optuna's own version row inserted twice
    "duplicate key",  # PostgreSQL's wording of a unique violation on either
    "database is locked",  # SQLite: the other process holds the write lock past the timeout
)


def lost_schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what a process sees when another created the schema first."""
    if not isinstance(exc, _RACE_ERRORS):
        return False
    text = str(exc).lower()
    return any(sign in text for sign in _RACE_SIGNS)


def open_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """``optuna.storages.RDBStorage(url, **kwargs)``, retried while it loses a creation race.

    Args:
        url: A SQLAlchemy URL.
        **kwargs: Passed to ``RDBStorage`` (heartbeats, callbacks).

    Returns:
        The storage.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: Any other failure, or a race still lost after
            ``ATTEMPTS`` tries.
    """
    wait = FIRST_WAIT_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except _RACE_ERRORS as exc:
            if attempt == ATTEMPTS or not lost_schema_race(exc):
                raise
            logger.debug("storage %s: another process is creating it; retrying", url)
            time.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover
