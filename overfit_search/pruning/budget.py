"""Budget rules: stop a trial that scores worse than its peers (DESIGN.md §5, issue 18).

A budget rule compares a trial with the other trials of the study, where an overfitting rule
looks at the trial alone. Both are pure functions of val loss histories; the judge runs the
overfitting rule first and the budget rule when that did not fire.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any, Protocol

from overfit_search.pruning.base import Firing, construct
from overfit_search.pruning.rules import _integer, _number, relative_noise


class BudgetRule(Protocol):
    """Decides from a trial's val loss and its peers' whether the trial is a loser now.

    Attributes:
        name: The rule's registry name (``halving``, ``median``, ``none``).
    """

    name: str

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Whether the trial stops at epoch ``len(val_loss)``.

        Args:
            val_loss: The trial's clean val loss per epoch; index 0 is epoch 1.
            peers: The other trials' val loss per epoch, as far as each got (running, finished
                or stopped: a trial stopped before an epoch does not count at that epoch).

        Returns:
            A ``Firing`` if the trial stops now, else None.
        """
        ...


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _bests_at(peers: Sequence[Sequence[float]], epoch: int) -> list[float]:
    """Each peer's best val loss up to ``epoch``, for the peers that reached it with finite losses
    (a trial stopped before ``epoch`` does not count at it)."""
    return [min(p[:epoch]) for p in peers if len(p) >= epoch and all(map(math.isfinite, p[:epoch]))]


