"""Choose the stopping presets (issue 18, rounds 3 to 5) on the choosing curve banks only.

Replays a grid of the two-part policy (the ``peak`` overfit rule and a budget rule,
``halving`` or ``median``) over random 30-configuration searches of every bank in
``pruning.CHOSEN_ON`` and prints, per setting, the pooled mean epoch fraction and mean best
val-loss ratio to no stopping (the same scores as ``bench/pruning.py``), then the setting each
preset takes:

- each preset minimises ``fraction + weight * (ratio - 1)`` pooled over the choosing banks, with
  the weight saying what 1 % of best val loss is worth in epochs: ``safe`` 20 (1 % of quality
  = 20 % of the epochs), ``balanced`` 5, ``fast`` 1.5. With ``--feedback`` (round 5), the
  settings within one standard error of that minimum tie, and the one with the lowest mean
  ratio among them is picked (:func:`one_se_pick`).

With ``--feedback`` (round 5) each search is a TPE search with feedback
(``bench/_feedback.py``, the banks of 40+ configurations) instead of a random subset, and the
grid is round 5's.

The banks named in ``pruning.HELD_OUT`` are refused: the presets are reported on them by
``bench/pruning.py`` only after the choice is committed.

Usage::

    python bench/choose_default.py            # 20 subsets per bank
    python bench/choose_default.py --seeds 5  # a quick look
    python bench/choose_default.py --feedback --seeds 10  # round 5
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _feedback import SamplerFeed  # noqa: E402
from _policies import Judge, NoStopping, replay  # noqa: E402
from pruning import CHOSEN_ON as CHOOSING  # noqa: E402
from pruning import (  # noqa: E402
    FEEDBACK_CONCURRENCY,
    FEEDBACK_MIN_POOL,
    FEEDBACK_TRIALS,
    HELD_OUT,
    SUBSET_SIZE,
    load_curves,
    random_subsets,
)

WEIGHTS = {"safe": 20.0, "balanced": 5.0, "fast": 1.5}
"""Preset -> epochs fraction that 1.0 of best val-loss ratio is worth (see the docstring)."""

PEAK_GRID = {"patience": (3, 4), "z": (2.0, 3.0), "smooth": (3, 5), "sustained": (False, True)}
BUDGET_GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    "halving": {
        "first_rung": (1, 2),
        "reduction_factor": (3.0, 4.0),
        "min_trials": (5, 8),
        "z": (1.0, 3.0),
    },
    "median": {
        "grace": (2, 4),
        "min_trials": (5, 8),
        "percentile": (50.0, 67.0),
        "z": (1.0, 3.0),
    },
}
"""Round 4's grid (512 settings): round 3's peak rule with a running median of 3 or 5 and the
``sustained`` reading, each with the halving budget rule or the median one."""


FEEDBACK_PEAK_GRID = {"patience": (4,), "z": (2.0,), "smooth": (3, 5), "sustained": (False, True)}
FEEDBACK_BUDGET_GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    "halving": {
        "first_rung": (1, 2),
        "reduction_factor": (2.0, 3.0, 4.0),
        "min_trials": (3, 5, 8),
        "z": (0.0, 0.5, 1.0, 3.0),
    },
    "median": {
        "grace": (2, 4),
        "min_trials": (5, 8),
        "percentile": (50.0, 67.0),
        "z": (0.0, 1.0, 3.0),
    },
}
"""Round 5's grid (``--feedback``, 384 settings): round 4 showed the peak settings move the
score by under 0.005 and the budget rule is the lever, so the peak rule keeps round 4's
patience 4 and z 2, and the budget grid widens: keep 1 in 2, no tolerance (z 0) or half a noise
unit, and a rung population of 3."""


def _grid(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def score(
    subsets: dict[str, list[Any]],
    fulls: dict[str, list[Any]],
    peak: dict[str, Any],
    budget: dict[str, Any],
    each: list[tuple[float, float]] | None = None,
) -> tuple[float, float, float, dict[str, tuple[float, float]]]:
    """Pooled (fraction, ratio, share within 1 %) and per-bank (fraction, ratio) of a setting;
    each search's (fraction, ratio) is appended to ``each`` when given.

    ``subsets[bank]`` holds random subsets (lists of curves) or, with sampler feedback,
    ``(pool, seed)`` pairs: each search is then a fresh ``SamplerFeed`` of the pool.
    """
    per: dict[str, tuple[float, float]] = {}
    fractions: list[float] = []
    ratios: list[float] = []
    for bank, searches in subsets.items():
        f_bank, r_bank = [], []
        for search, full in zip(searches, fulls[bank], strict=True):
            policy = Judge("c", "peak", budget=budget, **peak)
            result = _run(search, policy)
            f_bank.append(result.epochs / full.epochs)
            r_bank.append(result.best_val_loss / full.best_val_loss)
        per[bank] = (statistics.fmean(f_bank), statistics.fmean(r_bank))
        if each is not None:
            each.extend(zip(f_bank, r_bank, strict=True))
        fractions += f_bank
        ratios += r_bank
    within = sum(r <= 1.01 for r in ratios) / len(ratios)
    return statistics.fmean(fractions), statistics.fmean(ratios), within, per


def one_se_pick(
    rows: Sequence[tuple[float, float, list[tuple[float, float]]]], weight: float
) -> int:
    """Round 5's pick: the lowest mean ratio among the settings whose mean weighted score
    ``fraction + weight * (ratio - 1)`` is within one standard error of the lowest one's.

    With sampler feedback the scores are noisy (each policy's search follows its own TPE path)
    and near the optimum several settings tie; among those, the one that loses least quality
    (the one-standard-error rule of model selection).

    Args:
        rows: Per setting: mean fraction, mean ratio and each search's (fraction, ratio).
        weight: Epochs fraction that 1.0 of ratio is worth.

    Returns:
        The index of the picked row.
    """

    def scores(row: tuple[float, float, list[tuple[float, float]]]) -> list[float]:
        return [f + weight * (r - 1.0) for f, r in row[2]]

    means = [statistics.fmean(scores(row)) for row in rows]
    best = min(range(len(rows)), key=means.__getitem__)
    spread = scores(rows[best])
    se = statistics.stdev(spread) / len(spread) ** 0.5 if len(spread) > 1 else 0.0
    near = [i for i, m in enumerate(means) if m <= means[best] + se]
    return min(near, key=lambda i: (rows[i][1], rows[i][0]))


def _run(search: Any, policy: Any) -> Any:
    """Replay one search: a random subset, or a ``(pool, seed)`` TPE search with feedback."""
    if isinstance(search, tuple):
        pool, seed = search
        feed = SamplerFeed(pool, FEEDBACK_TRIALS, seed)
        return replay(feed, policy, FEEDBACK_CONCURRENCY)
    return replay(search, policy)


def main(argv: Sequence[str] | None = None) -> int:
    """Replay the grid on the choosing banks; print every setting and each preset's pick."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="searches per bank")
    parser.add_argument(
        "--feedback",
        action="store_true",
        help="round 5: TPE searches with feedback (bench/_feedback.py) on the banks of 40+ "
        "configurations, and round 5's grid",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    subsets: dict[str, list[Any]] = {}
    fulls: dict[str, list[Any]] = {}
    for bank in CHOOSING:
        if bank in HELD_OUT:
            raise SystemExit(f"{bank} is held out: the presets are never chosen on it")
        pool = load_curves(HERE / "curves" / bank)
        if args.feedback:
            if len(pool) < FEEDBACK_MIN_POOL:
                continue
            subsets[bank] = [(pool, seed) for seed in range(args.seeds)]
        else:
            subsets[bank] = random_subsets(pool, args.seeds, SUBSET_SIZE)
        fulls[bank] = [_run(s, NoStopping()) for s in subsets[bank]]
    print(f"choosing on {len(subsets)} banks: {', '.join(subsets)}", flush=True)
    rows = []
    peak_grid = FEEDBACK_PEAK_GRID if args.feedback else PEAK_GRID
    budget_grids = FEEDBACK_BUDGET_GRIDS if args.feedback else BUDGET_GRIDS
    budgets = [{"name": name, **b} for name, grid in budget_grids.items() for b in _grid(grid)]
    for peak in _grid(peak_grid):
        for budget in budgets:
            pairs: list[tuple[float, float]] = []
            fraction, ratio, within, per = score(subsets, fulls, peak, budget, pairs)
            rows.append((fraction, ratio, within, peak, budget, per, pairs))
            print(
                f"peak {peak} budget {budget}: {fraction:.3f} / {ratio:.4f} / {100 * within:.0f}%",
                flush=True,
            )
    seconds = time.monotonic() - started
    print(f"replayed {len(rows)} settings on {len(subsets)} banks in {seconds:.0f}s")
    for preset, weight in WEIGHTS.items():
        if args.feedback:
            picked = rows[one_se_pick([(r[0], r[1], r[6]) for r in rows], weight)]
        else:
            picked = min(rows, key=lambda r: r[0] + weight * (r[1] - 1.0))
        fraction, ratio, within, peak, budget, per, _ = picked
        print(
            f"{preset} (weight {weight:g}): peak {peak} budget {budget}: pooled {fraction:.3f} / "
            f"{ratio:.4f} / {100 * within:.0f}% within 1 %; per bank "
            + " ".join(f"{Path(b).stem} {f:.2f}/{r:.3f}" for b, (f, r) in per.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
