"""Images per second a trivial Keras model's fit gets: decoded uint8 arrays vs Keras loaders.

Writes ~2,400 JPEGs (scikit-learn digits, upscaled to ``--source-px``, default 128, with noise, 10
classes) to a temporary folder, then, side by side in one run, at image size ``--size`` (default
96) and batch 32:

- ``project``: ``overfit_search.data.load_data`` (Pillow decode once into the on-disk uint8
  cache), then ``model.fit(**fit_inputs(x_train, y_train, ...))`` compiled with the default
  ``train.steps_per_execution``, as ``training/trial.py`` does (arrays up to 1 GiB: Keras's
  array path); again with one step per call; forced through the no-copy ``BatchFeed``
  that larger (memory-mapped) data takes; and through ``BatchFeed`` as it was before it reused
  aligned batch buffers (a new numpy array per batch, which ``tf.data`` copied again);
- ``idg``: tf_keras ``ImageDataGenerator(rescale=1/255).flow_from_directory`` into a tf_keras
  model of the same shape, at one step per call and at the project's default;
- ``idfd``: ``keras.utils.image_dataset_from_directory`` into the Keras 3 model, likewise.

The model (``--model``) is ``gap``: Rescaling -> GlobalAveragePooling2D -> Dense, or ``pixel``:
one pixel of each image, rescaled -> Dense, whose step costs next to nothing even on a small CPU,
so the input pipeline and not the model is what is measured. Every row uses the same model. A
row feeds it one batch over and over (no pipeline at all): the ceiling the model's own step sets
on this machine. Prints per-epoch images/s (epochs 2+ are the steady
state), the first-epoch cost (decode), the decoded cache's size on disk, and the ratios. Run::

    nice -n 10 python bench/data.py [--images 2400] [--epochs 4] [--source-px 128] [--size 96] \\
        [--model gap|pixel]

``--source-px 200 --size 224`` is the shape of the ASL alphabet data set that ``sweeps/asl.yaml``
reads (200 px JPEGs, MobileNetV2 at 224 px).
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
MODEL = "gap"
MODELS = ("gap", "pixel")
OURS = "project (uint8 cache -> fit, as a trial)"
IDG = "tf_keras ImageDataGenerator"
IDFD = "keras image_dataset_from_directory"


def write_jpegs(root: Path, count: int, seed: int = 0, px: int = 128) -> None:
    """``count`` ``px``-pixel JPEGs of noisy upscaled digits, one folder per digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for i in range(count):
        k = i % len(digits.target)
        gray = Image.fromarray(np.uint8(digits.images[k] * 255 / 16)).resize(
            (px, px), Image.Resampling.BILINEAR
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


def default_steps() -> int:
    """The project's ``train.steps_per_execution`` default, which every trial compiles with."""
    from overfit_search.config.schema import TrainConfig

    return TrainConfig().steps_per_execution


def keras3_model(classes: int, steps: int) -> Any:
    import keras

    if MODEL == "gap":
        body = [keras.layers.Rescaling(1 / 255), keras.layers.GlobalAveragePooling2D()]
    else:
        body = [keras.layers.Lambda(lambda t: keras.ops.cast(t[:, 0, 0, :], "float32") / 255)]
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), *body, keras.layers.Dense(classes, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=steps)
    return model


def bench_project(root: Path, cache: Path, epochs: int) -> dict[str, Any]:
    import keras

    from overfit_search.config.schema import DataConfig
    from overfit_search.data import load_data
    from overfit_search.training.feed import fit_inputs

    cfg = DataConfig(source="folder", dir=root, image_size=SIZE, validation_fraction=0.2)
    started = time.perf_counter()
    data = load_data(cfg, cache_dir=cache)
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    data = load_data(cfg, cache_dir=cache)
    cached_s = time.perf_counter() - started
    cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    rows = {}
    for steps in (default_steps(), 1):
        model = keras3_model(len(data.class_names), steps)
        cb, timer = _callback(keras.callbacks.Callback)
        inputs = fit_inputs(data.x_train, data.y_train, BATCH, seed=0)  # as run_trial
        model.fit(**inputs, epochs=epochs, verbose=0, callbacks=[cb])
        rows[steps] = {"images": len(data.y_train), "epochs": timer.seconds}
    model = keras3_model(len(data.class_names), default_steps())
    cb, timer = _callback(keras.callbacks.Callback)
    inputs = fit_inputs(data.x_train, data.y_train, BATCH, seed=0, copy_limit_bytes=0)
    model.fit(**inputs, epochs=epochs, verbose=0, callbacks=[cb])
    batch_feed = {"images": len(data.y_train), "epochs": timer.seconds}
    model = keras3_model(len(data.class_names), default_steps())
    cb, timer = _callback(keras.callbacks.Callback)
    fresh = _fresh_batch_feed()(data.x_train, data.y_train, BATCH, seed=0)
    model.fit(fresh, shuffle=False, epochs=epochs, verbose=0, callbacks=[cb])
    fresh_feed = {"images": len(data.y_train), "epochs": timer.seconds}
    return {
        "one_step": rows[1],
        "batch_feed": batch_feed,
        "fresh_feed": fresh_feed,
        "gathered": bench_gathered(data, epochs),
        "ceiling": bench_ceiling(data, epochs),
        **rows[default_steps()],
        "decode_s": decode_s,
        "cached_load_s": cached_s,
        "cache_bytes": cache_bytes,
    }


