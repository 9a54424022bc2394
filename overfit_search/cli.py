"""The ``overfit-search`` command. The only module that configures logging."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from overfit_search.errors import OverfitSearchError

logger = logging.getLogger("overfit_search")


def _cmd_validate(args: argparse.Namespace) -> int:
    from overfit_search.config import load_sweep

    sweep = load_sweep(args.sweep)
    notes = []
    if sweep.model.scheme == "tfhub":
        notes.append("tfhub: modules need the TensorFlow backend and freeze all or nothing")
    if sweep.data.source == "folder" and sweep.data.dir is not None and not sweep.data.dir.is_dir():
        notes.append(f"data.dir {sweep.data.dir} does not exist yet (run will need it)")
    print(
        f"{args.sweep}: ok (study '{sweep.name}', {sweep.study.trials} trials, "
        f"backbone {sweep.model.backbone}, objective {sweep.objective.mode})"
    )
    for note in notes:
        print(f"  note: {note}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from overfit_search.orchestration.runner import run_sweep

    result = run_sweep(
        args.sweep,
        trials=args.trials,
        max_epochs=args.max_epochs,
        output=args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    console = Console()
    console.print(f"\nResults: [bold]{result.output}[/bold]")
    best = result.best
    if best is None:
        console.print("No trial completed; see trials.csv for the reasons.")
    else:
        a = best.trial.user_attrs
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(best.trial.params.items()))
        console.print(
            f"Best: trial {best.trial.number} ({best.why}): val_loss {a['best_val_loss']:.4f}, "
            f"gap {a['gap']:.4f}, best epoch {a['best_epoch']} of {a['epochs_run']}"
        )
        console.print(f"      {params}")
    from optuna.trial import TrialState

    trials = result.study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    console.print(
        f"Trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed; early stopping saved {result.epochs_saved} epoch(s)"
    )
    console.print(f"Next: overfit-search best {result.output}   (best.yaml is written there)")
    if result.interrupted:
        console.print(f"Interrupted: resume with `overfit-search run {args.sweep} --resume`")
        return 130
    return 0


def _cmd_best(args: argparse.Namespace) -> int:
    import json

    import optuna
    import yaml

    from overfit_search.config import load_sweep
    from overfit_search.errors import ConfigError
    from overfit_search.orchestration.runner import storage_url
    from overfit_search.results.exports import best_sweep, select_best
    from overfit_search.search_space import split_space

    out = Path(args.results)
    sweep_file = out / "sweep.yaml"
    if not sweep_file.exists():
        raise ConfigError(f"{out}: no sweep.yaml here: not a results directory")
    sweep = load_sweep(sweep_file)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=sweep.name, storage=storage_url(sweep, out.resolve()))
    if args.trial is not None:
        matches = [t for t in study.get_trials(deepcopy=False) if t.number == args.trial]
        if not matches or matches[0].state.name not in ("COMPLETE", "PRUNED"):
            raise ConfigError(f"--trial: no finished trial {args.trial} in {out}")
        trial = matches[0]
    else:
        trial = select_best(study, sweep).trial
    doc = best_sweep(sweep, trial, split_space(sweep.search)[1])
    if args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    return 0


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (importing it loads neither TensorFlow nor Ray)."""
    from overfit_search import __version__

    parser = argparse.ArgumentParser(
        prog="overfit-search",
        description="Hyperparameter sweeps for Keras transfer learning that score trials on "
        "validation loss and the generalization gap, and stop them when they overfit.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume) a sweep")
    run.add_argument("sweep", help="sweep YAML file")
    run.add_argument("--trials", type=int, help="override study.trials")
    run.add_argument("--max-epochs", type=int, help="override train.max_epochs")
    run.add_argument("--output", help="results directory (default results/<name>)")
    run.add_argument("--resume", action="store_true", help="continue the study in the output")
    run.add_argument(
        "--overwrite", action="store_true", help="delete the study in the output first"
    )
    run.add_argument("--no-progress", action="store_true", help="no live table")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a sweep file (no TensorFlow or Ray loaded)")
    validate.add_argument("sweep", help="sweep YAML file")
    validate.set_defaults(func=_cmd_validate)

    best = sub.add_parser("best", help="print the winning configuration as a sweep file")
    best.add_argument("results", help="results directory")
    best.add_argument("--trial", type=int, help="export this trial instead of the best")
    best.add_argument("--format", choices=("yaml", "json"), default="yaml")
    best.set_defaults(func=_cmd_best)

    from overfit_search import diagnose

    diagnose.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s",
    )
    for noisy in ("ray", "optuna", "absl", "tensorflow", "filelock"):
        # Ray's own warnings (token auth, result files we do not write) are not for users.
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.debug else logging.ERROR)
    try:
        return int(args.func(args))
    except OverfitSearchError as exc:
        if args.debug:
            logger.exception("error")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
