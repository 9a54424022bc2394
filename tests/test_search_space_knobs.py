"""What the search space and the exports derive from the knob table (config/knobs.py)."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from overfit_search.config import sweep_from_dict
from overfit_search.config.knobs import KNOBS_BY_NAME
from overfit_search.config.schema import TRAIN_KNOBS
from overfit_search.layout import TrialAttr
from overfit_search.results.exports import best_sweep
from overfit_search.search_space import split_space, train_values, two_phase
from tests.conftest import tiny_sweep

SEARCHED_TRAIN = {
    "max_epochs": 10,
    "head_epochs": {"low": 0, "high": 6},
    "finetune_lr_factor": {"low": 0.01, "high": 0.5, "log": True},
}


def test_train_values_cover_every_train_knob_typed_by_the_table() -> None:
    sweep = sweep_from_dict(tiny_sweep(train={"head_epochs": 2, "finetune_lr_factor": 0.2}))
    values = train_values(sweep, {})
    assert tuple(values) == TRAIN_KNOBS
    assert values == {"head_epochs": 2, "finetune_lr_factor": 0.2}
    for name, value in values.items():
        assert isinstance(value, int if KNOBS_BY_NAME[name].integer else float)
    # a sampled value wins, converted by the table (YAML and Optuna may hand over 3.0)
    sampled = train_values(sweep, {"head_epochs": 3.0, "finetune_lr_factor": 1})
    assert sampled == {"head_epochs": 3, "finetune_lr_factor": 1.0}
    assert isinstance(sampled["head_epochs"], int)
    assert isinstance(sampled["finetune_lr_factor"], float)
    assert two_phase(sweep, {"head_epochs": 3.0}) == (3, 0.2)


def test_train_values_of_an_unsampled_range_is_its_low_end() -> None:
    sweep = sweep_from_dict(tiny_sweep(train=SEARCHED_TRAIN))
    assert train_values(sweep, {}) == {"head_epochs": 0, "finetune_lr_factor": 0.01}


def test_searched_train_knobs_get_the_tables_distribution_kind() -> None:
    sweep = sweep_from_dict(tiny_sweep(train=SEARCHED_TRAIN))
    space, _ = split_space(sweep.search, sweep.train)
    assert space["head_epochs"] == IntDistribution(0, 6)
    assert space["finetune_lr_factor"] == FloatDistribution(0.01, 0.5, log=True)


def test_best_sweep_fixes_every_train_knob_to_the_trials_value() -> None:
    sweep = sweep_from_dict(tiny_sweep(train=SEARCHED_TRAIN))
    space, fixed = split_space(sweep.search, sweep.train)
    params = {name: dist.low for name, dist in space.items()}
    params |= {"head_epochs": 5, "finetune_lr_factor": 0.05}
    trial = optuna.trial.create_trial(
        params=params,
        distributions=space,
        value=0.5,
        user_attrs={TrialAttr.BEST_EPOCH: 4},
    )
    doc = best_sweep(sweep, trial, fixed)
    # head_epochs is clipped to the best epoch (max_epochs of best.yaml)
    assert doc["train"]["max_epochs"] == 4
    assert doc["train"]["head_epochs"] == 4
    assert doc["train"]["finetune_lr_factor"] == 0.05
    again = sweep_from_dict(doc)
    assert split_space(again.search, again.train)[0] == {}
