"""Prechelt's stopping criteria ("Early Stopping — But When?", 1998) and a gap rule."""

from __future__ import annotations

import math
from collections.abc import Sequence

from overfit_search.pruning.base import Firing


def _positive(rule: str, name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{rule}: {name} must be > 0, got {value}")


def generalization_loss(val_loss: Sequence[float]) -> float:
    """GL(t) = 100 * (E_va(t) / E_opt(t) - 1), in percent, at the last epoch."""
    best = min(val_loss)
    if best <= 0:
        return 0.0 if val_loss[-1] <= best else math.inf
    return 100.0 * (val_loss[-1] / best - 1.0)


def training_progress(train_eval_loss: Sequence[float], strip: int) -> float:
    """P_k(t) = 1000 * (mean of the last k training losses / their min - 1)."""
    window = train_eval_loss[-strip:]
    low = min(window)
    if low <= 0:
        return 0.0
    return 1000.0 * (sum(window) / (len(window) * low) - 1.0)


class GLRule:
    """Stop when the generalization loss exceeds ``alpha`` percent."""

    name = "gl"

    def __init__(self, alpha: float = 5.0) -> None:
        _positive("gl", "alpha", alpha)
        self.alpha = alpha

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        if not val_loss:
            return None
        gl = generalization_loss(val_loss)
        if gl > self.alpha:
            t = len(val_loss)
            return Firing("gl", gl, self.alpha, t, f"GL {gl:.1f}% > {self.alpha:g}% at epoch {t}")
        return None


class PQRule:
    """Stop when GL divided by training progress exceeds ``alpha``, at strip ends."""

    name = "pq"

    def __init__(self, alpha: float = 0.5, strip: int = 5) -> None:
        _positive("pq", "alpha", alpha)
        if strip < 2:
            raise ValueError(f"pq: strip must be >= 2, got {strip}")
        self.alpha = alpha
        self.strip = strip

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        t = len(val_loss)
        if t < self.strip or t % self.strip or len(train_eval_loss) < t:
            return None
        gl = generalization_loss(val_loss)
        progress = training_progress(train_eval_loss[:t], self.strip)
        pq = (math.inf if gl > 0 else 0.0) if progress <= 0 else gl / progress
        if pq > self.alpha:
            return Firing("pq", pq, self.alpha, t, f"PQ {pq:.2f} > {self.alpha:g} at epoch {t}")
        return None


class UPRule:
    """Stop when val_loss rose at the end of ``strips`` consecutive strips of ``strip`` epochs."""

    name = "up"

    def __init__(self, strips: int = 3, strip: int = 5) -> None:
        if strips < 1:
            raise ValueError(f"up: strips must be >= 1, got {strips}")
        if strip < 1:
            raise ValueError(f"up: strip must be >= 1, got {strip}")
        self.strips = strips
        self.strip = strip

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        t = len(val_loss)
        k, s = self.strip, self.strips
        if t % k or t < k * (s + 1):
            return None
        ends = [val_loss[t - 1 - i * k] for i in range(s + 1)]  # newest first
        if all(ends[i] > ends[i + 1] for i in range(s)):
            return Firing(
                "up",
                float(s),
                float(s),
                t,
                f"val_loss up in {s} consecutive strips of {k} at epoch {t}",
            )
        return None


class GapRule:
    """Stop when the gap stays above ``max_gap`` for ``patience`` consecutive epochs."""

    name = "gap"

    def __init__(self, max_gap: float = 0.15, patience: int = 2) -> None:
        if max_gap < 0:
            raise ValueError(f"gap: max_gap must be >= 0, got {max_gap}")
        if patience < 1:
            raise ValueError(f"gap: patience must be >= 1, got {patience}")
        self.max_gap = max_gap
        self.patience = patience

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        t = min(len(val_loss), len(train_eval_loss))
        if t < self.patience:
            return None
        gaps = [val_loss[i] - train_eval_loss[i] for i in range(t - self.patience, t)]
        if all(g > self.max_gap for g in gaps):
            return Firing(
                "gap",
                gaps[-1],
                self.max_gap,
                t,
                f"gap {gaps[-1]:.3f} > {self.max_gap:g} for {self.patience} epochs at epoch {t}",
            )
        return None


class NoRule:
    """Never stops a trial."""

    name = "none"

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        return None
