"""Candidate budget rules tried against the default on the choosing banks (issue 18, round 7).

Each candidate is the default (``pruning.preset: balanced``: the peak rule and halving on the
best so far) with one idea added; both were measured with sampler feedback on the choosing
banks that carry a test split, and both were rejected (bench/RESULTS.md, "Round 7"). They stay
here, runnable, so the evidence can be checked and the ideas are not tried again blind.

- ``reach`` ("can it still win?"): after ``grace`` epochs a trial stops when even a linear
  extrapolation of its best so far (its improvement per epoch over the last ``window``
  epochs, times ``slack``, to the last epoch) stays above the study's best by more than
  ``z`` noise units. Optimistic for a decelerating curve, so it should only cut trials that
  cannot catch up.
- ``backtest``: a halving stop is kept only if the same cutoff, applied at the same rung to
  the study's trials that ran past it, would not have cut one of them that ended within
  ``near`` of the study's best: a rung that would have thrown away the study's own winner is
  not trusted.

Round 8 added ``schedule``: halving with explicit rungs, each keeping its own share (a gentle
cut early, a hard one later: the shape of the cheapest schedules ``bench/pruning.py
--predictability`` finds in hindsight). Rejected too: the best of its 72 settings beat the
default by 1.2 standard errors of the paired score difference on the grid's searches, and was
within noise of it on 40 fresh searches per bank (bench/RESULTS.md, "Round 8").

Round 10 added ``halving`` (the default's halving settings around its own) and ``trust``
(``TrustHalving``: a rung cuts without tolerance where the study's trials that ran longer show
its ranking held), each also replayed over live sweeps' own trials (``bench/live_order.py
--grid NAME``). Both rejected: the replay with feedback and the live orders disagree
(bench/RESULTS.md, "Round 10").

Round 11 chose on live orders only (``bench/live_order.py --grid NAME``): ``round11``
(tolerance 0.5, ``trust``, and ``kept``: the tolerance measured on the curves a rung keeps),
written before its orders were replayed, all rejected; then, exploring, ``checked``
(``CheckedHalving``: a rung cuts only where the study's ranking held) and ``rungs`` (later
first rungs). None adopted (bench/RESULTS.md, "Round 11").

Every line prints the setting's epoch fraction / best val loss ratio / share within 1 % / the
export's test loss ratio, the score (fraction + 5 x (ratio - 1), mean ± standard error) and
its paired difference from the default's on the same searches (negative: better).

Usage::

    python bench/candidates.py                  # round 7's grid, 20 TPE searches per bank
    python bench/candidates.py --grid schedule  # round 8's two-rung schedules
    python bench/candidates.py --grid trust     # round 10 (also: --grid halving)
    python bench/candidates.py --seeds 5        # a quick look
    python bench/candidates.py --grid schedule --only 1 --first-seed 20 --seeds 40  # fresh seeds
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _policies import Judge, NoStopping  # noqa: E402
from choose_default import WEIGHTS, _run  # noqa: E402
from pruning import (  # noqa: E402
    CHOSEN_ON,
    FEEDBACK_MIN_POOL,
    HELD_OUT,
    Score,
    _test_ratio,
    _within,
    load_curves,
)

from overfit_search.pruning import OverfitJudge, make_rule, preset  # noqa: E402
from overfit_search.pruning.base import Firing  # noqa: E402
from overfit_search.pruning.budget import (  # noqa: E402
    HalvingRule,
    MedianRule,
    _bests_at,
    _excess,
    _noise,
    _quantile,
)
from overfit_search.pruning.budget import ranking_held as product_ranking_held  # noqa: E402


class ReachRule:
    """Stop a trial whose optimistic linear extrapolation cannot reach the study's best.

    Args:
        horizon: The sweep's ``max_epochs``.
        grace: First epoch it may stop at.
        window: Epochs the improvement rate is measured over.
        z: Noise units of tolerance above the study's best.
        slack: Multiplies the extrapolated improvement (more than 1: more optimistic).
        min_trials: Peers needed before it judges.
    """

    name = "reach"

    def __init__(
        self,
        horizon: int,
        grace: int = 4,
        window: int = 3,
        z: float = 1.0,
        slack: float = 1.0,
        min_trials: int = 5,
    ) -> None:
        self.horizon, self.grace, self.window = horizon, grace, window
        self.z, self.slack, self.min_trials = z, slack, min_trials

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Fire when the extrapolated best stays above the study's best, past noise."""
        t = len(val_loss)
        if t < max(self.grace, self.window + 1) or not all(map(math.isfinite, val_loss)):
            return None
        bests = [min(p) for p in peers if p and all(map(math.isfinite, p))]
        if len(bests) < self.min_trials or min(bests) <= 0:
            return None
        own = min(val_loss)
        rate = max(0.0, (min(val_loss[: t - self.window]) - own) / self.window)
        reach = own - self.slack * rate * (self.horizon - t)
        tolerance = self.z * _noise(val_loss, peers)
        if reach <= min(bests) * (1.0 + tolerance):
            return None
        excess = 100.0 * (reach / min(bests) - 1.0)
        return Firing("reach", excess, 100.0 * tolerance, t, f"reach {reach:.4f}")


