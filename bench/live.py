"""Live sweeps of the digits demo under each stopping policy, to hold the replay against reality.

Runs ``sweeps/demo.yaml`` through the real CLI (Ray Tune + Optuna TPE + Keras) once per policy
(``default``: the demo as shipped, ``pruning.preset: balanced``; ``gl``: the GL rule of the
first demo; ``none``: no stopping; ``asha``: Ray's ASHA with no overfit rule (``asha-g1r4``:
grace 1, factor 4); ``gl+asha``: both;
``median``: Optuna's MedianPruner settings on the judge's median rule; ``safe``, ``fast``: the
other presets; ``rf3``: round 6's factor-3 ``balanced``) and prints, per policy, the epochs run
as a fraction of trials x max_epochs, the best val_loss and its gap, and the wall time.
``--setup NAME`` runs one of the selection-bank setups instead (``bench/_record_selection.py``:
the demo with that setup's data, train and search overrides), so a held-out curve bank's replay
can be checked live, with TPE's feedback; ``mn2-all10`` and ``mn2-photos`` get the fixture's
MobileNetV2 rebuilt at their bank's size and ``mn2-photos`` its photo patch set, as their banks
were recorded. Run::

    OVERFIT_SEARCH_CACHE=... nice -n 10 python bench/live.py [--trials 24] [--out /tmp/live]
    python bench/live.py --setup ov-59-hilr --policies default none asha [--seed 1]
    python bench/live.py --summarize /tmp/live-a /tmp/live-b [--incumbent default] [--plot F.png]

``--summarize`` runs nothing: it pools the sweeps earlier ``--out`` folders hold, each against
the ``none`` sweep of the same setup and sampler seed (bench/RESULTS.md, issue 18 round 6).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from overfit_search.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))
from choose_default import WEIGHTS  # noqa: E402

ASHA = {"name": "asha", "grace_period": 2, "reduction_factor": 3}
POLICIES: dict[str, dict[str, Any]] = {
    "default": {"preset": "balanced"},
    "gl": {"preset": None, "rule": {"name": "gl", "alpha": 5.0}},
    "none": {"preset": None, "rule": {"name": "none"}},
    "asha": {"preset": None, "rule": {"name": "none"}, "scheduler": ASHA},
    # round 9: the ASHA setting the mn2-photos replay found cheapest at no loss there
    "asha-g1r4": {
        "preset": None,
        "rule": {"name": "none"},
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 4},
    },
    "gl+asha": {"preset": None, "rule": {"name": "gl", "alpha": 5.0}, "scheduler": ASHA},
    # Optuna's MedianPruner as the project's judge runs it: from epoch 2, once 5 trials reached
    # the epoch, a trial whose best so far is above their median stops; no overfitting rule
    "median": {
        "preset": None,
        "rule": {"name": "none"},
        "budget": {"name": "median", "grace": 2, "min_trials": 5, "z": 0.0},
    },
    "safe": {"preset": "safe"},
    "fast": {"preset": "fast"},
    # round 6's candidate between balanced and fast: balanced with ASHA's rungs (2, 6, 18)
    "rf3": {
        "preset": "balanced",
        "budget": {
            "name": "halving",
            "first_rung": 2,
            "reduction_factor": 3.0,
            "min_trials": 5,
            "z": 0.5,
        },
    },
}


def _apply(doc: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Set dotted ``section.key`` overrides (as the selection setups spell them) in ``doc``."""
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        doc.setdefault(section, {})[key] = value


def _resolve(overrides: dict[str, Any]) -> dict[str, Any]:
    from _record_selection import resolve

    return resolve(overrides)


def sweep_doc(
    policy: str,
    trials: int,
    setup: str | None = None,
    seed: int | None = None,
    resolve: Callable[[dict[str, Any]], dict[str, Any]] = _resolve,
) -> dict[str, Any]:
    """The sweep file of one live sweep: ``sweeps/demo.yaml`` with the setup's overrides, the
    policy's ``pruning`` section, ``trials`` and ``study.seed`` (when given).

    ``resolve`` makes a setup's placeholders real (default: ``_record_selection.resolve``: the
    fixture rebuilt at the bank's size, the photo patch set written), as the bank was recorded.
    """
    doc = yaml.safe_load((ROOT / "sweeps" / "demo.yaml").read_text())
    if setup is not None:
        from _record_selection import SELECTION_SETUPS

        _apply(doc, resolve(dict(SELECTION_SETUPS[setup])))
    pruning = {**doc.get("pruning", {}), **POLICIES[policy]}
    doc["pruning"] = {k: v for k, v in pruning.items() if v is not None}
    doc["study"]["trials"] = trials
    if seed is not None:
        doc["study"]["seed"] = seed
    suffix = "" if seed is None else f"-seed{seed}"
    doc["name"] = f"{setup or 'demo'}-{policy.replace('+', '-')}{suffix}"
    return doc


