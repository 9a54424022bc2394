"""Pruning benchmark: what each stopping policy spends and finds, on recorded learning curves.

Learning curves are recorded once without any stopping (``--record``) and replayed epoch by
epoch through each stopping policy. Reports:

- the frontier (default; issue 18): for each curve bank, ``--seeds`` random 30-configuration
  searches drawn from its pool (seeded, each in a random order), every policy of
  ``_policies.frontier_policies`` (the project's two-part policy at its three presets, the
  previous default ``gl``, Optuna's Median / Patient / SuccessiveHalving / Hyperband pruners,
  Ray's ASHA, ``none``) and the "1 epoch each, keep the top K" baselines, scored per search by
  the epoch fraction (and recorded wall-clock fraction, first epochs' graph building included)
  of no stopping and the ratio of the best val loss found to no stopping's. The default
  policy's parameters were chosen on :data:`CHOSEN_ON` only; the summary line pools the
  :data:`HELD_OUT` banks.
- ``--feedback`` (round 5): the same frontier, but each search's configurations are proposed
  one by one by the product's TPE, told how every earlier trial ended (``bench/_feedback.py``),
  so a policy's stops change what runs next, as in a live sweep. Random subsets cannot show
  that TPE crowds the good region, where a rule that spares trials within noise of the leader
  spares many.
- ``--orders`` (issue 4): reorderings of one pool, with the equal-budget comparison to ASHA.
- ``--predictability`` (round 7): per bank, how well the ranking at an early epoch foretells a
  24-configuration search's winner, and what share of the search a rank rule must keep there;
  then (round 8) the cheapest rank schedules with up to three rungs, per bank in hindsight, and
  the one schedule fixed for all the choosing selection banks, replayed on the held-out ones.

On banks with a test split (``bench/curves/selection``) every frontier also scores the trial
the product would export (the lowest val loss, at its best epoch) by its test loss against no
stopping's export: the model a user gets, without the winner's curse of the best val loss.

Usage::

    python bench/pruning.py --record --setup digits-small  # train and record a bank
    python bench/pruning.py --quick                # 5 subsets per held-out bank, summary last
    python bench/pruning.py --markdown --chosen    # the frontier tables for bench/RESULTS.md
    python bench/pruning.py --feedback --markdown  # the frontier with TPE feedback (20 seeds)
    python bench/pruning.py --curves PATH ...      # other curve files (all pooled)
    python bench/pruning.py --orders               # issue 4's tables on bench/curves/digits.csv
    python bench/pruning.py --predictability --chosen  # early ranks against final winners

The policies' logic and the replay engine are in ``bench/_policies.py``; recording is in
``bench/_record.py`` (the only part that loads Keras).
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _policies import (  # noqa: E402
    Curve,
    Judge,
    NoStopping,
    Policy,
    PolicyFactory,
    ReplayResult,
    default_policies,
    frontier_policies,
    replay,
    shuffled,
    top_k,
)

from overfit_search.pruning.budget import rank_correlation  # noqa: E402

DEFAULT_CURVES = HERE / "curves" / "digits.csv"
KNOBS = ("dropout", "l2", "learning_rate", "augmentation", "frozen_fraction")
BUDGET_POLICIES = ("asha", "median", "none")
"""Policies replayed again at the ``gl`` policy's epoch spend (per order)."""


def load_curves(path: Path) -> list[Curve]:
    """Read a curve file (one row per config and epoch) into complete curves.

    Args:
        path: CSV with at least ``config, epoch, val_loss, train_eval_loss`` and the knobs.

    Returns:
        One :class:`Curve` per configuration, sorted by config id; epochs sorted.

    Raises:
        ValueError: A configuration's epochs are not 1..n without gaps.
    """
    rows: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows.setdefault(row["config"], []).append(row)
    curves = []
    for key in sorted(rows, key=lambda k: (len(k), k)):
        group = sorted(rows[key], key=lambda r: int(r["epoch"]))
        epochs = [int(r["epoch"]) for r in group]
        if epochs != list(range(1, len(group) + 1)):
            raise ValueError(f"{path}: config {key}: epochs {epochs} are not 1..{len(group)}")
        params = {k: float(group[0][k]) for k in KNOBS if group[0].get(k) not in (None, "")}
        curves.append(
            Curve(
                key,
                params,
                tuple(float(r["val_loss"]) for r in group),
                tuple(float(r["train_eval_loss"]) for r in group),
                tuple(float(r["epoch_seconds"]) for r in group)
                if all(r.get("epoch_seconds") not in (None, "") for r in group)
                else (),
                tuple(float(r["test_loss"]) for r in group)
                if all(r.get("test_loss") not in (None, "") for r in group)
                else (),
            )
        )
    return curves


