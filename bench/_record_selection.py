"""Record selection banks (issue 19): learning curves with a held-out test split per epoch.

Each configuration is trained with the project's own trainer
(:func:`overfit_search.training.trial.run_trial`) for the full ``train.max_epochs`` with no
stopping, exactly as :func:`_record.record` does, and one row per epoch is written with the
curve bank's columns (so ``bench/pruning.py --curves`` reads these files too) plus
``test_loss`` / ``test_accuracy``: the clean cross-entropy and accuracy, after that epoch, on
test images no trial trains or is scored on, measured by a Keras callback run after the trial's
reporter.

The test images are the digits of the setup's classes that the split left unused: with
``data.train_per_class`` the digits source keeps only that many training images per class and
drops the rest, so those dropped images are a test split that leaves the training and
validation splits, and so every trial's score, exactly what they are without it
(``data.test_fraction`` would carve the test images out of the few training images instead).
The photo setup (``mn2-photos``) writes its test patches beside its training and validation
folders instead (``_photos``), from parts of each photograph neither of those uses.

Usage::

    python bench/_record_selection.py --setup sel-59             # the setup's default size
    python bench/_record_selection.py --setup sel-59 --reseed 12 # configs 0-11 again, seed 2
    # two processes sharing the cores, then one bank:
    python bench/_record_selection.py --setup mn2-photos --configs 60 --shard 0/2 --out a.csv
    python bench/_record_selection.py --setup mn2-photos --configs 60 --shard 1/2 --out b.csv
    python bench/_record_selection.py --setup mn2-photos --merge a.csv b.csv

Keras and TensorFlow are imported only inside :func:`record_selection`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _record import CURVE_COLUMNS, _done_configs, sample_configs  # noqa: E402

SELECTION_COLUMNS = (*CURVE_COLUMNS, "test_loss", "test_accuracy", "seed")
"""Columns of a selection bank: the curve bank's, then the test split's and the trial seed."""

SELECTION_DIR = HERE / "curves" / "selection"
RESEED_SUFFIX = "-seed2"
"""``<setup>-seed2.csv``: some configurations of ``<setup>.csv`` trained again, another seed."""
RESEED_OFFSET = 50_000
"""Added to the trial seed of a configuration's second run."""

_COMMON: dict[str, Any] = {
    "train.max_epochs": 20,
    "search.dropout": {"low": 0.0, "high": 0.3},
    "search.l2": {"low": 1.0e-6, "high": 1.0e-4, "log": True},
    "search.learning_rate": {"low": 1.0e-3, "high": 8.0e-3, "log": True},
    "search.frozen_fraction": {"low": 0.25, "high": 0.75},
    "search.augmentation": {"low": 0.0, "high": 0.2},
}

_OVERFIT: dict[str, Any] = {
    **_COMMON,
    "search.learning_rate": {"low": 1.5e-3, "high": 1.2e-2, "log": True},
    "search.frozen_fraction": {"low": 0.0, "high": 0.5},
    "search.augmentation": {"low": 0.0, "high": 0.1},
}
"""Round 3's setups, aimed at the overfitting regime: high learning rates, most of the backbone
unfrozen, 10-12 training images per class, 25-30 epochs. 3 probe configurations with learning
rates up to 3e-2 (another sample seed) had best epochs 22 and 18 of 30, and every configuration
above 0.015 sat at chance for all 30 epochs, so the range stops at 1.2e-2. Measured on the
banks: the median best epoch is still 22-24 of 25-30 (bench/RESULTS.md, issue 18 round 3)."""

_MOBILENET: dict[str, Any] = {
    "search.dropout": {"low": 0.0, "high": 0.5},
    "search.l2": {"low": 1.0e-6, "high": 1.0e-3, "log": True},
    "search.augmentation": {"low": 0.0, "high": 0.2},
}
"""The search ranges the MobileNetV2 fixture's setups share (rounds 7 and 9)."""

