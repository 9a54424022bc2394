"""The ``overfit-search diagnose`` subcommand."""

from __future__ import annotations

import argparse
import json

from overfit_search.argtypes import nonneg_float, positive_int
from overfit_search.diagnose.logs import read_log
from overfit_search.diagnose.render import render_report
from overfit_search.diagnose.suggest import sweep_name, write_sweep
from overfit_search.diagnose.verdict import Thresholds, diagnose
from overfit_search.errors import ConfigError

EPILOG = """\
verdict rules, checked in this order (thresholds are the options above):
  overfitting   there is an onset (after the best epoch, validation loss rises for at least
                --min-rise epochs and stays at least half-way up its peak, while training loss
                falls) and Prechelt's GL at the last epoch, 100 * (val_loss / lowest val_loss
                so far - 1), is at least --gl-threshold percent (default 5)
  large_gap     the gap at the best epoch (val_loss - loss) is at least --gap-ratio (default 0.5)
                times the best val_loss
  underfitting  validation loss still fell by more than --improve-pct percent per epoch
                (default 1) over the last --window epochs (default 3)
  healthy       otherwise

input: Keras console output (TF2 or Keras 3 style; epochs keep their printed numbers), a CSVLogger
file, or a History JSON (json.dump(history.history, f)); '-' reads standard input.
Keras's logged training loss includes the L2 penalty, dropout and augmentation, so the real gap
is usually larger than the one shown. Exit codes: 0 diagnosed, 2 input not understood.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diagnose`` subcommand (its function is :func:`run`)."""
    defaults = Thresholds()
    parser = subparsers.add_parser(
        "diagnose",
        help="read a finished training log and say whether, from when and how it overfit",
        description="Read a finished Keras training run (console log, CSVLogger file or History\n"
        "JSON) and report the best epoch, whether and from when it overfit, Prechelt's GL at\n"
        "the last epoch, the gap, wasted epochs and ranked advice.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("log", metavar="FILE", help="the training log, or - for standard input")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--emit-sweep",
        metavar="OUT.yaml",
        help="write a sweep file with ranges centred on what the log suggests",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="with --emit-sweep: data.dir, the class-per-folder images (default a placeholder)",
    )
    parser.add_argument(
        "--backbone",
        metavar="SPEC",
        help="with --emit-sweep: model.backbone, e.g. mobilenet, file:PATH, tfhub:URL "
        "(default mobilenet_v2)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing OUT.yaml")
    parser.add_argument(
        "--gl-threshold",
        type=nonneg_float,
        default=defaults.gl_alpha,
        metavar="PCT",
        help="overfitting needs GL at the last epoch >= PCT percent (default %(default)s)",
    )
    parser.add_argument(
        "--gap-ratio",
        type=nonneg_float,
        default=defaults.gap_ratio,
        metavar="R",
        help="large_gap when gap at best >= R x best val_loss (default %(default)s)",
    )
    parser.add_argument(
        "--improve-pct",
        type=nonneg_float,
        default=defaults.improve_pct,
        metavar="PCT",
        help="underfitting when val_loss still falls > PCT%% per epoch (default %(default)s)",
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=defaults.window,
        metavar="N",
        help="epochs at the end looked at for underfitting (default %(default)s)",
    )
    parser.add_argument(
        "--min-rise",
        type=positive_int,
        default=defaults.min_rise_epochs,
        metavar="N",
        help="an onset needs at least N epochs after the best one (default %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``diagnose`` for parsed arguments; return the exit code.

    Raises:
        ConfigError: The input is missing or not understood, or OUT.yaml cannot be written.
    """
    thresholds = Thresholds(
        gl_alpha=args.gl_threshold,
        gap_ratio=args.gap_ratio,
        improve_pct=args.improve_pct,
        window=args.window,
        min_rise_epochs=args.min_rise,
    )
    if (args.data or args.backbone) and not args.emit_sweep:
        raise ConfigError("--data and --backbone fill the sweep of --emit-sweep OUT.yaml; pass it")
    log = read_log(args.log)
    result = diagnose(log, thresholds)
    written = None
    if args.emit_sweep:
        written = write_sweep(
            result,
            args.emit_sweep,
            sweep_name(args.log),
            force=args.force,
            data_dir=args.data,
            backbone=args.backbone,
        )
    if args.json:
        payload = result.to_json_dict()
        payload["sweep_file"] = str(written) if written else None
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(render_report(result))
        if written:
            todo = [
                setting
                for setting, given in (("data.dir", args.data), ("model.backbone", args.backbone))
                if not given
            ]
            then = f"set {' and '.join(todo)}, then " if todo else "check it with "
            print(f"\nWrote {written}: {then}`overfit-search validate {written}`.")
    return 0
