"""The knob table (overfit_search/config/knobs.py) is the one description of the knobs.

The pydantic fields of ``SearchConfig`` and ``TrainConfig`` must still be declared by hand (so
they stay typed); these tests fail when a table entry and its field disagree in name, order,
type (float or whole number, optional or not) or default, and when a field that may hold a
range has no table entry.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from overfit_search.config.knobs import KNOB_TABLE, KNOBS_BY_NAME, Knob, Span, knobs_of
from overfit_search.config.schema import (
    KNOB_BOUNDS,
    KNOBS,
    TRAIN_KNOBS,
    FloatRange,
    IntRange,
    SearchConfig,
    TrainConfig,
    knob_default,
)
from overfit_search.search_space import split_space

ROOT = Path(__file__).resolve().parents[2]
SECTIONS: dict[str, type[BaseModel]] = {"search": SearchConfig, "train": TrainConfig}


def _range_fields(model: type[BaseModel]) -> list[str]:
    """The fields of ``model`` that may hold a range: knobs, whether in the table or not."""
    return [
        name
        for name, field in model.model_fields.items()
        if {FloatRange, IntRange} & set(typing.get_args(field.annotation))
    ]


def _default(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    assert field.default is not PydanticUndefined
    return field.default


@pytest.mark.parametrize("section", SECTIONS)
def test_every_field_that_takes_a_range_is_a_table_knob_in_table_order(section: str) -> None:
    names = [knob.name for knob in knobs_of(section)]  # type: ignore[arg-type]
    assert _range_fields(SECTIONS[section]) == names, (
        f"the fields of {SECTIONS[section].__name__} (config/schema.py) and the {section} "
        "knobs of KNOB_TABLE (config/knobs.py) differ: change both"
    )


@pytest.mark.parametrize("knob", KNOB_TABLE, ids=lambda k: k.name)
def test_the_field_type_matches_the_table(knob: Knob) -> None:
    annotation = SECTIONS[knob.section].model_fields[knob.name].annotation
    number, rng = (int, IntRange) if knob.integer else (float, FloatRange)
    expected: set[Any] = {number, rng} | ({type(None)} if knob.alternatives else set())
    assert set(typing.get_args(annotation)) == expected, (
        f"{knob.name}: the field's type {annotation} does not fit the table's "
        f"integer={knob.integer}, alternatives={knob.alternatives}"
    )


@pytest.mark.parametrize("knob", KNOB_TABLE, ids=lambda k: k.name)
def test_the_field_default_is_the_tables(knob: Knob) -> None:
    model = SECTIONS[knob.section]
    if knob.alternatives is None:
        assert _default(model, knob.name) == knob_default(knob)
        assert getattr(model(), knob.name) == knob_default(knob)
    else:
        # alternatives start unset; validation fills in the group's first
        assert _default(model, knob.name) is None


def test_the_derived_names() -> None:
    assert tuple(k.name for k in KNOB_TABLE if k.section == "search") == KNOBS
    assert tuple(k.name for k in KNOB_TABLE if k.section == "train") == TRAIN_KNOBS
    assert {k: KNOB_BOUNDS[k] for k in KNOBS} == {
        k: (KNOBS_BY_NAME[k].low, KNOBS_BY_NAME[k].high) for k in KNOBS
    }
    assert tuple(TrainConfig().knobs()) == TRAIN_KNOBS


def test_the_table_is_consistent() -> None:
    assert len(KNOBS_BY_NAME) == len(KNOB_TABLE)
    groups: dict[str, list[Knob]] = {}
    for knob in KNOB_TABLE:
        assert knob.low <= knob.high, knob.name
        assert knob.doc, knob.name
        if knob.alternatives is not None:
            assert knob.section == "search", knob.name
            groups.setdefault(knob.alternatives, []).append(knob)
        default = knob.default
        if isinstance(default, Span):
            ends = [default.low, default.high]
            assert default.low <= default.high, knob.name
            assert not default.log or default.low > 0, knob.name
        else:
            ends = [] if default is None else [default]
        for end in ends:
            assert knob.low <= end <= knob.high, knob.name
            assert not (knob.low_open and end == knob.low), knob.name
            assert not knob.integer or end == int(end), knob.name
    for members in groups.values():
        assert len(members) >= 2
        # the group's first is the one used when a sweep gives none, so it needs a default
        assert members[0].default is not None
        # the others' defaults would never be used
        assert all(m.default is None for m in members[1:])


def test_a_sweep_that_gives_no_alternative_uses_the_groups_first_with_its_default() -> None:
    search = SearchConfig()
    assert search.active_knobs() == tuple(
        dict.fromkeys(
            k.name if k.alternatives is None else "frozen_fraction" for k in knobs_of("search")
        )
    )
    assert search.frozen_fraction == knob_default(KNOBS_BY_NAME["frozen_fraction"])


@pytest.mark.parametrize("knob", knobs_of("search"), ids=lambda k: k.name)
def test_each_search_knob_is_searched_and_bounded_from_the_table(knob: Knob) -> None:
    in_range = knob.low if not knob.low_open else knob.low + 1
    fixed = int(in_range) if knob.integer else float(in_range)
    search = SearchConfig.model_validate({knob.name: fixed})
    assert knob.name in search.active_knobs()
    distributions, fixed_values = split_space(search)
    assert fixed_values[knob.name] == fixed
    wide = {"low": fixed, "high": min(knob.high, fixed + 1)}
    distributions, _ = split_space(SearchConfig.model_validate({knob.name: wide}))
    assert type(distributions[knob.name]).__name__ == (
        "IntDistribution" if knob.integer else "FloatDistribution"
    )
    if math.isfinite(knob.high):
        with pytest.raises(ValidationError, match=f"must be <= {knob.high:g}"):
            SearchConfig.model_validate({knob.name: knob.high + 1})


@pytest.mark.parametrize("knob", knobs_of("train"), ids=lambda k: k.name)
def test_each_train_knob_is_searched_and_bounded_from_the_table(knob: Knob) -> None:
    below = knob.low if knob.low_open else knob.low - 1
    with pytest.raises(ValidationError, match=f"must be {'>' if knob.low_open else '>='} "):
        TrainConfig.model_validate({knob.name: int(below) if knob.integer else below})
    with pytest.raises(ValidationError, match=f"baseline: {knob.name} must be"):
        SearchConfig.model_validate({"baseline": {knob.name: below}})
    low = int(knob.low) + 1 if knob.integer else knob.low + 0.5
    span = {"low": low, "high": low + 1}
    distributions, _ = split_space(SearchConfig(), TrainConfig.model_validate({knob.name: span}))
    assert type(distributions[knob.name]).__name__ == (
        "IntDistribution" if knob.integer else "FloatDistribution"
    )


def test_the_config_package_imports_no_heavy_module() -> None:
    """config/ stays pure: the table and the schema load without Keras, TensorFlow or Ray."""
    code = (
        "import sys\n"
        "import overfit_search.config.knobs, overfit_search.config.schema\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'ray', 'jax', 'torch', 'optuna') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)


def test_the_readmes_sweep_file_shows_the_tables_defaults() -> None:
    """The README's annotated sweep file (every setting at its default) keeps the knob table's
    defaults: a changed default range shows up there too."""
    text = (ROOT / "README.md").read_text()
    (block,) = [
        b
        for b in re.findall(r"```ya?ml\n(.*?)```", text, re.S)
        if "search:" in b and "finetune_lr_factor:" in b
    ]
    doc = yaml.safe_load(block)
    for knob in KNOB_TABLE:
        shown = doc[knob.section].get(knob.name)
        if knob.default is None:
            assert shown is None, f"README.md shows {knob.name}, which has no default"
            continue
        model = SECTIONS[knob.section]
        assert getattr(model.model_validate({knob.name: shown}), knob.name) == knob_default(knob), (
            f"README.md's {knob.section}.{knob.name} ({shown}) is not the table's default"
        )
