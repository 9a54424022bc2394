"""Samplers by name: every name the schema accepts builds a seeded sampler; errors list them."""

from __future__ import annotations

import typing

import optuna
import pytest

from overfit_search.config.schema import StudyConfig
from overfit_search.errors import ConfigError
from overfit_search.orchestration.samplers import SAMPLERS, make_sampler


def test_the_schema_and_the_registry_name_the_same_samplers() -> None:
    accepted = typing.get_args(StudyConfig.model_fields["sampler"].annotation)
    assert set(accepted) == set(SAMPLERS)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
        ("random", optuna.samplers.RandomSampler),
    ],
)
def test_each_name_builds_its_seeded_sampler(name: str, cls: type) -> None:
    study = StudyConfig(sampler=name, seed=7)
    a, b = make_sampler(study), make_sampler(study)
    assert isinstance(a, cls)
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    draws = []
    for sampler in (a, b):
        s = optuna.create_study(sampler=sampler)
        draws.append([s.ask(dist).params["x"] for _ in range(3)])
    assert draws[0] == draws[1]  # the seed reaches the sampler


def test_an_unknown_name_lists_the_choices() -> None:
    study = StudyConfig.model_construct(sampler="cmaes", seed=0, n_startup_trials=8)
    with pytest.raises(
        ConfigError,
        match=r"study.sampler: unknown sampler 'cmaes'; choose one of: gp, nsga2, random, tpe",
    ):
        make_sampler(study)
