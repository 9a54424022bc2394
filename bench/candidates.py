"""Candidate budget rules tried against the default on the choosing banks (issue 18, round 7).

Each candidate is the default (``pruning.preset: balanced``: the peak rule and halving on the
best so far) with one idea added; both were measured with sampler feedback on the choosing
banks that carry a test split, and both were rejected (bench/RESULTS.md, "Round 7"). They stay
here, runnable, so the evidence can be checked and the ideas are not tried again blind.

- ``reach`` ("can it still win?"): after ``grace`` epochs a trial stops when even a linear
  extrapolation of its best so far (its improvement per epoch over the last ``window``
  epochs, times ``slack``, to the last epoch) stays above the study's best by more than
  ``z`` noise units. Optimistic for a decelerating curve, so it should only cut trials that
  cannot catch up.
- ``backtest``: a halving stop is kept only if the same cutoff, applied at the same rung to
  the study's trials that ran past it, would not have cut one of them that ended within
  ``near`` of the study's best: a rung that would have thrown away the study's own winner is
  not trusted.

Usage::

    python bench/candidates.py            # 20 TPE searches per choosing bank with a test split
    python bench/candidates.py --seeds 5  # a quick look
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _policies import Judge, NoStopping  # noqa: E402
from choose_default import WEIGHTS, _run  # noqa: E402
from pruning import (  # noqa: E402
    CHOSEN_ON,
    FEEDBACK_MIN_POOL,
    HELD_OUT,
    Score,
    _test_ratio,
    _within,
    load_curves,
)

from overfit_search.pruning import OverfitJudge, make_rule, preset  # noqa: E402
from overfit_search.pruning.base import Firing  # noqa: E402
from overfit_search.pruning.budget import HalvingRule, _noise  # noqa: E402


class ReachRule:
    """Stop a trial whose optimistic linear extrapolation cannot reach the study's best.

    Args:
        horizon: The sweep's ``max_epochs``.
        grace: First epoch it may stop at.
        window: Epochs the improvement rate is measured over.
        z: Noise units of tolerance above the study's best.
        slack: Multiplies the extrapolated improvement (more than 1: more optimistic).
        min_trials: Peers needed before it judges.
    """

    name = "reach"

    def __init__(
        self,
        horizon: int,
        grace: int = 4,
        window: int = 3,
        z: float = 1.0,
        slack: float = 1.0,
        min_trials: int = 5,
    ) -> None:
        self.horizon, self.grace, self.window = horizon, grace, window
        self.z, self.slack, self.min_trials = z, slack, min_trials

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Fire when the extrapolated best stays above the study's best, past noise."""
        t = len(val_loss)
        if t < max(self.grace, self.window + 1) or not all(map(math.isfinite, val_loss)):
            return None
        bests = [min(p) for p in peers if p and all(map(math.isfinite, p))]
        if len(bests) < self.min_trials or min(bests) <= 0:
            return None
        own = min(val_loss)
        rate = max(0.0, (min(val_loss[: t - self.window]) - own) / self.window)
        reach = own - self.slack * rate * (self.horizon - t)
        tolerance = self.z * _noise(val_loss, peers)
        if reach <= min(bests) * (1.0 + tolerance):
            return None
        excess = 100.0 * (reach / min(bests) - 1.0)
        return Firing("reach", excess, 100.0 * tolerance, t, f"reach {reach:.4f}")


class EitherBudget:
    """Two budget rules; the first that fires stops the trial."""

    name = "halving"

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The first rule's firing, else the second's."""
        return self.first.check(val_loss, peers) or self.second.check(val_loss, peers)


class BacktestedHalving(HalvingRule):
    """Halving whose every stop is first replayed on the study's trials that ran past the rung.

    Args:
        near: A trial that ended within this fraction of the study's best counts as a winner.
        **params: :class:`HalvingRule`'s parameters.
    """

    def __init__(self, near: float = 0.01, **params: Any) -> None:
        super().__init__(**params)
        self.near = near

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The halving rule's firing, unless its cutoff would have cut one of the winners."""
        firing = super().check(val_loss, peers)
        if firing is None:
            return None
        t = len(val_loss)
        past = [p for p in peers if len(p) > t and all(map(math.isfinite, p))]
        if not past:
            return None
        best = min(min(p) for p in past)
        # the cutoff and tolerance the rule used, as its firing reports them
        cutoff = min(val_loss) / (1.0 + firing.value / 100.0)
        tolerance = firing.threshold / 100.0
        for p in past:
            if min(p) <= best * (1.0 + self.near) and min(p[:t]) > cutoff * (1.0 + tolerance):
                return None
        return firing


