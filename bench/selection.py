"""Selection benchmark (issue 19): which finished trial generalizes, replayed on recorded banks.

Selection banks (``bench/curves/selection/<setup>.csv``, recorded by
``bench/_record_selection.py`` with the project's own trainer) hold, for every configuration
and epoch, the validation and clean training loss the product sees and the loss and accuracy on
a test split no trial sees. A *sweep* is a random ``--size``-configuration subset of a setup's
pool (``--sweeps`` subsets per setup, a seeded ``numpy.random.Generator``; at most three
quarters of the pool, so that a small pool's sweeps still differ). In each sweep every
selection rule picks one trial from what the product knows of it (``val_loss@best``,
``gap@best``, its validation curve), and the pick is scored by its test loss and accuracy at its
best epoch by val_loss: the weights the product keeps and exports. Every trial runs its full
curve (no stopping), so the comparison is of selection alone.

Per rule: the mean test loss of its picks relative to the lowest-val_loss pick's (ratio of
means over the sweeps), the share of sweeps where its pick's test loss is lower (and higher),
mean test accuracy, optimism (``val_loss@best`` - test loss of the pick) and the extra epochs it
costs (0 for pure selection rules). Rules are compared on the :data:`CHOOSING` setups, and the
product default (:data:`DEFAULT_RULE`) was chosen there; the other setups are held out and the
summary line pools them.

Usage::

    python bench/selection.py --quick        # 300 sweeps per setup; summary line last
    python bench/selection.py                # 2000 sweeps per setup, per-setup tables
    python bench/selection.py --markdown     # the tables for bench/RESULTS.md

No Keras: the replay reads CSV files only.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BANKS = HERE / "curves" / "selection"
RESEED_SUFFIX = "-seed2"
CHOOSING = ("sel-59", "sel-3589-smallval")
"""Setups the default rule was chosen on; every other bank is held out."""
BASELINE = "lowest val_loss"
DEFAULT_RULE = "lowest val_loss"
"""The rule of the product's default ``objective.mode`` (see README, bench/RESULTS.md)."""
PREVIOUS_DEFAULT = "constrained gap<=0.10"
"""The rule of the default before issue 19 (``constrained``, ``max_gap: 0.10``)."""


@dataclass(frozen=True)
class Run:
    """One configuration's recorded curves (epochs from 1 at index 0)."""

    key: str
    val_loss: tuple[float, ...]
    train_eval_loss: tuple[float, ...]
    test_loss: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    reseed_val_loss: tuple[float, ...] = ()
    """The same configuration trained again with another seed (empty: not recorded)."""
    best: int = field(init=False)
    """Index of the best epoch (lowest val_loss; the first on ties), as the product keeps."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "best", _argmin(self.val_loss))

    @property
    def epochs(self) -> int:
        return len(self.val_loss)

    @property
    def val(self) -> float:
        """``val_loss@best``."""
        return self.val_loss[self.best]

    @property
    def gap(self) -> float:
        """``gap@best`` (val_loss - train_eval_loss at the best epoch)."""
        return self.val_loss[self.best] - self.train_eval_loss[self.best]

    @property
    def test(self) -> float:
        """Test loss of the kept (best-epoch) weights."""
        return self.test_loss[self.best]

    @property
    def test_acc(self) -> float:
        return self.test_accuracy[self.best]

    def smoothed(self, radius: int) -> float:
        """Mean val_loss over the best epoch ± ``radius`` (clipped to the run)."""
        lo, hi = max(0, self.best - radius), min(self.epochs, self.best + radius + 1)
        return float(np.mean(self.val_loss[lo:hi]))


def _argmin(values: Sequence[float]) -> int:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    return min(finite)[1] if finite else 0


Rule = Callable[[Sequence[Run]], int]
"""Picks the index of one run of a sweep."""


def _lowest(score: Callable[[Run], float]) -> Rule:
    def pick(runs: Sequence[Run]) -> int:
        return min(range(len(runs)), key=lambda i: (score(runs[i]), i))

    return pick


def constrained(max_gap: float, relative: bool = False) -> Rule:
    """Lowest val_loss among runs with gap <= max_gap (× val_loss if ``relative``); if none,
    the smallest gap, as the product's ``constrained`` mode does."""

    def pick(runs: Sequence[Run]) -> int:
        limit = [max_gap * r.val if relative else max_gap for r in runs]
        feasible = [i for i, r in enumerate(runs) if r.gap <= limit[i]]
        if not feasible:
            return min(range(len(runs)), key=lambda i: (runs[i].gap, i))
        return min(feasible, key=lambda i: (runs[i].val, i))

    return pick


