"""Optuna samplers by the name ``study.sampler`` gives them, each seeded from the sweep."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from overfit_search.config.schema import StudyConfig
from overfit_search.errors import ConfigError


def _tpe(s: StudyConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=s.seed,
        n_startup_trials=s.n_startup_trials,
        multivariate=True,
        constant_liar=True,  # parallel trials do not all propose the same point
    )


def _gp(s: StudyConfig) -> optuna.samplers.BaseSampler:
    try:
        return optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=s.n_startup_trials)
    except ImportError as exc:
        raise ConfigError(f"study.sampler: gp needs PyTorch ({exc})") from None


SAMPLERS: dict[str, Callable[[StudyConfig], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "nsga2": lambda s: optuna.samplers.NSGAIISampler(seed=s.seed),
    "random": lambda s: optuna.samplers.RandomSampler(seed=s.seed),
    "gp": _gp,
}
"""Names to factories; ``config.schema.StudyConfig.sampler`` lists the same names (a test keeps
them in step)."""


def make_sampler(study: StudyConfig) -> optuna.samplers.BaseSampler:
    """The seeded sampler ``study.sampler`` names.

    Raises:
        ConfigError: An unknown name (the message lists the choices), or ``gp`` without PyTorch.
    """
    factory = SAMPLERS.get(study.sampler)
    if factory is None:
        raise ConfigError(
            f"study.sampler: unknown sampler {study.sampler!r}; choose one of: "
            f"{', '.join(sorted(SAMPLERS))}"
        )
    return factory(study)