def candidate(
    name: str, horizon: int, budget: dict[str, Any] | None = None, **params: Any
) -> Judge:
    """The default judge (``balanced``) with ``budget`` overriding its halving settings and a
    candidate: ``default`` (none), ``reach`` (``ReachRule(**params)`` as an OR) or
    ``backtest`` (``BacktestedHalving(**params)`` instead of halving)."""
    settings = preset("balanced")
    rule = dict(settings["rule"])
    halving = {**settings["budget"], **(budget or {})}
    halving.pop("name")
    if name == "reach":
        rule_b: Any = EitherBudget(HalvingRule(**halving), ReachRule(horizon, **params))
    elif name == "backtest":
        rule_b = BacktestedHalving(**params, **halving)
    elif name == "default":
        rule_b = HalvingRule(**halving)
    else:
        raise ValueError(f"unknown candidate {name!r}; choose default, reach or backtest")
    judge = Judge.__new__(Judge)
    judge.name, judge.stopped_by = name, {}
    judge.judge = OverfitJudge(
        make_rule(rule.pop("name"), **rule),
        grace_epochs=2,
        compare="median",
        compare_min_trials=4,
        budget=rule_b,
    )
    return judge


GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("reach", {}, {"grace": g, "window": w, "z": z, "slack": s})
        for g in (4, 8)
        for w in (3, 5)
        for z in (0.0, 1.0, 2.0)
        for s in (1.0, 2.0)
    ],
    *[
        (name, budget, params)
        for budget in (
            {},
            {"z": 0.0},
            {"first_rung": 1, "z": 0.0},
            {"reduction_factor": 3.0, "z": 0.0},
            {"first_rung": 1, "reduction_factor": 3.0, "z": 0.0},
        )
        for name, params in (
            ("backtest", {"near": 0.01}),
            ("backtest", {"near": 0.03}),
            *((("default", {}),) if budget else ()),
        )
    ],
]
"""Every setting measured: the default; ``reach`` on the default; halving with and without the
backtest at the default's settings and at more aggressive ones (no tolerance, a first rung at
epoch 1, a reduction factor of 3)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Replay every candidate of :data:`GRID` on the choosing banks with a test split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="TPE searches per bank")
    parser.add_argument("--curves", type=Path, action="append", help="banks (default: choosing)")
    args = parser.parse_args(argv)
    paths = args.curves or [HERE / "curves" / b for b in CHOSEN_ON if b.startswith("selection/")]
    pools = {}
    for path in paths:
        if any(path == HERE / "curves" / b for b in HELD_OUT):
            raise SystemExit(f"{path} is held out: candidates are measured on choosing banks")
        pool = load_curves(path)
        if len(pool) >= FEEDBACK_MIN_POOL and pool[0].test_loss:
            pools[path.stem] = pool

    fulls = {b: [_run((p, s), NoStopping()) for s in range(args.seeds)] for b, p in pools.items()}
    print(f"banks: {', '.join(pools)}; {args.seeds} TPE searches each", flush=True)
    for name, budget, params in GRID:
        scores: list[Score] = []
        per = []
        for bank, pool in pools.items():
            horizon = max(c.epochs for c in pool)
            mine = [
                Score.against(_run((pool, s), candidate(name, horizon, budget, **params)), f, {})
                for s, f in enumerate(fulls[bank])
            ]
            per.append(
                f"{bank} {statistics.fmean(x.fraction for x in mine):.2f}/"
                f"{statistics.fmean(x.ratio for x in mine):.3f}/{_test_ratio(mine):.3f}"
            )
            scores += mine
        weighted = [x.fraction + WEIGHTS["balanced"] * (x.ratio - 1.0) for x in scores]
        se = statistics.stdev(weighted) / len(weighted) ** 0.5 if len(weighted) > 1 else 0.0
        print(
            f"{name} budget {budget} {params}: "
            f"{statistics.fmean(x.fraction for x in scores):.3f} / "
            f"{statistics.fmean(x.ratio for x in scores):.4f} / "
            f"within 1 % {100 * _within(scores):.0f}% / test {_test_ratio(scores):.4f} / "
            f"score {statistics.fmean(weighted):.3f} ± {se:.3f} | " + " ".join(per),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