def run_benchmark(
    curves: Sequence[Curve],
    seeds: Sequence[int],
    policies: dict[str, PolicyFactory] | None = None,
    concurrency: int = 1,
    reference: str = "gl",
) -> tuple[dict[str, list[ReplayResult]], dict[str, list[ReplayResult]], list[int]]:
    """Replay every policy over each seeded order, then the equal-budget comparisons.

    Equal budget, both ways, per order: each policy of :data:`BUDGET_POLICIES` is replayed
    again with the reference's epoch spend as its budget (``"asha @ gl budget"``), and the
    reference is replayed with ASHA's spend as its budget (``"gl @ asha budget"``): a budget
    only binds the policy that would spend more.

    Args:
        curves: The recorded configurations.
        seeds: One trial order per seed (the same order for every policy).
        policies: Name -> factory; :func:`default_policies` by default.
        concurrency: Trials run side by side in the replay.
        reference: The policy whose epoch spend is the budget of the equal-budget replays.

    Returns:
        ``(results, budget_results, budgets)``: per policy, one result per seed; per
        equal-budget label, one result per seed; the reference's spend per seed.
    """
    policies = policies or default_policies()
    max_epochs = max(c.epochs for c in curves)
    results: dict[str, list[ReplayResult]] = {name: [] for name in policies}
    budget_results: dict[str, list[ReplayResult]] = {}
    budgets: list[int] = []
    for seed in seeds:
        order = shuffled(curves, seed)
        for name, factory in policies.items():
            results[name].append(replay(order, factory(seed, max_epochs), concurrency))
        if reference not in results:
            continue
        budget = results[reference][-1].epochs
        budgets.append(budget)
        for name in BUDGET_POLICIES:
            if name in policies and name != reference:
                policy = policies[name](seed, max_epochs)
                budget_results.setdefault(f"{name} @ {reference} budget", []).append(
                    replay(order, policy, concurrency, budget=budget)
                )
        if "asha" in results and reference != "asha":
            policy = policies[reference](seed, max_epochs)
            budget_results.setdefault(f"{reference} @ asha budget", []).append(
                replay(order, policy, concurrency, budget=results["asha"][-1].epochs)
            )
    return results, budget_results, budgets


CHOSEN_ON = (
    "digits.csv",
    "digits_heldout.csv",
    "digits-small.csv",
    "digits10.csv",
    "mobilenetv2.csv",
    "selection/sel-59.csv",
    "selection/sel-3589-smallval.csv",
    "selection/sel-59-24px.csv",
    "selection/sel-6789-40px.csv",
    "selection/ov-3589-choose.csv",
    "selection/ov-59-hilr.csv",
    "selection/ov-all10.csv",
)
"""The curve banks the presets were chosen on (``bench/choose_default.py``; never reported as
held out). Rounds 1 and 2 held out digits-small, digits10, mobilenetv2 and the four selection
banks, round 3 ov-59-hilr and ov-all10; round 4 chose on all twelve, so none of them is held out
any more."""
HELD_OUT = (
    "selection/lo-679.csv",
    "selection/lo-all10.csv",
    "selection/mn2-all10.csv",
    "selection/mn2-photos.csv",
)
"""The held-out banks the frontier and the ``--quick`` summary are reported on: ``lo-679`` and
``lo-all10`` recorded for round 4 and replayed only after its choice was committed;
``mn2-all10`` (the MobileNetV2 fixture on digits) recorded in round 7 and ``mn2-photos`` (the
fixture on photographs) in round 9, each committed before its first replay, with the round-5
default unchanged."""
SUBSET_SIZE = 30
TOP_KS = (3, 5)


@dataclass(frozen=True)
class Score:
    """One policy on one random subset: its spend and its find, relative to no stopping.

    Attributes:
        fraction: Epochs run / the subset's epochs without stopping.
        ratio: Best val loss found / the best of the subset without stopping.
        seconds: Recorded wall seconds run / without stopping (first epochs' compile included).
        stopped_by: Trials stopped, per rule that stopped them (the project's judge only).
        test_ratio: Test loss of the trial and epoch the product would export (the lowest
            val loss found) / the same for no stopping: what stopping cost the model a user
            gets, without the winner's curse of the best val loss (NaN when the bank has no
            test split).
    """

    fraction: float
    ratio: float
    seconds: float
    stopped_by: dict[str, int]
    test_ratio: float = math.nan

    @classmethod
    def against(cls, result: ReplayResult, full: ReplayResult, stopped_by: dict[str, int]) -> Score:
        """``result`` scored against no stopping's ``full`` replay of the same search."""
        return cls(
            result.epochs / full.epochs,
            result.best_val_loss / full.best_val_loss,
            result.seconds / full.seconds if full.seconds else math.nan,
            stopped_by,
            result.best_test_loss / full.best_test_loss,
        )


def random_subsets(curves: Sequence[Curve], n: int, size: int, seed: int = 0) -> list[list[Curve]]:
    """``n`` random ``size``-configuration searches drawn from the pool (each in random order).

    Subset ``i`` is ``numpy.random.default_rng(seed + i).choice(len(curves), size,
    replace=False)``; with ``size >= len(curves)`` every subset is the whole pool reordered.
    """
    size = min(size, len(curves))
    out = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        out.append([curves[j] for j in rng.choice(len(curves), size, replace=False)])
    return out


def _stops_per_rule(policy: Policy) -> dict[str, int]:
    """Trials stopped per part of the project's judge that stopped them (empty for a peer)."""
    if not isinstance(policy, Judge):
        return {}
    return dict(Counter(policy.stopped_by.values()))


def subset_benchmark(
    curves: Sequence[Curve],
    n_subsets: int,
    size: int = SUBSET_SIZE,
    policies: dict[str, PolicyFactory] | None = None,
    top_ks: Sequence[int] = TOP_KS,
) -> dict[str, list[Score]]:
    """Every policy (and the top-K baselines) on the same random subsets of one pool.

    ``default-at-gl`` is the ``default`` policy cut off at the epochs ``gl`` spent on the same
    subset (the previous default's budget).

    Returns:
        Policy name -> one :class:`Score` per subset.
    """
    policies = policies or frontier_policies()
    max_epochs = max(c.epochs for c in curves)
    scores: dict[str, list[Score]] = {}
    for i, subset in enumerate(random_subsets(curves, n_subsets, size)):
        full = replay(subset, NoStopping())
        runs: dict[str, ReplayResult] = {}
        by_rule: dict[str, dict[str, int]] = {}
        for name, factory in policies.items():
            policy = factory(i, max_epochs)
            runs[name] = replay(subset, policy)
            by_rule[name] = _stops_per_rule(policy)
        if "default" in policies and "gl" in runs:  # the default given GL's own epoch spend
            runs["default-at-gl"] = replay(
                subset, policies["default"](i, max_epochs), budget=runs["gl"].epochs
            )
        for k in top_ks:
            if k < len(subset):
                runs[f"top{k}"] = top_k(subset, k)
        for name, result in runs.items():
            scores.setdefault(name, []).append(Score.against(result, full, by_rule.get(name, {})))
    return scores


