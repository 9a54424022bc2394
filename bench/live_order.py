"""Replay stopping policies over a live sweep's own trials, in the order the sampler proposed them.

The replay with feedback (``bench/pruning.py --feedback``) snaps each of TPE's proposals to the
nearest unused configuration of a 60-configuration bank; live, TPE proposes near-twins of the
leaders instead, and the default has spent more live than in that replay on every setup tried
(0.61-0.68 of the epochs on the MobileNetV2 setups where the replay said 0.46). This replay
starts from a live sweep with no stopping (``bench/live.py --policies none``): every trial ran
to the end, so each has its whole curve, and the trials stand in the order TPE proposed them.
Each policy is replayed over those curves in that order, 2 at a time as ``bench/live.py`` runs
them, against the sweep's own best.

What it leaves out: a policy's stops change what TPE is told, and so, in a live sweep of that
policy, the later proposals. ``--check`` measures how much that matters: it replays the
policies that also ran live on the same setup and seed and prints both.

Usage::

    # a live no-stopping sweep becomes an ordered bank (config = trial number)
    python bench/live.py --setup ov-59-hilr --seed 0 --policies none --out /tmp/live/ov-59-hilr-s0
    python bench/live_order.py --convert /tmp/live/ov-59-hilr-s0/ov-59-hilr-none-seed0 \\
        --out bench/curves/live/ov-59-hilr-s0.csv
    python bench/live_order.py                      # every policy on the committed live banks
    python bench/live_order.py --check /tmp/live/mn2-photos-s0   # replay against live sweeps
    python bench/live_order.py --bound              # what a fixed rank schedule could do at best
    python bench/live_order.py --prior              # ... chosen on earlier studies of the setup
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _policies import Curve, PolicyFactory, ReplayResult, frontier_policies, replay  # noqa: E402
from _record import CURVE_COLUMNS  # noqa: E402
from pruning import (  # noqa: E402
    HELD_OUT,
    KNOBS,
    Schedule,
    fixed_schedule,
    load_curves,
    schedules,
)

LIVE_BANKS = HERE / "curves" / "live"
CONCURRENCY = 2
"""Trials side by side, as ``bench/live.py`` runs its sweeps."""
HELD_OUT_SETUPS = frozenset(Path(b).stem for b in HELD_OUT)
"""Setups whose live banks are reported, never chosen on (the held-out curve banks' setups)."""


def setup_of(bank: Path) -> str:
    """The setup a live bank was recorded on: its file name without ``-sSEED``."""
    return bank.stem.rsplit("-s", 1)[0]


def convert(sweep: Path, out: Path) -> int:
    """Write a live no-stopping sweep's histories as a curve bank, config = trial number.

    Args:
        sweep: A ``bench/live.py`` sweep folder (``histories.csv`` and ``trials.csv``).
        out: The CSV to write (``bench/pruning.py``'s curve format).

    Returns:
        The number of trials written.

    Raises:
        ValueError: A trial stopped early, or did not complete (its curve would be partial).
    """
    with (sweep / "trials.csv").open(newline="") as fh:
        trials = {row["number"]: row for row in csv.DictReader(fh)}
    epochs = {int(t["epochs_run"]) for t in trials.values()}
    bad = [n for n, t in trials.items() if t["state"] != "COMPLETE" or t["stopped_early"] == "True"]
    if bad or len(epochs) != 1:
        raise ValueError(
            f"{sweep}: trials {bad or sorted(trials)} did not all run the same number of epochs "
            "to the end; convert a sweep with no stopping (--policies none)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with (sweep / "histories.csv").open(newline="") as src, out.open("w", newline="") as dst:
        writer = csv.DictWriter(dst, CURVE_COLUMNS)
        writer.writeheader()
        rows = sorted(csv.DictReader(src), key=lambda r: (int(r["trial"]), int(r["epoch"])))
        for row in rows:
            trial = trials[row["trial"]]
            writer.writerow(
                {
                    "config": row["trial"],
                    **{k: trial.get(f"param_{k}", "") for k in KNOBS},
                    **{k: row[k] for k in CURVE_COLUMNS if k in row},
                }
            )
    return len(trials)


def replay_order(curves: Sequence[Curve], factory: PolicyFactory, seed: int = 0) -> ReplayResult:
    """One policy over ``curves`` in their (the sampler's) order, :data:`CONCURRENCY` at a time."""
    horizon = max(c.epochs for c in curves)
    return replay(list(curves), factory(seed, horizon), CONCURRENCY)


def best_of(curves: Sequence[Curve]) -> float:
    """The lowest val loss of any curve: the no-stopping sweep's best."""
    return min(min(c.val_loss) for c in curves)


def row(curves: Sequence[Curve], result: ReplayResult) -> tuple[float, float]:
    """``(epoch fraction, best val loss / the sweep's best)`` of a replay over a live bank."""
    total = sum(c.epochs for c in curves)
    return result.epochs / total, result.best_val_loss / best_of(curves)


def pooled(cells: Sequence[tuple[float, float]]) -> tuple[float, float, int]:
    """Mean epoch fraction, mean best ratio and the banks within 1 %, over :func:`row` cells."""
    return (
        statistics.fmean(c[0] for c in cells),
        statistics.fmean(c[1] for c in cells),
        sum(c[1] <= 1.01 for c in cells),
    )


def table(
    banks: dict[str, list[Curve]], policies: dict[str, PolicyFactory], markdown: bool = False
) -> list[str]:
    """Per policy: each bank's ``fraction / ratio`` and the means over the banks."""
    names = list(banks)
    lines = []
    if markdown:
        lines.append("| policy | " + " | ".join(names) + " | mean | within 1 % |")
        lines.append("|---|" + "---|" * (len(names) + 2))
    for name, factory in policies.items():
        cells = [row(curves, replay_order(curves, factory)) for curves in banks.values()]
        fraction, ratio, within = pooled(cells)
        text = [f"{f:.2f} / {r:.3f}" for f, r in cells]
        mean = f"{fraction:.2f} / {ratio:.3f}"
        if markdown:
            lines.append(f"| {name} | " + " | ".join(text) + f" | {mean} | {within}/{len(cells)} |")
        else:
            lines.append(f"{name:>14}  " + "  ".join(text) + f"  | {mean}  within {within}")
    return lines


BOUND_HITS = (0.5, 0.65, 0.75, 0.9)
"""Shares of the orders, within 1 % of their sweep's best, the bound is given at."""


def whole_order_schedules(
    banks: dict[str, list[Curve]], max_rungs: int
) -> dict[str, list[Schedule]]:
    """Every synchronous schedule of up to ``max_rungs`` rungs replayed on each order, with the
    whole order ranked at once (one search of all its trials)."""
    return {
        k: schedules(c, max_rungs=max_rungs, n_searches=1, size=len(c)) for k, c in banks.items()
    }


def bound(
    banks: dict[str, list[Curve]],
    hits: Sequence[float] = BOUND_HITS,
    max_rungs: int = 2,
    default: PolicyFactory | None = None,
) -> list[str]:
    """What any rank schedule fixed in advance could spend on these orders, at best.

    Every synchronous schedule of up to ``max_rungs`` rungs (``bench/pruning.py``'s
    :func:`~pruning.schedules`: at each rung keep a share of the trials still running, ranked
    by best val loss so far) is replayed on each order, with the whole order ranked at once.
    For each share in ``hits``, the line is the one schedule, the same on every order, that
    keeps a trial within 1 % of the order's best on at least that share of the orders with
    the fewest epochs: chosen on these very orders, in hindsight, and ranking each rung over the
    whole order. A rank rule fixed in advance and run asynchronously knows neither which
    schedule fits these orders nor the trials still to come, so it is not expected to do
    better (it can on one order, by luck); a rule that reads more than the rank is not bounded
    by it.

    Args:
        banks: Live orders (each its sweep's trials, all run to the end).
        hits: The within-1 % shares the bound is given at.
        max_rungs: Rungs a schedule may have.
        default: A policy replayed beside the bound (its fraction and within-1 % share).

    Returns:
        One line per share (saying so where no schedule of the grid reaches it), then the
        default's line where given. Rungs are epochs, so orders of different lengths share
        only the schedules whose rungs all orders have.
    """
    per = whole_order_schedules(banks, max_rungs)
    lines = []
    for hit in hits:
        picked = fixed_schedule(per, hit=hit, pooled=True)
        if picked is None:
            lines.append(f"within 1 % on {hit:.0%} of the orders: no schedule of the grid")
            continue
        fraction = statistics.fmean(x.fraction for x in picked)
        share = statistics.fmean(x.hit for x in picked)
        lines.append(
            f"within 1 % on {hit:.0%} of the orders: {fraction:.3f} of the epochs at best "
            f"({picked[0].label()}; {share:.0%} of the orders)"
        )
    if default is not None:
        lines.append(default_line(banks, default))
    return lines


def default_line(banks: dict[str, list[Curve]], default: PolicyFactory) -> str:
    """The default replayed on every order as it runs: its mean fraction and within-1 % share."""
    cells = [row(curves, replay_order(curves, default)) for curves in banks.values()]
    fraction, _, within = pooled(cells)
    return (
        f"default, as it runs (asynchronously, 2 at a time): {fraction:.3f} of the epochs, "
        f"within 1 % on {within / len(cells):.0%} of the orders"
    )


PRIOR_SOURCES = ("the same setup's other orders", "the other setups' orders", "every other order")
"""Where :func:`prior` picks each order's schedule from: earlier studies of the same setup (a
prior a user's own past sweeps could give), of other setups, or all of them."""


def between_setups(places: dict[str, float]) -> tuple[float, float]:
    """The share of the variance of ``places`` (per order) between the orders' setups, and the
    share expected by chance with that many setups and orders, ``(g - 1) / (n - 1)``."""
    groups: dict[str, list[float]] = {}
    for name, value in places.items():
        groups.setdefault(setup_of(Path(f"{name}.csv")), []).append(value)
    values = list(places.values())
    mean = statistics.fmean(values)
    total = sum((v - mean) ** 2 for v in values)
    within = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups.values())
    return 1.0 - within / total if total else 0.0, (len(groups) - 1) / (len(values) - 1)


def prior(
    banks: dict[str, list[Curve]],
    hits: Sequence[float] = BOUND_HITS,
    max_rungs: int = 1,
    default: PolicyFactory | None = None,
) -> list[str]:
    """What a rank schedule chosen on other studies does on a study it never saw.

    For each order, the cheapest synchronous schedule (as :func:`bound`'s) that keeps a
    within-1 % trial on ``hit`` of the orders of one of :data:`PRIOR_SOURCES` (the order
    itself left out) is replayed on that order. If how fast a setup's ranking settles were a
    property of the setup, the same setup's earlier orders would pick a schedule that is
    cheaper, or keeps the winner more often, than the others' orders do. The place of each
    order's winner at epochs 1-3 says the same without schedules: the share of its variance
    between setups, against the share chance gives.

    Args:
        banks: Live orders, named ``SETUP-sSEED``.
        hits: The within-1 % shares the schedules are chosen to keep.
        max_rungs: Rungs a schedule may have (more rungs overfit the few orders of a setup).
        default: A policy replayed beside them (its fraction and within-1 % share).

    Returns:
        One line per source and share (mean fraction of the epochs and the share of orders
        within 1 %, over the orders that source has a schedule for), the default's where
        given, then one per epoch.
    """
    from candidates import winner_place

    per = whole_order_schedules(banks, max_rungs)
    setup = {k: setup_of(Path(f"{k}.csv")) for k in banks}
    pick_from = {
        PRIOR_SOURCES[0]: lambda k, o: o != k and setup[o] == setup[k],
        PRIOR_SOURCES[1]: lambda k, o: setup[o] != setup[k],
        PRIOR_SOURCES[2]: lambda k, o: o != k,
    }
    lines = []
    for hit in hits:
        for source, chosen in pick_from.items():
            cells = []
            for k in per:
                others = {o: rows for o, rows in per.items() if chosen(k, o)}
                picked = fixed_schedule(others, hit=hit, pooled=True) if others else None
                if picked is None:
                    continue
                same = picked[0].on(per[k])
                if same is not None:
                    cells.append(same)
            if not cells:
                lines.append(f"kept on {hit:.0%} of {source}: no order has a schedule")
                continue
            lines.append(
                f"kept on {hit:.0%} of {source}: "
                f"{statistics.fmean(x.fraction for x in cells):.3f} of the epochs, within 1 % on "
                f"{statistics.fmean(x.hit for x in cells):.0%} of {len(cells)} orders"
            )
    if default is not None:
        lines.append(default_line(banks, default))
    for epoch in (1, 2, 3):
        places = {k: winner_place([c.val_loss for c in v], epoch) for k, v in banks.items()}
        share, chance = between_setups(places)
        lines.append(
            f"winner's place at epoch {epoch}: mean {statistics.fmean(places.values()):.2f}, "
            f"{share:.0%} of its variance between setups (chance {chance:.0%})"
        )
    return lines


def _params(sweep: Path) -> list[tuple[str, ...]]:
    """Each trial's knob values, in trial order, from a sweep folder's ``trials.csv``."""
    with (sweep / "trials.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["number"]))
    return [tuple(r[k] for k in sorted(r) if k.startswith("param_")) for r in rows]


def shared_prefix(a: Sequence[object], b: Sequence[object]) -> int:
    """How many leading items ``a`` and ``b`` have in common."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def check(
    folders: Sequence[Path], policies: dict[str, PolicyFactory], setups: Iterable[str] = ()
) -> list[str]:
    """For each ``bench/live.py --out`` folder: the order replay of the policies that also ran
    live there, over its ``none`` sweep's curves, beside the live sweeps' own figures (as
    ``bench/live.py --summarize`` reads them) and the number of leading trials whose
    configuration the live sweep shares with the ``none`` sweep (after those, the sampler, told
    other outcomes, proposed other configurations).

    Args:
        folders: ``bench/live.py --out`` folders.
        policies: The policies by name (sweeps of other policies are left out).
        setups: The setups sweep names may start with (default: ``SELECTION_SETUPS``).
    """
    from live import collect

    if not setups:
        from _record_selection import SELECTION_SETUPS

        setups = SELECTION_SETUPS
    sweeps = collect(folders, setups)
    lines = []
    for none in sweeps[sweeps.policy == "none"].itertuples():
        with tempfile.TemporaryDirectory() as tmp:
            bank = Path(tmp) / "order.csv"
            convert(none.path, bank)
            curves = load_curves(bank)
        none_params = _params(none.path)
        same_sweep = sweeps[(sweeps.setup == none.setup) & (sweeps.seed == none.seed)]
        for live in same_sweep.sort_values("policy").itertuples():
            if live.policy not in policies:
                continue
            f, r = row(curves, replay_order(curves, policies[live.policy]))
            live_params = _params(live.path)
            same = shared_prefix(live_params, none_params)
            lines.append(
                f"{none.setup} seed{none.seed} {live.policy:>10}: live {live.fraction:.2f} / "
                f"{live.best_val_loss / best_of(curves):.3f}, order replay {f:.2f} / {r:.3f}; "
                f"first {same} of {len(live_params)} trials as in the none sweep"
            )
    return lines


def grid_table(banks: dict[str, list[Curve]], grid: str, weight: float) -> list[str]:
    """Every setting of ``bench/candidates.py``'s grid ``grid`` over the banks: its mean epoch
    fraction / best ratio, the score (fraction + ``weight`` x (ratio - 1), mean ± standard
    error over the banks) and its paired difference from the grid's first setting (the
    default's); negative is better."""
    from candidates import GRIDS, _mean_se, candidate

    lines = []
    baseline: list[float] | None = None
    for name, budget, params in GRIDS[grid]:

        def factory(
            seed: int, horizon: int, n: str = name, b: Any = budget, p: Any = params
        ) -> Any:
            return candidate(n, horizon, b, **p)

        cells = [row(curves, replay_order(curves, factory)) for curves in banks.values()]
        scores = [f + weight * (r - 1.0) for f, r in cells]
        baseline = baseline or scores
        diff = [a - b for a, b in zip(scores, baseline, strict=True)]
        fraction, ratio, within = pooled(cells)
        lines.append(
            f"{name} {budget} {params}: {fraction:.3f} / {ratio:.4f} / within 1 % "
            f"{within}/{len(cells)} / score {_mean_se(scores)} / "
            f"paired vs default {_mean_se(diff, '+.3f')}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Convert a live sweep, replay policies over the live banks, or check against live sweeps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convert", type=Path, help="a live no-stopping sweep folder")
    parser.add_argument("--out", type=Path, help="with --convert: the bank to write")
    parser.add_argument("--check", type=Path, nargs="+", help="bench/live.py --out folders")
    parser.add_argument("--curves", type=Path, nargs="+", help="live banks (default: all)")
    parser.add_argument("--held-out", action="store_true", help="the held-out setups' banks")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--grid", help="a bench/candidates.py grid instead of the frontier")
    parser.add_argument(
        "--bound", action="store_true", help="the cheapest fixed rank schedule, in hindsight"
    )
    parser.add_argument(
        "--prior", action="store_true", help="schedules chosen on other orders, per source"
    )
    parser.add_argument("--rungs", type=int, default=1, help="with --prior: rungs at most")
    parser.add_argument(
        "--weight", type=float, help="with --grid: the score's ratio weight (default: balanced's)"
    )
    args = parser.parse_args(argv)
    if args.grid and args.held_out:
        from candidates import REPORTED_GRIDS

        if args.grid not in REPORTED_GRIDS:
            parser.error(
                "--grid runs on the choosing live banks only: held-out ones are never tuned on "
                f"(reported there: {', '.join(sorted(REPORTED_GRIDS))}, fixed in advance)"
            )
    policies = frontier_policies()
    if args.convert:
        if args.out is None:
            parser.error("--convert needs --out")
        print(f"{convert(args.convert, args.out)} trials -> {args.out}")
        return 0
    if args.check:
        print("\n".join(check(args.check, policies)))
        return 0
    paths = args.curves or sorted(LIVE_BANKS.glob("*.csv"))
    paths = [p for p in paths if (setup_of(p) in HELD_OUT_SETUPS) == args.held_out]
    if not paths:
        print("no live banks", file=sys.stderr)
        return 2
    banks = {p.stem: load_curves(p) for p in paths}
    kind = "held out" if args.held_out else "choosing"
    print(f"{kind} live banks, {CONCURRENCY} at a time: epoch fraction / best ratio to the sweep's")
    if args.grid:
        from choose_default import WEIGHTS

        weight = WEIGHTS["balanced"] if args.weight is None else args.weight
        print("\n".join(grid_table(banks, args.grid, weight)))
        return 0
    if args.bound:
        print("\n".join(bound(banks, default=policies["default"])))
        return 0
    if args.prior:
        print("\n".join(prior(banks, max_rungs=args.rungs, default=policies["default"])))
        return 0
    print("\n".join(table(banks, policies, args.markdown)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