def _finished(peers: Sequence[Sequence[float]], horizon: int) -> list[Sequence[float]]:
    """The peers that ran the whole ``horizon`` with finite losses."""
    return [p for p in peers if len(p) >= horizon and all(map(math.isfinite, p))]


class CalibratedReach:
    """Stop a trial that could not reach the study's best even if it now improved as much as
    the study's most improving finished trial did from the same epoch.

    At epoch ``t`` (from ``grace`` on), the study's trials that ran the whole ``horizon`` are
    the reference; each improved from its best up to ``t`` to its final best by a factor
    ``g = best / best[:t]``. A trial's reach is its best so far times the ``quantile`` of those
    factors (0: the smallest, the most improving reference). It stops when its reach is above
    the references' best by more than ``z`` noise units. With fewer than ``min_ref``
    references nothing stops. What it reads is the study's own record of how much a curve
    still falls after ``t``, not the rank at ``t``: a slow starter is kept while a finished
    trial shows a fall that large happens in this study.

    Args:
        horizon: The sweep's ``max_epochs``.
        grace: First epoch it may stop at.
        min_ref: Finished trials needed before it stops any.
        quantile: The quantile of the references' improvement factors used (0: their least).
        z: Noise units of tolerance above the references' best.
    """

    name = "calibrated"

    def __init__(
        self, horizon: int, grace: int = 1, min_ref: int = 4, quantile: float = 0.0, z: float = 0.0
    ) -> None:
        self.horizon, self.grace, self.min_ref = horizon, grace, min_ref
        self.quantile, self.z = quantile, z

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Fire when even the references' largest fall from epoch ``t`` leaves the trial above
        their best, past noise."""
        t = len(val_loss)
        if t < self.grace or t >= self.horizon or not all(map(math.isfinite, val_loss)):
            return None
        refs = _finished(peers, self.horizon)
        if len(refs) < self.min_ref:
            return None
        factors = sorted(min(p) / min(p[:t]) for p in refs)
        g = factors[min(len(factors) - 1, int(self.quantile * len(factors)))]
        best = min(min(p) for p in refs)
        reach = min(val_loss) * g
        tolerance = self.z * _noise(val_loss, peers) if self.z else 0.0
        excess = _excess(reach, best, tolerance)
        if excess is None:
            return None
        return Firing("calibrated", excess, 100.0 * tolerance, t, f"reach {reach:.4f}")


def winner_place(losses: Sequence[Sequence[float]], epoch: int, near: float = 0.01) -> float:
    """Where the best-placed trial ending within ``near`` of the others' best stands at
    ``epoch``, ranked by best val loss so far among ``losses`` (one curve per trial), as a
    share of them: ``1 / len(losses)`` is first."""
    finals = [min(p) for p in losses]
    at = [min(p[:epoch]) for p in losses]
    best = min(finals)
    place = min(
        1 + sum(a < at[i] for a in at) for i in range(len(losses)) if finals[i] <= best * (1 + near)
    )
    return place / len(losses)


class AuditedHalving:
    """Halving whose rungs keep the share the study's own finished trials show they must.

    At a rung ``t`` of the halving rule, the study's trials that ran the whole ``horizon`` are
    the audit. Among them, ranked by best val loss up to ``t``, the best-placed one that ended
    within ``near`` of their best sits at place ``k`` (1: first) of ``n``: a rung keeping
    ``k / n`` would have kept it. The rung keeps ``margin x k / n`` of the trials that reached
    it (at least ``floor``; with the halving rule's noise tolerance), and stops nothing where
    that is all of them, or while fewer than ``min_ref`` trials have finished. Where the study's
    early ranking held it cuts hard; where its winners started behind it does not cut. The
    audit's trials are survivors of earlier rungs, a narrower range than every trial, so a
    ranking looks less settled than it is: the rule errs towards keeping.

    Args:
        horizon: The sweep's ``max_epochs``.
        min_ref: Finished trials the audit needs.
        margin: Multiplies the share the audit shows is needed.
        near: A finished trial within this fraction of the audit's best counts as a winner.
        floor: The least share a rung keeps.
        **halving: :class:`HalvingRule`'s parameters (its rungs, trials needed, tolerance).
    """

    name = "halving"

    def __init__(
        self,
        horizon: int,
        min_ref: int = 5,
        margin: float = 1.5,
        near: float = 0.01,
        floor: float = 0.0,
        **halving: Any,
    ) -> None:
        self.horizon, self.min_ref, self.margin, self.near, self.floor = (
            horizon,
            min_ref,
            margin,
            near,
            floor,
        )
        self.rule = HalvingRule(**halving)

    def keep(self, t: int, peers: Sequence[Sequence[float]]) -> float | None:
        """The share a rung at epoch ``t`` keeps; None while the audit is too small."""
        audit = _finished(peers, self.horizon)
        if len(audit) < self.min_ref:
            return None
        return max(self.floor, self.margin * winner_place(audit, t, self.near))

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """Fire at a rung if the trial's best so far is out of the audited share, past noise."""
        t = len(val_loss)
        if t == 0 or not self.rule.is_rung(t) or not all(map(math.isfinite, val_loss)):
            return None
        keep = self.keep(t, peers)
        at_rung = _bests_at(peers, t)
        if keep is None or keep >= 1.0 or len(at_rung) + 1 < self.rule.min_trials:
            return None
        own = min(val_loss)
        cutoff = _quantile([own, *at_rung], keep)
        tolerance = self.rule.z * _noise(val_loss, peers)
        excess = _excess(own, cutoff, tolerance)
        if excess is None:
            return None
        return Firing("halving", excess, 100.0 * tolerance, t, f"audited keep {keep:.2f}")


class EitherBudget:
    """Two budget rules; the first that fires stops the trial."""

    name = "halving"

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The first rule's firing, else the second's."""
        return self.first.check(val_loss, peers) or self.second.check(val_loss, peers)


class BacktestedHalving(HalvingRule):
    """Halving whose every stop is first replayed on the study's trials that ran past the rung.

    Args:
        near: A trial that ended within this fraction of the study's best counts as a winner.
        **params: :class:`HalvingRule`'s parameters.
    """

    def __init__(self, near: float = 0.01, **params: Any) -> None:
        super().__init__(**params)
        self.near = near

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The halving rule's firing, unless its cutoff would have cut one of the winners."""
        firing = super().check(val_loss, peers)
        if firing is None:
            return None
        t = len(val_loss)
        past = [p for p in peers if len(p) > t and all(map(math.isfinite, p))]
        if not past:
            return None
        best = min(min(p) for p in past)
        # the cutoff and tolerance the rule used, as its firing reports them
        cutoff = min(val_loss) / (1.0 + firing.value / 100.0)
        tolerance = firing.threshold / 100.0
        for p in past:
            if min(p) <= best * (1.0 + self.near) and min(p[:t]) > cutoff * (1.0 + tolerance):
                return None
        return firing


class ScheduleHalving:
    """Asynchronous successive halving with explicit rungs, each keeping its own share.

    At epoch ``rungs[i]`` the default's :class:`HalvingRule` judges the trial with
    ``reduction_factor = 1 / keeps[i]``: it continues if its best val loss so far is within the
    best ``keeps[i]`` of the trials that reached that epoch (itself included), with a tolerance
    of ``z`` noise units; with fewer than ``min_trials`` there, nothing stops. The shape the
    hindsight-cheapest two-rung schedules of ``bench/pruning.py --predictability`` take on most
    banks: a gentle cut at epoch 1-2, a hard one later.

    Args:
        rungs: Increasing epochs.
        keeps: The share each rung keeps, in (0, 1).
        min_trials: Trials that must have reached a rung before it stops any.
        z: Noise multiples of tolerance.
    """

    name = "halving"

    def __init__(
        self,
        rungs: Sequence[int],
        keeps: Sequence[float],
        min_trials: int = 5,
        z: float = 1.0,
    ) -> None:
        if len(rungs) != len(keeps) or list(rungs) != sorted(set(rungs)):
            raise ValueError(f"rungs {rungs} must increase and match keeps {keeps}")
        self.rule_at = {
            rung: HalvingRule(rung, 1.0 / keep, min_trials, z)
            for rung, keep in zip(rungs, keeps, strict=True)
        }

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """At a rung, the firing of that rung's halving rule."""
        rule = self.rule_at.get(len(val_loss))
        return None if rule is None else rule.check(val_loss, peers)


def ranking_held(t: int, peers: Sequence[Sequence[float]], rho: float, min_ref: int) -> bool | None:
    """Whether the study's own trials show that a ranking at epoch ``t`` holds (the product's
    :func:`~overfit_search.pruning.budget.ranking_held` correlation is ``rho`` or more). None
    with fewer than ``min_ref`` reference trials."""
    correlation = product_ranking_held(t, peers, min_ref)[0]
    return None if correlation is None else correlation >= rho


class TrustHalving:
    """Halving that cuts harder at a rung where the study's own trials show its ranking holds.

    At a rung ``t`` the study's trials that ran at least ``2 t`` epochs are the reference:
    the rank correlation between their best up to ``t`` and their best so far says how well a
    ranking at ``t`` predicts the later one in this study. With ``min_ref`` or more of them and
    a correlation of ``rho`` or more, the rung judges with ``trusted_z`` noise units of
    tolerance; otherwise with the default's (``z`` of ``halving``). The reference trials are the
    survivors of the rung, a range that understates the correlation: the rule errs towards
    caution.

    Args:
        rho: The correlation a rung needs to be trusted.
        trusted_z: The tolerance of a trusted rung.
        min_ref: Reference trials a rung needs to be trusted.
        **halving: :class:`HalvingRule`'s parameters (the untrusted rung's).
    """

    name = "halving"

    def __init__(
        self, rho: float = 0.5, trusted_z: float = 0.0, min_ref: int = 6, **halving: Any
    ) -> None:
        self.rho, self.min_ref = rho, min_ref
        self.rule = HalvingRule(**halving)
        self.trusted = HalvingRule(**{**halving, "z": trusted_z})

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The trusted rung's firing where the study's ranking held at this rung, else the
        default's."""
        t = len(val_loss)
        if t == 0 or not self.rule.is_rung(t):
            return None
        if ranking_held(t, peers, self.rho, self.min_ref):
            return self.trusted.check(val_loss, peers)
        return self.rule.check(val_loss, peers)


class KeptNoiseHalving(HalvingRule):
    """Halving whose tolerance is measured on the curves the rung keeps, not on every curve.

    The default's tolerance is ``z`` times the median noise of all the study's curves, and the
    first, random configurations of a sweep are its noisiest (round 10: 7.8-12.6 % on
    ``mn2-photos``' first twelve verdicts, 3.4-5.8 % later), so it is widest while the study is
    young. Here the noise is the median over the peers at the rung whose best up to it is
    within the cutoff: the curves a trial must beat. With fewer than ``min_kept`` of them, the
    default's noise.

    Args:
        min_kept: Kept peers the rung's own noise needs.
        **halving: :class:`HalvingRule`'s parameters.
    """

    def __init__(self, min_kept: int = 2, **halving: Any) -> None:
        super().__init__(**halving)
        self.min_kept = min_kept
        self.untolerant = HalvingRule(**{**halving, "z": 0.0})

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The default's verdict with the kept curves' noise."""
        firing = self.untolerant.check(val_loss, peers)  # out of the cutoff at all?
        if firing is None:
            return None
        t = len(val_loss)
        cutoff = min(val_loss) / (1.0 + firing.value / 100.0)
        reached = [p for p in peers if len(p) >= t and all(map(math.isfinite, p[:t]))]
        kept = [p for p in reached if min(p[:t]) <= cutoff * (1.0 + 1e-12)]
        noise = _noise(kept[0], kept[1:]) if len(kept) >= self.min_kept else _noise(val_loss, peers)
        tolerance = self.z * noise
        if firing.value <= 100.0 * tolerance:
            return None
        return Firing("halving", firing.value, 100.0 * tolerance, t, "kept-noise " + firing.reason)


class CheckedHalving:
    """Halving whose rungs cut only where the study's own trials show the rung's ranking holds.

    The inverse of :class:`TrustHalving`: at a rung ``t`` the study's trials that ran ``2 t``
    epochs or more are the reference. Where their rank correlation between the best up to ``t``
    and the best so far is below ``rho``, the rung stops nothing, where the default would cut
    with its tolerance; where it is ``rho`` or more, the rung cuts as the default. Round 11's
    live orders of the ``sel-*`` setups lost their winners at the epoch-2 rung, where the
    ranking did not yet say anything.

    Args:
        rho: The correlation a rung needs to cut.
        min_ref: Reference trials the correlation needs.
        untrusted: What a rung does while fewer than ``min_ref`` reference trials exist:
            ``keep`` (stop nothing) or ``default`` (cut as the default does).
        **halving: :class:`HalvingRule`'s parameters.
    """

    name = "halving"

    def __init__(
        self, rho: float = 0.5, min_ref: int = 4, untrusted: str = "keep", **halving: Any
    ) -> None:
        if untrusted not in ("keep", "default"):
            raise ValueError(f"untrusted must be 'keep' or 'default', got {untrusted!r}")
        self.min_ref, self.untrusted = min_ref, untrusted
        # ``untrusted="default"`` is the product's ``verify``; ``keep`` adds the unchecked rungs
        self.rule = HalvingRule(**halving, verify=rho, verify_trials=min_ref)

    def check(self, val_loss: Sequence[float], peers: Sequence[Sequence[float]]) -> Firing | None:
        """The product's verified verdict; with ``keep``, none at a rung not yet checkable."""
        firing = self.rule.check(val_loss, peers)
        if firing is None or self.untrusted == "default":
            return firing
        checkable = product_ranking_held(len(val_loss), peers, self.min_ref)[0] is not None
        return firing if checkable else None


class RunningMeanMedian(MedianRule):
    """Ray Tune's ``MedianStoppingRule`` comparison: the product's ``MedianRule`` with
    ``against="mean"``, at Ray's defaults.

    From epoch ``grace`` on, a trial stops when its best val loss so far is above the
    ``percentile`` of its peers' *running mean* val loss over epochs ``grace..t`` (the peers that
    reached ``t``) by more than ``z`` noise units; with fewer than ``min_trials`` such peers
    nothing stops. At ``z`` 0, ``percentile`` 50 and ``min_trials`` 3 it is Ray's rule (which
    the frontier replays as ``ray-median``).
    """

    def __init__(
        self, grace: int = 1, min_trials: int = 3, percentile: float = 50.0, z: float = 0.0
    ) -> None:
        super().__init__(grace, min_trials, percentile, z, against="mean")


ROUND12_BALANCED: dict[str, dict[str, Any]] = {
    "rule": {"name": "peak", "patience": 4, "z": 2.0, "smooth": 5, "sustained": True},
    "budget": {
        "name": "halving",
        "first_rung": 2,
        "reduction_factor": 4.0,
        "min_trials": 5,
        "z": 1.0,
    },
}
"""``balanced`` as rounds 5-12 shipped it: every grid's ``default`` and the base every candidate
changes, so the grids replay as written whatever the preset becomes."""

NO_RULE = make_rule("none")
"""No overfitting rule: the budget rule alone decides."""


def candidate(
    name: str, horizon: int, budget: dict[str, Any] | None = None, **params: Any
) -> Judge:
    """The default judge (``balanced``) with ``budget`` overriding its halving settings and a
    candidate: ``default`` (none), ``reach`` (``ReachRule(**params)`` as an OR),
    ``backtest`` (``BacktestedHalving(**params)`` instead of halving), ``schedule``
    (``ScheduleHalving(**params)`` instead of halving), ``trust``, ``kept``, ``checked`` (their
    classes instead of halving), ``guarded`` (halving) or ``msr``
    (:class:`RunningMeanMedian` of ``params["msr"]`` instead of halving, or beside it where
    ``params["halving"]``). Any candidate's overfitting rule is kept out of the last
    ``params["last"]`` epochs where that is given (the product's ``end_guard``), and is none
    where ``params["peak"]`` is False."""
    settings = ROUND12_BALANCED
    rule = dict(settings["rule"])
    halving = {**settings["budget"], **(budget or {})}
    halving.pop("name")
    if name == "reach":
        rule_b: Any = EitherBudget(HalvingRule(**halving), ReachRule(horizon, **params))
    elif name == "backtest":
        rule_b = BacktestedHalving(**params, **halving)
    elif name == "schedule":
        rule_b = ScheduleHalving(**{k: v for k, v in params.items() if k != "last"})
    elif name == "fractions":
        # rungs at fractions of the horizon (epoch 1 at least), as a default must place them
        at = [max(1, round(f * horizon)) for f in params["at"]]
        rule_b = ScheduleHalving(at, params["keeps"], params.get("min_trials", 5), params["z"])
    elif name == "trust":
        rule_b = TrustHalving(**params, **halving)
    elif name == "checked":
        rule_b = CheckedHalving(**params, **halving)
    elif name == "kept":
        rule_b = KeptNoiseHalving(**params, **halving)
    elif name in ("default", "guarded"):
        rule_b = HalvingRule(**halving)
    elif name == "audit":
        rule_b = AuditedHalving(horizon, **params.get("audit", {}), **halving)
    elif name == "calib":
        calib = CalibratedReach(horizon, **params.get("calib", {}))
        rule_b = EitherBudget(HalvingRule(**halving), calib) if params.get("halving") else calib
    elif name == "msr":
        msr = RunningMeanMedian(**params.get("msr", {}))
        rule_b = EitherBudget(HalvingRule(**halving), msr) if params.get("halving") else msr
    else:
        raise ValueError(
            f"unknown candidate {name!r}; choose default, reach, backtest, schedule, trust, "
            "kept, checked, guarded, msr, calib, audit or fractions"
        )
    judge = Judge.__new__(Judge)
    judge.name, judge.stopped_by = name, {}
    overfit = make_rule(rule.pop("name"), **rule) if params.get("peak", True) else NO_RULE
    judge.judge = OverfitJudge(
        overfit,
        grace_epochs=2,
        compare="median",
        compare_min_trials=4,
        budget=rule_b,
        max_epochs=horizon,
        end_guard=params.get("last", 0),
    )
    return judge


GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("reach", {}, {"grace": g, "window": w, "z": z, "slack": s})
        for g in (4, 8)
        for w in (3, 5)
        for z in (0.0, 1.0, 2.0)
        for s in (1.0, 2.0)
    ],
    *[
        (name, budget, params)
        for budget in (
            {},
            {"z": 0.0},
            {"first_rung": 1, "z": 0.0},
            {"reduction_factor": 3.0, "z": 0.0},
            {"first_rung": 1, "reduction_factor": 3.0, "z": 0.0},
        )
        for name, params in (
            ("backtest", {"near": 0.01}),
            ("backtest", {"near": 0.03}),
            *((("default", {}),) if budget else ()),
        )
    ],
]
"""Every setting measured: the default; ``reach`` on the default; halving with and without the
backtest at the default's settings and at more aggressive ones (no tolerance, a first rung at
epoch 1, a reduction factor of 3)."""

