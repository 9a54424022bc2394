"""``overfit-search check-model``: can the backbone's features separate the classes, and how
must its inputs be scaled?

Loads the sweep's data and backbone and runs the probe of :mod:`overfit_search.models.probe`
(the same check ``run`` does before its first trial), in this process: a linear probe on the
frozen backbone's features under each candidate input convention (only the known one for a
``keras.applications`` name, a ``builtin:``, a model with its own Rescaling layer, or an
explicit ``model.preprocess``). Prints the table, the chosen convention and the verdict.
"""

from __future__ import annotations

import argparse
import json

from overfit_search.models.probe_level import ALPHA

EPILOG = f"""\
The probe: a seeded sample of training and validation images (up to 40 per class, at most 400
a side) goes through the frozen backbone, its features are pooled to a vector, standardized,
and a logistic regression fitted on the training sample is scored on the validation sample
(log loss, accuracy). The convention with the lowest log loss is the one `preprocess: auto`
chooses; conventions within 2 standard errors of it are tied, and a tie goes to the one whose
inputs best match the backbone's first BatchNormalization statistics (column bn_mismatch).
A keras.applications name, a builtin:, a model starting with its own Rescaling or
Normalization layer, or an explicit model.preprocess is checked under its one convention.
The verdict is a one-sided binomial test of the best validation accuracy against
chance (the largest class's share of the validation sample, at least 1/classes), at
p < {ALPHA:g} divided by the number of conventions tried; with too few validation images for
that to be possible at all it is inconclusive, and does not fail.

exit codes: 0 the features separate the classes (or too few images to tell), 2 they do not,
or the sweep file, the data or the backbone is unusable.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check-model`` subcommand (its function is :func:`run`)."""
    parser = subparsers.add_parser(
        "check-model",
        help="probe the backbone: input convention, and whether its features separate the classes",
        description="Run the setup check `run` does before its first trial: a linear probe on "
        "the frozen\nbackbone's features under each candidate input convention.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", help="sweep YAML file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="load file: backbones with Keras's safe mode off (only for files you trust)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``check-model`` for parsed arguments; return the exit code (0 ok, 2 not).

    Raises:
        ConfigError: The sweep file or the backbone is unusable.
        DataError: The data is missing or unusable.
    """
    from overfit_search.config import load_sweep
    from overfit_search.data import load_data
    from overfit_search.models.flips import FlipVerdict
    from overfit_search.models.probe import flip_note, probe_backbone, probe_sample
    from overfit_search.paths import data_cache

    sweep = load_sweep(args.sweep)
    data = load_data(sweep.data, cache_dir=data_cache()).without_test()
    sample = probe_sample(data, sweep.study.seed)
    result = probe_backbone(
        sweep.model,
        sweep.data.image_size,
        sample,
        data.num_classes,
        mirror=sweep.train.augment_flip == "auto",
    )
    note = flip_note(sweep)
    if note:
        result.notes.append(note)
    if result.flip is not None:
        result.notes.append(FlipVerdict(**result.flip).sentence())
    if args.json:
        print(json.dumps({"sweep": str(args.sweep), **result.to_dict()}, indent=2))
        return 0 if result.passed else 2
    how = {
        "probe": "the linear probe: lowest validation log loss, BatchNorm statistics on a tie",
        "application": "the keras.applications family's own preprocess_input",
        "builtin": "the builtin backbone's own",
        "rescaling": "the model's own Rescaling/Normalization layer at its input (raw pixels)",
        "sweep": "model.preprocess in the sweep file",
    }.get(result.decided_by, result.decided_by)
    print(
        f"{args.sweep}: backbone {sweep.model.backbone}, {data.num_classes} classes, probe on "
        f"{result.train_images} training / {result.val_images} validation images "
        f"({result.seconds:.1f}s)"
    )
    print(result.table())
    print(f"preprocess: {result.chosen} (by {how})")
    print(("" if result.passed else "FAILED: ") + result.verdict())
    for line in result.notes:
        print(f"note: {line}")
    return 0 if result.passed else 2