def run(
    policy: str, trials: int, out: Path, setup: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """One live sweep (``study.seed: seed`` when given); its figures."""
    doc = sweep_doc(policy, trials, setup, seed)
    sweep = out / f"{doc['name']}.yaml"
    sweep.write_text(yaml.safe_dump(doc, sort_keys=False))
    started = time.monotonic()
    rc = cli(["run", str(sweep), "--output", str(out / doc["name"]), "--no-progress"])
    seconds = time.monotonic() - started
    table = pd.read_csv(out / doc["name"] / "trials.csv")
    epochs, fraction, best = _spend_and_best(table, doc)
    return {
        "policy": policy,
        "rc": rc,
        "epochs": epochs,
        "fraction": fraction,
        "best_val_loss": float(best.best_val_loss),
        "gap_at_best": float(best.gap),
        "chosen_val_loss": float(table.loc[table.value.idxmin()].best_val_loss),
        "seconds": round(seconds),
    }


def _spend_and_best(table: pd.DataFrame, doc: dict[str, Any]) -> tuple[int, float, Any]:
    """A sweep's epochs run, their fraction of trials x max_epochs, and the trials.csv row of
    its best COMPLETE or PRUNED trial (by best val loss)."""
    epochs = float(table.epochs_run.fillna(0).sum())
    fraction = epochs / (doc["study"]["trials"] * doc["train"]["max_epochs"])
    done = table[table.state.isin(["COMPLETE", "PRUNED"])]
    return int(epochs), fraction, done.loc[done.best_val_loss.idxmin()]


def parse_name(name: str, setups: Iterable[str]) -> tuple[str, str, int | None]:
    """``(setup, policy, seed)`` from a sweep name :func:`run` wrote (``demo`` for no setup).

    Raises:
        ValueError: A name :func:`run` does not write.
    """
    seed: int | None = None
    match = re.fullmatch(r"(.+)-seed(\d+)", name)
    if match:
        name, seed = match.group(1), int(match.group(2))
    for setup in sorted({*setups, "demo"}, key=len, reverse=True):
        if name.startswith(setup + "-"):
            return setup, name[len(setup) + 1 :], seed
    raise ValueError(f"{name!r} is not a live sweep name (SETUP-POLICY[-seedN])")


def collect(roots: Sequence[Path], setups: Iterable[str]) -> pd.DataFrame:
    """One row per live sweep found under ``roots`` (``NAME.yaml`` beside ``NAME/trials.csv``):
    setup, seed, policy, epochs run, their fraction of trials x max_epochs, the best val loss of
    a COMPLETE or PRUNED trial, and the sweep's folder.

    Raises:
        ValueError: Two sweeps of one setup, sampler seed and policy (pass one round's folders).
    """
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, int, str], Path] = {}
    for root in roots:
        for table_path in sorted(root.glob("*/trials.csv")):
            sweep = table_path.parent.with_suffix(".yaml")
            if not sweep.is_file():
                continue
            try:
                setup, policy, _ = parse_name(table_path.parent.name, setups)
            except ValueError as err:
                print(f"skipped {table_path.parent}: {err}", file=sys.stderr)
                continue
            doc = yaml.safe_load(sweep.read_text())
            key = (setup, int(doc["study"]["seed"]), policy)
            if key in seen:
                raise ValueError(
                    f"two sweeps of {setup}, seed {key[1]}, policy {policy}: {seen[key]} and "
                    f"{table_path.parent}"
                )
            seen[key] = table_path.parent
            epochs, fraction, best = _spend_and_best(pd.read_csv(table_path), doc)
            rows.append(
                {
                    "setup": setup,
                    "seed": key[1],
                    "policy": policy,
                    "epochs": epochs,
                    "fraction": fraction,
                    "best_val_loss": float(best.best_val_loss),
                    "path": table_path.parent,
                }
            )
    return pd.DataFrame(rows)


def _references(records: list[dict[str, Any]], reference: str) -> dict[tuple[str, int], float]:
    """(setup, seed) -> the ``reference`` policy's best val loss."""
    return {
        (r["setup"], r["seed"]): r["best_val_loss"] for r in records if r["policy"] == reference
    }


def summarize(sweeps: pd.DataFrame, reference: str = "none") -> pd.DataFrame:
    """Each policy's sweeps against the ``reference`` sweep of the same setup and seed.

    Args:
        sweeps: :func:`collect`'s rows.
        reference: The policy every ratio divides by (no stopping).

    Returns:
        One row per policy (reference excluded): sweeps compared, mean epoch fraction, mean
        best val loss ratio, the fraction of sweeps within 1 % of the reference's best, and the
        worst ratio; sorted by mean fraction. Sweeps with no reference sweep are left out.
    """
    records = sweeps.to_dict("records")
    ref = _references(records, reference)
    rows: list[dict[str, Any]] = []
    for policy in sorted({r["policy"] for r in records} - {reference}):
        pairs = [
            (r["fraction"], r["best_val_loss"] / ref[(r["setup"], r["seed"])])
            for r in records
            if r["policy"] == policy and (r["setup"], r["seed"]) in ref
        ]
        if not pairs:
            continue
        fractions, ratios = zip(*pairs, strict=True)
        rows.append(
            {
                "policy": policy,
                "sweeps": len(pairs),
                "fraction": statistics.fmean(fractions),
                "ratio": statistics.fmean(ratios),
                "within_1pct": sum(r <= 1.01 for r in ratios) / len(ratios),
                "worst_ratio": max(ratios),
            }
        )
    return pd.DataFrame(rows).sort_values("fraction").reset_index(drop=True)