SCHEDULE_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("schedule", {}, {"rungs": (r1, r2), "keeps": (k1, k2), "z": z})
        for r1 in (1, 2)
        for k1 in (1 / 2, 2 / 3)
        for r2 in (6, 8, 12)
        for k2 in (1 / 6, 1 / 4, 1 / 3)
        for z in (0.0, 1.0)
    ],
]
"""Round 8: two-rung schedules in the shape of the hindsight-cheapest ones (a gentle cut at
epoch 1-2, a hard one at 6-12), with and without the noise tolerance."""
HALVING_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("default", budget, {})
        for first in (1, 2)
        for factor in (3.0, 4.0)
        for least in (3, 5)
        for z in (0.0, 0.5, 1.0)
        if (
            budget := {"first_rung": first, "reduction_factor": factor, "min_trials": least, "z": z}
        )
        != {"first_rung": 2, "reduction_factor": 4.0, "min_trials": 5, "z": 1.0}
    ],
]
"""Round 10: the default's halving settings around its own (first rung 1 or 2, factor 3 or 4,
3 or 5 trials a rung, tolerance 0-1 noise units), measured on the live-order banks of the
choosing setups (``bench/live_order.py --grid halving``) and with feedback here."""
TRUST_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("trust", {}, {"rho": rho, "trusted_z": z, "min_ref": m})
        for rho in (0.3, 0.5, 0.7)
        for z in (0.0, 0.5)
        for m in (4, 6)
    ],
]
"""Round 10: the default, whose halving rungs cut with no (or half the) tolerance where the
study's own trials show the rung's ranking held (``TrustHalving``)."""
ROUND11_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("default", {"z": 0.5}, {}),
    ("trust", {}, {"rho": 0.3, "trusted_z": 0.0, "min_ref": 6}),
    ("kept", {}, {}),
    ("kept", {"z": 0.5}, {}),
]
"""Round 11, written before any was replayed on the live orders recorded for it: round 10's two
live-order leads (tolerance 0.5; ``trust`` at its best live setting) and ``kept`` (the
tolerance measured on the curves a rung keeps) at the default's tolerance and at 0.5."""

