"""``overfit-search check-data``: look at the data before spending compute on it.

Prints each class's training and validation counts, unreadable files, class imbalance, tiny
classes and near-duplicates across the split (counts and a few example pairs); ``--json``
prints the same as one JSON object. The checks themselves are in
:mod:`overfit_search.data.check` (numpy only); this module loads the data and formats.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from overfit_search.argtypes import int_at_least, nonneg_float
from overfit_search.data.thresholds import Thresholds
from overfit_search.errors import ConfigError, DataError

if TYPE_CHECKING:
    from overfit_search.config.schema import DataConfig

DIRECTORY_IMAGE_SIZE = 64
"""Side the images of a bare directory are decoded at for the check."""
DIRECTORY_VALIDATION_FRACTION = 0.2
"""Validation fraction of the stratified split made for a bare directory."""

EPILOG = f"""\
SWEEP_FILE_OR_DIR: a sweep file (its data section is checked, with its split, at its
image_size; the decoded images are cached for `run`), or a class-per-folder directory, checked
with a default data config: source folder, that directory, split stratified (seed 0),
validation_fraction {DIRECTORY_VALIDATION_FRACTION}, image_size {DIRECTORY_IMAGE_SIZE}
(--image-size changes it).

near-duplicates are the same picture again (a re-encode, a small shift, noise, a neighbouring
video frame), not merely similar pictures: candidates share a 64-bit DCT perceptual hash within
--hash-distance bits; each is confirmed when the mean absolute difference of the two grayscale
thumbnails (32x32, each normalised to mean 0 and standard deviation 1, aligned by a sub-pixel
shift of up to 3/32 of the image) is at most --pixel-distance.
`run` does the same checks before the first trial and warns (never stops) when more than 1%
of the validation images have a near-duplicate in training.

exit codes: 0 the checks ran (whatever they found), 2 the sweep file or the data is unusable.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check-data`` subcommand (its function is :func:`run`)."""
    defaults = Thresholds()
    parser = subparsers.add_parser(
        "check-data",
        help="class counts, unreadable files, imbalance and near-duplicates across the split",
        description="Check a sweep's data (or a class-per-folder directory) before a sweep:\n"
        "training/validation counts per class, unreadable files, class imbalance, tiny\n"
        "classes, and near-duplicates across the split (counts plus a few example pairs).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target", metavar="SWEEP_FILE_OR_DIR", help="a sweep YAML file or an image directory"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--max-examples",
        type=int_at_least(0),
        default=5,
        metavar="N",
        help="near-duplicate pairs shown, closest first (default %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int_at_least(8, 1024),
        default=None,
        metavar="PX",
        help=f"decode at PX x PX (default: the sweep's image_size; {DIRECTORY_IMAGE_SIZE} for "
        "a directory)",
    )
    parser.add_argument(
        "--hash-distance",
        type=int_at_least(0, 64),
        default=defaults.hash_distance,
        metavar="BITS",
        help="candidate pairs differ in at most BITS of 64 pHash bits (default %(default)s)",
    )
    parser.add_argument(
        "--pixel-distance",
        type=nonneg_float,
        default=defaults.pixel_distance,
        metavar="D",
        help="confirmed when the aligned normalised thumbnail distance is <= D "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--min-class-size",
        type=int_at_least(1),
        default=defaults.min_train_images,
        metavar="N",
        help="classes with fewer training images are flagged as tiny (default %(default)s)",
    )
    parser.add_argument(
        "--max-imbalance",
        type=nonneg_float,
        default=defaults.max_imbalance,
        metavar="R",
        help="flag largest/smallest class (training images) above R (default %(default)s)",
    )
    parser.add_argument(
        "--max-leak-pct",
        type=nonneg_float,
        default=100 * defaults.max_leak_fraction,
        metavar="PCT",
        help="leakage warning above PCT%% of validation images with a near-duplicate in "
        "training (default %(default)s)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="decode into memory; do not use the disk cache"
    )
    parser.set_defaults(func=run)


def data_config(target: str | Path, image_size: int | None = None) -> tuple[DataConfig, str]:
    """The data section to check for a sweep file or a bare image directory.

    Args:
        target: A sweep YAML file, or a class-per-folder directory.
        image_size: Decode at this size instead of the sweep's (or the directory default).

    Returns:
        ``(data section, what was checked, in words)``.

    Raises:
        DataError: ``target`` does not exist.
        ConfigError: The sweep file is invalid.
    """
    from overfit_search.config.schema import DataConfig

    path = Path(target).expanduser()
    if path.is_dir():
        cfg = DataConfig(
            source="folder",
            dir=path.resolve(),
            image_size=image_size or DIRECTORY_IMAGE_SIZE,
            split="stratified",
            validation_fraction=DIRECTORY_VALIDATION_FRACTION,
        )
        return cfg, (
            f"{cfg.dir} (stratified split, validation_fraction "
            f"{cfg.validation_fraction:g}, seed {cfg.seed}, {cfg.image_size} px)"
        )
    if not path.exists():
        raise DataError(
            f"{path}: no such sweep file or data directory (give a sweep YAML file or a "
            "folder with one sub-folder per class)"
        )
    from overfit_search.config import load_sweep

    sweep = load_sweep(path)
    cfg = sweep.data
    if image_size is not None:
        cfg = cfg.model_copy(update={"image_size": image_size})
    where = cfg.dir if cfg.source == "folder" else f"{cfg.source} source"
    return cfg, (
        f"{path}: {where} ({cfg.split} split, validation_fraction {cfg.validation_fraction:g}, "
        f"seed {cfg.seed}, {cfg.image_size} px)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``check-data`` for parsed arguments; return the exit code.

    Raises:
        DataError: The data is missing or unusable.
        ConfigError: The sweep file or a threshold is invalid.
    """
    from overfit_search.data import load_data, sorted_split_warning
    from overfit_search.data.check import check_data, format_report

    try:
        thresholds = Thresholds(
            hash_distance=args.hash_distance,
            pixel_distance=args.pixel_distance,
            min_train_images=args.min_class_size,
            max_imbalance=args.max_imbalance,
            max_leak_fraction=args.max_leak_pct / 100,
        )
    except ValueError as exc:
        raise ConfigError(f"check-data: {exc}") from None
    cfg, what = data_config(args.target, args.image_size)
    cache_dir = None
    if not args.no_cache:
        from overfit_search.paths import data_cache

        cache_dir = data_cache()
    data = load_data(cfg, cache_dir=cache_dir)
    report = check_data(data, thresholds, max_examples=args.max_examples)
    if cfg.split == "sorted":
        report.warnings.append(sorted_split_warning(cfg.validation_fraction))
    if args.json:
        payload = {"checked": what, **report.to_dict()}
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(f"checked: {what}")
        print(format_report(report))
    return 0