MOBILENET_PREFIX = "mobilenetv2-fixture@"
"""A ``model.backbone`` placeholder is this prefix and a size: the fixture's MobileNetV2 rebuilt
at that many px (``_record.rebuild_mobilenet``), resolved by :func:`resolve`."""
MOBILENET_32 = f"{MOBILENET_PREFIX}32"
"""The fixture rebuilt at 32 px (``mn2-all10``)."""

PHOTOS = "photo-patches"
"""A ``data.dir`` placeholder: the patch set of ten bundled photographs (``_photos``), written
at the setup's ``data.image_size`` with :data:`PHOTO_COUNTS` patches per photograph."""
PHOTO_COUNTS = {"train": 10, "validation": 100, "test": 60}
"""Patches per photograph and split of the :data:`PHOTOS` set: 100 training, 1,000
validation and 600 test images."""

SELECTION_SETUPS: dict[str, dict[str, Any]] = {
    # Overrides of sweeps/demo.yaml (the builtin digits CNN pretrained on digits 0-4; 25-75 % of
    # it frozen from the input side, the rest fine-tuned). Few training images per class and
    # learning rates of 1e-3 to 8e-3, so the clean training loss reaches ~0.01-0.05 and
    # validation loss flattens or turns within 20 epochs (measured: bench/RESULTS.md, issue 19).
    # sel-all10 is defined but not recorded: its first configuration took 34 s on the shared
    # cores with its best epoch at 23 of 24, out of the recording session's budget and regime.
    "sel-59": {
        **_COMMON,
        "data.digits_classes": [5, 6, 7, 8, 9],
        "data.train_per_class": 15,
        "data.validation_fraction": 0.3,
        "data.seed": 11,
        "train.batch_size": 4,
    },
    "sel-all10": {
        **_COMMON,
        "data.digits_classes": list(range(10)),
        "data.train_per_class": 10,
        "data.validation_fraction": 0.25,
        "data.seed": 12,
        "train.batch_size": 8,
        "train.max_epochs": 24,
    },
    "sel-3589-smallval": {
        **_COMMON,
        "data.digits_classes": [3, 5, 8, 9],
        "data.train_per_class": 20,
        "data.validation_fraction": 0.12,
        "data.seed": 13,
        "train.batch_size": 4,
    },
    "sel-59-24px": {
        **_COMMON,
        "data.digits_classes": [5, 6, 7, 8, 9],
        "data.image_size": 24,
        "data.train_per_class": 25,
        "data.validation_fraction": 0.25,
        "data.seed": 14,
        "train.batch_size": 8,
    },
    "sel-6789-40px": {
        **_COMMON,
        "data.digits_classes": [6, 7, 8, 9],
        "data.image_size": 40,
        "data.train_per_class": 8,
        "data.validation_fraction": 0.2,
        "data.seed": 15,
        "train.batch_size": 4,
    },
    # Round 3 (2026-11-29, _OVERFIT): ov-3589-choose is a choosing bank for the stopping
    # default; ov-59-hilr and ov-all10 are held out (recorded while the default was re-chosen,
    # not replayed before that choice was committed).
    "ov-3589-choose": {
        **_OVERFIT,
        "data.digits_classes": [3, 5, 8, 9],
        "data.train_per_class": 10,
        "data.validation_fraction": 0.5,
        "data.seed": 20,
        "train.batch_size": 4,
        "train.max_epochs": 30,
    },
    "ov-59-hilr": {
        **_OVERFIT,
        "data.digits_classes": [5, 6, 7, 8, 9],
        "data.train_per_class": 10,
        "data.validation_fraction": 0.5,
        "data.seed": 21,
        "train.batch_size": 4,
        "train.max_epochs": 30,
    },
    "ov-all10": {
        **_OVERFIT,
        "data.digits_classes": list(range(10)),
        "data.train_per_class": 12,
        "data.validation_fraction": 0.6,
        "data.seed": 22,
        "train.batch_size": 8,
        "train.max_epochs": 25,
    },
    # Round 4 (2026-11-29, _OVERFIT, run to 2-4 times the best epoch): held out for the
    # stopping default re-chosen on the twelve banks above. Batch sizes of 2 and 4 give 15 and
    # 25 steps an epoch so the winners peak earlier than round 3's (median best epoch 22-24 of
    # 25-30), and the curves after the peak are long enough for an overfitting rule to matter.
    # Probed on 3 configurations of another sample (--sample-seed 99): best epochs 9-10 of 40
    # (lo-679) and 14-17 of 36 (lo-all10, at validation_fraction 0.5; 0.6 gives 1,018 images).
    "lo-679": {
        **_OVERFIT,
        "data.digits_classes": [6, 7, 9],
        "data.train_per_class": 10,
        "data.validation_fraction": 0.5,
        "data.seed": 30,
        "train.batch_size": 2,
        "train.max_epochs": 40,
    },
    "lo-all10": {
        **_OVERFIT,
        "data.digits_classes": list(range(10)),
        "data.train_per_class": 10,
        "data.validation_fraction": 0.6,
        "data.seed": 31,
        "train.batch_size": 4,
        "train.max_epochs": 32,
    },
    # Round 7 (2026-11-29): the pretrained MobileNetV2 of ../shared/fixtures (Stanford Dogs,
    # rebuilt at 32 px: MOBILENET_32) with its top layers fine-tuned on 10 digits per class,
    # 1,000+ validation images; a held-out bank for the stopping default. A probe with learning
    # rates 1e-4-3e-3 left both probed configurations at chance (training accuracy 0.10: the
    # fine-tuned top wrecked), hence 2e-5-1e-3; still 25 of the 60 recorded end near chance.
    "mn2-all10": {
        "train.max_epochs": 24,
        "model.backbone": MOBILENET_32,
        "data.digits_classes": list(range(10)),
        "data.train_per_class": 10,
        "data.validation_fraction": 0.6,
        "data.seed": 40,
        "train.batch_size": 4,
        **_MOBILENET,
        "search.learning_rate": {"low": 2.0e-5, "high": 1.0e-3, "log": True},
        "search.frozen_fraction": {"low": 0.6, "high": 0.95},
    },
    # Round 9 (2026-11-29): the MobileNetV2 fixture on natural photographs (PHOTOS: which of
    # ten photographs a patch comes from, training and validation patches from disjoint parts
    # of each), aimed at the steep-turn regime of the user reports that digits never reached
    # (measured: median best epoch 12 of 16, 9 of 60 at their best by epoch 5; RESULTS.md
    # round 9); a held-out bank for the stopping default, committed before its first replay.
    # Probed on 3 configurations of another sample (--sample-seed 99) per range: learning
    # rates near 1e-3 with 95 % frozen sat at chance (training loss above ln 10); 2e-5-6e-5
    # with 80-87 % frozen fell smoothly to a plateau (best epoch 14-16 of 16); 4e-4 at 93 %
    # frozen turned at epoch 9 and climbed, noisily. Hence 3e-5-6e-4 and 75-100 % frozen.
    "mn2-photos": {
        "train.max_epochs": 16,
        "model.backbone": f"{MOBILENET_PREFIX}48",
        "data.source": "folder",
        "data.dir": PHOTOS,
        "data.image_size": 48,
        "data.seed": 50,
        "train.batch_size": 4,
        **_MOBILENET,
        "search.learning_rate": {"low": 3.0e-5, "high": 6.0e-4, "log": True},
        "search.frozen_fraction": {"low": 0.75, "high": 1.0},
    },
}
"""Selection setups (``--setup NAME``): overrides of ``sweeps/demo.yaml``."""