CHECKED_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("checked", budget, {"rho": rho, "min_ref": m, "untrusted": u})
        for rho in (0.3, 0.5)
        for m in (4, 6)
        for u in ("keep", "default")
        for budget in ({}, {"z": 0.5})
    ],
]
"""Round 11, exploring after the round11 grid: halving whose rungs cut only where the study's
ranking held (``CheckedHalving``), measured on the twenty choosing live orders; its lead is
replayed on four fresh ones by ``fresh11``."""

RUNGS_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("default", {"first_rung": first, "reduction_factor": factor, "z": z}, {})
        for first in (2, 3, 4, 5, 6)
        for factor in (3.0, 4.0)
        for z in (1.0, 0.5)
        if (first, factor, z) != (2, 4.0, 1.0)
    ],
]
"""Round 11, exploring after the round11 grid: later first rungs (the ``sel-*`` live orders
lost their winners at the epoch-2 rung), factor 3 or 4, tolerance 1 or 0.5."""

CHECKED_LEAD = {"rho": 0.3, "min_ref": 6, "untrusted": "default"}
"""Round 11's ``checked`` lead: rho 0.3 over 6 reference trials, the default's cut before then
(the product's ``verify: 0.3``)."""

FRESH11_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("default", {"first_rung": 3, "reduction_factor": 3.0}, {}),
    ("default", {"first_rung": 4, "reduction_factor": 4.0}, {}),
    ("trust", {}, {"rho": 0.3, "trusted_z": 0.0, "min_ref": 6}),
    ("checked", {}, CHECKED_LEAD),
]
"""Round 11's leads, replayed on the four seed-3 live orders recorded after them."""

