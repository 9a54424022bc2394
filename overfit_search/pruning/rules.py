"""Prechelt's stopping criteria ("Early Stopping — But When?", 1998) and a gap rule (DESIGN.md §5).

Every rule is a pure function of the per-epoch histories (index 0 is epoch 1) and answers for the
last epoch only. Parameters are validated eagerly in ``__init__`` with messages of one form,
``"<rule>: <param> must be <expected>, got <value>"``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from overfit_search.pruning.base import Firing


def _number(rule: str, name: str, value: object, minimum: float, *, strict: bool) -> float:
    """Validate a finite real parameter ``> minimum`` (strict) or ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{rule}: {name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{rule}: {name} must be a finite number, got {value}")
    if (value <= minimum) if strict else (value < minimum):
        raise ValueError(
            f"{rule}: {name} must be {'>' if strict else '>='} {minimum:g}, got {value}"
        )
    return float(value)


def _integer(rule: str, name: str, value: object, minimum: int) -> int:
    """Validate an integer parameter ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{rule}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{rule}: {name} must be >= {minimum}, got {value}")
    return value


def _finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def generalization_loss(val_loss: Sequence[float]) -> float:
    """Prechelt's generalization loss at the last epoch, in percent.

    ``GL(t) = 100 * (E_va(t) / E_opt(t) - 1)`` with ``E_opt(t)`` the lowest val loss up to ``t``.

    Args:
        val_loss: Validation loss per epoch, finite, at least one epoch.

    Returns:
        GL in percent (0 at a new best). With ``E_opt <= 0``: 0 if the last loss is the best,
        else ``inf``.
    """
    best = min(val_loss)
    if best <= 0:
        return 0.0 if val_loss[-1] <= best else math.inf
    return 100.0 * (val_loss[-1] / best - 1.0)


def training_progress(train_eval_loss: Sequence[float], strip: int) -> float:
    """Prechelt's training progress over the last ``strip`` epochs.

    ``P_k(t) = 1000 * (sum of the last k losses / (k * min of them) - 1)``.

    Args:
        train_eval_loss: Training loss per epoch, finite, at least ``strip`` epochs.
        strip: The strip length ``k``.

    Returns:
        P_k, >= 0. With a minimum ``<= 0``: 0 if the strip is flat, else ``inf``.
    """
    window = train_eval_loss[-strip:]
    low = min(window)
    if low <= 0:
        return 0.0 if max(window) == low else math.inf
    return 1000.0 * (sum(window) / (len(window) * low) - 1.0)


class GLRule:
    """Fires when the generalization loss exceeds ``alpha`` percent (Prechelt's GL_alpha).

    With ``patience`` > 1, GL must exceed ``alpha`` at each of the last ``patience`` epochs:
    a single noisy validation epoch (small validation sets, high learning rates) does not stop
    a trial whose loss comes back down.

    Args:
        alpha: Threshold in percent, > 0.
        patience: Consecutive epochs above ``alpha`` needed, >= 1 (1: Prechelt's rule).
    """

    name = "gl"

    def __init__(self, alpha: float = 5.0, patience: int = 1) -> None:
        self.alpha = _number("gl", "alpha", alpha, 0, strict=True)
        self.patience = _integer("gl", "patience", patience, 1)

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Fire if ``GL > alpha`` at each of the last ``patience`` epochs."""
        if len(val_loss) < self.patience or not _finite(val_loss):
            return None
        t = len(val_loss)
        for end in range(t - self.patience + 1, t + 1):
            if generalization_loss(val_loss[:end]) <= self.alpha:
                return None
        gl = generalization_loss(val_loss)
        held = f" for {self.patience} epochs" if self.patience > 1 else ""
        return Firing("gl", gl, self.alpha, t, f"GL {gl:.1f}% > {self.alpha:g}%{held} at epoch {t}")


class PQRule:
    """Fires when GL over training progress exceeds ``alpha`` at a strip end (Prechelt's PQ_alpha).

    Evaluated only at ``t % strip == 0``. With no training progress (``P_k == 0``) the quotient
    is ``inf`` if GL > 0, else 0.

    Args:
        alpha: Threshold on ``GL / P_k``, > 0.
        strip: Strip length ``k``, >= 2 (a strip of one epoch has no progress).
    """

    name = "pq"

    def __init__(self, alpha: float = 0.5, strip: int = 5) -> None:
        self.alpha = _number("pq", "alpha", alpha, 0, strict=True)
        self.strip = _integer("pq", "strip", strip, 2)

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Fire if ``t`` ends a strip and ``PQ(t) > alpha``."""
        t = len(val_loss)
        k = self.strip
        if t < k or t % k or len(train_eval_loss) < t:
            return None
        window = train_eval_loss[t - k : t]
        if not _finite(val_loss) or not _finite(window):
            return None
        gl = generalization_loss(val_loss)
        progress = training_progress(window, k)
        pq = (math.inf if gl > 0 else 0.0) if progress == 0 else gl / progress
        if pq <= self.alpha:
            return None
        return Firing("pq", pq, self.alpha, t, f"PQ {pq:.2f} > {self.alpha:g} at epoch {t}")


class UPRule:
    """Fires when val loss rose at the end of ``strips`` successive strips (Prechelt's UP_s).

    At a strip end ``t``: ``E_va(t) > E_va(t - k)``, and the same at ``t - k``, … for ``strips``
    strips; so it needs ``strips + 1`` strip ends and fires at the earliest at
    ``t = strip * (strips + 1)``.

    Args:
        strips: Number ``s`` of successive rising strips, >= 1.
        strip: Strip length ``k``, >= 1.
    """

    name = "up"

    def __init__(self, strips: int = 3, strip: int = 5) -> None:
        self.strips = _integer("up", "strips", strips, 1)
        self.strip = _integer("up", "strip", strip, 1)

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Fire if ``t`` ends a strip and the last ``strips`` strip ends each rose."""
        t = len(val_loss)
        k, s = self.strip, self.strips
        if t % k or t < k * (s + 1):
            return None
        ends = [val_loss[t - 1 - i * k] for i in range(s + 1)]  # newest first
        if not _finite(ends) or not all(ends[i] > ends[i + 1] for i in range(s)):
            return None
        return Firing(
            "up",
            float(s),
            float(s),
            t,
            f"val_loss up in {s} consecutive strips of {k} at epoch {t}",
        )


class GapRule:
    """Fires when ``val_loss - train_eval_loss`` stays above ``max_gap`` for ``patience`` epochs.

    Args:
        max_gap: Gap threshold (loss units), >= 0.
        patience: Consecutive epochs above it, >= 1.
    """

    name = "gap"

    def __init__(self, max_gap: float = 0.15, patience: int = 2) -> None:
        self.max_gap = _number("gap", "max_gap", max_gap, 0, strict=False)
        self.patience = _integer("gap", "patience", patience, 1)

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Fire if the gap exceeded ``max_gap`` at each of the last ``patience`` epochs."""
        t = len(val_loss)
        if t < self.patience or len(train_eval_loss) < t:
            return None
        gaps = [val_loss[i] - train_eval_loss[i] for i in range(t - self.patience, t)]
        if not _finite(gaps) or not all(g > self.max_gap for g in gaps):
            return None
        return Firing(
            "gap",
            gaps[-1],
            self.max_gap,
            t,
            f"gap {gaps[-1]:.2f} > {self.max_gap:g} for {self.patience} epochs at epoch {t}",
        )


class NoRule:
    """Never fires: trials run to ``max_epochs`` (or until a scheduler stops them)."""

    name = "none"

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Never fires."""
        return None


def relative_noise(val_loss: Sequence[float]) -> float | None:
    """Epoch-to-epoch noise of a loss curve, relative to its level.

    The second difference ``v[t+1] - 2 v[t] + v[t-1]`` of a smooth curve is small, and of white
    noise of standard deviation ``s`` has standard deviation ``sqrt(6) s`` (median absolute
    value ``0.674 sqrt(6) s``), so the median of ``|second difference| / (0.674 sqrt(6) v[t])``
    over the curve estimates ``s / level`` without being fooled by a steady fall or rise.

    Args:
        val_loss: Loss per epoch.

    Returns:
        The relative noise (e.g. 0.05 for 5 %), or None with fewer than 3 finite, positive
        epochs.
    """
    values = [v for v in val_loss if math.isfinite(v)]
    ratios = []
    for i in range(1, len(values) - 1):
        level = values[i]
        if level <= 0:
            continue
        second = values[i + 1] - 2.0 * values[i] + values[i - 1]
        ratios.append(abs(second) / (_MAD_SCALE * level))
    if not ratios:
        return None
    ratios.sort()
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else 0.5 * (ratios[mid - 1] + ratios[mid])


_MAD_SCALE = 0.6745 * math.sqrt(6.0)


def running_median(values: Sequence[float], width: int) -> list[float]:
    """The trailing running median: item ``i`` is the median of ``values[i - width + 1 : i + 1]``
    (fewer at the start). ``width`` 1 returns the values as they are."""
    if width <= 1:
        return list(values)
    return [statistics.median(values[max(0, i - width + 1) : i + 1]) for i in range(len(values))]


class PeakRule:
    """Fires once a trial is past its peak: no new best for ``patience`` epochs, and the mean of
    those epochs is above the best by more than ``z`` times the curve's own noise.

    The noise is :func:`relative_noise` of the trial's val loss so far, so a curve that jitters
    by 10 % needs a larger rise than one that jitters by 1 %; ``min_rise`` (percent) is a floor
    for curves too smooth to measure. A plateau (mean of the last epochs at the level the best
    was drawn from) does not fire: the best of a noisy plateau sits below its mean by about
    one noise, less than ``z`` noises for ``z >= 2``.

    With ``smooth`` > 1 the rule reads the running median of the last ``smooth`` epochs instead
    of the raw curve (best, its epoch, and the recent mean alike): one lucky low epoch is then
    not a peak, and one or two bad epochs of a curve that is still falling are not a rise.
    Measured on the choosing curve banks (bench/RESULTS.md, issue 18), the raw rule cut noisy,
    still-improving winners (a best 73 % worse than no stopping on one bank); ``smooth: 3`` did
    not.

    With ``sustained`` the rise must hold at every one of those epochs, not only on their mean:
    a spike of two bad epochs after which the curve falls back (as the winner of a held-out bank
    did in round 3, cut at epoch 17 before its best at epoch 22) does not fire, while a curve
    that has turned stays above its best at every epoch and does.

    Args:
        patience: Epochs without a new best, >= 1.
        z: Noise multiples those epochs (their mean; each one with ``sustained``) must exceed
            the best by, >= 0.
        min_rise: Smallest rise that fires, percent, >= 0.
        smooth: Width of the trailing running median, >= 1 (1: the raw curve).
        sustained: Read the smallest of those epochs instead of their mean.
    """

    name = "peak"

    def __init__(
        self,
        patience: int = 3,
        z: float = 2.0,
        min_rise: float = 1.0,
        smooth: int = 1,
        sustained: bool = False,
    ) -> None:
        self.patience = _integer("peak", "patience", patience, 1)
        self.z = _number("peak", "z", z, 0, strict=False)
        self.min_rise = _number("peak", "min_rise", min_rise, 0, strict=False)
        self.smooth = _integer("peak", "smooth", smooth, 1)
        if not isinstance(sustained, bool):
            raise ValueError(f"peak: sustained must be true or false, got {sustained!r}")
        self.sustained = sustained

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Fire if the best is ``patience`` epochs old and the epochs since rose past noise."""
        t = len(val_loss)
        if t <= self.patience or not _finite(val_loss):
            return None
        curve = running_median(val_loss, self.smooth)
        best = min(curve)
        best_epoch = curve.index(best) + 1
        if t - best_epoch < self.patience or best <= 0:
            return None
        recent = curve[t - self.patience :]
        level = min(recent) if self.sustained else sum(recent) / len(recent)
        rise = 100.0 * (level / best - 1.0)
        noise = relative_noise(val_loss[:t]) or 0.0
        threshold = max(self.min_rise, 100.0 * self.z * noise)
        if rise <= threshold:
            return None
        smoothed = f" (running median of {self.smooth})" if self.smooth > 1 else ""
        return Firing(
            "peak",
            rise,
            threshold,
            t,
            f"val_loss{smoothed} {rise:.1f}% above its best (epoch {best_epoch}) "
            f"{'at each of' if self.sustained else 'over'} the last {self.patience} epochs > "
            f"{threshold:.1f}% ({self.z:g} x noise {100 * noise:.1f}%) "
            f"at epoch {t}",
        )
