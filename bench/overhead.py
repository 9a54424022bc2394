"""The cost of orchestration: the same trials as a plain loop and through ``overfit-search run``.

Side by side in one run (issue 20):

- ``loop``: a fixed list of configurations of the demo (8 by default, 5 epochs each, no
  stopping) trained one after another in this process with the project's trainer
  (:func:`overfit_search.training.trial.run_trial`), as a user's own loop would;
- ``run``: the same configurations (enqueued into the study first, so the sampler draws nothing)
  through ``overfit-search run`` one trial at a time with all the machine's CPUs per trial;
- ``run-2``: the same through ``run`` with two concurrent trials of one CPU each;
- ``many``: hundreds of trials of a trivial scripted trainer (no Keras: it reports a synthetic
  curve) through the real Ray + Optuna path (``run_sweep``), to count trials per second, see
  where the driver's time goes, and whether the exports and the report grow faster than the
  trial count.

Wall time is taken from the first trial's start to the last trial's end (the study's own
timestamps for ``run``: a trial starts when the sampler hands it out, so the first one includes
starting the Ray worker process and importing TensorFlow there), and again from the second
trial's start (``steady``: the per-trial cost of orchestration with a reused worker). Start-up
(from the command to the first trial's start, and to its first epoch) is reported on its own.

Usage::

    python bench/overhead.py [--quick] [--trials 8] [--epochs 5] [--many 500] [--work DIR]

Prints one JSON line per measurement and a summary line last: ``overhead_ratio=R ...``
(``run`` wall over ``loop`` wall).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "sweeps" / "demo.yaml"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

NO_STOPPING = {"pruning": {"rule": {"name": "none"}, "compare": "none"}}


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def _sweep_doc(name: str, epochs: int, trials: int, **resources: Any) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    doc["name"] = name
    doc["train"]["max_epochs"] = epochs
    doc["study"] = {**doc["study"], "trials": trials}
    doc["resources"] = {**doc.get("resources", {}), **resources}
    doc.update(NO_STOPPING)
    return doc


def _configs(n: int, seed: int = 7) -> list[dict[str, float]]:
    from _record import sample_configs

    from overfit_search.config import sweep_from_dict
    from overfit_search.search_space import split_space

    sweep = sweep_from_dict(_sweep_doc("cfg", 1, n), source="overhead")
    space, _ = split_space(sweep.search, sweep.train)
    return sample_configs(space, n, seed)


def run_loop(configs: list[dict[str, float]], epochs: int, work: Path) -> dict[str, Any]:
    """Train each configuration in turn in this process with the project's trainer."""
    from overfit_search.config import sweep_from_dict
    from overfit_search.data import load_data
    from overfit_search.paths import data_cache
    from overfit_search.search_space import split_space, trial_seed, trial_values
    from overfit_search.training.trial import run_trial

    sweep = sweep_from_dict(_sweep_doc("loop", epochs, len(configs)), source="overhead")
    data = load_data(sweep.data, cache_dir=data_cache()).without_test()
    _, fixed = split_space(sweep.search, sweep.train)
    epochs_run = 0

    def report(row: dict[str, Any]) -> None:
        nonlocal epochs_run
        epochs_run += 1

    spans: list[tuple[float, float]] = []
    for number, config in enumerate(configs):
        start = time.monotonic()
        run_trial(
            sweep,
            trial_values(fixed, config, {}),
            data,
            report,
            work / "loop" / str(number),
            seed=trial_seed(sweep, number),
        )
        spans.append((start, time.monotonic()))
    return {"part": "loop", "trials": len(configs), "epochs": epochs_run, **_walls(spans)}


def _walls(spans: list[tuple[float, float]]) -> dict[str, float]:
    """Wall from the first trial's start to the last one's end, and from the second's start
    (the steady state, without the first trial's cold start)."""
    spans = sorted(spans)
    end = max(e for _, e in spans)
    steady = end - spans[1][0] if len(spans) > 1 else math.nan
    return {"wall_s": end - spans[0][0], "steady_wall_s": steady}


