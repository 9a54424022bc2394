"""overfit-search: hyperparameter sweeps for Keras transfer learning that stop overfitting trials.

Importing this package loads neither TensorFlow nor Ray; they are imported when a sweep runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from overfit_search.errors import ConfigError, DataError, FatalError, OverfitSearchError, TrialError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from overfit_search.config import load_sweep
    from overfit_search.orchestration.runner import SweepResult

__all__ = [
    "ConfigError",
    "DataError",
    "FatalError",
    "OverfitSearchError",
    "TrialError",
    "__version__",
    "load_sweep",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    # `overfit-search --help` imports this package: pydantic (the sweep schema) loads on first use
    if name == "load_sweep":
        from overfit_search.config import load_sweep

        return load_sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_sweep(sweep: Any, **overrides: Any) -> SweepResult:
    """Run a sweep from a path or a :class:`~overfit_search.config.Sweep`.

    Args:
        sweep: Path of a sweep YAML file, or an already loaded ``Sweep``.
        **overrides: ``trials``, ``max_epochs``, ``output``, ``resume``, ``overwrite``,
            ``progress``.

    Returns:
        The :class:`~overfit_search.orchestration.runner.SweepResult` (study, best trial, paths).
    """
    from overfit_search.orchestration.runner import run_sweep as _run

    return _run(sweep, **overrides)