def pareto_front(runs: Sequence[Run]) -> list[int]:
    """Indices of the runs no other run beats on both val_loss@best and gap@best."""
    front = []
    for i, r in enumerate(runs):
        if not any(
            o.val <= r.val and o.gap <= r.gap and (o.val < r.val or o.gap < r.gap) for o in runs
        ):
            front.append(i)
    return front


def pareto_knee(runs: Sequence[Run]) -> int:
    """The Pareto (val_loss, gap) front's knee: the point farthest from the line joining the
    front's two ends, both axes scaled to the front's range; the lowest val_loss if the front
    has fewer than 3 points."""
    front = sorted(pareto_front(runs), key=lambda i: (runs[i].val, i))
    if len(front) < 3:
        return front[0]
    v = np.array([runs[i].val for i in front])
    g = np.array([runs[i].gap for i in front])
    v = (v - v.min()) / max(float(np.ptp(v)), 1e-12)
    g = (g - g.min()) / max(float(np.ptp(g)), 1e-12)
    # the ends are (0, 1) (lowest val, largest gap) and (1, 0); distance to x + y = 1
    distance = (1.0 - v - g) / math.sqrt(2.0)
    return front[int(np.argmax(distance))]


def reseed_mean(runs: Sequence[Run]) -> int:
    """Lowest mean of val_loss@best over the two seeds (runs without a second seed: one)."""

    def score(r: Run) -> float:
        if not r.reseed_val_loss:
            return r.val
        return (r.val + min(r.reseed_val_loss)) / 2.0

    return _lowest(score)(runs)


def rules() -> dict[str, Rule]:
    """Every selection rule of the benchmark, by name (the baseline first)."""
    out: dict[str, Rule] = {BASELINE: _lowest(lambda r: r.val)}
    for m in (0.05, 0.10, 0.15, 0.25):
        out[f"constrained gap<={m:.2f}"] = constrained(m)
    for m in (0.5, 1.0, 2.0):
        out[f"constrained gap<={m:g}*val"] = constrained(m, relative=True)
    for w in (0.25, 0.5, 1.0, 2.0):
        out[f"penalized val+{w:g}*gap"] = _lowest(lambda r, w=w: r.val + w * r.gap)
    out["penalized hinge w=1 gap>0.10"] = _lowest(lambda r: r.val + max(0.0, r.gap - 0.10))
    out["pareto knee"] = pareto_knee
    for k in (1, 2):
        out[f"smoothed best±{k}"] = _lowest(lambda r, k=k: r.smoothed(k))
    out["last-3 mean"] = _lowest(lambda r: float(np.mean(r.val_loss[-3:])))
    return out


ORACLE = "oracle (lowest test loss)"


@dataclass
class Tally:
    """Per-sweep outcomes of one rule (aligned with the baseline's)."""

    test: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    base_acc: list[float] = field(default_factory=list)
    optimism: list[float] = field(default_factory=list)
    extra_epochs: list[float] = field(default_factory=list)
    """Extra epochs as a fraction of the sweep's epochs."""

    def add(self, other: Tally) -> None:
        for name in ("test", "base", "acc", "base_acc", "optimism", "extra_epochs"):
            getattr(self, name).extend(getattr(other, name))

    @property
    def sweeps(self) -> int:
        return len(self.test)

    @property
    def ratio(self) -> float:
        return float(np.mean(self.test) / np.mean(self.base)) if self.test else math.nan

    @property
    def better(self) -> float:
        return float(np.mean(np.array(self.test) < np.array(self.base))) if self.test else math.nan

    @property
    def worse(self) -> float:
        return float(np.mean(np.array(self.test) > np.array(self.base))) if self.test else math.nan


