from __future__ import annotations

import pytest

from overfit_search.scoring import constrains_gap, directions, is_feasible, objective_values


@pytest.mark.parametrize(
    ("mode", "val", "gap", "expected"),
    [
        ("val_loss", 0.5, 0.3, [0.5]),
        ("constrained", 0.5, 0.3, [0.5]),
        ("pareto", 0.5, 0.3, [0.5, 0.3]),
        ("penalized", 0.5, 0.3, [0.5 + 2.0 * (0.3 - 0.1)]),
        ("penalized", 0.5, 0.05, [0.5]),
    ],
)
def test_objective_values(mode: str, val: float, gap: float, expected: list[float]) -> None:
    assert objective_values(mode, val, gap, max_gap=0.1, penalty_weight=2.0) == pytest.approx(
        expected
    )  # type: ignore[arg-type]


def test_directions_and_feasibility() -> None:
    assert directions("pareto") == ["minimize", "minimize"]
    assert directions("constrained") == ["minimize"]
    assert is_feasible(0.1, 0.1) and not is_feasible(0.11, 0.1) and not is_feasible(None, 0.1)


def test_only_constrained_and_pareto_constrain_the_gap() -> None:
    assert constrains_gap("constrained") and constrains_gap("pareto")
    assert not constrains_gap("val_loss") and not constrains_gap("penalized")
    assert directions("val_loss") == ["minimize"]