ROUND12_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("checked", {}, CHECKED_LEAD),
    ("default", {"first_rung": 4, "reduction_factor": 4.0}, {}),
]
"""Round 12, written before any was replayed on the twelve live orders recorded for it: the
two round-11 leads that held on both the twenty choosing orders and the fresh four (``checked``
at rho 0.3, 6 reference trials, the default's cut before then; first rung 4, factor 4)."""

SAFE_BUDGET = {k: v for k, v in preset("safe")["budget"].items() if k != "name"}
"""The ``safe`` preset's halving settings (its overfitting rule is the default's)."""

ROUND12_SAFE_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", SAFE_BUDGET, {}),
    ("checked", {}, CHECKED_LEAD),
]
"""Round 12, written with ``round12``: ``checked`` against ``safe`` (the first setting here),
scored with ``safe``'s weight (``--weight 20``): whether it is a cheaper ``safe``."""

GENTLE_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("schedule", {}, {"rungs": (2, 8), "keeps": (k1, k2), "z": z})
        for k1 in (1 / 2, 2 / 3)
        for k2 in (1 / 4, 1 / 3)
        for z in (1.0, 0.5)
    ],
    *[("guarded", {}, {"last": last}) for last in (2, 4)],
]
"""Round 12, exploring after the round12 grid: a gentler first rung (keep the top half or two
thirds at epoch 2, a quarter or a third at epoch 8), where nine of the default's twelve misses
on the thirty-six choosing orders were cut; and the peak rule kept out of the last 2 or 4
epochs (``guarded``), where it twice stopped a winner."""