FEEDBACK_TRIALS = 24
"""Trials per search with sampler feedback (``sweeps/demo.yaml``'s ``study.trials``)."""
FEEDBACK_CONCURRENCY = 2
"""Trials side by side with sampler feedback (the demo on 2 CPUs, ``cpus_per_trial: 1``)."""
FEEDBACK_MIN_POOL = 40
"""Banks smaller than this are left out with feedback: TPE must have configurations to choose
among (24 of 40 run; the 60-configuration banks run 24 of 60)."""


def feedback_benchmark(
    curves: Sequence[Curve],
    n_seeds: int,
    policies: dict[str, PolicyFactory] | None = None,
    trials: int = FEEDBACK_TRIALS,
    concurrency: int = FEEDBACK_CONCURRENCY,
) -> dict[str, list[Score]]:
    """Every policy on searches whose configurations the product's TPE proposes with feedback.

    Per sampler seed, each policy runs its own search (``_feedback.SamplerFeed``: TPE told
    every outcome as the product tells it, each proposal snapped to the nearest configuration
    of the pool not run yet), so a policy's stops change what runs next, as in a live sweep.
    Scores are against no stopping's search at the same sampler seed: epochs / its epochs and
    best val loss / its best.

    Returns:
        Policy name -> one :class:`Score` per sampler seed.
    """
    from _feedback import SamplerFeed

    policies = policies or frontier_policies()
    max_epochs = max(c.epochs for c in curves)
    scores: dict[str, list[Score]] = {}
    for seed in range(n_seeds):
        full = replay(SamplerFeed(curves, trials, seed), NoStopping(), concurrency)
        for name, factory in policies.items():
            policy = factory(seed, max_epochs)
            result = replay(SamplerFeed(curves, trials, seed), policy, concurrency)
            scores.setdefault(name, []).append(Score.against(result, full, _stops_per_rule(policy)))
    return scores


@dataclass(frozen=True)
class Predictability:
    """How well a pool's early ranking foretells which configuration wins a search.

    Attributes:
        epoch: The epoch the trials are ranked at (on their best val loss so far).
        rho: Spearman rank correlation over the pool between the best so far at ``epoch`` and
            the best over all epochs.
        winner_top_quarter: Share of searches whose winner is in the top quarter at ``epoch``
            (what a halving rule with ``reduction_factor`` 4 and no tolerance keeps).
        keep_needed: The share of a search a rank rule must keep at ``epoch`` (ranked by best
            so far) to keep a configuration within 1 % of the search's best in 90 % of searches.
        one_rung: ``epoch / T + (1 - epoch / T) * keep_needed``: the epoch fraction spent by a
            rule with one rung, at ``epoch``, that keeps ``keep_needed`` (T: the pool's epochs).
    """

    epoch: int
    rho: float
    winner_top_quarter: float
    keep_needed: float
    one_rung: float


def _positions(values: Sequence[float]) -> np.ndarray:
    """Each value's place in ascending order, from 0 (ties by position)."""
    return np.argsort(np.argsort(np.asarray(values, dtype=float))).astype(float)


def predictability(
    curves: Sequence[Curve], n_searches: int = 500, size: int = 24, seed: int = 0
) -> list[Predictability]:
    """Early ranks against final winners, per epoch, on random ``size``-configuration searches.

    A rank-based stopping rule (halving, median, ASHA) can only save epochs while it keeps the
    eventual winner, or a configuration within 1 % of it; this measures, on a recorded pool,
    how much of a search it must keep at each epoch to do that in 90 % of searches, and so the
    epoch fraction a rank rule with one rung there spends (``one_rung``). A rule with several
    rungs, or one that reads more than the rank, is not bounded by it. Curves must have the
    same length.
    """
    epochs = min(c.epochs for c in curves)
    final = np.array([min(c.val_loss) for c in curves])
    size = min(size, len(curves))
    rng = np.random.default_rng(seed)
    searches = [rng.choice(len(curves), size, replace=False) for _ in range(n_searches)]
    rows = []
    for epoch in range(1, epochs):
        at = np.array([min(c.val_loss[:epoch]) for c in curves])
        rho = rank_correlation(at.tolist(), final.tolist())
        top_quarter, needed = [], []
        for idx in searches:
            best = final[idx].min()
            rank = _positions(at[idx])  # 0 = best so far at the epoch
            winner = int(np.argmin(final[idx]))
            top_quarter.append(rank[winner] < size / 4)
            good = final[idx] <= 1.01 * best
            needed.append((rank[good].min() + 1) / size)
        keep = float(np.quantile(needed, 0.9))
        rows.append(
            Predictability(
                epoch,
                rho,
                float(np.mean(top_quarter)),
                keep,
                epoch / epochs + (1 - epoch / epochs) * keep,  # one rung at ``epoch``
            )
        )
    return rows