def _fresh_batch_feed() -> type:
    """``BatchFeed`` as it was before its reused aligned buffers: a new array per batch."""
    from overfit_search.training.feed import BatchFeed

    class FreshBatchFeed(BatchFeed):  # type: ignore[misc]
        def __getitem__(self, index: int) -> tuple[Any, Any]:
            end = min((index + 1) * self.batch_size, self.rows)
            rows = np.sort(self._order[index * self.batch_size : end])
            return np.asarray(self.x[rows]), np.asarray(self.y[rows])

    return FreshBatchFeed


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
    model = keras3_model(len(data.class_names), default_steps())
    cb, timer = _callback(keras.callbacks.Callback)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": n, "epochs": timer.seconds}


def bench_ceiling(data: Any, epochs: int) -> dict[str, Any]:
    """No pipeline at all: one batch, already a tensor, repeated: what the model step allows."""
    import keras
    import tensorflow as tf

    n = len(data.y_train)
    batch = (tf.constant(data.x_train[:BATCH]), tf.constant(data.y_train[:BATCH]))
    ds = tf.data.Dataset.from_tensors(batch).repeat(-(-n // BATCH))
    model = keras3_model(len(data.class_names), default_steps())
    cb, timer = _callback(keras.callbacks.Callback)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": n, "epochs": timer.seconds}


def bench_idg(root: Path, epochs: int, steps: int) -> dict[str, Any]:
    import tf_keras

    flow = tf_keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        str(root), target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="sparse", seed=0
    )
    if MODEL == "gap":  # no Rescaling: the generator rescales
        body = [tf_keras.layers.GlobalAveragePooling2D()]
    else:
        body = [tf_keras.layers.Lambda(lambda t: t[:, 0, 0, :])]
    model = tf_keras.Sequential(
        [
            tf_keras.Input((SIZE, SIZE, 3)),
            *body,
            tf_keras.layers.Dense(flow.num_classes, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=steps)
    cb, timer = _callback(tf_keras.callbacks.Callback)
    model.fit(flow, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": flow.samples, "epochs": timer.seconds}


def bench_idfd(root: Path, epochs: int, steps: int) -> dict[str, Any]:
    import keras

    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(SIZE, SIZE), batch_size=BATCH, seed=0, verbose=False
    )
    images = sum(len(files) for _, _, files in os.walk(root))
    model = keras3_model(len(ds.class_names), steps)
    cb, timer = _callback(keras.callbacks.Callback)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[cb])
    return {"images": images, "epochs": timer.seconds}


def main() -> None:
    global SIZE, MODEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--source-px", type=int, default=128, help="JPEG side written")
    parser.add_argument("--size", type=int, default=SIZE, help="image size fed to fit")
    parser.add_argument("--model", choices=MODELS, default=MODEL, help="trivial model of every row")
    args = parser.parse_args()
    SIZE, MODEL = args.size, args.model
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        root = tmp / "images"
        started = time.perf_counter()
        write_jpegs(root, args.images, px=args.source_px)
        took = time.perf_counter() - started
        print(f"wrote {args.images} JPEGs ({args.source_px} px) in {took:.1f} s")
        project = bench_project(root, tmp / "cache", args.epochs)
        n = default_steps()
        results = {
            OURS: project,
            "uint8 cache -> fit, 1 step/call": project.pop("one_step"),
            f"memmap -> BatchFeed (no copy), {n}/call": project.pop("batch_feed"),
            f"BatchFeed, a new array per batch, {n}/call": project.pop("fresh_feed"),
            f"uint8 cache -> tf.data gather, {n}/call": project.pop("gathered"),
            f"model alone (one batch repeated), {n}/call": project.pop("ceiling"),
            f"ImageDataGenerator, {n} steps/call": bench_idg(root, args.epochs, n),
            IDG: bench_idg(root, args.epochs, 1),
            f"image_dataset_from_directory, {n}/call": bench_idfd(root, args.epochs, n),
            IDFD: bench_idfd(root, args.epochs, 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rates = {}
    print(
        f"\nmodel {MODEL}, image size {SIZE}, batch {BATCH}, {args.epochs} epochs; "
        "images/s per epoch"
    )
    for name, r in results.items():
        per_epoch = [r["images"] / s for s in r["epochs"]]
        steady = r["images"] * (len(r["epochs"]) - 1) / sum(r["epochs"][1:])
        rates[name] = steady
        shown = ", ".join(f"{v:,.0f}" for v in per_epoch)
        print(
            f"  {name:44s} {r['images']:5d} images: [{shown}]  epochs 2+: {steady:,.0f}/s; "
            f"epoch 1 {r['epochs'][0]:.2f} s"
        )
    p = results[OURS]
    print(
        f"\nproject: first decode into the cache {p['decode_s']:.2f} s "
        f"({args.images / p['decode_s']:,.0f} images/s), second load from the cache "
        f"{p['cached_load_s']:.3f} s, cache on disk {p['cache_bytes'] / 1e6:.1f} MB"
    )
    for name in results:
        if name != OURS:
            print(f"ratio project / {name}: {rates[OURS] / rates[name]:.2f}x")


if __name__ == "__main__":
    main()
