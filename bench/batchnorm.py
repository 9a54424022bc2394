"""Fine-tuning a half-unfrozen pretrained MobileNetV2 with ``model.batchnorm`` frozen vs train.

The setup of ``bench/pruning.py --record --setup mobilenetv2`` (the fixture's Stanford Dogs
MobileNetV2 rebuilt at 96 px, digits 0-9 at 96 px, 30 training images per class, batch 32),
one configuration, trained by the project's own ``run_trial`` once per ``batchnorm`` setting
with the same seed; prints val_loss, train_eval_loss and val accuracy per epoch. Run::

    nice -n 10 python bench/batchnorm.py [--learning-rate 1e-4] [--frozen-fraction 0.5] \\
        [--epochs 5] [--head-epochs 0] [--finetune-lr-factor 0.1] [--batchnorm frozen,train] \\
        [--optimizer adam|sgd|adamw]

Needs ``../shared/fixtures/mobilenetv2_160_stanford_dogs.h5``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--frozen-fraction", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--head-epochs", type=int, default=0, help="train.head_epochs")
    parser.add_argument("--finetune-lr-factor", type=float, default=0.1)
    parser.add_argument("--batchnorm", default="frozen,train", help="settings to run, in order")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "adamw"])
    args = parser.parse_args()

    from _record import rebuild_mobilenet

    from overfit_search.config import load_sweep
    from overfit_search.data import load_data
    from overfit_search.paths import data_cache
    from overfit_search.training.trial import run_trial

    backbone = rebuild_mobilenet(96)
    demo = Path(__file__).resolve().parent.parent / "sweeps" / "demo.yaml"
    params = {
        "dropout": 0.3,
        "l2": 1e-4,
        "learning_rate": args.learning_rate,
        "augmentation": 0.2,
        "frozen_fraction": args.frozen_fraction,
    }
    print(
        f"params {params}, {args.optimizer}, {args.epochs} epochs (head_epochs {args.head_epochs}, "
        f"finetune_lr_factor {args.finetune_lr_factor:g}), no stopping",
        flush=True,
    )
    for batchnorm in args.batchnorm.split(","):
        sweep = load_sweep(
            demo,
            {
                "data.digits_classes": list(range(10)),
                "data.image_size": 96,
                "data.train_per_class": 30,
                "data.validation_fraction": 0.2,
                "model.backbone": f"file:{backbone}",
                "model.batchnorm": batchnorm,
                "train.batch_size": 32,
                "train.max_epochs": args.epochs,
                "train.optimizer": args.optimizer,
                "train.head_epochs": args.head_epochs,
                "train.finetune_lr_factor": args.finetune_lr_factor,
                "train.keep_best_weights": 0,
                "pruning.rule.alpha": 1e9,  # GL never fires: every epoch is shown
            },
        )
        data = load_data(sweep.data, cache_dir=data_cache())
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ofbench-bn-") as tmp:
            run_trial(sweep, params, data, rows.append, Path(tmp), seed=1)
        took = time.monotonic() - started
        for r in rows:
            print(
                f"batchnorm {batchnorm:6s} epoch {r['epoch']}: val_loss {r['val_loss']:.3f} "
                f"train_eval_loss {r['train_eval_loss']:.3f} val_acc {r['val_accuracy']:.3f}"
            )
        best = min(rows, key=lambda r: r["val_loss"])
        print(
            f"batchnorm {batchnorm}: best val_loss {best['val_loss']:.3f} at epoch "
            f"{best['epoch']} (val_acc {best['val_accuracy']:.3f}); {took:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
