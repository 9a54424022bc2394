"""BatchFeed and fit_inputs: each row once per epoch, seeded orders, no whole-array copy."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import pytest
from keras.src.trainers import data_adapters

from overfit_search.training.feed import (
    ALIGN_BYTES,
    COPY_LIMIT_BYTES,
    BatchBuffers,
    BatchFeed,
    fit_inputs,
)


def _indexed(n: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
    """``x[i]`` is filled with ``i % 256``, ``y[i] == i``: a batch shows which rows it holds."""
    y = np.arange(n, dtype=np.int32)
    x = np.broadcast_to((y % 256).astype(np.uint8)[:, None, None, None], (n, 2, 2, 3)).copy()
    return x, y


def _epoch(feed: BatchFeed) -> list[npt.NDArray[Any]]:
    """The row indices (``y``) of each batch of the current epoch, then ends the epoch."""
    batches = []
    for i in range(len(feed)):
        xb, yb = feed[i]
        assert xb.shape == (len(yb), 2, 2, 3)
        assert (xb == (yb % 256).astype(np.uint8)[:, None, None, None]).all()  # rows paired
        batches.append(yb)
    feed.on_epoch_end()
    return batches


@pytest.mark.parametrize(
    ("n", "batch_size", "sizes"),
    [
        (70, 16, [16, 16, 16, 16, 6]),
        (64, 16, [16, 16, 16, 16]),
        (65, 16, [16, 16, 16, 16, 1]),
        (5, 8, [5]),
        (3, 1, [1, 1, 1]),
        (300, 128, [128, 128, 44]),
    ],
)
def test_every_row_once_per_epoch_last_partial_batch_kept(
    n: int, batch_size: int, sizes: list[int]
) -> None:
    x, y = _indexed(n)
    feed = BatchFeed(x, y, batch_size, seed=0)
    assert len(feed) == len(sizes)
    for _ in range(3):
        batches = _epoch(feed)
        assert [len(b) for b in batches] == sizes
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))
        assert all((np.diff(b) > 0).all() for b in batches)  # ascending reads within a batch


@pytest.mark.parametrize(
    ("n", "batch_size", "multiple_of", "sizes"),
    [
        (33, 16, 2, [16, 16]),  # a last batch of 1 cannot split over two devices
        (35, 16, 2, [16, 16, 2]),
        (34, 16, 2, [16, 16, 2]),
        (70, 16, 4, [16, 16, 16, 16, 4]),
    ],
)
def test_multiple_of_cuts_the_last_batch_and_rotates_who_sits_out(
    n: int, batch_size: int, multiple_of: int, sizes: list[int]
) -> None:
    x, y = _indexed(n)
    feed = BatchFeed(x, y, batch_size, seed=0, multiple_of=multiple_of)
    assert len(feed) == len(sizes)
    left_out = set()
    for _ in range(6):
        rows = np.concatenate(_epoch(feed)).tolist()
        assert [len(b) for b in np.split(np.array(rows), np.cumsum(sizes)[:-1])] == sizes
        assert len(set(rows)) == len(rows) == sum(sizes)  # no row twice in an epoch
        left_out |= set(range(n)) - set(rows)
    if sum(sizes) < n:
        assert len(left_out) > n - sum(sizes)  # not always the same images


@pytest.mark.parametrize(
    ("n", "batch_size", "multiple_of", "match"),
    [(40, 15, 2, "must be a multiple of multiple_of 2"), (1, 16, 2, "cannot fill a batch")],
)
def test_multiple_of_must_divide_the_batch(
    n: int, batch_size: int, multiple_of: int, match: str
) -> None:
    x, y = _indexed(n)
    with pytest.raises(ValueError, match=match):
        BatchFeed(x, y, batch_size, seed=0, multiple_of=multiple_of)


@pytest.mark.parametrize(("n", "arrays"), [(32, True), (34, True), (33, False)])
def test_fit_inputs_feeds_uneven_data_in_even_batches(n: int, arrays: bool) -> None:
    x, y = _indexed(n)
    inputs = fit_inputs(x, y, 16, seed=0, multiple_of=2)
    assert (inputs["x"] is x) is arrays


def test_orders_differ_per_epoch_and_repeat_with_the_seed() -> None:
    x, y = _indexed(70)
    orders: dict[str, list[list[int]]] = {}
    for name, seed in [("a", 7), ("again", 7), ("other", 8)]:
        feed = BatchFeed(x, y, 16, seed)
        orders[name] = [np.concatenate(_epoch(feed)).tolist() for _ in range(4)]
    assert orders["a"] == orders["again"]
    assert orders["a"] != orders["other"]
    assert len({tuple(order) for order in orders["a"]}) == 4  # a new order every epoch


def test_shuffling_leaves_the_global_random_state_alone() -> None:
    x, y = _indexed(70)
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    feed = BatchFeed(x, y, 16, seed=1)
    _epoch(feed)
    assert np.random.random() == expected


@pytest.mark.parametrize("index", [-1, 5, 6])
def test_batch_index_out_of_range(index: int) -> None:
    x, y = _indexed(70)
    with pytest.raises(IndexError, match="of 5"):
        BatchFeed(x, y, 16, seed=0)[index]


@pytest.mark.parametrize(
    ("n_x", "n_y", "batch_size", "match"),
    [
        (10, 9, 4, "x has 10 rows but y has 9"),
        (0, 0, 4, "no training rows"),
        (10, 10, 0, "batch_size must be at least 1"),
    ],
)
def test_bad_feed(n_x: int, n_y: int, batch_size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchFeed(np.zeros((n_x, 2, 2, 3), np.uint8), np.zeros(n_y, np.int32), batch_size, 0)


def test_negative_copy_limit() -> None:
    x, y = _indexed(4)
    with pytest.raises(ValueError, match="copy_limit_bytes must be at least 0"):
        fit_inputs(x, y, 2, seed=0, copy_limit_bytes=-1)


@pytest.mark.parametrize(
    ("limit", "as_arrays"),
    [(None, True), (841, True), (840, True), (839, False), (0, False)],
)
def test_fit_inputs_arrays_up_to_the_limit_feed_above(limit: int | None, as_arrays: bool) -> None:
    x, y = _indexed(70)
    assert x.nbytes == 840  # None: the module default, 1 GiB
    inputs = fit_inputs(x, y, 16, seed=3, copy_limit_bytes=limit)
    if as_arrays:
        assert inputs.keys() == {"x", "y", "batch_size", "shuffle"}
        assert inputs["x"] is x and inputs["y"] is y  # as they are, for Keras's array path
        assert inputs["batch_size"] == 16 and inputs["shuffle"] is True
        return
    assert inputs.keys() == {"x", "shuffle"}  # no y or batch_size: part of the feed
    assert inputs["shuffle"] is False  # the feed shuffles, seeded; Keras's would not be
    feed = inputs["x"]
    assert isinstance(feed, BatchFeed)
    assert feed.x is x and feed.y is y and feed.batch_size == 16
    assert (
        np.concatenate(_epoch(feed)).tolist()
        == np.concatenate(_epoch(BatchFeed(x, y, 16, seed=3))).tolist()
    )


def test_default_copy_limit_is_one_gib() -> None:
    assert COPY_LIMIT_BYTES == 1 << 30


def _memmap(tmp_path: Path, x: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``x`` written to a ``.npy`` file, opened again read-only as a memory map."""
    path = tmp_path / "x.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=x.dtype, shape=x.shape)
    out[:] = x
    out.flush()
    del out
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    return mapped