FRESH12_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("guarded", {}, {"last": 4}),
    ("schedule", {}, {"rungs": (2, 8), "keeps": (1 / 2, 1 / 4), "z": 1.0}),
]
"""Round 12's exploring leads, replayed on the six seed-6 live orders recorded after them: the
peak rule kept out of the last ``patience`` (4) epochs, and the first rung keeping half."""

MSR_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("msr", {}, {"msr": {"grace": 1, "min_trials": 3}, "peak": False}),
    *[
        ("msr", {}, {"msr": {"grace": g, "min_trials": m, "z": z}, "last": last})
        for g in (1, 2)
        for m in (3, 5)
        for z in (0.0, 0.5)
        for last in (0, 4)
    ],
    *[
        ("msr", {}, {"msr": {"grace": 1, "min_trials": 3, "percentile": q}, "last": 4})
        for q in (40.0, 60.0)
    ],
    ("msr", {}, {"msr": {"grace": 1, "min_trials": 3}, "halving": True, "last": 4}),
]
"""Round 13, exploring on the forty-two choosing live orders: Ray's MedianStoppingRule
comparison (a trial's best so far against its peers' running mean, :class:`RunningMeanMedian`)
in place of halving, with the peak rule (and kept out of its last 4 epochs), after that rule at
grace 1 edged the default on those orders in round 12."""