def _noise(val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> float:
    """The median :func:`relative_noise` over the trial's and its peers' curves (0 if none has 3
    epochs)."""
    noises = [n for n in (relative_noise(c) for c in (val_loss, *peers)) if n is not None]
    return statistics.median(noises) if noises else 0.0


def _excess(own: float, cutoff: float, tolerance: float) -> float | None:
    """How far (percent) ``own`` is above ``cutoff``, when more than ``tolerance`` (a fraction)
    above it; None when it is within (or the cutoff is not positive)."""
    if cutoff <= 0 or own <= cutoff * (1.0 + tolerance):
        return None
    return 100.0 * (own / cutoff - 1.0)


def _mean_ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties at their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation, ties at their mean rank (0 when either side has no spread)."""
    rx, ry = _mean_ranks(x), _mean_ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def ranking_held(
    epoch: int, peers: Sequence[Sequence[float]], min_trials: int
) -> tuple[float | None, int]:
    """How well the study's own trials say a ranking at ``epoch`` holds.

    The reference trials are the peers that ran ``2 * epoch`` epochs or more with finite losses;
    the correlation is between their best val loss up to ``epoch`` and their best so far.

    Returns:
        ``(rank correlation, reference trials)``; the correlation is None with fewer than
        ``min_trials`` reference trials.
    """
    ref = [p for p in peers if len(p) >= 2 * epoch and all(map(math.isfinite, p))]
    if len(ref) < min_trials:
        return None, len(ref)
    return rank_correlation([min(p[:epoch]) for p in ref], [min(p) for p in ref]), len(ref)


class HalvingRule:
    """Asynchronous successive halving on the best val loss so far, with a noise tolerance.

    At each rung (epochs ``first_rung * reduction_factor**k``, rounded) a trial continues if its
    best val loss up to the rung is within the best ``1 / reduction_factor`` of the trials that
    reached that rung (itself included), with a tolerance: it stops only if its best exceeds
    that cutoff by more than ``z`` times the val loss noise measured on the curves (the median
    of :func:`~overfit_search.pruning.rules.relative_noise` over the trials with 3 or more
    epochs). With fewer than ``min_trials`` trials at the rung (itself included) nothing stops:
    one or two early peers are no basis for a verdict.

    Ranked on the best so far, not the last value, as the study scores trials; a noisy last
    epoch does not cut a trial whose best is good.

    With ``verify`` set, a rung also checks that its ranking means something in this study
    before it cuts: over the trials that ran twice the rung's epochs or more (at least
    ``verify_trials`` of them), the rank correlation between their best up to the rung and their
    best so far must be ``verify`` or more; where it is lower the rung stops nothing. While fewer
    reference trials exist the rung cuts as without ``verify``. Off by default: on issue 18's
    thirty-six choosing live orders ``verify: 0.3`` ran 68 % of the epochs at a best 1.8 % above
    no stopping's, against the default's 58 % at 4.5 %, and on the twelve newest it saved none
    of the winners the default lost (each an exception to a ranking that held; bench/RESULTS.md,
    round 12).

    Args:
        first_rung: Epoch of the first rung, >= 1.
        reduction_factor: Rung spacing and the fraction kept (1 in ``reduction_factor``), > 1.
        min_trials: Trials that must have reached a rung before it stops any, >= 2.
        z: Noise multiples of tolerance, >= 0 (0: plain successive halving on the best).
        verify: The rank correlation, in [-1, 1], a rung's ranking must have shown before it
            cuts; None: rungs cut without checking.
        verify_trials: Reference trials the check needs, >= 3.
    """

    name = "halving"

    def __init__(
        self,
        first_rung: int = 1,
        reduction_factor: float = 3.0,
        min_trials: int = 5,
        z: float = 1.0,
        verify: float | None = None,
        verify_trials: int = 6,
    ) -> None:
        self.first_rung = _integer("halving", "first_rung", first_rung, 1)
        self.reduction_factor = _number(
            "halving", "reduction_factor", reduction_factor, 1, strict=True
        )
        self.min_trials = _integer("halving", "min_trials", min_trials, 2)
        self.z = _number("halving", "z", z, 0, strict=False)
        self.verify = (
            None if verify is None else _number("halving", "verify", verify, -1, strict=False)
        )
        if self.verify is not None and self.verify > 1:
            raise ValueError(f"halving: verify must be <= 1, got {verify!r}")
        self.verify_trials = _integer("halving", "verify_trials", verify_trials, 3)

    def is_rung(self, epoch: int) -> bool:
        """Whether ``epoch`` is a rung."""
        rung = float(self.first_rung)
        while round(rung) < epoch:
            rung *= self.reduction_factor
        return round(rung) == epoch

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Fire at a rung if the trial's best so far is out of the kept fraction, past noise."""
        t = len(val_loss)
        if t == 0 or not self.is_rung(t) or not all(math.isfinite(v) for v in val_loss):
            return None
        own = min(val_loss)
        at_rung = _bests_at(peers, t)
        if len(at_rung) + 1 < self.min_trials:
            return None
        cutoff = _quantile([own, *at_rung], 1.0 / self.reduction_factor)
        tolerance = self.z * _noise(val_loss, peers)
        excess = _excess(own, cutoff, tolerance)
        if excess is None:
            return None
        checked = ""
        if self.verify is not None:
            rho, n = ranking_held(t, peers, self.verify_trials)
            if rho is not None and rho < self.verify:
                return None
            checked = (
                f"; the ranking at epoch {t} held over {n} trials that ran {2 * t}+ epochs "
                f"(rank correlation {rho:.2f} >= {self.verify:g})"
                if rho is not None
                else f"; not verified: {n} of the {self.verify_trials} trials it needs ran "
                f"{2 * t}+ epochs"
            )
        return Firing(
            "halving",
            excess,
            100.0 * tolerance,
            t,
            f"best {own:.4f} is {excess:.1f}% above the top-1/{self.reduction_factor:g} cutoff "
            f"{cutoff:.4f} of {len(at_rung) + 1} trials at epoch {t} (tolerance "
            f"{100 * tolerance:.1f}% = {self.z:g} x noise){checked}",
        )