@pytest.mark.parametrize(("limit", "fed"), [(1 << 30, False), (100, True), (0, True)])
def test_fit_inputs_with_a_read_only_memmap(tmp_path: Path, limit: int, fed: bool) -> None:
    x, y = _indexed(70)
    mapped = _memmap(tmp_path, x)
    inputs = fit_inputs(mapped, y, 16, seed=0, copy_limit_bytes=limit)
    if not fed:
        assert inputs["x"] is mapped
        return
    feed = inputs["x"]
    assert isinstance(feed, BatchFeed) and feed.x is mapped
    xb, yb = feed[4]
    assert type(xb) is np.ndarray and len(xb) == 6  # a plain array of the batch's rows only
    assert (xb == x[yb]).all()
    batches = _epoch(feed)
    assert sorted(np.concatenate(batches).tolist()) == list(range(70))


def _brightest_channel(n: int, seed: int = 0) -> tuple[npt.NDArray[np.uint8], npt.NDArray[Any]]:
    """8x8 RGB noise; the class is the channel made brighter."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = rng.integers(0, 120, (n, 8, 8, 3))
    x[np.arange(n), :, :, y] += 120
    return x.astype(np.uint8), y


def _model() -> Any:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", steps_per_execution=4
    )
    return model


def test_real_model_trains_from_a_read_only_memmap_without_the_array_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _brightest_channel(70)  # 5 batches of 16: the last batch and execution partial
    mapped = _memmap(tmp_path, x)
    inputs = fit_inputs(mapped, y, 16, seed=0, copy_limit_bytes=1024)
    assert isinstance(inputs["x"], BatchFeed) and inputs["x"] is not mapped

    def no_whole_array_copy(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the array adapter (a whole-array copy) was used")

    monkeypatch.setattr(data_adapters, "ArrayDataAdapter", no_whole_array_copy)
    model = _model()
    history = model.fit(**inputs, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 3
    assert np.isfinite(losses).all()
    assert losses[0] > losses[1] > losses[2], losses

    resumed = model.fit(**inputs, initial_epoch=3, epochs=5, verbose=0)  # as a resumed trial
    assert len(resumed.history["loss"]) == 2
    assert np.isfinite(resumed.history["loss"]).all()
    assert resumed.history["loss"][-1] < losses[0]


def _seen_rows(seen: list[npt.NDArray[Any]]) -> Any:
    """A loss recording the targets of every batch it is computed on (eager runs only)."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        # JAX also traces the loss once, symbolically, to build: nothing to record then.
        with contextlib.suppress(Exception):
            seen.append(keras.ops.convert_to_numpy(y_true).ravel().astype(int))
        return keras.ops.mean(keras.ops.square(y_pred))

    return loss