def replay(
    runs: Sequence[Run], sweeps: int, size: int, seed: int, picks: dict[str, Rule] | None = None
) -> dict[str, Tally]:
    """Draw ``sweeps`` random ``size``-run subsets of ``runs`` and score every rule's pick.

    The reseed rule is replayed on subsets of the runs that have a second seed only (``size``
    or fewer of them), against the baseline's pick on the same subsets (``"lowest val_loss
    (reseeded pool)"``); it is absent when no run has one.

    Returns:
        Rule name -> its tally; the baseline's own tally has ratio 1.
    """
    picks = picks if picks is not None else rules()
    rng = np.random.default_rng(seed)
    out: dict[str, Tally] = {name: Tally() for name in [*picks, ORACLE]}
    n = sweep_size(size, len(runs))
    for _ in range(sweeps):
        sweep = [runs[i] for i in sorted(rng.choice(len(runs), size=n, replace=False))]
        base = sweep[picks[BASELINE](sweep)] if BASELINE in picks else sweep[0]
        chosen = {name: sweep[rule(sweep)] for name, rule in picks.items()}
        chosen[ORACLE] = min(sweep, key=lambda r: r.test)
        for name, run in chosen.items():
            _score(out[name], run, base, 0.0)
    reseeded = [r for r in runs if r.reseed_val_loss]
    if len(reseeded) >= 3:
        m = sweep_size(size, len(reseeded))
        mean_t, base_t = Tally(), Tally()
        for _ in range(sweeps):
            sweep = [reseeded[i] for i in sorted(rng.choice(len(reseeded), size=m, replace=False))]
            base = sweep[_lowest(lambda r: r.val)(sweep)]
            extra = sum(len(r.reseed_val_loss) for r in sweep) / sum(r.epochs for r in sweep)
            _score(mean_t, sweep[reseed_mean(sweep)], base, extra)
            _score(base_t, base, base, 0.0)
        out[f"{BASELINE} (reseeded pool)"] = base_t
        out["reseed mean k=2 (reseeded pool)"] = mean_t
    return out