MSR_LEAD = {"msr": {"grace": 1, "min_trials": 5, "percentile": 50.0, "z": 0.0}, "last": 4}
"""Round 13's first lead: Ray's MedianStoppingRule comparison from epoch 1 once 5 peers reached
the epoch, in place of halving, with the peak rule kept out of its last ``patience`` epochs."""

ROUND13_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("msr", {}, MSR_LEAD),
    ("msr", {}, {**MSR_LEAD, "msr": {**MSR_LEAD["msr"], "percentile": 40.0}}),
]
"""Round 13, written before any was replayed on the live orders recorded for it (sampler seeds
7 and 8): the two leads of the ``msr`` exploration, at the 50th and the 40th percentile."""

CALIB_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("calib", {}, {"calib": {"grace": g, "min_ref": m, "quantile": q}, "last": last})
        for g in (1, 2)
        for m in (3, 5)
        for q in (0.0, 0.25)
        for last in (0, 4)
    ],
    *[
        ("calib", {}, {"calib": {"min_ref": m, "quantile": q}, "halving": True, "last": 4})
        for m in (3, 5)
        for q in (0.0, 0.25)
    ],
]
"""Round 14, exploring on the forty-eight choosing live orders: :class:`CalibratedReach` (a
trial stops when even the study's most improving finished trial's fall from the same epoch
would leave it above the study's best) in place of halving, or beside it."""

BOUND_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("fractions", {}, {"at": (f1, f2), "keeps": (k1, k2), "z": z})
        for f1 in (0.05, 0.25)
        for f2 in (0.5, 0.6, 0.7)
        for k1 in (1 / 2, 2 / 3)
        for k2 in (1 / 3, 1 / 2, 2 / 3)
        for z in (0.0, 1.0)
    ],
]
"""Round 14, exploring on the forty-eight choosing live orders: two-rung schedules in the shape
the hindsight bound (``bench/live_order.py --bound``) finds cheapest at the default's quality (a
gentle cut early, another at half the horizon or later), with rungs placed at fractions of the
horizon."""

AUDIT_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    *[
        ("audit", budget, {"audit": {"min_ref": m, "margin": margin}})
        for budget in ({}, {"first_rung": 1, "reduction_factor": 3.0})
        for m in (4, 6)
        for margin in (1.0, 1.5, 2.0)
    ],
    *[
        ("audit", budget, {"audit": {"min_ref": 4, "margin": 1.5}})
        for budget in ({"z": 0.0}, {"first_rung": 1, "reduction_factor": 3.0, "z": 0.0})
    ],
]
"""Round 14, exploring on the forty-eight choosing live orders: :class:`AuditedHalving` (each
rung keeps the share the study's finished trials show it must to keep their winner) on the
default's rungs and on rungs 1, 3, 9, 27."""