class _Epochs(keras.callbacks.Callback):  # type: ignore[misc]
    """Moves what the loss saw during each epoch into ``per_epoch``."""

    def __init__(self, seen: list[npt.NDArray[Any]]) -> None:
        super().__init__()
        self.seen = seen
        self.per_epoch: list[list[int]] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.per_epoch.append(sorted(np.concatenate(self.seen).tolist()))
        self.seen.clear()


@pytest.mark.parametrize(("initial_epoch", "epochs"), [(0, 3), (2, 4)])
def test_fit_trains_on_every_row_once_per_epoch(initial_epoch: int, epochs: int) -> None:
    x, y = _indexed(70)
    seen: list[npt.NDArray[Any]] = []
    model = keras.Sequential(
        [keras.Input((2, 2, 3)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile("sgd", _seen_rows(seen), steps_per_execution=4, run_eagerly=True)
    inputs = fit_inputs(x, y, 16, seed=0, copy_limit_bytes=0)
    recorder = _Epochs(seen)
    for _ in range(2):  # a second fit, as the fine-tuning phase does, reuses the feed
        model.fit(
            **inputs, initial_epoch=initial_epoch, epochs=epochs, verbose=0, callbacks=[recorder]
        )
    assert recorder.per_epoch == [list(range(70))] * (2 * (epochs - initial_epoch))


@pytest.mark.parametrize("limit", [None, 0, 200, 10**9])
def test_predict_in_slices_equals_one_call(limit: int | None) -> None:
    from overfit_search.training.feed import predict

    x, _ = _brightest_channel(70)
    model = _model()
    whole = np.asarray(model.predict(x, batch_size=16, verbose=0), np.float64)
    sliced = predict(model, x, 16, copy_limit_bytes=limit)  # 0: one batch per call
    assert sliced.dtype == np.float64 and sliced.shape == whole.shape
    np.testing.assert_allclose(sliced, whole, rtol=1e-6, atol=1e-7)


# --- BatchBuffers: reuse only what nothing holds -----------------------------------------------


def test_buffers_are_aligned_and_reused_once_released() -> None:
    buffers = BatchBuffers((4, 4, 3), np.dtype(np.uint8), limit=8)
    first = buffers.take(16)
    assert first.shape == (16, 4, 4, 3) and first.dtype == np.uint8
    assert first.flags.c_contiguous and first.ctypes.data % ALIGN_BYTES == 0
    address = first.ctypes.data
    del first
    again = buffers.take(16)
    assert again.ctypes.data == address and len(buffers) == 1
    other = buffers.take(5)  # a partial batch gets a buffer of its own size
    assert other.shape[0] == 5 and len(buffers) == 2


@pytest.mark.parametrize(
    "hold",
    [
        lambda b: b,  # the batch itself (a queued batch, a tensor that wraps it)
        lambda b: b[:3],  # a view of it
        lambda b: b.reshape(-1),
        lambda b: memoryview(b),  # the buffer protocol (a zero-copy transfer)
    ],
)
def test_a_held_buffer_is_never_handed_out_again(hold: Any) -> None:
    buffers = BatchBuffers((2,), np.dtype(np.float32), limit=8)
    held = hold(buffers.take(4))
    address = np.asarray(held).ctypes.data
    for _ in range(3):
        assert buffers.take(4).ctypes.data != address
    del held
    assert address in {buffers.take(4).ctypes.data for _ in range(3)}


def test_beyond_the_limit_batches_are_fresh_and_not_kept() -> None:
    buffers = BatchBuffers((2,), np.dtype(np.uint8), limit=2)
    held = [buffers.take(4) for _ in range(4)]
    assert len(buffers) == 2
    assert len({b.ctypes.data for b in held}) == 4
    assert all(b.ctypes.data % ALIGN_BYTES == 0 for b in held)


@pytest.mark.parametrize("steps_per_execution", [1, 8])
def test_batches_reach_the_model_intact_while_their_buffers_are_reused(
    steps_per_execution: int,
) -> None:
    # The model outputs each row's first pixel; the target is the value its row was filled
    # with. A buffer written again before the model read it would show as a nonzero loss.
    n = 1_000
    x, y = _indexed(n)
    target = (y % 256).astype(np.float32)
    feed = BatchFeed(x, target, 16, seed=0)
    inputs = keras.Input((2, 2, 3))
    pixel = keras.layers.Lambda(lambda t: keras.ops.cast(t[:, 0, 0, :1], "float32"))(inputs)
    model = keras.Model(inputs, pixel)
    model.compile("sgd", "mae", steps_per_execution=steps_per_execution)
    history = model.fit(feed, shuffle=False, epochs=3, verbose=0)
    assert history.history["loss"] == [0.0, 0.0, 0.0]
    # reused, not one buffer per batch (how many are in flight at once varies from run to run)
    assert 1 <= len(feed._buffers) < len(feed)


def test_without_the_gil_every_batch_is_a_fresh_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    x, y = _indexed(40)
    feed = BatchFeed(x, y, 8, seed=0)
    addresses = set()
    for i in range(len(feed)):
        xb, _ = feed[i]
        addresses.add(xb.ctypes.data)
        del xb
    assert len(feed._buffers) == 0 and feed._buffers.limit == 0
    assert all(a % ALIGN_BYTES == 0 for a in addresses)
