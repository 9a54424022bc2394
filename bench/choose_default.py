"""Choose the stopping presets (issue 18, rounds 3 and 4) on the choosing curve banks only.

Replays a grid of the two-part policy (the ``peak`` overfit rule and a budget rule,
``halving`` or ``median``) over random 30-configuration searches of every bank in
``pruning.CHOSEN_ON`` and prints, per setting, the pooled mean epoch fraction and mean best
val-loss ratio to no stopping (the same scores as ``bench/pruning.py``), then the setting each
preset takes:

- each preset minimises ``fraction + weight * (ratio - 1)`` pooled over the choosing banks, with
  the weight saying what 1 % of best val loss is worth in epochs: ``safe`` 20 (1 % of quality
  = 20 % of the epochs), ``balanced`` 5, ``fast`` 1.5.

The banks named in ``pruning.HELD_OUT`` are refused: the presets are reported on them by
``bench/pruning.py`` only after the choice is committed.

Usage::

    python bench/choose_default.py            # 20 subsets per bank
    python bench/choose_default.py --seeds 5  # a quick look
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

from _policies import Judge, NoStopping, replay  # noqa: E402
from pruning import CHOSEN_ON as CHOOSING  # noqa: E402
from pruning import HELD_OUT, SUBSET_SIZE, load_curves, random_subsets  # noqa: E402

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


def _grid(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def score(
    subsets: dict[str, list[list[Any]]],
    fulls: dict[str, list[Any]],
    peak: dict[str, Any],
    budget: dict[str, Any],
) -> tuple[float, float, float, dict[str, tuple[float, float]]]:
    """Pooled (fraction, ratio, share within 1 %) and per-bank (fraction, ratio) of a setting."""
    per: dict[str, tuple[float, float]] = {}
    fractions: list[float] = []
    ratios: list[float] = []
    for bank, searches in subsets.items():
        f_bank, r_bank = [], []
        for search, full in zip(searches, fulls[bank], strict=True):
            policy = Judge("c", "peak", budget=budget, **peak)
            result = replay(search, policy)
            f_bank.append(result.epochs / full.epochs)
            r_bank.append(result.best_val_loss / full.best_val_loss)
        per[bank] = (statistics.fmean(f_bank), statistics.fmean(r_bank))
        fractions += f_bank
        ratios += r_bank
    within = sum(r <= 1.01 for r in ratios) / len(ratios)
    return statistics.fmean(fractions), statistics.fmean(ratios), within, per


def main(argv: Sequence[str] | None = None) -> int:
    """Replay the grid on the choosing banks; print every setting and each preset's pick."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="random subsets per bank")
    args = parser.parse_args(argv)
    started = time.monotonic()
    subsets, fulls = {}, {}
    for bank in CHOOSING:
        if bank in HELD_OUT:
            raise SystemExit(f"{bank} is held out: the presets are never chosen on it")
        path = HERE / "curves" / bank
        subsets[bank] = random_subsets(load_curves(path), args.seeds, SUBSET_SIZE)
        fulls[bank] = [replay(s, NoStopping()) for s in subsets[bank]]
    rows = []
    budgets = [{"name": name, **b} for name, grid in BUDGET_GRIDS.items() for b in _grid(grid)]
    for peak in _grid(PEAK_GRID):
        for budget in budgets:
            fraction, ratio, within, per = score(subsets, fulls, peak, budget)
            rows.append((fraction, ratio, within, peak, budget, per))
            print(
                f"peak {peak} budget {budget}: {fraction:.3f} / {ratio:.4f} / {100 * within:.0f}%",
                flush=True,
            )
    seconds = time.monotonic() - started
    print(f"replayed {len(rows)} settings on {len(CHOOSING)} banks in {seconds:.0f}s")
    for preset, weight in WEIGHTS.items():
        fraction, ratio, within, peak, budget, per = min(
            rows, key=lambda r: r[0] + weight * (r[1] - 1.0)
        )
        print(
            f"{preset} (weight {weight:g}): peak {peak} budget {budget}: pooled {fraction:.3f} / "
            f"{ratio:.4f} / {100 * within:.0f}% within 1 %; per bank "
            + " ".join(f"{Path(b).stem} {f:.2f}/{r:.3f}" for b, (f, r) in per.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