def sweep_size(size: int, pool: int) -> int:
    """Configurations per sweep: ``size``, at most three quarters of the pool (so that the
    sweeps of a small pool still differ), at least 3 (or the whole pool if smaller)."""
    return min(size, max(3, (3 * pool) // 4), pool)


def _score(tally: Tally, run: Run, base: Run, extra: float) -> None:
    tally.test.append(run.test)
    tally.base.append(base.test)
    tally.acc.append(run.test_acc)
    tally.base_acc.append(base.test_acc)
    tally.optimism.append(run.val - run.test)
    tally.extra_epochs.append(extra)


def load_bank(path: Path) -> list[Run]:
    """Read a selection bank and its ``-seed2`` companion (if present) into runs.

    Raises:
        ValueError: A configuration's epochs are not 1..n, or test columns are missing.
    """
    rows = _rows(path)
    second = path.with_name(path.stem + RESEED_SUFFIX + path.suffix)
    reseed = _rows(second) if second.exists() else {}
    runs = []
    for key in sorted(rows, key=lambda k: (len(k), k)):
        group = rows[key]
        if "test_loss" not in group[0]:
            raise ValueError(f"{path}: no test_loss column (not a selection bank)")
        runs.append(
            Run(
                key,
                tuple(float(r["val_loss"]) for r in group),
                tuple(float(r["train_eval_loss"]) for r in group),
                tuple(float(r["test_loss"]) for r in group),
                tuple(float(r["test_accuracy"]) for r in group),
                tuple(float(r["val_loss"]) for r in reseed.get(key, [])),
            )
        )
    return runs


def _rows(path: Path) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows.setdefault(row["config"], []).append(row)
    for key, group in rows.items():
        group.sort(key=lambda r: int(r["epoch"]))
        epochs = [int(r["epoch"]) for r in group]
        if epochs != list(range(1, len(group) + 1)):
            raise ValueError(f"{path}: config {key}: epochs {epochs} are not 1..{len(group)}")
    return rows


def banks(folder: Path) -> dict[str, Path]:
    """Setup name -> bank file (second-seed companions left out)."""
    return {p.stem: p for p in sorted(folder.glob("*.csv")) if not p.stem.endswith(RESEED_SUFFIX)}


def describe(runs: Sequence[Run]) -> str:
    """One line on a pool: size, best epochs, gap and optimism of the runs."""
    best = np.array([r.best + 1 for r in runs])
    epochs = max(r.epochs for r in runs)
    gaps = np.array([r.gap for r in runs])
    return (
        f"{len(runs)} configs x {epochs} epochs ({sum(bool(r.reseed_val_loss) for r in runs)} "
        f"reseeded), best epoch median {np.median(best):.0f} (10-90%: "
        f"{np.percentile(best, 10):.0f}-{np.percentile(best, 90):.0f}), gap@best median "
        f"{np.median(gaps):.3f}, val_loss@best min {min(r.val for r in runs):.3f}"
    )


def table(tallies: dict[str, Tally], markdown: bool) -> list[str]:
    """The per-rule lines (Markdown table rows with ``markdown``)."""
    head = ("rule", "test loss / lowest", "lower", "higher", "test acc", "optimism", "extra ep")
    lines = []
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    else:
        lines.append(f"{head[0]:<36} {'ratio':>6} {'lower':>6} {'higher':>6} {'acc':>6} "
                     f"{'optim':>7} {'extra':>6}")  # fmt: skip
    for name, t in tallies.items():
        if not t.sweeps:
            continue
        cells = (
            f"{t.ratio:.3f}",
            f"{t.better:.2f}",
            f"{t.worse:.2f}",
            f"{np.mean(t.acc):.3f}",
            f"{np.mean(t.optimism):+.3f}",
            f"{np.mean(t.extra_epochs):.2f}",
        )
        label = name + (" **(default)**" if markdown and name == DEFAULT_RULE else "")
        if markdown:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        else:
            mark = "*" if name == DEFAULT_RULE else " "
            lines.append(
                f"{mark}{name:<35} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6} {cells[3]:>6} "
                f"{cells[4]:>7} {cells[5]:>6}"
            )
    return lines


def pooled(results: dict[str, dict[str, Tally]], setups: Sequence[str]) -> dict[str, Tally]:
    """Rule -> the tallies of ``setups`` pooled."""
    out: dict[str, Tally] = {}
    for setup in setups:
        for name, t in results[setup].items():
            out.setdefault(name, Tally()).add(t)
    return out


def best_rule(tallies: dict[str, Tally]) -> str:
    """The pure selection rule (no extra epochs, not the oracle) with the lowest ratio."""
    candidates = {
        n: t for n, t in tallies.items() if n != ORACLE and "reseeded pool" not in n and t.sweeps
    }
    return min(candidates, key=lambda n: (round(candidates[n].ratio, 4), n != BASELINE, n))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 sweeps per setup")
    parser.add_argument("--sweeps", type=int, default=None, help="sweeps per setup")
    parser.add_argument("--size", type=int, default=30, help="configurations per sweep")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sweep draws")
    parser.add_argument("--banks", type=Path, default=BANKS, help="folder of selection banks")
    parser.add_argument(
        "--choosing", default=",".join(CHOOSING), help="comma-separated choosing setups"
    )
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    sweeps = args.sweeps or (300 if args.quick else 2000)
    found = banks(args.banks)
    if not found:
        print(f"no selection banks in {args.banks}", file=sys.stderr)
        return 2
    choosing = [s for s in args.choosing.split(",") if s in found]
    held_out = [s for s in found if s not in choosing]
    results: dict[str, dict[str, Tally]] = {}
    for index, (setup, path) in enumerate(found.items()):
        runs = load_bank(path)
        results[setup] = replay(runs, sweeps, args.size, args.seed * 1000 + index)
        role = "choosing" if setup in choosing else "held out"
        n = sweep_size(args.size, len(runs))
        print(f"\n## {setup} ({role}): {describe(runs)}; sweeps of {n}")
        if not args.quick:
            print("\n".join(table(results[setup], args.markdown)))
    for label, group in (("choosing", choosing), ("held out", held_out)):
        if not group:
            continue
        print(f"\n## {label}: {', '.join(group)}; {sweeps} sweeps per setup")
        print("\n".join(table(pooled(results, group), args.markdown)))
    if choosing:
        winner = best_rule(pooled(results, choosing))
        print(f"\nchosen on {', '.join(choosing)}: {winner} (product default: {DEFAULT_RULE})")
    group = held_out or choosing
    pool = pooled(results, group)
    previous = pool[PREVIOUS_DEFAULT]
    print(
        f"previous default ({PREVIOUS_DEFAULT}) {previous.ratio:.3f} "
        f"better={previous.better:.3f} worse={previous.worse:.3f}"
    )
    tally = pool[DEFAULT_RULE]
    print(f"default {tally.ratio:.3f} better={tally.better:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
