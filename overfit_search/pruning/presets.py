"""Named aggressiveness levels of the two-part stopping policy (issue 18).

Each preset is an overfitting rule (``peak``: past the trial's best, read through a running
median of 5 epochs, by more than twice its own noise at every epoch of the patience window) and
a budget rule (``halving``: successive halving on the best val loss so far from epoch 2, with a
minimum rung population and a tolerance in multiples of the measured val loss noise). Their
parameters were chosen by ``bench/choose_default.py --feedback`` (round 5: 384 settings) on the
eight choosing curve banks of 40+ configurations only, each search proposed by the product's own
TPE told every earlier trial's outcome (``bench/_feedback.py``), as in a live sweep: each preset
minimises epoch fraction + weight x (best val-loss ratio - 1) pooled over them, weight 20 / 5 /
1.5 for safe / balanced / fast, and among the settings within one standard error of that
minimum takes the one with the best ratio. bench/RESULTS.md reports them on banks never used to
choose.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "safe": {
        "rule": {"name": "peak", "patience": 4, "z": 2.0, "smooth": 5, "sustained": True},
        "budget": {
            "name": "halving",
            "first_rung": 2,
            "reduction_factor": 2.0,
            "min_trials": 8,
            "z": 3.0,
        },
    },
    "balanced": {
        "rule": {"name": "peak", "patience": 4, "z": 2.0, "smooth": 5, "sustained": True},
        "budget": {
            "name": "halving",
            "first_rung": 2,
            "reduction_factor": 4.0,
            "min_trials": 5,
            "z": 1.0,
        },
    },
    "fast": {
        "rule": {"name": "peak", "patience": 4, "z": 2.0, "smooth": 5, "sustained": True},
        "budget": {
            "name": "halving",
            "first_rung": 2,
            "reduction_factor": 3.0,
            "min_trials": 3,
            "z": 0.0,
        },
    },
}
"""Preset name -> ``{"rule": make_rule kwargs, "budget": make_budget kwargs}``, and
``end_guard`` (the last epochs in which the overfitting rule is not asked) where not 0."""


def preset(name: str) -> dict[str, Any]:
    """The rule and budget settings (and ``end_guard``, where set) of preset ``name`` (copies).

    Raises:
        ValueError: Unknown preset (the message lists the valid ones).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown pruning preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return {part: dict(v) if isinstance(v, dict) else v for part, v in PRESETS[name].items()}
