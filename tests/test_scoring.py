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


def test_the_live_best_counts_only_what_the_export_could_choose() -> None:
    from overfit_search.orchestration.progress import SweepProgress
    from overfit_search.scoring import counts_for_best

    assert counts_for_best("val_loss", "COMPLETE", False)
    assert not counts_for_best("val_loss", "PRUNED", True)
    assert counts_for_best("constrained", "COMPLETE", True)
    assert not counts_for_best("constrained", "COMPLETE", False)
    assert not counts_for_best("pareto", "COMPLETE", None)
    assert counts_for_best("penalized", "COMPLETE", False)

    progress = SweepProgress("s", total=3, enabled=False)
    progress.trial_finished("COMPLETE", 0.2, 0, 5, eligible=False)  # infeasible, constrained
    progress.trial_finished("PRUNED", 0.1, 1, 2, eligible=False)
    progress.trial_finished("COMPLETE", 0.3, 2, 5, eligible=True)
    assert (progress.best, progress.best_number, progress.done) == (0.3, 2, 3)
