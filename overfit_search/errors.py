"""Exception hierarchy; the CLI maps each to an exit code."""

from __future__ import annotations


class OverfitSearchError(Exception):
    """Base class of every error the product raises on purpose."""

    exit_code = 1


class ConfigError(OverfitSearchError):
    """The sweep file or a command-line setting is wrong (exit 2)."""

    exit_code = 2


class DataError(OverfitSearchError):
    """The data the sweep points at is missing or unusable (exit 2)."""

    exit_code = 2


class TrialError(OverfitSearchError):
    """One trial failed; the sweep goes on (recorded as FAIL)."""

    exit_code = 1


class FatalError(OverfitSearchError):
    """The work as a whole failed, e.g. every trial failed (exit 1)."""

    exit_code = 1
