"""Images per second a trivial Keras model's fit gets: decoded uint8 arrays vs Keras loaders.

Writes ~2,400 JPEGs (scikit-learn digits, upscaled to 128 px, with noise, 10 classes) to a temporary
folder, then, side by side in one run, at image size 96 and batch 32:

- ``project``: ``overfit_search.data.load_data`` (Pillow decode once into the on-disk uint8
  cache), then ``model.fit(x_train, y_train, shuffle=True)`` as ``training/trial.py`` does;
- ``idg``: tf_keras ``ImageDataGenerator(rescale=1/255).flow_from_directory`` into a tf_keras
  model of the same shape;
- ``idfd``: ``keras.utils.image_dataset_from_directory`` into the Keras 3 model.

The model is Rescaling -> GlobalAveragePooling2D -> Dense, so the input pipeline is what is
measured. Prints per-epoch images/s (epochs 2+ are the steady state), the first-epoch cost
(decode), the decoded cache's size on disk, and the ratios. Run::

    nice -n 10 python bench/data.py [--images 2400] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

SIZE = 96
BATCH = 32


def write_jpegs(root: Path, count: int, seed: int = 0) -> None:
    """``count`` 128 px JPEGs of noisy upscaled digits, one folder per digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for i in range(count):
        k = i % len(digits.target)
        gray = Image.fromarray(np.uint8(digits.images[k] * 255 / 16)).resize(
            (128, 128), Image.Resampling.BILINEAR
        )
        rgb = np.repeat(np.asarray(gray, dtype=np.float32)[..., None], 3, axis=-1)
        rgb += rng.normal(0, 12, rgb.shape) + rng.uniform(-30, 30, (1, 1, 3))
        folder = root / str(digits.target[k])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.uint8(np.clip(rgb, 0, 255))).save(folder / f"{i:05d}.jpg", quality=90)


class EpochTimer:
    """Wall seconds of each epoch (a Keras callback for either Keras)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _callback(base: type) -> Any:
    timer = EpochTimer()

    class _Cb(base):  # type: ignore[misc,valid-type]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            timer.on_epoch_begin(epoch, logs)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            timer.on_epoch_end(epoch, logs)

    return _Cb(), timer


def keras3_model(classes: int) -> Any:
    import keras

    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def bench_project(root: Path, cache: Path, epochs: int) -> dict[str, Any]:
    import keras

    from overfit_search.config.schema import DataConfig
    from overfit_search.data import load_data

    cfg = DataConfig(source="folder", dir=root, image_size=SIZE, validation_fraction=0.2)
    started = time.perf_counter()
    data = load_data(cfg, cache_dir=cache)
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    data = load_data(cfg, cache_dir=cache)
    cached_s = time.perf_counter() - started
    cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    model = keras3_model(len(data.class_names))
    cb, timer = _callback(keras.callbacks.Callback)
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=BATCH,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[cb],
    )
    gathered = bench_gathered(data, epochs)
    return {
        "gathered": gathered,
        "images": len(data.y_train),
        "epochs": timer.seconds,
        "decode_s": decode_s,
        "cached_load_s": cached_s,
        "cache_bytes": cache_bytes,
    }


def bench_gathered(data: Any, epochs: int) -> dict[str, Any]:
    """The same uint8 arrays as tf.data: shuffled indices, whole batches gathered (DESIGN 4)."""
    import keras
    import tensorflow as tf

    x, y = tf.constant(data.x_train), tf.constant(data.y_train)
    n = len(data.y_train)
    ds = (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=0, reshuffle_each_iteration=True)
        .batch(BATCH)
        .map(lambda i: (tf.gather(x, i), tf.gather(y, i)))
        .prefetch(tf.data.AUTOTUNE)
    )
    model = keras3_model(len(data.class_names))
    cb, timer = _callback(keras.callbacks.Callback)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": n, "epochs": timer.seconds}


def bench_idg(root: Path, epochs: int) -> dict[str, Any]:
    import tf_keras

    flow = tf_keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        str(root), target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="sparse", seed=0
    )
    model = tf_keras.Sequential(
        [
            tf_keras.Input((SIZE, SIZE, 3)),
            tf_keras.layers.GlobalAveragePooling2D(),
            tf_keras.layers.Dense(flow.num_classes, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    cb, timer = _callback(tf_keras.callbacks.Callback)
    model.fit(flow, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": flow.samples, "epochs": timer.seconds}


def bench_idfd(root: Path, epochs: int) -> dict[str, Any]:
    import keras

    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(SIZE, SIZE), batch_size=BATCH, seed=0, verbose=False
    )
    images = sum(len(files) for _, _, files in os.walk(root))
    model = keras3_model(len(ds.class_names))
    cb, timer = _callback(keras.callbacks.Callback)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": images, "epochs": timer.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2400)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        root = tmp / "images"
        started = time.perf_counter()
        write_jpegs(root, args.images)
        print(f"wrote {args.images} JPEGs (128 px) in {time.perf_counter() - started:.1f} s")
        project = bench_project(root, tmp / "cache", args.epochs)
        results = {
            "project (uint8 cache -> fit)": project,
            "uint8 cache -> tf.data gather": project.pop("gathered"),
            "tf_keras ImageDataGenerator": bench_idg(root, args.epochs),
            "keras image_dataset_from_directory": bench_idfd(root, args.epochs),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rates = {}
    print(f"\nimage size {SIZE}, batch {BATCH}, {args.epochs} epochs; images/s per epoch")
    for name, r in results.items():
        per_epoch = [r["images"] / s for s in r["epochs"]]
        steady = r["images"] * (len(r["epochs"]) - 1) / sum(r["epochs"][1:])
        rates[name] = steady
        shown = ", ".join(f"{v:,.0f}" for v in per_epoch)
        print(
            f"  {name:36s} {r['images']:5d} images: [{shown}]  epochs 2+: {steady:,.0f}/s; "
            f"epoch 1 {r['epochs'][0]:.2f} s"
        )
    p = results["project (uint8 cache -> fit)"]
    print(
        f"\nproject: first decode into the cache {p['decode_s']:.2f} s "
        f"({args.images / p['decode_s']:,.0f} images/s), second load from the cache "
        f"{p['cached_load_s']:.3f} s, cache on disk {p['cache_bytes'] / 1e6:.1f} MB"
    )
    for ours in ("project (uint8 cache -> fit)", "uint8 cache -> tf.data gather"):
        for name in ("tf_keras ImageDataGenerator", "keras image_dataset_from_directory"):
            print(f"ratio {ours} / {name}: {rates[ours] / rates[name]:.1f}x")


if __name__ == "__main__":
    main()