def run_cli(
    configs: list[dict[str, float]],
    epochs: int,
    work: Path,
    name: str,
    cpus_per_trial: float,
    concurrent: int,
) -> dict[str, Any]:
    """The same configurations through ``overfit-search run`` (a subprocess, as a user runs it)."""
    import optuna
    import yaml

    from overfit_search.scoring import directions

    out = work / name
    doc = _sweep_doc(
        name, epochs, len(configs), cpus_per_trial=cpus_per_trial, max_concurrent=concurrent
    )
    sweep_file = work / f"{name}.yaml"
    sweep_file.write_text(yaml.safe_dump(doc))
    out.mkdir(parents=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{out / 'study.db'}",
        directions=list(directions(doc["objective"]["mode"])),
    )
    for config in configs:  # drawn first, so both arms train exactly these
        study.enqueue_trial(config)
    began = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "overfit_search",
            "run",
            str(sweep_file),
            "--output",
            str(out),
            "--resume",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"{name}: run failed: {done.stderr[-2000:]}")
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    ran = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    assert len(ran) == len(configs), f"{name}: {len(ran)} trials ran, not {len(configs)}"
    spans = [
        (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
        for t in ran
        if t.datetime_start is not None and t.datetime_complete is not None
    ]
    first = min(start for start, _ in spans)
    epochs_run = sum(len(t.intermediate_values) for t in ran)
    first_epoch = _first_epoch_stamp(out / "trials" / str(ran[0].number) / "trial.log")
    return {
        "part": name,
        "trials": len(ran),
        "epochs": epochs_run,
        **_walls(spans),
        "startup_to_first_trial_s": first - began,
        "startup_to_first_epoch_s": None if first_epoch is None else first_epoch - began,
        "command_s": ended - began,
        "cpus_per_trial": cpus_per_trial,
        "concurrent": concurrent,
    }


def _first_epoch_stamp(log: Path) -> float | None:
    for line in log.read_text().splitlines():
        if " epoch 1:" in line:
            return datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").timestamp()
    return None


def scripted_trial(
    config: dict[str, Any],
    data: Any,
    sweep_json: dict[str, Any],
    output: str,
    token: str | None = None,
) -> None:
    """A trivial trainer: a synthetic learning curve reported through Ray Tune, no Keras."""
    from ray import tune

    from overfit_search.layout import HISTORY_COLUMNS
    from overfit_search.orchestration.searcher import TRIAL_NUMBER_KEY

    number = int(config[TRIAL_NUMBER_KEY])
    folder = Path(output) / "trials" / str(number)
    folder.mkdir(parents=True, exist_ok=True)
    lr = float(config.get("learning_rate", 1e-3))
    epochs = int(sweep_json["train"]["max_epochs"])
    with (folder / "history.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(HISTORY_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for epoch in range(1, epochs + 1):
            val = 1.0 / (1 + epoch * lr * 300) + 0.02 * max(0, epoch - 3) + 0.05 * (number % 7)
            train = val - 0.03 * epoch
            row = {"epoch": epoch, "val_loss": val, "train_eval_loss": train,
                   "gap": val - train, "val_accuracy": 0.5, "train_eval_accuracy": 0.5,
                   "epoch_seconds": 0.0}  # fmt: skip
            writer.writerow(row)
            fh.flush()
            tune.report(dict(row))


def run_many(n: int, epochs: int, work: Path, profile: bool) -> dict[str, Any]:
    """``n`` scripted trials through ``run_sweep``: trials/s, per-hundred pace, export costs."""
    import optuna
    import yaml

    import overfit_search.orchestration.trainable as trainable
    from overfit_search.config import load_sweep
    from overfit_search.orchestration.runner import run_sweep
    from overfit_search.results.exports import write_exports
    from overfit_search.results.report import write_review
    from overfit_search.search_space import split_space

    doc = _sweep_doc("many", epochs, n, cpus_per_trial=1, max_concurrent=2)
    doc["study"]["sampler"] = "random"  # Optuna's TPE is O(n) an ask by design; not ours
    doc["pruning"] = {}  # the default stopping: its judge sees every trial
    sweep_file = work / "many.yaml"
    sweep_file.write_text(yaml.safe_dump(doc))
    trainable.train_trial = scripted_trial  # type: ignore[assignment]
    profiler = cProfile.Profile() if profile else None
    start = time.monotonic()
    if profiler is not None:
        profiler.enable()
    result = run_sweep(sweep_file, output=work / "many", progress=True, force=True)
    if profiler is not None:
        profiler.disable()
    wall = time.monotonic() - start
    trials = sorted(
        (t for t in result.study.get_trials(deepcopy=False) if t.datetime_complete),
        key=lambda t: t.datetime_complete,  # type: ignore[arg-type, return-value]
    )
    stamps = [t.datetime_complete.timestamp() for t in trials]  # type: ignore[union-attr]
    per_hundred = [
        (stamps[min(i + 99, len(stamps) - 1)] - stamps[i]) / max(1, min(99, len(stamps) - 1 - i))
        for i in range(0, len(stamps) - 1, 100)
    ]
    sweep = load_sweep(sweep_file)
    _, fixed = split_space(sweep.search, sweep.train)
    costs: dict[str, float] = {}
    for size in (n // 5, n):  # exports and report on the first fifth of the study, then all
        sub = work / f"many-{size}"
        sub.mkdir()
        storage = optuna.storages.InMemoryStorage()
        part = optuna.create_study(storage=storage, directions=result.study.directions)
        for key, value in result.study.user_attrs.items():
            part.set_user_attr(key, value)
        part.add_trials(trials[:size])
        (sub / "trials").mkdir()
        for t in trials[:size]:
            (sub / "trials" / str(t.number)).symlink_to(work / "many" / "trials" / str(t.number))
        for name in ("sweep.yaml", "split.csv"):
            shutil.copyfile(work / "many" / name, sub / name)
        t0 = time.monotonic()
        write_exports(part, sweep, sub, fixed)
        costs[f"exports_{size}_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        write_review(sub, part)
        costs[f"report_{size}_s"] = time.monotonic() - t0
    record: dict[str, Any] = {
        "part": "many",
        "trials": len(trials),
        "epochs_per_trial": epochs,
        "wall_s": wall,
        "trials_per_s": len(trials) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else math.nan,
        "s_per_trial_by_hundred": [round(x, 4) for x in per_hundred],
        **{k: round(v, 3) for k, v in costs.items()},
        "exports_growth": costs[f"exports_{n}_s"] / costs[f"exports_{n // 5}_s"],
        "report_growth": costs[f"report_{n}_s"] / costs[f"report_{n // 5}_s"],
    }
    if profiler is not None:
        record["driver_top"] = _top(profiler)
        profiler.dump_stats(work / "many.prof")
    return record


def _top(profiler: cProfile.Profile, count: int = 12) -> list[str]:
    """The driver's heaviest functions by cumulative time (of this package, Optuna, Ray)."""
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    rows = []
    for (file, line, func), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if any(part in file for part in ("overfit_search", "optuna", "ray/tune")):
            rows.append((cum, f"{Path(file).name}:{line}:{func}"))
    rows.sort(reverse=True)
    return [f"{cum:.2f}s {where}" for cum, where in rows[:count]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 trials x 2 epochs, 30 many")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--many", type=int, default=500)
    parser.add_argument("--many-epochs", type=int, default=3)
    parser.add_argument("--parts", default="loop,run,run-2,many")
    parser.add_argument("--profile", action="store_true", help="profile the driver in many")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.many = 3, 2, 30
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = args.work or Path(tempfile.mkdtemp(prefix="overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    configs = _configs(args.trials)
    _emit({"part": "setup", "trials": args.trials, "epochs": args.epochs,
           "cpus": os.cpu_count(), "work": str(work)})  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    cpus = float(os.cpu_count() or 1)
    if "loop" in parts:
        results["loop"] = run_loop(configs, args.epochs, work)
        _emit(results["loop"])
    if "run" in parts:
        results["run"] = run_cli(configs, args.epochs, work, "run", cpus, 1)
        _emit(results["run"])
    if "run-2" in parts:
        results["run-2"] = run_cli(configs, args.epochs, work, "run-2", 1.0, 2)
        _emit(results["run-2"])
    if "many" in parts:
        results["many"] = run_many(args.many, args.many_epochs, work, args.profile)
        _emit(results["many"])
    summary = []
    loop = results.get("loop")
    if loop and "run" in results:
        summary.append(f"overhead_ratio={results['run']['wall_s'] / loop['wall_s']:.3f}")
        steady = results["run"]["steady_wall_s"] / loop["steady_wall_s"]
        summary.append(f"steady_ratio={steady:.3f}")
    if loop and "run-2" in results:
        throughput = loop["wall_s"] / results["run-2"]["wall_s"]
        summary.append(f"concurrent2_throughput={throughput:.2f}x")
    if "run" in results:
        summary.append(f"startup_s={results['run']['startup_to_first_trial_s']:.1f}")
        to_epoch = results["run"]["startup_to_first_epoch_s"]
        if to_epoch is not None:
            summary.append(f"to_first_epoch_s={to_epoch:.0f}")
    if "many" in results:
        summary.append(f"trials_per_s={results['many']['trials_per_s']:.2f}")
        summary.append(f"exports_growth={results['many']['exports_growth']:.1f}")
    print(" ".join(summary) if summary else "overhead_ratio=nan", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
