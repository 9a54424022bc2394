"""The knob table: every searched hyperparameter, described once (issue 17).

:data:`KNOB_TABLE` is the single source of truth for the knobs a sweep may search: their
names, which section of the sweep file holds them, whether they are whole numbers, their valid
bounds and their default (a fixed value or a range, with its log scale). The schema
(:mod:`overfit_search.config.schema`) derives from it the bounds it checks, its validators,
``SearchConfig.active_knobs`` and the defaults of the fields; the search space
(:mod:`overfit_search.search_space`) and the exports read it through the schema.

A pydantic field per knob is still declared on ``SearchConfig`` / ``TrainConfig`` (so that
``sweep.search.dropout`` stays typed); ``tests/config/test_knob_table.py`` fails when the
fields and this table disagree, and a row without its field already fails at import (pydantic:
"Decorators defined with incorrect fields": the bound validators name every row). Pure: no
Keras, TensorFlow, Ray or Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Section = Literal["search", "train"]


@dataclass(frozen=True)
class Span:
    """A default range of a knob: ``low`` to ``high``, sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Knob:
    """One searched hyperparameter: one row of :data:`KNOB_TABLE`.

    Attributes:
        name: The key in the sweep file, the Optuna parameter name and the key of the trial's
            ``params`` (``trials.csv`` column ``param_<name>``).
        section: ``search`` (a ``SearchConfig`` field) or ``train`` (a ``TrainConfig`` setting
            that may be searched: ``TRAIN_KNOBS``).
        integer: Whole numbers (an ``int`` or ``IntRange``), else floats.
        low: The smallest valid value (a fixed value and both ends of a range are checked).
        high: The largest valid value.
        low_open: The value must be above ``low``, not merely at least ``low``.
        default: The value of a sweep file that leaves the knob out: a fixed number, a
            :class:`Span`, or None (unset; see ``alternatives``).
        alternatives: A group name shared by knobs of which a sweep uses exactly one (the
            freezing knobs). The first of the group in the table is used, with its default,
            when the sweep gives none; giving two is an error.
        doc: What the knob does, in one line.
    """

    name: str
    section: Section
    integer: bool
    low: float
    high: float
    default: float | Span | None
    doc: str
    low_open: bool = False
    alternatives: str | None = None


KNOB_TABLE: tuple[Knob, ...] = (
    Knob(
        "dropout",
        "search",
        integer=False,
        low=0.0,
        high=0.99,
        default=Span(0.0, 0.7),
        doc="dropout rate before the classifier (and after a hidden head layer)",
    ),
    Knob(
        "l2",
        "search",
        integer=False,
        low=0.0,
        high=1.0,
        default=Span(1e-6, 1e-2, log=True),
        doc="L2 weight penalty on the head's kernels",
    ),
    Knob(
        "learning_rate",
        "search",
        integer=False,
        low=1e-12,
        high=10.0,
        default=Span(1e-5, 1e-2, log=True),
        doc="the optimizer's learning rate (the head phase's, with two phases)",
    ),
    Knob(
        "augmentation",
        "search",
        integer=False,
        low=0.0,
        high=1.0,
        default=Span(0.0, 1.0),
        doc="strength of the random augmentation (0: none)",
    ),
    Knob(
        "frozen_fraction",
        "search",
        integer=False,
        low=0.0,
        high=1.0,
        default=Span(0.5, 1.0),
        alternatives="freezing",
        doc="share of the backbone's layers kept frozen, from the input side",
    ),
    Knob(
        "frozen_layers",
        "search",
        integer=True,
        low=0,
        high=100_000,
        default=None,
        alternatives="freezing",
        doc="number of the backbone's layers kept frozen, from the input side",
    ),
    Knob(
        "head_epochs",
        "train",
        integer=True,
        low=0,
        high=math.inf,
        default=0,
        doc="epochs that train the head alone before fine-tuning (0: one phase)",
    ),
    Knob(
        "finetune_lr_factor",
        "train",
        integer=False,
        low=0.0,
        low_open=True,
        high=math.inf,
        default=0.1,
        doc="the fine-tuning phase's learning rate as a factor of learning_rate",
    ),
)
"""Every knob, in the order of the sweep file's fields and of ``active_knobs``."""

KNOBS_BY_NAME: dict[str, Knob] = {knob.name: knob for knob in KNOB_TABLE}
""":data:`KNOB_TABLE` by name."""


def knobs_of(section: Section) -> tuple[Knob, ...]:
    """The knobs of one section of the sweep file, in table order."""
    return tuple(knob for knob in KNOB_TABLE if knob.section == section)


def alternative_groups() -> dict[str, tuple[str, ...]]:
    """Each group of alternative knobs (``Knob.alternatives``): its knob names, in table order.

    The first name is the one a sweep that gives none of them uses.
    """
    groups: dict[str, tuple[str, ...]] = {}
    for knob in KNOB_TABLE:
        if knob.alternatives is not None:
            groups[knob.alternatives] = (*groups.get(knob.alternatives, ()), knob.name)
    return groups