def predictability_table(per_bank: dict[str, list[Predictability]], at: Sequence[int]) -> str:
    """Markdown: per bank, rho / winner in the top quarter / keep needed at the ``at`` epochs,
    and the cheapest one-rung rule over every epoch (with its epoch)."""
    head = "| bank | " + " | ".join(f"epoch {e}: rho / top ¼ / keep" for e in at)
    lines = [head + " | cheapest one-rung rule (epoch) |", "|---|" + "---|" * (len(at) + 1)]
    for bank, rows in per_bank.items():
        by_epoch = {r.epoch: r for r in rows}
        cells = [
            f"{by_epoch[e].rho:.2f} / {by_epoch[e].winner_top_quarter:.2f} / "
            f"{by_epoch[e].keep_needed:.2f}"
            if e in by_epoch
            else "–"
            for e in at
        ]
        least = min(rows, key=lambda r: r.one_rung)
        lines.append(
            f"| {bank} | " + " | ".join(cells) + f" | {least.one_rung:.2f} ({least.epoch}) |"
        )
    return "\n".join(lines)


SCHEDULE_KEEPS = (1 / 24, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3)
"""Shares of the survivors a rung of :func:`schedules` may keep."""
COARSE_RUNGS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
"""Rung epochs ``--predictability`` tries for three-rung schedules (two rungs try every one)."""


