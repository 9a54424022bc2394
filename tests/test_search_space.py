from __future__ import annotations

from typing import Any

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from overfit_search.config import sweep_from_dict
from overfit_search.errors import ConfigError
from overfit_search.search_space import (
    PINNED_ATTR,
    baseline_params,
    baseline_pins,
    split_space,
    trial_values,
    two_phase,
)
from tests.conftest import tiny_sweep


def test_ranges_become_distributions_and_fixed_values_stay_fixed() -> None:
    sweep = sweep_from_dict(
        tiny_sweep(
            search={
                "dropout": 0.2,
                "l2": {"low": 1e-6, "high": 1e-2, "log": True},
                "learning_rate": {"low": 1e-3, "high": 1e-3},
                "augmentation": {"low": 0.0, "high": 1.0},
                "frozen_layers": {"low": 3, "high": 30, "log": True},
            }
        )
    )
    space, fixed = split_space(sweep.search)
    assert fixed == {"dropout": 0.2, "learning_rate": 1e-3}
    assert space["l2"] == FloatDistribution(1e-6, 1e-2, log=True)
    assert space["augmentation"] == FloatDistribution(0.0, 1.0)
    assert space["frozen_layers"] == IntDistribution(3, 30, log=True)
    assert "frozen_fraction" not in space and "frozen_fraction" not in fixed


@pytest.mark.parametrize(
    ("baseline", "expected"),
    [
        (None, None),
        ({"dropout": 0.0, "learning_rate": 0.001}, {"dropout": 0.0, "learning_rate": 0.001}),
    ],
)
def test_baseline_keeps_only_searched_knobs(
    baseline: dict[str, float] | None, expected: dict[str, float] | None
) -> None:
    search = {"augmentation": 0.0}
    if baseline is not None:
        search["baseline"] = {**baseline, "augmentation": 0.0}  # type: ignore[dict-item]
    sweep = sweep_from_dict(tiny_sweep(search=search))
    assert baseline_params(sweep.search) == expected


@pytest.mark.parametrize(
    ("train", "baseline", "params", "pins"),
    [
        # head_epochs fixed at 2 in the sweep: a one-phase baseline pins 0 beside the params
        (
            {"head_epochs": 2},
            {"learning_rate": 1e-3, "head_epochs": 0},
            {"learning_rate": 1e-3},
            {"head_epochs": 0},
        ),
        # searched train settings are Optuna parameters like the knobs (int stays int)
        (
            {"head_epochs": {"low": 0, "high": 3}, "finetune_lr_factor": {"low": 0.01, "high": 1}},
            {"head_epochs": 0, "finetune_lr_factor": 1.0},
            {"head_epochs": 0, "finetune_lr_factor": 1.0},
            {},
        ),
        # both fixed: both pinned, the factor as a float
        (
            {"head_epochs": 1, "finetune_lr_factor": 0.1},
            {"head_epochs": 0, "finetune_lr_factor": 1},
            {},
            {"head_epochs": 0, "finetune_lr_factor": 1.0},
        ),
        ({"head_epochs": 2}, {"learning_rate": 1e-3}, {"learning_rate": 1e-3}, {}),
    ],
)
def test_baseline_pins_train_settings_the_sweep_fixes_and_samples_the_searched_ones(
    train: dict[str, Any],
    baseline: dict[str, float],
    params: dict[str, Any],
    pins: dict[str, Any],
) -> None:
    sweep = sweep_from_dict(
        tiny_sweep(train={"max_epochs": 6, **train}, search={"baseline": baseline})
    )
    got = baseline_params(sweep.search, sweep.train)
    assert got == params
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in params.items()}
    assert baseline_pins(sweep.search, sweep.train) == pins
    assert {k: type(v) for k, v in pins.items()} == {
        k: int if k == "head_epochs" else float for k in pins
    }


def test_an_integer_knob_of_the_baseline_is_enqueued_as_an_int() -> None:
    sweep = sweep_from_dict(
        tiny_sweep(
            search={"frozen_layers": {"low": 0, "high": 50}, "baseline": {"frozen_layers": 20}}
        )
    )
    got = baseline_params(sweep.search, sweep.train)
    assert got == {"frozen_layers": 20} and isinstance(got["frozen_layers"], int)


@pytest.mark.parametrize(
    ("user_attrs", "values"),
    [
        ({}, {"dropout": 0.1, "learning_rate": 0.01}),
        (
            {PINNED_ATTR: {"head_epochs": 0}},
            {"dropout": 0.1, "learning_rate": 0.01, "head_epochs": 0},
        ),
        # a parameter wins over a pin, a pin over a fixed knob
        (
            {PINNED_ATTR: {"learning_rate": 1.0, "dropout": 0.5}},
            {"dropout": 0.5, "learning_rate": 0.01},
        ),
    ],
)
def test_trial_values_lay_params_over_pins_over_fixed(
    user_attrs: dict[str, Any], values: dict[str, Any]
) -> None:
    assert trial_values({"dropout": 0.1}, {"learning_rate": 0.01}, user_attrs) == values


def test_searched_train_settings_join_the_space_and_fixed_ones_stay_in_train() -> None:
    sweep = sweep_from_dict(
        tiny_sweep(
            train={
                "max_epochs": 6,
                "head_epochs": {"low": 0, "high": 3},
                "finetune_lr_factor": {"low": 0.01, "high": 1.0, "log": True},
            }
        )
    )
    space, fixed = split_space(sweep.search, sweep.train)
    assert space["head_epochs"] == IntDistribution(0, 3)
    assert space["finetune_lr_factor"] == FloatDistribution(0.01, 1.0, log=True)
    assert "head_epochs" not in fixed
    assert "head_epochs" not in split_space(sweep.search)[0]  # only when train is given


@pytest.mark.parametrize(
    ("train", "params", "expected"),
    [
        ({}, {}, (0, 0.1)),  # the defaults: one phase
        ({"head_epochs": 2, "finetune_lr_factor": 0.5}, {}, (2, 0.5)),
        ({"head_epochs": {"low": 0, "high": 3}}, {"head_epochs": 1}, (1, 0.1)),
        ({"finetune_lr_factor": {"low": 0.2, "high": 0.2}}, {}, (0, 0.2)),  # degenerate range
        ({"head_epochs": 1}, {"head_epochs": 3, "finetune_lr_factor": 0.05}, (3, 0.05)),
    ],
)
def test_two_phase_takes_the_trials_sample_over_the_sweeps_value(
    train: dict[str, Any], params: dict[str, Any], expected: tuple[int, float]
) -> None:
    sweep = sweep_from_dict(tiny_sweep(train={"max_epochs": 6, **train}))
    assert two_phase(sweep, params) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"head_epochs": {"low": 0, "high": 9}}, r"at most train\.max_epochs \(6\).*got 9"),
        ({"head_epochs": {"low": -1, "high": 2}}, "low: must be >= 0"),
        ({"finetune_lr_factor": {"low": 0.0, "high": 1.0}}, "low: must be > 0"),
        ({"finetune_lr_factor": -0.5}, "must be > 0"),
        ({"head_epochs": {"low": 3, "high": 1}}, "low must be <= high"),
    ],
)
def test_bad_two_phase_ranges_are_refused(train: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sweep_from_dict(tiny_sweep(train={"max_epochs": 6, **train}))