AUDIT_LEAD = {"first_rung": 1, "reduction_factor": 3.0}, {"audit": {"min_ref": 6, "margin": 1.0}}
"""Round 14's ``audit`` lead: rungs at epochs 1, 3, 9, 27, each keeping the share the study's
six or more finished trials show it must (margin 1), with the default's tolerance."""

BOUND_LEAD = {"at": (0.25, 0.5), "keeps": (2 / 3, 1 / 2), "z": 0.0}
"""Round 14's ``bound`` lead: keep two thirds at a quarter of the horizon, half at half of it."""

ROUND14_GRID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {}, {}),
    ("audit", *AUDIT_LEAD),
    ("fractions", {}, BOUND_LEAD),
]
"""Round 14, written before any was replayed on the live orders recorded for it (sampler seed
8): the leads of the ``audit`` and ``bound`` explorations. Also reported, never chosen on, on
the held-out live orders (``bench/live_order.py --grid round14 --held-out``)."""

REPORTED_GRIDS = frozenset({"round14"})
"""Grids written down before a round's new evidence, that ``bench/live_order.py`` also reports
on the held-out live orders: fixed before those were replayed, so reporting tunes nothing."""

GRIDS = {
    "round7": GRID,
    "schedule": SCHEDULE_GRID,
    "halving": HALVING_GRID,
    "trust": TRUST_GRID,
    "round11": ROUND11_GRID,
    "checked": CHECKED_GRID,
    "rungs": RUNGS_GRID,
    "fresh11": FRESH11_GRID,
    "round12": ROUND12_GRID,
    "round12-safe": ROUND12_SAFE_GRID,
    "gentle": GENTLE_GRID,
    "fresh12": FRESH12_GRID,
    "msr": MSR_GRID,
    "round13": ROUND13_GRID,
    "calib": CALIB_GRID,
    "bound": BOUND_GRID,
    "audit": AUDIT_GRID,
    "round14": ROUND14_GRID,
}


def _mean_se(values: Sequence[float], fmt: str = ".3f") -> str:
    """``mean ± standard error``."""
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{fmt}} ± {se:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Replay every candidate of a grid (``--grid``: :data:`GRID` or :data:`SCHEDULE_GRID`) on
    the choosing banks with a test split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="TPE searches per bank")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="round7", help="settings run")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="searches use seeds from here (fresh: 20+)"
    )
    parser.add_argument(
        "--only", type=int, action="append", help="the grid's setting N only (with the default)"
    )
    parser.add_argument("--curves", type=Path, action="append", help="banks (default: choosing)")
    args = parser.parse_args(argv)
    paths = args.curves or [HERE / "curves" / b for b in CHOSEN_ON if b.startswith("selection/")]
    pools = {}
    for path in paths:
        if any(path == HERE / "curves" / b for b in HELD_OUT):
            raise SystemExit(f"{path} is held out: candidates are measured on choosing banks")
        pool = load_curves(path)
        if len(pool) >= FEEDBACK_MIN_POOL and pool[0].test_loss:
            pools[path.stem] = pool

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    fulls = {b: [_run((p, s), NoStopping()) for s in seeds] for b, p in pools.items()}
    print(f"banks: {', '.join(pools)}; {args.seeds} TPE searches each", flush=True)
    baseline: list[float] | None = None
    grid = GRIDS[args.grid]
    if args.only:
        grid = [grid[0], *(grid[i] for i in args.only if i > 0)]
    for name, budget, params in grid:
        scores: list[Score] = []
        per = []
        for bank, pool in pools.items():
            horizon = max(c.epochs for c in pool)
            mine = [
                Score.against(_run((pool, s), candidate(name, horizon, budget, **params)), f, {})
                for s, f in zip(seeds, fulls[bank], strict=True)
            ]
            per.append(
                f"{bank} {statistics.fmean(x.fraction for x in mine):.2f}/"
                f"{statistics.fmean(x.ratio for x in mine):.3f}/{_test_ratio(mine):.3f}"
            )
            scores += mine
        weighted = [x.fraction + WEIGHTS["balanced"] * (x.ratio - 1.0) for x in scores]
        baseline = baseline or weighted  # the grid's first entry: the default
        print(
            f"{name} budget {budget} {params}: "
            f"{statistics.fmean(x.fraction for x in scores):.3f} / "
            f"{statistics.fmean(x.ratio for x in scores):.4f} / "
            f"within 1 % {100 * _within(scores):.0f}% / test {_test_ratio(scores):.4f} / "
            f"score {_mean_se(weighted)} / paired vs default "
            f"{_mean_se([a - b for a, b in zip(weighted, baseline, strict=True)], '+.3f')} | "
            + " ".join(per),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
