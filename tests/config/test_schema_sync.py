"""One source per extension point: each pruning rule and budget rule the sweep file can name
has a config class whose settings are the rule's own constructor parameters, with the same
defaults, so the schema and the rule cannot drift apart."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
from pydantic_core import PydanticUndefined

from overfit_search.config.schema import PruningConfig
from overfit_search.pruning.budget import BUDGETS
from overfit_search.pruning.registry import RULES


def _classes(field: str) -> tuple[Any, ...]:
    return typing.get_args(PruningConfig.model_fields[field].annotation)


def _name(cls: Any) -> str:
    (name,) = typing.get_args(cls.model_fields["name"].annotation)
    return str(name)


def _config_defaults(cls: Any) -> dict[str, Any]:
    return {
        key: field.default
        for key, field in cls.model_fields.items()
        if key != "name" and field.default is not PydanticUndefined
    } | {
        key: inspect.Parameter.empty
        for key, field in cls.model_fields.items()
        if key != "name" and field.default is PydanticUndefined
    }


def _constructor_defaults(cls: type) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    return {key: p.default for key, p in params.items()}


@pytest.mark.parametrize(("field", "registry"), [("rule", RULES), ("budget", BUDGETS)])
def test_the_schema_names_every_registered_class(field: str, registry: dict[str, type]) -> None:
    assert {_name(cls) for cls in _classes(field)} == set(registry)


@pytest.mark.parametrize(
    ("config", "registry"),
    [(cls, RULES) for cls in _classes("rule")] + [(cls, BUDGETS) for cls in _classes("budget")],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_config_settings_are_the_constructor_parameters(
    config: Any, registry: dict[str, type]
) -> None:
    target = registry[_name(config)]
    assert _config_defaults(config) == _constructor_defaults(target), (
        f"{config.__name__} (config/schema.py) and {target.__name__} differ in settings or "
        "defaults: change both"
    )
