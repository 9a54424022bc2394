from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from overfit_search.config import sweep_from_dict
from overfit_search.search_space import baseline_params, split_space
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