@dataclass(frozen=True)
class Schedule:
    """A synchronous successive-halving schedule: at ``rungs[i]`` keep ``keeps[i]`` of the
    survivors, ranked by best val loss so far; the rest stop.

    Attributes:
        rungs: The epochs the survivors are ranked at.
        keeps: The share of the survivors each rung keeps.
        fraction: Epochs run over ``size x T`` (T: the pool's epochs), averaged over searches.
        hit: Share of searches in which a configuration within 1 % of the search's best
            survives to the end.
    """

    rungs: tuple[int, ...]
    keeps: tuple[float, ...]
    fraction: float
    hit: float

    @property
    def key(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """``(rungs, keeps)``: the same schedule replayed on another bank has the same key."""
        return self.rungs, self.keeps

    def on(self, rows: Sequence[Schedule]) -> Schedule | None:
        """This schedule as replayed on another bank (one of its :func:`schedules`), or None
        where that bank has no such schedule (a rung past its epochs)."""
        return next((x for x in rows if x.key == self.key), None)

    def label(self) -> str:
        """``e4 keep 1/3, e12 keep 1/2``."""
        keeps = [str(Fraction(k).limit_denominator(24)) for k in self.keeps]
        return ", ".join(f"e{r} keep {k}" for r, k in zip(self.rungs, keeps, strict=True))


def schedules(
    curves: Sequence[Curve],
    max_rungs: int = 2,
    rung_grid: Sequence[int] | None = None,
    n_searches: int = 500,
    size: int = 24,
    seed: int = 0,
) -> list[Schedule]:
    """Every synchronous schedule of up to ``max_rungs`` rungs replayed on random
    ``size``-configuration searches of the pool.

    Rungs are tried at every epoch of ``rung_grid`` (None: every epoch) and keep one of
    :data:`SCHEDULE_KEEPS` of the survivors, at least one. Curves must have the same length.
    """
    epochs = min(c.epochs for c in curves)
    grid = [r for r in (rung_grid or range(1, epochs)) if 0 < r < epochs]
    size = min(size, len(curves))
    rng = np.random.default_rng(seed)
    idx = np.array([rng.choice(len(curves), size, replace=False) for _ in range(n_searches)])
    running = np.array([np.minimum.accumulate(c.val_loss[:epochs]) for c in curves])[idx]
    final = running[:, :, -1]
    good = final <= 1.01 * final.min(axis=1, keepdims=True)
    found: list[Schedule] = []

    def visit(
        rungs: tuple[int, ...], keeps: tuple[float, ...], alive: np.ndarray, spent: np.ndarray
    ) -> None:
        last = rungs[-1] if rungs else 0
        if rungs:
            fraction = float((spent + alive.sum(axis=1) * (epochs - last)).mean())
            rate = float(np.any(alive & good, axis=1).mean())
            found.append(Schedule(rungs, keeps, fraction / (size * epochs), rate))
        if len(rungs) == max_rungs:
            return
        count = alive.sum(axis=1, keepdims=True)
        for rung in (r for r in grid if r > last):
            rank = np.argsort(np.argsort(np.where(alive, running[:, :, rung - 1], np.inf)))
            paid = spent + count[:, 0] * (rung - last)
            for keep in SCHEDULE_KEEPS:
                kept = rank < np.maximum(1, np.ceil(keep * count - 1e-9))
                visit((*rungs, rung), (*keeps, keep), kept, paid)

    visit((), (), np.ones((n_searches, size), dtype=bool), np.zeros(n_searches))
    return found


def cheapest_schedules(
    found: Sequence[Schedule], max_rungs: int = 2, hit: float = 0.9
) -> list[Schedule]:
    """The cheapest of ``found`` (:func:`schedules` of one pool) with at most 1, 2, ...
    ``max_rungs`` rungs that keeps a configuration within 1 % of the search's best in ``hit``
    of the searches: chosen per pool in hindsight.

    Within the grid of rungs and shares tried, a lower bound on what a rank rule (halving,
    ASHA, median) spends on the pool at that quality, as long as it reads only the rank by
    best val loss so far: a rule that also stops trials after their peak, or reads the curve's
    shape, is not bounded by it.

    Returns:
        For each rung count 1 .. ``max_rungs``, the cheapest schedule with at most that many
        rungs (left out where none reaches ``hit``).
    """
    out = []
    for n in range(1, max_rungs + 1):
        fit = [x for x in found if len(x.rungs) <= n and x.hit >= hit]
        if fit:
            out.append(min(fit, key=lambda x: x.fraction))
    return out


def fixed_schedule(
    per_bank: dict[str, list[Schedule]], hit: float = 0.9, pooled: bool = False
) -> tuple[Schedule, ...] | None:
    """The one schedule, the same on every bank, with the least mean epoch fraction among
    those that reach ``hit`` on every bank (``pooled``: on average over the banks), given
    ``per_bank``: :func:`schedules` of each.

    Returns:
        Its :class:`Schedule` on each bank, in ``per_bank``'s order; None if none qualifies.
    """
    tables = [{x.key: x for x in rows} for rows in per_bank.values()]
    shared = set(tables[0]).intersection(*tables[1:]) if tables else set()
    hits = {key: [t[key].hit for t in tables] for key in shared}
    fit = [k for k, h in hits.items() if (statistics.fmean(h) if pooled else min(h)) >= hit]
    if not fit:
        return None
    key = min(fit, key=lambda k: (statistics.fmean(t[k].fraction for t in tables), k))
    return tuple(t[key] for t in tables)


def fixed_schedule_lines(
    choosing: dict[str, list[Schedule]], held_out: dict[str, list[Schedule]]
) -> str:
    """The :func:`fixed_schedule` of the choosing banks (90 % on each bank, then 90 % pooled),
    and what it does on each bank."""
    lines = []
    for pooled in (False, True):
        where = "pooled over" if pooled else "on each of"
        picked = fixed_schedule(choosing, pooled=pooled)
        if picked is None:
            lines.append(f"no single schedule keeps a within-1 % trial in 90 % {where} the banks")
            continue
        lines.append(
            f"one schedule, 90 % {where} the choosing banks: {picked[0].label()}, "
            f"{statistics.fmean(x.fraction for x in picked):.2f} of the epochs on average"
        )
        for group, banks in (("choosing", choosing), ("held out", held_out)):
            for bank, rows in banks.items():
                same = picked[0].on(rows)
                if same is not None:
                    lines.append(
                        f"  {group} {bank}: {same.fraction:.2f} of the epochs, {same.hit:.0%}"
                    )
    return "\n".join(lines)


def schedule_table(per_bank: dict[str, list[Schedule]]) -> str:
    """Markdown: per bank, the cheapest schedule with at most 1, 2, 3 rungs (fraction, rungs)."""
    width = max((len(rows) for rows in per_bank.values()), default=0)
    heads = " | ".join(f"≤ {n + 1} rung{'s' if n else ''}" for n in range(width))
    lines = [f"| bank | {heads} |", "|---|" + "---|" * width]
    for bank, rows in per_bank.items():
        cells = [f"{r.fraction:.2f} ({r.label()})" for r in rows]
        lines.append(f"| {bank} | " + " | ".join(cells + ["–"] * (width - len(cells))) + " |")
    return "\n".join(lines)


def _within(scores: Sequence[Score], tolerance: float = 0.01) -> float:
    return sum(s.ratio <= 1.0 + tolerance for s in scores) / len(scores)


def _test_ratio(scores: Sequence[Score]) -> float:
    """Mean test ratio over the scores that have one (NaN when none has)."""
    finite = [s.test_ratio for s in scores if math.isfinite(s.test_ratio)]
    return statistics.fmean(finite) if finite else math.nan


def subset_summary_line(pooled: dict[str, list[Score]]) -> str:
    """``summary: NAME FRACTION/RATIO ...``: mean epoch fraction and mean best val loss ratio to
    no stopping over every subset given (of every setup pooled), per policy."""
    parts = []
    for name, scores in pooled.items():
        fraction = statistics.fmean(s.fraction for s in scores)
        ratio = statistics.fmean(s.ratio for s in scores)
        parts.append(f"{name} {fraction:.2f}/{ratio:.3f}")
    return "summary: " + " ".join(parts)


def frontier_table(per_setup: dict[str, dict[str, list[Score]]]) -> str:
    """Markdown: per policy and setup: epoch and wall fractions, mean ratio, share within 1 %,
    and, on banks with a test split, the mean test ratio of the exported trial."""
    setups = list(per_setup)
    names: list[str] = []
    for scores in per_setup.values():
        names += [n for n in scores if n not in names]
    tested = {
        s
        for s, scores in per_setup.items()
        if any(math.isfinite(x.test_ratio) for runs in scores.values() for x in runs)
    }
    head = "| policy | " + " | ".join(
        f"{s}: epochs / wall / best ratio / within 1 %" + (" / test ratio" if s in tested else "")
        for s in setups
    )
    lines = [head + " |", "|---|" + "---|" * len(setups)]
    for name in names:
        cells = []
        for setup in setups:
            scores = per_setup[setup].get(name)
            if not scores:
                cells.append("–")
                continue
            wall = [s.seconds for s in scores if math.isfinite(s.seconds)]
            cells.append(
                f"{statistics.fmean(s.fraction for s in scores):.2f} / "
                + (f"{statistics.fmean(wall):.2f}" if wall else "–")
                + f" / {statistics.fmean(s.ratio for s in scores):.3f} / "
                f"{100 * _within(scores):.0f}%"
                + (f" / {_test_ratio(scores):.3f}" if setup in tested else "")
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_frontier(per_setup: dict[str, dict[str, list[Score]]], path: Path) -> Path:
    """One panel per setup: each policy's mean epoch fraction against its mean best ratio.

    Args:
        per_setup: Setup label -> policy -> scores (as :func:`subset_benchmark` returns).
        path: The PNG to write.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_setup), figsize=(5 * len(per_setup), 4.5), squeeze=False)
    for ax, (label, scores) in zip(axes[0], per_setup.items(), strict=True):
        for name, runs in scores.items():
            x = statistics.fmean(s.fraction for s in runs)
            y = statistics.fmean(s.ratio for s in runs)
            mine = name in ("default", "safe", "fast")
            ax.scatter(
                x,
                y,
                marker="*" if mine else "o",
                s=120 if mine else 30,
                color="tab:red" if mine else "tab:blue",
            )
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        frame_frontier(ax, label)
    return save_figure(fig, path)


def frame_frontier(ax: Any, title: str) -> None:
    """Title, axis labels and issue 18's target lines (0.35 of the epochs, ratio 1.01)."""
    ax.axhline(1.01, color="grey", lw=0.5, ls="--")
    ax.axvline(0.35, color="grey", lw=0.5, ls="--")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epochs / no stopping")
    ax.set_ylabel("best val_loss / no stopping's")


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path``, close it, return ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stopped_by_line(scores: Sequence[Score]) -> str:
    """Mean trials stopped per subset, per part of the policy that stopped them."""
    totals: dict[str, int] = {}
    for score in scores:
        for rule, count in score.stopped_by.items():
            totals[rule] = totals.get(rule, 0) + count
    return ", ".join(f"{rule} {count / len(scores):.1f}" for rule, count in sorted(totals.items()))


def _mean_sd(values: Sequence[float], fmt: str = ".3f") -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    mean = statistics.fmean(finite)
    sd = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def _ratios(runs: Sequence[ReplayResult], refs: Sequence[ReplayResult], attr: str) -> list[float]:
    return [getattr(r, attr) / getattr(b, attr) for r, b in zip(runs, refs, strict=True)]


def summary_line(results: dict[str, list[ReplayResult]], full_epochs: int) -> str:
    """``summary: NAME FRACTION/RATIO ...``: mean epoch fraction of a no-stopping search and
    mean ratio of the best val loss found to the no-stopping search's, per policy."""
    refs = results.get("none")
    parts = []
    for name, runs in results.items():
        fraction = statistics.fmean(r.epochs / full_epochs for r in runs)
        ratio = statistics.fmean(_ratios(runs, refs, "best_val_loss")) if refs else math.nan
        parts.append(f"{name} {fraction:.2f}/{ratio:.3f}")
    return "summary: " + " ".join(parts)


def markdown_tables(
    results: dict[str, list[ReplayResult]],
    budget_results: dict[str, list[ReplayResult]],
    budgets: Sequence[int],
    full_epochs: int,
    reference: str = "gl",
) -> str:
    """The two markdown tables: every policy at its own spend, then at the reference's spend."""
    refs = results.get("none")
    lines = [
        "| policy | epochs | fraction of no-stopping | best val_loss | ratio to no-stopping "
        "| gap at best | best epoch | best feasible val_loss (gap ≤ 0.15) | trials stopped "
        "| of them premature | PRUNED |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        ratio = _mean_sd(_ratios(runs, refs, "best_val_loss")) if refs else "–"
        lines.append(
            f"| {name} | {_mean_sd([r.epochs for r in runs], '.0f')} "
            f"| {_mean_sd([r.epochs / full_epochs for r in runs], '.2f')} "
            f"| {_mean_sd([r.best_val_loss for r in runs], '.4f')} | {ratio} "
            f"| {_mean_sd([r.best_gap for r in runs])} "
            f"| {_mean_sd([r.best_epoch for r in runs], '.1f')} "
            f"| {_mean_sd([r.feasible_val_loss for r in runs], '.4f')} "
            f"| {_mean_sd([r.stopped for r in runs], '.1f')} "
            f"| {_mean_sd([r.premature for r in runs], '.1f')} "
            f"| {_mean_sd([r.pruned for r in runs], '.1f')} |"
        )
    if budget_results and reference in results:
        ref_runs = results[reference]
        lines += [
            "",
            f"At an equal epoch budget, both ways: `X @ {reference} budget` is X given each "
            f"order's `{reference}` spend ({_mean_sd(list(budgets), '.0f')} epochs), "
            f"`{reference} @ asha budget` is `{reference}` given ASHA's spend; the search is "
            "cut (the running trial too) when its budget is spent, so a budget only binds a "
            "policy that would spend more:",
            "",
            "| policy | epochs | trials started | best val_loss | ratio to no-stopping "
            "| gap at best | best epoch | best feasible val_loss (gap ≤ 0.15) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = [(reference, ref_runs), *budget_results.items()]
        if "asha" in results:
            rows.insert(-1, ("asha", results["asha"]))
        for label, runs in rows:
            ratio = _mean_sd(_ratios(runs, refs, "best_val_loss")) if refs else "–"
            lines.append(
                f"| {label} | {_mean_sd([r.epochs for r in runs], '.0f')} "
                f"| {_mean_sd([r.trials_started for r in runs], '.1f')} "
                f"| {_mean_sd([r.best_val_loss for r in runs], '.4f')} | {ratio} "
                f"| {_mean_sd([r.best_gap for r in runs])} "
                f"| {_mean_sd([r.best_epoch for r in runs], '.1f')} "
                f"| {_mean_sd([r.feasible_val_loss for r in runs], '.4f')} |"
            )
        for mine, theirs in _budget_pairs(results, budget_results, reference):
            pairs = list(zip(mine, theirs, strict=True))
            val_wins = sum(g.best_val_loss <= a.best_val_loss for g, a in pairs)
            gap_wins = sum(g.best_gap < a.best_gap for g, a in pairs)
            gap_ties = sum(g.best_gap == a.best_gap for g, a in pairs)
            lines += [
                "",
                f"Per order, `{mine[0].policy}` vs `asha` at the same budget "
                f"({reference if mine is results[reference] else 'asha'}'s spend): "
                f"val_loss no worse in {val_wins}/{len(pairs)} orders, gap smaller in "
                f"{gap_wins}/{len(pairs)} (equal in {gap_ties}).",
            ]
    return "\n".join(lines)


def _budget_pairs(
    results: dict[str, list[ReplayResult]],
    budget_results: dict[str, list[ReplayResult]],
    reference: str,
) -> list[tuple[list[ReplayResult], list[ReplayResult]]]:
    """(reference runs, ASHA runs) at equal budgets: at the reference's spend, at ASHA's."""
    pairs = []
    if f"asha @ {reference} budget" in budget_results:
        pairs.append((results[reference], budget_results[f"asha @ {reference} budget"]))
    if f"{reference} @ asha budget" in budget_results:
        pairs.append((budget_results[f"{reference} @ asha budget"], results["asha"]))
    return pairs


def target_verdict(
    results: dict[str, list[ReplayResult]],
    budget_results: dict[str, list[ReplayResult]],
    full_epochs: int,
    reference: str = "gl",
) -> str:
    """The issue's target, checked on the means: within 1 % of no-stopping's best val loss at
    <= 35 % of its epochs, and at an equal budget no worse than ASHA on val loss and better on
    gap."""
    runs, refs = results[reference], results["none"]
    ratio = statistics.fmean(_ratios(runs, refs, "best_val_loss"))
    fraction = statistics.fmean(r.epochs / full_epochs for r in runs)
    parts = [
        f"{reference}: best val_loss ratio {ratio:.4f} (target <= 1.01: "
        f"{'met' if ratio <= 1.01 else 'missed'}), epoch fraction {fraction:.3f} "
        f"(target <= 0.35: {'met' if fraction <= 0.35 else 'missed'})"
    ]
    for mine, theirs in _budget_pairs(results, budget_results, reference):
        val_ref = statistics.fmean(r.best_val_loss for r in mine)
        val_asha = statistics.fmean(r.best_val_loss for r in theirs)
        gap_ref = statistics.fmean(r.best_gap for r in mine)
        gap_asha = statistics.fmean(r.best_gap for r in theirs)
        which = f"{reference}'s spend" if mine is runs else "asha's spend"
        parts.append(
            f"vs asha at {which}: val_loss {val_ref:.4f} vs {val_asha:.4f} "
            f"({'met' if val_ref <= val_asha else 'missed'}), gap {gap_ref:.4f} vs "
            f"{gap_asha:.4f} ({'met' if gap_ref < gap_asha else 'missed'})"
        )
    return "target: " + "; ".join(parts)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true", help="train and record the curves")
    mode.add_argument("--quick", action="store_true", help="5 subsets per setup (no training)")
    mode.add_argument(
        "--orders", action="store_true", help="issue 4's tables: reorderings of one pool"
    )
    parser.add_argument(
        "--curves",
        type=Path,
        action="append",
        default=None,
        help="curve CSV (repeatable; default: the held-out banks, or digits.csv for --orders "
        "and --record)",
    )
    parser.add_argument(
        "--chosen", action="store_true", help="also report the banks the default was chosen on"
    )
    parser.add_argument(
        "--feedback",
        action="store_true",
        help="searches proposed by the product's TPE with feedback (bench/_feedback.py) "
        "instead of random subsets; banks of 40+ configurations",
    )
    mode.add_argument(
        "--predictability",
        action="store_true",
        help="how well each bank's early ranking foretells a search's winner (no policy)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the markdown tables")
    parser.add_argument("--plot", type=Path, default=None, help="write the frontier as a PNG")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="subsets per setup (default 50; 5 --quick), or orders with --orders (default 20)",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="trials side by side")
    parser.add_argument(
        "--setup",
        choices=("digits", "mobilenetv2", "digits-small", "digits10"),
        default="digits",
        help="--record: the demo's digits CNN, the MobileNetV2 fixture at 96 px, or an "
        "overfitting-regime digits setup (bench/_record.py OVERFIT_SETUPS)",
    )
    parser.add_argument("--configs", type=int, default=None, help="--record: configurations")
    parser.add_argument("--epochs", type=int, default=None, help="--record: max_epochs")
    parser.add_argument("--sample-seed", type=int, default=0, help="--record: sampler seed")
    return parser.parse_args(argv)


def _orders(args: argparse.Namespace, path: Path) -> int:
    """Issue 4's report: every policy over seeded reorderings of one pool."""
    started = time.monotonic()
    curves = load_curves(path)
    n_seeds = args.seeds if args.seeds is not None else 20
    seeds = list(range(n_seeds))
    results, budget_results, budgets = run_benchmark(curves, seeds, concurrency=args.concurrency)
    full = sum(c.epochs for c in curves)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(
        f"curves {path} ({len(curves)} configs, {full} epochs without stopping); "
        f"{n_seeds} orders, concurrency {args.concurrency}; "
        f"replay {time.monotonic() - started:.1f}s on {python}"
    )
    print(markdown_tables(results, budget_results, budgets, full))
    print(target_verdict(results, budget_results, full))
    print(summary_line(results, full))
    return 0


def frontier_verdict(pooled: dict[str, list[Score]], name: str = "default") -> str:
    """Issue 18's target on the pooled held-out subsets, and the peers that dominate ``name``."""
    mine = pooled[name]
    fraction = statistics.fmean(s.fraction for s in mine)
    ratio = statistics.fmean(s.ratio for s in mine)
    within = _within(mine)
    dominated_by = [
        other
        for other, scores in pooled.items()
        if other not in (name, "none")
        and statistics.fmean(s.fraction for s in scores) <= fraction
        and statistics.fmean(s.ratio for s in scores) <= ratio
        and _within(scores) >= within
    ]
    test = _test_ratio(mine)
    return (
        f"target: {name}: epoch fraction {fraction:.3f} (<= 0.35: "
        f"{'met' if fraction <= 0.35 else 'missed'}), mean best ratio {ratio:.4f} (<= 1.01: "
        f"{'met' if ratio <= 1.01 else 'missed'}), within 1% in {100 * within:.0f}% of subsets "
        f"(>= 90%: {'met' if within >= 0.9 else 'missed'}); dominated by: "
        f"{', '.join(dominated_by) or 'none'}"
        + (f"; the exported trial's test loss ratio {test:.4f}" if math.isfinite(test) else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Record or replay (see the module docstring); returns the exit status."""
    args = _parse(argv)
    if args.record:
        from _record import record_setup

        out = args.curves[0] if args.curves else DEFAULT_CURVES
        record_setup(args.setup, out, args.configs, args.epochs, args.sample_seed)
        return 0
    if args.orders:
        for path in args.curves or [DEFAULT_CURVES]:
            _orders(args, path)
        return 0
    if args.predictability:
        names = (CHOSEN_ON if args.chosen else ()) + HELD_OUT
        paths = list(args.curves or [HERE / "curves" / n for n in names])
        pools = {p.stem: load_curves(p) for p in paths if p.exists()}
        per_bank = {
            name: predictability(pool, args.seeds or 500)
            for name, pool in pools.items()
            if len(pool) >= FEEDBACK_TRIALS  # a search of 24 needs a pool of 24 or more
        }
        print(predictability_table(per_bank, (2, 4, 8, 12, 16)))
        cheapest, every = {}, {}
        for name, pool in pools.items():
            if len(pool) < FEEDBACK_TRIALS:
                continue
            every[name] = schedules(pool, 2, None, args.seeds or 500)
            upto2 = cheapest_schedules(every[name], 2)
            coarse = cheapest_schedules(schedules(pool, 3, COARSE_RUNGS, args.seeds or 500), 3)
            three = min([*upto2, *coarse], key=lambda r: r.fraction, default=None)
            cheapest[name] = upto2 + ([three] if three is not None else [])
        print()
        print(schedule_table(cheapest))
        held = {Path(n).stem for n in HELD_OUT}
        # the selection banks only: they run 20-30 epochs, where the digits banks' 12-20 would
        # bar every rung past epoch 11 from a schedule shared with them
        chosen = {Path(n).stem for n in CHOSEN_ON if n.startswith("selection/")}
        choosing = {k: v for k, v in every.items() if k in chosen}
        if args.chosen and choosing:
            print()
            print(fixed_schedule_lines(choosing, {k: v for k, v in every.items() if k in held}))
        return 0
    started = time.monotonic()
    if args.curves:
        paths = list(args.curves)
        held = {str(p) for p in paths}
    else:
        names = (CHOSEN_ON if args.chosen else ()) + HELD_OUT
        paths = [HERE / "curves" / n for n in names if (HERE / "curves" / n).exists()]
        held = {str(HERE / "curves" / n) for n in HELD_OUT}
    default_n = (5 if args.quick else 20) if args.feedback else (5 if args.quick else 50)
    n_subsets = args.seeds if args.seeds is not None else default_n
    per_setup: dict[str, dict[str, list[Score]]] = {}
    pooled: dict[str, list[Score]] = {}
    for path in paths:
        curves = load_curves(path)
        if args.feedback and len(curves) < FEEDBACK_MIN_POOL:
            print(f"curves {path}: {len(curves)} configs, too few for --feedback; left out")
            continue
        if args.feedback:
            scores = feedback_benchmark(curves, n_subsets)
            how = (
                f"{n_subsets} TPE searches of {min(FEEDBACK_TRIALS, len(curves))} trials "
                f"({FEEDBACK_CONCURRENCY} side by side) with feedback"
            )
        else:
            scores = subset_benchmark(curves, n_subsets)
            how = f"{n_subsets} random {min(SUBSET_SIZE, len(curves))}-configuration subsets"
        label = path.stem + ("" if str(path) in held else " (chosen on)")
        per_setup[label] = scores
        best_epochs = sorted(c.val_loss.index(min(c.val_loss)) + 1 for c in curves)
        print(
            f"curves {path}: {len(curves)} configs x {max(c.epochs for c in curves)} epochs, "
            f"median best epoch {best_epochs[len(best_epochs) // 2]}; {how}"
        )
        if str(path) in held:
            for name, runs in scores.items():
                pooled.setdefault(name, []).extend(runs)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"replay {time.monotonic() - started:.1f}s on {python}")
    if args.markdown or not args.quick:
        pooled_banks = sum(str(path) in held for path in paths)
        label = "pooled" if args.curves else "pooled (held out)"
        print(frontier_table({**per_setup, label: pooled} if pooled_banks > 1 else per_setup))
        for label, scores in per_setup.items():
            for name in ("default", "safe", "fast"):
                if name in scores:
                    print(f"{label}: {name} stopped per subset: {stopped_by_line(scores[name])}")
    if args.plot is not None:
        print(f"frontier plot: {plot_frontier(per_setup, args.plot)}")
    if pooled:
        if "default" in pooled:
            print(frontier_verdict(pooled))
        print(subset_summary_line(pooled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