class MedianRule:
    """A median-style rule on the best val loss so far, with a noise tolerance.

    From epoch ``grace`` on, at every epoch, a trial stops if its best val loss so far is above
    the ``percentile`` of its peers' best val loss up to that same epoch (the trials that reached
    it; the trial itself excluded, as in Optuna's ``PercentilePruner`` and Ray's
    ``MedianStoppingRule``) by more than ``z`` times the measured val loss noise (the median of
    :func:`~overfit_search.pruning.rules.relative_noise` over the curves with 3 or more
    epochs). With fewer than ``min_trials`` peers at the epoch nothing stops.

    Where :class:`HalvingRule` judges a trial only at its rungs and keeps 1 in
    ``reduction_factor``, this rule looks every epoch but only cuts the worse half (at 50):
    a slow starter ranked second or third of four at an early rung is not cut.

    With ``against="mean"`` the peers' value at epoch ``t`` is their *running mean* val loss
    over epochs ``grace..t`` instead of their best up to ``t``: Ray Tune's
    ``MedianStoppingRule`` comparison (at ``min_trials`` 3, ``percentile`` 50, ``z`` 0 it stops
    the trials Ray's rule stops). A peer's mean carries its early, high losses, so a slow
    starter is judged against where its peers have been while the curves still fall, and the
    cut tightens as they flatten.

    Args:
        grace: First epoch the rule may stop a trial at, >= 1 (with ``against="mean"``, also
            the first epoch of the running mean).
        min_trials: Peers that must have reached the epoch, >= 2.
        percentile: The peers' percentile compared with, in (0, 100); 50 is the median.
        z: Noise multiples of tolerance, >= 0.
        against: ``best`` (the peers' best so far) or ``mean`` (their running mean).
    """

    name = "median"

    def __init__(
        self,
        grace: int = 2,
        min_trials: int = 5,
        percentile: float = 50.0,
        z: float = 1.0,
        against: str = "best",
    ) -> None:
        self.grace = _integer("median", "grace", grace, 1)
        self.min_trials = _integer("median", "min_trials", min_trials, 2)
        self.percentile = _number("median", "percentile", percentile, 0, strict=True)
        if self.percentile >= 100:
            raise ValueError(f"median: percentile must be < 100, got {percentile!r}")
        self.z = _number("median", "z", z, 0, strict=False)
        if against not in ("best", "mean"):
            raise ValueError(f"median: against must be 'best' or 'mean', got {against!r}")
        self.against = against

    def _peer_values(self, peers: Sequence[Sequence[float]], t: int) -> list[float]:
        """Each peer's value at epoch ``t`` (best so far or running mean since ``grace``), for
        the peers that reached it with finite losses."""
        if self.against == "best":
            return _bests_at(peers, t)
        lo = self.grace - 1
        return [
            statistics.fmean(p[lo:t])
            for p in peers
            if len(p) >= t and all(map(math.isfinite, p[lo:t]))
        ]

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Fire if the trial's best so far is out of the peers' percentile, past noise."""
        t = len(val_loss)
        if t < self.grace or not all(math.isfinite(v) for v in val_loss):
            return None
        at_epoch = self._peer_values(peers, t)
        if len(at_epoch) < self.min_trials:
            return None
        own = min(val_loss)
        cutoff = _quantile(at_epoch, self.percentile / 100.0)
        tolerance = self.z * _noise(val_loss, peers)
        excess = _excess(own, cutoff, tolerance)
        if excess is None:
            return None
        return Firing(
            "median",
            excess,
            100.0 * tolerance,
            t,
            f"best {own:.4f} is {excess:.1f}% above the {self.percentile:g}th percentile "
            f"{cutoff:.4f} of {len(at_epoch)} peers' {self._what()} at epoch {t} (tolerance "
            f"{100 * tolerance:.1f}% = {self.z:g} x noise)",
        )

    def _what(self) -> str:
        """What the peers' value is, for the stop reason."""
        return "best" if self.against == "best" else f"mean val loss since epoch {self.grace}"


class NoBudget:
    """Never stops a trial for its rank."""

    name = "none"

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Never fires."""
        return None


BUDGETS: dict[str, type] = {"halving": HalvingRule, "median": MedianRule, "none": NoBudget}


def make_budget(name: str, **params: Any) -> BudgetRule:
    """Build a budget rule by name, as the sweep file's ``pruning.budget`` names it.

    Args:
        name: One of ``BUDGETS`` (``halving``, ``median``, ``none``).
        **params: The rule's parameters; missing ones take their defaults.

    Returns:
        The rule.

    Raises:
        ValueError: Unknown name, unknown parameter, or a bad value (the message names it).
    """
    rule: BudgetRule = construct("budget rule", BUDGETS, name, params)
    return rule
