"""Map the sweep's search section to Optuna distributions (and fixed values)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from overfit_search.config.knobs import KNOBS_BY_NAME
from overfit_search.config.schema import (
    TRAIN_KNOBS,
    FloatRange,
    IntRange,
    SearchConfig,
    Sweep,
    TrainConfig,
)
from overfit_search.layout import TrialAttr

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

# Trial user attribute: the baseline's values of train settings the sweep fixes (they are no
# Optuna parameters, so the trial carries them itself; see baseline_pins).
PINNED_ATTR = TrialAttr.PINNED


def split_space(
    search: SearchConfig, train: TrainConfig | None = None
) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """Split the knobs into searched ones (Optuna distributions) and fixed ones.

    Args:
        search: The sweep's ``search`` section.
        train: The sweep's ``train`` section: its searchable settings (``head_epochs``,
            ``finetune_lr_factor``) join the distributions when they are ranges. Fixed ones
            stay in ``train`` (see :func:`two_phase`) and are not returned.

    Returns:
        ``(distributions, fixed)``: a knob with a range becomes a ``FloatDistribution`` or
        ``IntDistribution`` (``log`` as given); a fixed knob, or a range with ``low == high``,
        goes to ``fixed``.
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    knobs: dict[str, Any] = {name: getattr(search, name) for name in search.active_knobs()}
    searched_train = {
        name: knob
        for name, knob in (train.knobs() if train is not None else {}).items()
        if isinstance(knob, FloatRange | IntRange) and knob.low != knob.high
    }
    for name, knob in {**knobs, **searched_train}.items():
        if isinstance(knob, FloatRange | IntRange) and knob.low == knob.high:
            fixed[name] = knob.low
        elif isinstance(knob, IntRange):
            distributions[name] = IntDistribution(knob.low, knob.high, log=knob.log)
        elif isinstance(knob, FloatRange):
            distributions[name] = FloatDistribution(knob.low, knob.high, log=knob.log)
        else:
            fixed[name] = knob
    return distributions, fixed


def train_values(sweep: Sweep, params: dict[str, Any]) -> dict[str, int | float]:
    """A trial's value of each train setting that may be searched (``TRAIN_KNOBS``).

    Its sampled value, else the sweep's; a range with ``low == high`` counts as that value.
    Whole numbers for an integer knob of the knob table, floats for the others.
    """
    values: dict[str, int | float] = {}
    for name, knob in sweep.train.knobs().items():
        if name in params:
            value = params[name]
        else:
            value = knob.low if isinstance(knob, FloatRange | IntRange) else knob
        values[name] = int(value) if KNOBS_BY_NAME[name].integer else float(value)
    return values


def two_phase(sweep: Sweep, params: dict[str, Any]) -> tuple[int, float]:
    """A trial's ``(head_epochs, finetune_lr_factor)``: its sampled values, else the sweep's.

    A range with ``low == high`` counts as that value.
    """
    values = train_values(sweep, params)
    return int(values["head_epochs"]), float(values["finetune_lr_factor"])


def baseline_params(
    search: SearchConfig, train: TrainConfig | None = None
) -> dict[str, Any] | None:
    """The baseline trial's searched values (for ``Study.enqueue_trial``), or None.

    Knobs the baseline leaves out are sampled. Search knobs that are fixed in the sweep are
    not part of the Optuna trial and are dropped; train settings that are fixed in the sweep
    are kept apart, by :func:`baseline_pins`.

    Args:
        search: The sweep's ``search`` section.
        train: The sweep's ``train`` section (its searched settings may be pinned too).
    """
    if search.baseline is None:
        return None
    distributions, _ = split_space(search, train)
    return {k: _as(distributions[k], v) for k, v in search.baseline.items() if k in distributions}


def baseline_pins(search: SearchConfig, train: TrainConfig) -> dict[str, Any]:
    """The baseline's values of train settings that the sweep fixes (``head_epochs: 0``...).

    They override the sweep's value for the baseline trial alone: the trial records them as
    its ``PINNED_ATTR`` user attribute, and :func:`trial_values` reads them back.
    """
    if search.baseline is None:
        return {}
    distributions, _ = split_space(search, train)
    return {
        k: int(v) if KNOBS_BY_NAME[k].integer else float(v)
        for k, v in search.baseline.items()
        if k in TRAIN_KNOBS and k not in distributions
    }


def trial_values(
    fixed: dict[str, Any], params: dict[str, Any], user_attrs: dict[str, Any]
) -> dict[str, Any]:
    """Every value a trial trained with: its parameters over its pins over the fixed knobs."""
    return {**fixed, **(user_attrs.get(PINNED_ATTR) or {}), **params}


def _as(distribution: BaseDistribution, value: float) -> Any:
    """``value`` as an int for an integer knob (YAML's ``80`` arrives as ``80.0``)."""
    from optuna.distributions import IntDistribution

    return int(value) if isinstance(distribution, IntDistribution) else value


def trial_seed(sweep: Sweep, number: int) -> int:
    """The seed of trial ``number``'s weights, shuffling, dropout and augmentation.

    Args:
        sweep: The sweep; ``train.seed`` wins when set.
        number: The Optuna trial number.

    Returns:
        ``train.seed``, else ``study.seed * 100003 + number`` (distinct and reproducible).
    """
    if sweep.train.seed is not None:
        return sweep.train.seed
    return sweep.study.seed * 100_003 + number
