"""Clean per-epoch metrics (DESIGN.md §4): cross-entropy without L2, dropout or augmentation."""

from __future__ import annotations

import numpy as np

_EPS = 1e-7  # Keras clips probabilities the same way


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy of softmax outputs (NaN if any output is NaN)."""
    p = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    if not np.all(np.isfinite(p)):
        return float("nan")
    return float(-np.mean(np.log(np.clip(p, _EPS, 1.0))))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def eval_subset(n_train: int, n_val: int, seed: int, cap: int = 5000) -> np.ndarray:
    """Indices of the fixed training subset used for ``train_eval_loss``.

    As large as the validation split, at most ``cap`` images, seeded, sorted.
    """
    size = min(n_train, max(n_val, 1), cap)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_train, size=size, replace=False))
