"""Schedulers by name: the schema and the registry name the same ones; ASHA gets its settings."""

from __future__ import annotations

import inspect
import typing

import pytest

from overfit_search.config import sweep_from_dict
from overfit_search.config.schema import PruningConfig
from overfit_search.errors import ConfigError
from overfit_search.orchestration.schedulers import SCHEDULERS, make_scheduler
from tests.conftest import tiny_sweep


def _scheduler_classes() -> tuple[type, ...]:
    return typing.get_args(PruningConfig.model_fields["scheduler"].annotation)


def _name(cls: type) -> str:
    (name,) = typing.get_args(cls.model_fields["name"].annotation)  # type: ignore[attr-defined]
    return str(name)


def test_the_schema_and_the_registry_name_the_same_schedulers() -> None:
    assert {_name(cls) for cls in _scheduler_classes()} == set(SCHEDULERS)


def test_none_builds_no_scheduler() -> None:
    assert make_scheduler(sweep_from_dict(tiny_sweep())) is None


def test_asha_gets_the_sweep_settings() -> None:
    from ray.tune.schedulers import ASHAScheduler

    sweep = sweep_from_dict(
        tiny_sweep(
            train={"max_epochs": 9},
            pruning={"scheduler": {"name": "asha", "grace_period": 3, "reduction_factor": 2}},
        )
    )
    scheduler = make_scheduler(sweep)
    assert isinstance(scheduler, ASHAScheduler)
    # every setting of the config class is a parameter of Ray's constructor
    fields = set(type(sweep.pruning.scheduler).model_fields) - {"name"}
    assert fields <= set(inspect.signature(ASHAScheduler).parameters)


def test_an_unknown_name_lists_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = sweep_from_dict(tiny_sweep())
    monkeypatch.delitem(SCHEDULERS, "none")  # a name the schema accepts but nothing builds
    with pytest.raises(ConfigError, match="unknown scheduler 'none'; choose one of: asha"):
        make_scheduler(sweep)
