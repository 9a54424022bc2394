"""Live sweeps of the digits demo under each stopping policy, to hold the replay against reality.

Runs ``sweeps/demo.yaml`` through the real CLI (Ray Tune + Optuna TPE + Keras) once per policy
(``default``: the demo as shipped, ``pruning.preset: balanced``; ``gl``: the GL rule of the
first demo; ``none``: no stopping; ``asha``: Ray's ASHA with no overfit rule; ``gl+asha``: both)
and prints, per policy, the epochs run as a fraction of trials x max_epochs, the best val_loss
and its gap, and the wall time. ``--setup NAME`` runs one of the selection-bank setups instead
(``bench/_record_selection.py``: the demo with that setup's data, train and search overrides),
so a held-out curve bank's replay can be checked live, with TPE's feedback. Run::

    OVERFIT_SEARCH_CACHE=... nice -n 10 python bench/live.py [--trials 24] [--out /tmp/live]
    python bench/live.py --setup ov-59-hilr --policies default none asha [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from overfit_search.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))
ASHA = {"name": "asha", "grace_period": 2, "reduction_factor": 3}
POLICIES: dict[str, dict[str, Any]] = {
    "default": {"preset": "balanced"},
    "gl": {"preset": None, "rule": {"name": "gl", "alpha": 5.0}},
    "none": {"preset": None, "rule": {"name": "none"}},
    "asha": {"preset": None, "rule": {"name": "none"}, "scheduler": ASHA},
    "gl+asha": {"preset": None, "rule": {"name": "gl", "alpha": 5.0}, "scheduler": ASHA},
}


def _apply(doc: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Set dotted ``section.key`` overrides (as the selection setups spell them) in ``doc``."""
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        doc.setdefault(section, {})[key] = value


def run(
    policy: str, trials: int, out: Path, setup: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """One live sweep (``study.seed: seed`` when given); its figures."""
    doc = yaml.safe_load((ROOT / "sweeps" / "demo.yaml").read_text())
    if setup is not None:
        from _record_selection import SELECTION_SETUPS

        _apply(doc, SELECTION_SETUPS[setup])
    pruning = {**doc.get("pruning", {}), **POLICIES[policy]}
    doc["pruning"] = {k: v for k, v in pruning.items() if v is not None}
    doc["study"]["trials"] = trials
    if seed is not None:
        doc["study"]["seed"] = seed
    suffix = "" if seed is None else f"-seed{seed}"
    doc["name"] = f"{setup or 'demo'}-{policy.replace('+', '-')}{suffix}"
    sweep = out / f"{doc['name']}.yaml"
    sweep.write_text(yaml.safe_dump(doc, sort_keys=False))
    started = time.monotonic()
    rc = cli(["run", str(sweep), "--output", str(out / doc["name"]), "--no-progress"])
    seconds = time.monotonic() - started
    table = pd.read_csv(out / doc["name"] / "trials.csv")
    done = table[table.state.isin(["COMPLETE", "PRUNED"])]
    best = done.loc[done.best_val_loss.idxmin()]
    return {
        "policy": policy,
        "rc": rc,
        "epochs": int(table.epochs_run.fillna(0).sum()),
        "fraction": table.epochs_run.fillna(0).sum() / (trials * doc["train"]["max_epochs"]),
        "best_val_loss": float(best.best_val_loss),
        "gap_at_best": float(best.gap),
        "chosen_val_loss": float(table.loc[table.value.idxmin()].best_val_loss),
        "seconds": round(seconds),
    }


def main() -> None:
    """Run every policy and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("/tmp/overfit-search-live"))
    parser.add_argument("--policies", nargs="*", default=list(POLICIES))
    parser.add_argument("--setup", default=None, help="a bench/_record_selection.py setup")
    parser.add_argument("--seed", type=int, default=None, help="study.seed (the sampler's)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run(p, args.trials, args.out, args.setup, args.seed) for p in args.policies]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
