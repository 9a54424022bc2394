"""``pruning.preset``, ``pruning.budget`` and the peak rule in the sweep file (issue 18)."""

from __future__ import annotations

from typing import Any

import pytest

from overfit_search.config import load_sweep
from overfit_search.config import schema as schema_module
from overfit_search.config.schema import PruningConfig, Sweep
from overfit_search.errors import ConfigError
from overfit_search.pruning import PRESETS
from tests.conftest import tiny_sweep


@pytest.mark.parametrize(
    ("pruning", "rule", "budget"),
    [
        # old settings stay valid and mean what they meant: no budget rule
        ({"rule": {"name": "gl", "alpha": 5.0}}, {"name": "gl", "alpha": 5.0}, "none"),
        ({"rule": {"name": "up"}, "compare": "none"}, {"name": "up"}, "none"),
        # a preset fills both parts
        ({"preset": "balanced"}, PRESETS["balanced"]["rule"], PRESETS["balanced"]["budget"]),
        ({"preset": "safe"}, PRESETS["safe"]["rule"], PRESETS["safe"]["budget"]),
        ({"preset": "fast"}, PRESETS["fast"]["rule"], PRESETS["fast"]["budget"]),
        # an explicit part wins over the preset's
        (
            {"preset": "fast", "rule": {"name": "gl", "alpha": 3.0}},
            {"name": "gl", "alpha": 3.0},
            PRESETS["fast"]["budget"],
        ),
        (
            {"preset": "safe", "budget": {"name": "none"}},
            PRESETS["safe"]["rule"],
            "none",
        ),
        # the parts without a preset
        (
            {"rule": {"name": "peak", "patience": 5}, "budget": {"name": "halving", "z": 0.0}},
            {"name": "peak", "patience": 5, "z": 2.0, "min_rise": 1.0},
            {"name": "halving", "first_rung": 1, "reduction_factor": 3.0, "min_trials": 5},
        ),
    ],
)
def test_pruning_parts(
    write_sweep: Any, pruning: dict[str, Any], rule: dict[str, Any], budget: Any
) -> None:
    sweep = load_sweep(write_sweep(tiny_sweep(pruning=pruning)))
    dumped_rule = sweep.pruning.rule.model_dump()
    assert {k: dumped_rule[k] for k in rule} == rule
    if budget == "none":
        assert sweep.pruning.budget.name == "none"
    else:
        dumped = sweep.pruning.budget.model_dump()
        assert {k: dumped[k] for k in budget} == budget


def test_resolved_sweep_round_trips(write_sweep: Any) -> None:
    sweep = load_sweep(write_sweep(tiny_sweep(pruning={"preset": "fast"})))
    again = Sweep.model_validate(sweep.model_dump(mode="json"))
    assert again.pruning == sweep.pruning


@pytest.mark.parametrize(
    ("sections", "fragment"),
    [
        ({"pruning": {"preset": "turbo"}}, r"pruning\.preset: .*'safe', 'balanced' or 'fast'"),
        (
            {"pruning": {"budget": {"name": "asha"}}},
            r"pruning\.budget: .*'halving', 'median', 'none'",
        ),
        (
            {"pruning": {"budget": {"name": "halving", "min_trials": 1}}},
            r"pruning\.budget\.min_trials: .*greater than or equal to 2",
        ),
        (
            {"pruning": {"rule": {"name": "peak", "patience": 0}}},
            r"pruning\.rule\.patience: .*greater than or equal to 1",
        ),
        (
            {"objective": {"mode": "pareto"}, "pruning": {"budget": {"name": "halving"}}},
            r"pruning\.budget: halving ranks trials on val_loss alone .* 'pareto'",
        ),
        (
            {"objective": {"mode": "pareto"}, "pruning": {"budget": {"name": "median"}}},
            r"pruning\.budget: median ranks trials on val_loss alone .* 'pareto'",
        ),
        (
            {"pruning": {"rule": {"name": "peak", "sustained": "often"}}},
            r"pruning\.rule\.sustained: .*valid boolean",
        ),
        ({"pruning": {"end_guard": -1}}, r"pruning\.end_guard: .*greater than or equal to 0"),
        (
            {"pruning": {"budget": {"name": "median", "against": "last"}}},
            r"pruning\.budget\.against: Input should be 'best' or 'mean', got 'last'",
        ),
    ],
)
def test_bad_pruning_settings(write_sweep: Any, sections: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_sweep(write_sweep(tiny_sweep(**sections)))


@pytest.mark.parametrize("pruning", [None, {"preset": "balanced"}, {"preset": "fast"}])
def test_pareto_mode_drops_the_presets_budget_rule(
    write_sweep: Any, pruning: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_module, "DEFAULT_PRESET", "balanced")
    sections: dict[str, Any] = {"objective": {"mode": "pareto"}, "study": {"sampler": "nsga2"}}
    if pruning is not None:
        sections["pruning"] = pruning
    sweep = load_sweep(write_sweep(tiny_sweep(**sections)))
    assert sweep.pruning.budget.name == "none"
    assert sweep.pruning.rule.name == "peak"  # the overfit part still applies
    assert sweep.pruning.preset == (pruning or {"preset": "balanced"})["preset"]


@pytest.mark.parametrize(
    ("default", "rule", "budget"), [(None, "gl", "none"), ("balanced", "peak", "halving")]
)
def test_default_preset_applies_only_to_an_empty_pruning_section(
    monkeypatch: pytest.MonkeyPatch, default: str | None, rule: str, budget: str
) -> None:
    monkeypatch.setattr(schema_module, "DEFAULT_PRESET", default)
    config = PruningConfig()
    assert (config.rule.name, config.budget.name, config.preset) == (rule, budget, default)
    old = PruningConfig.model_validate({"rule": {"name": "gl"}})
    assert (old.rule.name, old.budget.name, old.preset) == ("gl", "none", None)


@pytest.mark.parametrize(
    ("pruning", "end_guard"),
    [
        ({"rule": {"name": "gl"}}, 0),
        ({"preset": "balanced", "end_guard": 3}, 3),
        *[({"preset": level}, PRESETS[level].get("end_guard", 0)) for level in PRESETS],
    ],
)
def test_end_guard_comes_from_the_preset_unless_given(
    write_sweep: Any, pruning: dict[str, Any], end_guard: int
) -> None:
    sweep = load_sweep(write_sweep(tiny_sweep(pruning=pruning)))
    assert sweep.pruning.end_guard == end_guard
    again = Sweep.model_validate(sweep.model_dump(mode="json"))
    assert again.pruning == sweep.pruning


def test_the_median_budget_rule_can_judge_against_the_peers_running_mean(write_sweep: Any) -> None:
    budget = {"name": "median", "grace": 1, "z": 0.0, "against": "mean"}
    sweep = load_sweep(write_sweep(tiny_sweep(pruning={"preset": "balanced", "budget": budget})))
    assert sweep.pruning.budget.model_dump() == {**budget, "min_trials": 5, "percentile": 50.0}