def resolve(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with the placeholders made real: a ``mobilenetv2-fixture@N`` backbone
    (the fixture rebuilt at N px, saved once) and the :data:`PHOTOS` folder (written once, under
    the project cache)."""
    out = dict(overrides)
    backbone = out.get("model.backbone")
    if isinstance(backbone, str) and backbone.startswith(MOBILENET_PREFIX):
        from _record import rebuild_mobilenet

        out["model.backbone"] = f"file:{rebuild_mobilenet(int(backbone.split('@')[1]))}"
    if out.get("data.dir") == PHOTOS:
        from _photos import photo_files, write_photo_set

        from overfit_search.paths import cache_root

        size, seed = int(out["data.image_size"]), int(out.get("data.seed", 0))
        root = cache_root() / "bench" / f"photos-{size}px-seed{seed}"
        out["data.dir"] = str(write_photo_set(root, size, PHOTO_COUNTS, seed, photo_files()))
    return out


def unused_digits(data: Any, classes: list[int], image_size: int) -> tuple[Any, Any]:
    """The digits of ``classes`` that neither the training nor the validation split uses.

    Args:
        data: The loaded digits data (its split table names files ``digits:<index>``).
        classes: ``data.digits_classes``.
        image_size: ``data.image_size``.

    Returns:
        ``(x_test, y_test)``: uint8 images and class indices (as the trainer's labels).
    """
    from overfit_search.data.digits import _digits

    x, digits, index = _digits(classes, image_size)
    used = {int(f.split(":", 1)[1]) for f in data.split.file}
    keep = np.array([int(i) not in used for i in index], dtype=bool)
    y = np.searchsorted(np.asarray(sorted(classes)), digits).astype(np.int32)
    return x[keep], y[keep]


def record_selection(
    setup: str,
    out: Path,
    n_configs: int,
    seed: int = 0,
    epochs: int | None = None,
    only: int | None = None,
    seed_offset: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Path:
    """Train sampled configurations of ``setup`` to ``max_epochs``; write curves and test metrics.

    Rows are appended after every configuration; a rerun with the same arguments resumes.

    Args:
        setup: A key of :data:`SELECTION_SETUPS`.
        out: The bank to write (see :data:`SELECTION_COLUMNS`).
        n_configs: Configurations sampled (the sample is the same for every ``only``).
        seed: Sampler seed; trial ``i`` trains with seed ``seed * 100003 + i + seed_offset``.
        epochs: ``max_epochs`` (None: the setup's).
        only: Train only the first ``only`` configurations of the sample.
        seed_offset: Added to every trial seed (a second-seed bank uses :data:`RESEED_OFFSET`).
        shard: ``(k, n)``: train only the configurations whose number is ``k`` modulo ``n``
            (``n`` processes, each writing its own file, share the cores; merge with
            :func:`merge_shards`).

    Returns:
        ``out``.
    """
    import keras

    from overfit_search.config import load_sweep
    from overfit_search.data import load_data
    from overfit_search.paths import data_cache
    from overfit_search.search_space import split_space
    from overfit_search.training.feed import predict
    from overfit_search.training.metrics import accuracy, cross_entropy
    from overfit_search.training.trial import run_trial

    overrides = resolve({"train.keep_best_weights": 0, **SELECTION_SETUPS[setup]})
    if epochs is not None:
        overrides["train.max_epochs"] = epochs
    demo = HERE.parent / "sweeps" / "demo.yaml"
    sweep = load_sweep(demo, overrides)
    max_epochs = sweep.train.max_epochs
    data = load_data(sweep.data, cache_dir=data_cache())
    if sweep.data.source == "folder":
        from _photos import read_split

        assert sweep.data.dir is not None
        x_test, y_test = read_split(sweep.data.dir, "test", data.class_names)
    else:
        classes = list(sweep.data.digits_classes)
        x_test, y_test = unused_digits(data, classes, sweep.data.image_size)
    data = dataclasses.replace(data, x_test=x_test, y_test=y_test)
    space, fixed = split_space(sweep.search, sweep.train)
    configs = sample_configs(space, n_configs, seed)[: only or n_configs]
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _done_configs(out, max_epochs)
    _keep_done(out, done)
    print(
        f"record: {setup} -> {out}: {len(configs)} configs x {max_epochs} epochs, train "
        f"{len(data.y_train)} val {len(data.y_val)} test {len(y_test)} images, "
        f"{len(done)} already done",
        flush=True,
    )

    class TestMetrics(keras.callbacks.Callback):  # type: ignore[misc]
        """Clean test loss and accuracy after every epoch (runs after the trial's reporter)."""

        def __init__(self) -> None:
            super().__init__()
            self.rows: list[tuple[float, float]] = []

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            p = predict(self.model, x_test, 256)  # batch size leaves the outputs as they are
            self.rows.append((cross_entropy(p, y_test), accuracy(p, y_test)))

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ofsel-") as tmp:
        for number, config in enumerate(configs):
            if number in done or number % shard[1] != shard[0]:
                continue
            params = {**fixed, **config}
            rows: list[dict[str, Any]] = []

            def report(row: dict[str, Any], rows: list[dict[str, Any]] = rows) -> None:
                rows.append(dict(row))

            test = TestMetrics()
            trial_seed = seed * 100_003 + number + seed_offset
            t0 = time.monotonic()
            run_trial(sweep, params, data, report, Path(tmp) / str(number), trial_seed, [test])
            new = not out.exists()
            with out.open("a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=SELECTION_COLUMNS)
                if new:
                    writer.writeheader()
                for row, (test_loss, test_acc) in zip(rows, test.rows, strict=True):
                    writer.writerow(
                        {
                            "config": number,
                            **{k: params.get(k, math.nan) for k in CURVE_COLUMNS[2:7]},
                            **{k: row[k] for k in CURVE_COLUMNS[1:2] + CURVE_COLUMNS[7:]},
                            "test_loss": test_loss,
                            "test_accuracy": test_acc,
                            "seed": trial_seed,
                        }
                    )
            best = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
            print(
                f"config {number}: {len(rows)} epochs in {time.monotonic() - t0:.1f}s, best "
                f"epoch {best + 1} val_loss {rows[best]['val_loss']:.4f} gap "
                f"{rows[best]['gap']:.3f} test_loss {test.rows[best][0]:.4f}, last val_loss "
                f"{rows[-1]['val_loss']:.4f}",
                flush=True,
            )
    print(f"record: done in {time.monotonic() - started:.0f}s", flush=True)
    return out


def _keep_done(path: Path, done: set[int]) -> None:
    """Rewrite ``path`` keeping only rows of fully recorded configurations."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["config"]) in done]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SELECTION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def merge_shards(parts: list[Path], out: Path) -> Path:
    """Write the rows of ``parts`` (banks of :func:`record_selection` shards) to ``out``,
    ordered by configuration and epoch."""
    rows: list[dict[str, str]] = []
    for part in parts:
        with part.open(newline="") as fh:
            rows += list(csv.DictReader(fh))
    rows.sort(key=lambda r: (int(r["config"]), int(r["epoch"])))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SELECTION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", required=True, choices=sorted(SELECTION_SETUPS))
    parser.add_argument("--configs", type=int, default=45, help="configurations sampled")
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument(
        "--reseed", type=int, default=0, help="train configs 0..N-1 again (another trial seed)"
    )
    parser.add_argument(
        "--only", type=int, default=None, help="train only the first N configs of the sample"
    )
    parser.add_argument("--out", type=Path, default=None, help="bank (default: curves/selection)")
    parser.add_argument(
        "--shard", default="0/1", help="K/N: only configs K mod N (write each to its own --out)"
    )
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="merge these shard files into --out and stop"
    )
    args = parser.parse_args(argv)
    if args.merge:
        merge_shards(args.merge, args.out or SELECTION_DIR / f"{args.setup}.csv")
        return 0
    k, n = (int(v) for v in args.shard.split("/"))
    if args.reseed:
        out = args.out or SELECTION_DIR / f"{args.setup}{RESEED_SUFFIX}.csv"
        record_selection(
            args.setup, out, args.configs, args.sample_seed, args.epochs, args.reseed,
            RESEED_OFFSET, (k, n),
        )  # fmt: skip
    else:
        out = args.out or SELECTION_DIR / f"{args.setup}.csv"
        record_selection(
            args.setup, out, args.configs, args.sample_seed, args.epochs, args.only, 0, (k, n)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
