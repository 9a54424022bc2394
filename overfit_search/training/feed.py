"""Feeding a trial's training arrays to ``model.fit`` without copying them whole.

``model.fit(x, y, batch_size=..., shuffle=True)`` with numpy arrays goes through Keras 3's
array adapter, which (under the TensorFlow backend, ``get_tf_dataset`` ->
``array_slicing.convert_to_sliceable``) converts the *whole* array into a tensor on every
``fit`` call: one full in-memory copy per trial per call. For small data that copy is cheap
and the vectorised array path is the fastest there is; for a large read-only ``np.memmap``
(see :func:`overfit_search.data.cache.gather_split`) or a large array shared through Ray's
object store, it reads everything into each trial's memory. :class:`BatchFeed` gathers one
batch at a time instead, and :func:`fit_inputs` picks between the two.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

COPY_LIMIT_BYTES = 1 << 30
"""Training images up to this many bytes go to ``fit`` as arrays (Keras copies them whole,
fast for small data); larger ones go through a :class:`BatchFeed`."""

ALIGN_BYTES = 64
"""Alignment of :class:`BatchBuffers`: TensorFlow wraps a numpy array's memory without copying
it only when the data is aligned to ``EIGEN_MAX_ALIGN_BYTES`` (64 at most); numpy's own
allocations are 16-byte aligned, so every batch was copied again into a fresh tensor."""

MAX_BUFFERS = 64
"""Most batch buffers a :class:`BatchBuffers` keeps for reuse; beyond that (batches held
somewhere for a long time), batches go to fresh buffers that are not kept."""

QUEUE_SIZE = 10
"""``max_queue_size`` of every :class:`BatchFeed` (Keras's default). Unused while ``workers``
is 1, which it is: see :class:`BatchFeed`."""


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """An uninitialised C-contiguous array whose data starts on an ``ALIGN_BYTES`` boundary."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN_BYTES, dtype=np.uint8)
    skip = -raw.ctypes.data % ALIGN_BYTES
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


def _refs(buffers: list[npt.NDArray[Any]], i: int) -> tuple[int, int]:
    """References to buffer ``i`` and to the memory under it (a caller's view holds that)."""
    return sys.getrefcount(buffers[i]), sys.getrefcount(buffers[i].base)


class BatchBuffers:
    """Aligned batch arrays that are written again once nothing else references them.

    A freshly allocated batch costs more than gathering it: under TensorFlow, ``tf.data``
    copied every (16-byte aligned) numpy batch into a fresh tensor, and each fresh buffer
    page-faults its way in (bench/RESULTS.md, "BatchFeed's buffers"). These buffers are
    aligned, so TensorFlow wraps them without a copy, and warm. A buffer is handed out again
    only when its reference counts are back to those of a buffer nobody holds, measured on
    a probe through the same code path: a batch still queued in ``tf.data``, held by a
    tensor that wraps it, by a JAX transfer or by the caller (or a view of it) is never
    overwritten.

    Args:
        row_shape: Shape of one row.
        dtype: Element type.
        limit: Most buffers kept (see :data:`MAX_BUFFERS`).
    """

    def __init__(self, row_shape: tuple[int, ...], dtype: np.dtype[Any], limit: int) -> None:
        self.row_shape = row_shape
        self.dtype = dtype
        self.limit = limit
        self._buffers: list[npt.NDArray[Any]] = []
        probe = [_aligned_empty((1, *row_shape), dtype)]
        self._free = _refs(probe, 0)

    def __len__(self) -> int:
        """Buffers kept so far."""
        return len(self._buffers)

    def take(self, rows: int) -> npt.NDArray[Any]:
        """An array of ``rows`` rows that nothing else references (contents undefined)."""
        for i in range(len(self._buffers)):
            if len(self._buffers[i]) == rows and _refs(self._buffers, i) == self._free:
                return self._buffers[i]
        if len(self._buffers) >= self.limit:
            return _aligned_empty((rows, *self.row_shape), self.dtype)
        self._buffers.append(_aligned_empty((rows, *self.row_shape), self.dtype))
        return self._buffers[-1]


class BatchFeed(keras.utils.PyDataset):  # type: ignore[misc]
    """Shuffled batches gathered from arrays (or memory maps) that are never copied whole.

    Every epoch visits each row exactly once, in ``ceil(n / batch_size)`` batches, the last
    one partial when ``batch_size`` does not divide ``n``. The order is a permutation drawn
    from a :class:`numpy.random.Generator` created from ``seed`` (no global random state):
    one for the first epoch, then a new one at each :meth:`on_epoch_end`, so the same seed
    gives the same sequence of epochs. Within a batch the rows are read in ascending order
    (a batch is a set; ascending reads keep a memory map's page faults local).

    Keras calls :meth:`on_epoch_end` once more than there are epochs (also when ``fit``
    starts, from ``EpochIterator.reset``), so an epoch's order depends on how many times
    ``fit`` was called, not on the epoch number: a resumed run (``initial_epoch > 0``) sees
    valid, deterministic epochs, but not the orders the uninterrupted run would have seen.

    One worker, no multiprocessing: processes would pickle (copy) the arrays into every
    worker, and with ``workers > 1`` Keras's ``OrderedEnqueuer`` breaks "each row once per
    epoch" under the JAX backend (seen with Keras 3.15: when an epoch is cut short, as by
    the batch the first ``fit`` pulls to build the model, the batches gathered ahead are
    kept and served first in the next epoch, in place of others). With one worker
    Keras gathers the batches itself: under TensorFlow in ``tf.data``'s prefetch thread,
    ahead of the model; under JAX in the training loop.

    Pass it to ``fit`` as ``x`` alone, with ``shuffle=False``: ``y``, ``batch_size`` and
    ``sample_weight`` are part of the feed, and ``shuffle=True`` would make Keras reorder
    the batches again with Python's global ``random`` (harmless for coverage, but not
    reproducible from ``seed``).

    Args:
        x: Inputs, ``(N, ...)``; an array or a (read-only) ``np.memmap``.
        y: Targets, ``(N, ...)``.
        batch_size: Rows per batch, at least 1.
        seed: Seed of the shuffling generator.
        multiple_of: Every batch's size must be a multiple of this (JAX's data parallelism
            splits each batch evenly over the devices): the last partial batch is cut down
            to one, so up to ``multiple_of - 1`` rows, different ones each epoch, sit out.

    Raises:
        ValueError: On empty data, ``x`` and ``y`` of different lengths, or a
            ``batch_size`` below 1.
    """

    def __init__(
        self,
        x: npt.NDArray[Any],
        y: npt.NDArray[Any],
        batch_size: int,
        seed: int,
        multiple_of: int = 1,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        if len(x) == 0:
            raise ValueError("no training rows to feed")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if multiple_of < 1 or batch_size % multiple_of:
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of multiple_of {multiple_of}"
            )
        if len(x) < multiple_of:
            raise ValueError(f"{len(x)} rows cannot fill a batch of a multiple of {multiple_of}")
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=QUEUE_SIZE)
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.rows = len(x) - (len(x) % batch_size) % multiple_of  # fed per epoch
        self._rng = np.random.default_rng(seed)
        self._order: npt.NDArray[np.int64] = self._rng.permutation(len(x))
        # Reference counts are only exact with the GIL (free-threaded CPython defers them).
        reuse = getattr(sys, "_is_gil_enabled", lambda: True)()
        self._buffers = BatchBuffers(
            tuple(x.shape[1:]), np.dtype(x.dtype), MAX_BUFFERS if reuse else 0
        )

    def __len__(self) -> int:
        """Batches per epoch: ``ceil(n / batch_size)``."""
        return math.ceil(self.rows / self.batch_size)

    def __getitem__(self, index: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Batch ``index`` of the current epoch.

        Args:
            index: From 0 to ``len(self) - 1``.

        Returns:
            ``(x_batch, y_batch)``, arrays holding only the batch's rows. ``x_batch`` is one
            of the feed's :class:`BatchBuffers`: it is not written again while anything
            holds it (or a view of it).

        Raises:
            IndexError: When ``index`` is out of range.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        order = self._order  # one read: on_epoch_end may swap it from another thread
        end = min((index + 1) * self.batch_size, self.rows)
        rows = np.sort(order[index * self.batch_size : end])
        x_batch = self._buffers.take(len(rows))
        np.take(self.x, rows, axis=0, out=x_batch, mode="clip")  # "raise" buffers `out`
        return x_batch, np.asarray(self.y[rows])

    def on_epoch_end(self) -> None:
        """Draws the next epoch's order."""
        self._order = self._rng.permutation(len(self.x))


def fit_inputs(
    x: npt.NDArray[Any],
    y: npt.NDArray[Any],
    batch_size: int,
    seed: int,
    copy_limit_bytes: int | None = None,
    multiple_of: int = 1,
) -> dict[str, Any]:
    """The keyword arguments of ``model.fit`` that feed it the training data.

    Keras 3 turns array inputs into a tensor of the *whole* array on every ``fit`` call
    (``ArrayDataAdapter.get_tf_dataset`` -> ``array_slicing.convert_to_sliceable``): a full
    in-memory copy per trial per call, which defeats a memory-mapped data set (each of
    several concurrent trials would read all of it into memory) and Ray's shared object
    store. Up to ``copy_limit_bytes`` that copy is cheap and Keras's vectorised array path
    is the fastest feed, so the arrays are passed as they are; above it (a large array or
    ``np.memmap``), a :class:`BatchFeed` gathers one shuffled batch at a time instead.

    Use as ``model.fit(**fit_inputs(x, y, batch_size, seed), epochs=..., ...)`` without
    passing ``y``, ``batch_size`` or ``shuffle`` again.

    Args:
        x: Training inputs, ``(N, ...)``; an array or a read-only ``np.memmap``.
        y: Training targets, ``(N, ...)``.
        batch_size: Rows per batch.
        seed: Seed of the :class:`BatchFeed`'s shuffling (Keras shuffles arrays itself).
        copy_limit_bytes: Largest ``x.nbytes`` passed as arrays; ``None``:
            :data:`COPY_LIMIT_BYTES`.
        multiple_of: Above 1, every batch must split evenly that many ways (see
            :class:`BatchFeed`): a :class:`BatchFeed` is used whatever the size, unless
            ``batch_size`` already divides the data.

    Returns:
        ``{"x": x, "y": y, "batch_size": batch_size, "shuffle": True}`` up to the limit,
        else ``{"x": BatchFeed(...), "shuffle": False}``.

    Raises:
        ValueError: When ``copy_limit_bytes`` is negative, or from :class:`BatchFeed`.
    """
    limit = COPY_LIMIT_BYTES if copy_limit_bytes is None else copy_limit_bytes
    if limit < 0:
        raise ValueError(f"copy_limit_bytes must be at least 0, got {limit}")
    even = (len(x) % batch_size) % multiple_of == 0
    if x.nbytes <= limit and even:
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
    return {"x": BatchFeed(x, y, batch_size, seed, multiple_of), "shuffle": False}


def predict(
    model: keras.Model, x: npt.NDArray[Any], batch_size: int, copy_limit_bytes: int | None = None
) -> npt.NDArray[np.float64]:
    """``model.predict(x)`` as float64, in slices of at most ``copy_limit_bytes`` of ``x``.

    ``predict`` copies its whole array input into a tensor like ``fit`` does (see
    :func:`fit_inputs`); slicing a large (memory-mapped) validation set keeps that copy to one
    slice at a time. Data under the limit goes in one call, exactly as before.
    """
    limit = COPY_LIMIT_BYTES if copy_limit_bytes is None else copy_limit_bytes
    row_bytes = max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * x.itemsize)
    rows = max(batch_size, limit // row_bytes)
    parts = [
        np.asarray(model.predict(x[start : start + rows], batch_size=batch_size, verbose=0))
        for start in range(0, len(x), rows)
    ]
    return np.concatenate(parts).astype(np.float64, copy=False)
