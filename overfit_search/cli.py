"""The ``overfit-search`` command. The only module that configures logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from overfit_search.argtypes import positive_int
from overfit_search.errors import OverfitSearchError
from overfit_search.layout import TrialAttr

if TYPE_CHECKING:
    import optuna

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
        force=args.force,
    )
    console = Console()
    console.print(f"\nResults: [bold]{result.output}[/bold]")
    best = result.best
    if best is None:
        console.print("No trial completed; see trials.csv for the reasons.")
    else:
        a = best.trial.user_attrs
        from overfit_search.search_space import trial_values

        values = trial_values({}, best.trial.params, a)  # a baseline's pins too (head_epochs=0)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(values.items()))
        console.print(
            f"Best: trial {best.trial.number} ({best.why}): "
            f"val_loss {a[TrialAttr.BEST_VAL_LOSS]:.4f}, gap {a[TrialAttr.GAP]:.4f}, "
            f"best epoch {a[TrialAttr.BEST_EPOCH]} of {a[TrialAttr.EPOCHS_RUN]}"
        )
        console.print(f"      {params}")
        from overfit_search.results.exports import baseline_summary

        against = baseline_summary(result.study, best.trial)
        if against:
            console.print(against)
        if result.test is not None:
            from overfit_search.reuse import test_line

            console.print(f"      On the {test_line(result.test)}", highlight=False)
    trials = result.study.get_trials(deepcopy=False)
    states = [t.user_attrs.get(TrialAttr.STATE) or t.state.name for t in trials]  # diverged: FAIL
    console.print(
        f"Trials: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
        f"{states.count('FAIL')} failed; early stopping saved {result.epochs_saved} epoch(s)"
    )
    chance = _chance_warning(result.output, result.study)
    if chance:
        console.print(f"[yellow]Warning:[/yellow] {chance}", highlight=False)
    console.print(f"Next: overfit-search best {result.output}   (best.yaml is written there)")
    if result.interrupted:
        console.print(
            f"Interrupted ({result.interrupted}); running trials were recorded as FAIL "
            f"'interrupted'. Resume with: overfit-search run {args.sweep} --resume"
            + (f" --output {args.output}" if args.output else "")
        )
    return result.exit_code


def _chance_warning(out: Path, study: optuna.Study) -> str | None:
    """report.html's warning about trials stuck at chance, for the console summary too."""
    from overfit_search.results.report import chance_note, read_results

    try:
        return chance_note(read_results(out, study))
    except OverfitSearchError:  # no sweep.yaml or study: the summary above already says so
        return None


def _cmd_best(args: argparse.Namespace) -> int:
    import json

    import yaml

    from overfit_search.results.exports import best_sweep, load_results, pick_trial
    from overfit_search.reuse import confirmed_choice
    from overfit_search.search_space import split_space

    out = Path(args.results)
    sweep, study = load_results(out)
    number = args.trial
    if number is None and args.by == "confirmed":
        number = confirmed_choice(out)
    trial = pick_trial(study, sweep, number)
    doc = best_sweep(sweep, trial, split_space(sweep.search)[1])
    if args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from overfit_search.results.exports import load_results, write_exports
    from overfit_search.results.report import write_review
    from overfit_search.search_space import split_space

    out = Path(args.results)
    sweep, study = load_results(out)
    write_exports(study, sweep, out, split_space(sweep.search)[1])
    path = write_review(out, study, dashboard=not args.no_dashboard)
    print(f"Report: {path} (figures in {path.parent / 'figures'})")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from overfit_search.results.dashboard import (
        LOOPBACK,
        make_dashboard_server,
        storage_for,
        url_of,
    )

    storage = storage_for(args.target)
    if args.host not in LOOPBACK:
        logger.warning(
            "warning: listening on %s: anyone who can reach this machine can read and edit the "
            "study (optuna-dashboard has no login)",
            args.host,
        )
    server = make_dashboard_server(storage, args.host, args.port)
    print(f"optuna-dashboard on {storage}: {url_of(server, args.host)}  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _print_metrics(what: str, output: Path, m: dict[str, object]) -> None:
    from overfit_search.results.model_files import sidecars

    labels, metrics = sidecars(output)
    print(f"{what}: {output} (+ {labels.name}, {metrics.name})")
    line = f"  val_loss {_fmt(m['val_loss'])}  gap {_fmt(m['gap'])}"
    line += f"  val_accuracy {_fmt(m['val_accuracy'])}"
    if m.get("trial_val_loss") is not None:
        line += f"  (trial {m['trial']}: val_loss {_fmt(m['trial_val_loss'])})"
    print(line)
    if m.get("test_loss") is not None:
        print(
            f"  held-out test split ({m['test_images']} images, evaluated once for this model): "
            f"loss {_fmt(m['test_loss'])}  accuracy {_fmt(m['test_accuracy'])}"
        )


def _check_output(path: str, fmt: str | None, force: bool) -> tuple[Path, str]:
    """``--output`` and ``--format`` checked before any work: the path and the format."""
    from overfit_search.results.model_files import TF_ONLY, check_output, model_format

    output = Path(path)
    backend = None
    if model_format(output, fmt) in TF_ONLY:  # only then is Keras (and its backend) loaded
        import keras

        backend = keras.config.backend()
    return output, check_output(output, fmt, force, backend)


def _cmd_retrain(args: argparse.Namespace) -> int:
    from overfit_search import reuse

    output, fmt = _check_output(args.output, args.format, args.force)
    source = reuse.resolve(args.source, args.trial, args.by)
    what = "train + validation" if args.full else "the training split"
    print(f"Retraining for {source.epochs} epoch(s) on {what} (seed {source.seed})...")
    metrics = reuse.retrain(source, output, full=args.full, tolerance=args.tolerance, fmt=fmt)
    _print_metrics("Saved", output, metrics)
    if args.full:
        print("  (--full: validation images were trained on; the val_loss above is not held out)")
    elif metrics.get("matches_trial") is False:
        print(f"  warning: differs from the trial by more than {args.tolerance:.0%}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from overfit_search import reuse

    output, fmt = _check_output(args.output, args.format, args.force)
    source = reuse.resolve(args.results, args.trial, args.by)
    metrics = reuse.export(source, output, fmt)
    _print_metrics("Exported", output, metrics)
    return 0


def _cmd_confirm(args: argparse.Namespace) -> int:
    from overfit_search import reuse

    out = Path(args.results)
    table = reuse.confirm(out, args.top, args.seeds)
    print(f"Confirmed over the trial itself and {args.seeds} reseeded run(s) each:")
    for row in table.itertuples(index=False):
        print(
            f"  trial {row.trial}: val_loss {row.mean_val_loss:.4f} ± {row.sd_val_loss:.4f} "
            f"(trial {row.trial_val_loss:.4f}), gap {row.mean_gap:.4f} ± {row.sd_gap:.4f}"
        )
    print(f"Written to {out / reuse.CONFIRM_FILE}; pick by it with --by confirmed")
    return 0


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _unsafe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="load file: backbones with Keras's safe mode off (Lambda layers run code: only "
        "for files you trust)",
    )


def _format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("keras", "savedmodel", "tflite"),
        default=None,
        help="keras (a .keras file), savedmodel (a directory, for TF Serving) or tflite (a "
        ".tflite file); default: from --output (.keras, .tflite, else a SavedModel directory). "
        "Every format loads without overfit-search installed",
    )