def paired(
    sweeps: pd.DataFrame,
    incumbent: str,
    weight: float = WEIGHTS["balanced"],
    reference: str = "none",
) -> pd.DataFrame:
    """Each policy's score against the ``incumbent``'s on the same setup and seed.

    A sweep's score is its epoch fraction + ``weight`` x (its best val loss ratio to no
    stopping - 1): lower is better; by default ``balanced``'s weight, 5
    (``choose_default.WEIGHTS``). Paired, because two sweeps of one setup and sampler seed
    share their start-up trials and their reference.

    Returns:
        One row per other policy with a paired sweep: pairs, the mean score difference
        (policy - incumbent; negative: the policy is better) and its standard error.
    """
    records = sweeps.to_dict("records")
    ref = _references(records, reference)
    score = {
        (r["setup"], r["seed"], r["policy"]): r["fraction"]
        + weight * (r["best_val_loss"] / ref[(r["setup"], r["seed"])] - 1.0)
        for r in records
        if (r["setup"], r["seed"]) in ref
    }
    rows = []
    for policy in sorted({p for _, _, p in score} - {incumbent, reference}):
        diffs = [
            value - score[(setup, seed, incumbent)]
            for (setup, seed, p), value in score.items()
            if p == policy and (setup, seed, incumbent) in score
        ]
        if diffs:
            se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else math.nan
            rows.append(
                {"policy": policy, "pairs": len(diffs), "diff": statistics.fmean(diffs), "se": se}
            )
    return pd.DataFrame(rows)


def plot_live(sweeps: pd.DataFrame, path: Path, reference: str = "none") -> Path:
    """One panel per setup and one pooled: each sweep a dot, each policy's mean a star.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pruning import frame_frontier, save_figure

    records = sweeps.to_dict("records")
    ref = _references(records, reference)
    points = [
        (r["setup"], r["policy"], r["fraction"], r["best_val_loss"] / ref[(r["setup"], r["seed"])])
        for r in records
        if r["policy"] != reference and (r["setup"], r["seed"]) in ref
    ]
    panels = [*sorted({p[0] for p in points}), "pooled"]
    policies = sorted({p[1] for p in points})
    colors = {name: f"C{i}" for i, name in enumerate(policies)}
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for name in policies:
            mine = [p for p in points if p[1] == name and panel in (p[0], "pooled")]
            if not mine:
                continue
            xs, ys = [p[2] for p in mine], [p[3] for p in mine]
            ax.scatter(xs, ys, s=14, color=colors[name], alpha=0.5)
            x, y = statistics.fmean(xs), statistics.fmean(ys)
            ax.scatter(x, y, s=130, marker="*", color=colors[name], edgecolor="k", lw=0.5)
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        frame_frontier(ax, f"{panel} (live, dots: one sweep each)")
    return save_figure(fig, path)


def _markdown(rows: list[dict[str, Any]]) -> None:
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    """Run every policy and print a markdown table (``--summarize``: pool earlier runs)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("/tmp/overfit-search-live"))
    parser.add_argument("--policies", nargs="*", default=list(POLICIES))
    parser.add_argument("--setup", default=None, help="a bench/_record_selection.py setup")
    parser.add_argument("--seed", type=int, default=None, help="study.seed (the sampler's)")
    parser.add_argument(
        "--summarize",
        nargs="+",
        type=Path,
        default=None,
        metavar="DIR",
        help="run nothing: pool the sweeps earlier --out folders hold, against 'none'",
    )
    parser.add_argument("--incumbent", default=None, help="with --summarize: paired scores")
    parser.add_argument("--plot", type=Path, default=None, help="with --summarize: a PNG")
    args = parser.parse_args()
    if args.summarize:
        from _record_selection import SELECTION_SETUPS

        sweeps = collect(args.summarize, SELECTION_SETUPS)
        for (setup, seed), group in sweeps.groupby(["setup", "seed"], dropna=False):
            cells = ", ".join(
                f"{r.policy} {r.fraction:.2f}/{r.best_val_loss:.4f}" for r in group.itertuples()
            )
            print(f"{setup} seed {seed}: {cells}")
        _markdown([{str(k): v for k, v in r.items()} for r in summarize(sweeps).to_dict("records")])
        if args.incumbent:
            print(f"score (fraction + 5 x (ratio - 1)) against {args.incumbent}, paired:")
            _markdown(
                [
                    {str(k): v for k, v in r.items()}
                    for r in paired(sweeps, args.incumbent).to_dict("records")
                ]
            )
        if args.plot:
            print(f"wrote {plot_live(sweeps, args.plot)}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    _markdown([run(p, args.trials, args.out, args.setup, args.seed) for p in args.policies])


if __name__ == "__main__":
    main()