def _by_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        choices=("value", "confirmed"),
        default="value",
        help="value: the study's choice; confirmed: lowest mean val_loss in confirm.csv",
    )


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
    run.add_argument(
        "--force",
        action="store_true",
        help="start even when the setup check finds the backbone's features at chance",
    )
    _unsafe_argument(run)
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a sweep file (no TensorFlow or Ray loaded)")
    validate.add_argument("sweep", help="sweep YAML file")
    validate.set_defaults(func=_cmd_validate)

    best = sub.add_parser("best", help="print the winning configuration as a sweep file")
    best.add_argument("results", help="results directory")
    best.add_argument("--trial", type=int, help="export this trial instead of the best")
    best.add_argument("--format", choices=("yaml", "json"), default="yaml")
    _by_argument(best)
    best.set_defaults(func=_cmd_best)

    report = sub.add_parser(
        "report", help="rewrite report.html, its PNGs and the dashboard figures of a results dir"
    )
    report.add_argument("results", help="results directory")
    report.add_argument(
        "--no-dashboard", action="store_true", help="do not save figures into the study"
    )
    report.set_defaults(func=_cmd_report)

    dashboard = sub.add_parser("dashboard", help="open optuna-dashboard on a sweep's study")
    dashboard.add_argument("target", help="results directory or Optuna storage URL")
    dashboard.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dashboard.set_defaults(func=_cmd_dashboard)

    retrain = sub.add_parser(
        "retrain", help="train the winner (or --trial N) for its best epoch count and save it"
    )
    retrain.add_argument("source", help="results directory, or the best.yaml it wrote")
    retrain.add_argument(
        "--output", required=True, help="model to write (.keras, .tflite or a directory)"
    )
    retrain.add_argument("--trial", type=int, help="retrain this trial instead of the best")
    retrain.add_argument(
        "--full", action="store_true", help="train on train + validation, same epoch count"
    )
    retrain.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="warn when val_loss differs from the trial's by more than this (default 0.05)",
    )
    retrain.add_argument("--force", action="store_true", help="replace an existing model file")
    _format_argument(retrain)
    _by_argument(retrain)
    _unsafe_argument(retrain)
    retrain.set_defaults(func=_cmd_retrain)

    export = sub.add_parser(
        "export", help="save the winner's kept best-epoch weights as a model (no training)"
    )
    export.add_argument("results", help="results directory")
    export.add_argument(
        "--output", required=True, help="model to write (.keras, .tflite or a directory)"
    )
    export.add_argument("--trial", type=int, help="export this trial instead of the best")
    export.add_argument("--force", action="store_true", help="replace an existing model file")
    _format_argument(export)
    _by_argument(export)
    _unsafe_argument(export)
    export.set_defaults(func=_cmd_export)

    confirm = sub.add_parser(
        "confirm", help="retrain the top trials with other seeds: mean ± sd of val_loss and gap"
    )
    confirm.add_argument("results", help="results directory")
    confirm.add_argument("--top", type=positive_int, default=3, help="trials (default 3)")
    confirm.add_argument("--seeds", type=positive_int, default=3, help="seeds (default 3)")
    _unsafe_argument(confirm)
    confirm.set_defaults(func=_cmd_confirm)

    from overfit_search import check_data_cli, check_model_cli, diagnose

    diagnose.add_parser(sub)
    check_data_cli.add_parser(sub)
    check_model_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    unsafe = bool(getattr(args, "unsafe_load", False))
    if unsafe:
        # read where model files load: here and in every Ray worker (runner passes it on)
        os.environ["OVERFIT_SEARCH_UNSAFE_LOAD"] = "1"
    # TensorFlow's C++ start-up chatter (no CUDA, CPU flags) is not for users; errors still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.debug else "3")
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
    finally:
        if unsafe:  # in-process callers (tests, notebooks) do not keep it
            os.environ.pop("OVERFIT_SEARCH_UNSAFE_LOAD", None)


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
