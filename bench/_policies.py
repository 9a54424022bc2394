"""Stopping policies and the replay engine of the pruning benchmark (bench/pruning.py).

A *policy* sees a trial's epochs one by one, as a Ray stopper/scheduler or an Optuna pruner
would, and says when to stop it. The replay feeds recorded learning curves through a policy in a
fixed trial order, epoch by epoch (``concurrency`` trials at a time, their epochs interleaved
round-robin), so every policy sees the same configurations in the same order and only the
stopping differs; or, given a :class:`Feed` (``bench/_feedback.py``), in the order a sampler
proposes them after hearing each earlier outcome. No training happens here.

Policies:

- ``none``: never stops (every trial runs ``max_epochs``).
- ``median``: Optuna's real ``optuna.pruners.MedianPruner`` on an in-memory study, fed as
  ``optuna.integration.KerasPruningCallback`` feeds it (``trial.report(val_loss, step=epoch
  index from 0)`` then ``trial.should_prune()``).
- ``asha``: Ray Tune's real ``AsyncHyperBandScheduler`` (one bracket), driven with lightweight
  trial stand-ins (only ``trial_id`` is read), ``time_attr="epoch"``, ``metric="val_loss"``,
  ``mode="min"``.
- the project's rules: ``overfit_search.pruning.OverfitJudge`` around ``make_rule(...)``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Curve:
    """One recorded configuration: its knob values and clean per-epoch losses.

    Attributes:
        key: The configuration's id (as in the curve file).
        params: Its knob values.
        val_loss: Clean validation loss per epoch; index 0 is epoch 1.
        train_eval_loss: Clean training loss per epoch, same length.
        seconds: Wall seconds per epoch as recorded (the first includes the trial's graph
            building), or empty when the file has none.
        test_loss: Clean loss per epoch on a test split no trial is scored on (the selection
            banks), or empty when the file has none.
    """

    key: str
    params: dict[str, float]
    val_loss: tuple[float, ...]
    train_eval_loss: tuple[float, ...]
    seconds: tuple[float, ...] = ()
    test_loss: tuple[float, ...] = ()

    @property
    def epochs(self) -> int:
        """Epochs recorded."""
        return len(self.val_loss)


class Policy(Protocol):
    """A stopping policy, fed one trial-epoch at a time.

    Attributes:
        name: Short name used in tables and the summary line.
    """

    name: str

    def start(self, key: str) -> None:
        """A trial starts."""
        ...

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """Epoch ``epoch`` (from 1) of trial ``key`` ended; True: stop the trial now."""
        ...

    def end(self, key: str, stopped: bool) -> bool:
        """The trial ended (stopped, or out of epochs); True if it counts as PRUNED."""
        ...


class NoStopping:
    """Never stops a trial."""

    name = "none"

    def start(self, key: str) -> None:
        """Nothing to set up."""

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """Never stop."""
        return False

    def end(self, key: str, stopped: bool) -> bool:
        """Never PRUNED."""
        return False


class OptunaPruner:
    """Any Optuna pruner, driven as ``KerasPruningCallback`` drives it (see :class:`OptunaMedian`).

    Args:
        name: Name in tables.
        pruner: A fresh ``optuna.pruners.BasePruner``.
        seed: Seed of the study's (unused) ``RandomSampler``.
    """

    def __init__(self, name: str, pruner: Any, seed: int = 0) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.name = name
        self._optuna = optuna
        self.study = optuna.create_study(
            # a fixed name: HyperbandPruner assigns brackets from a hash of the study name
            study_name=f"bench-{name}-{seed}",
            direction="minimize",
            sampler=optuna.samplers.RandomSampler(seed=seed),
            pruner=pruner,
        )
        self._trials: dict[str, Any] = {}
        self._best: dict[str, float] = {}

    def start(self, key: str) -> None:
        """``study.ask()`` a trial for this configuration."""
        self._trials[key] = self.study.ask()
        self._best[key] = math.inf

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """Report the epoch's val loss and ask the pruner."""
        trial = self._trials[key]
        self._best[key] = min(self._best[key], val_loss)
        trial.report(float(val_loss), step=epoch - 1)
        return bool(trial.should_prune())

    def end(self, key: str, stopped: bool) -> bool:
        """Tell the study PRUNED (stopped) or COMPLETE with the best val loss."""
        state = self._optuna.trial.TrialState
        trial = self._trials.pop(key)
        if stopped:
            self.study.tell(trial, state=state.PRUNED)
        else:
            self.study.tell(trial, self._best[key])
        return stopped


class OptunaMedian(OptunaPruner):
    """Optuna's ``MedianPruner`` as the Keras pruning callback drives it.

    Each trial is an ``ask()``-ed trial of an in-memory study; after every epoch the callback
    reports the epoch's val loss at ``step = epoch - 1`` (Keras numbers epochs from 0 in
    callbacks) and asks ``should_prune()``. A pruned trial is told PRUNED; a finished one is
    told COMPLETE with its best val loss. Only COMPLETE trials enter the pruner's median.

    Args:
        n_startup_trials: ``MedianPruner(n_startup_trials=...)``.
        n_warmup_steps: ``MedianPruner(n_warmup_steps=...)``; with 2, the earliest prune is
            at epoch 3, as with the project's ``grace_epochs=2``.
        seed: Seed of the study's (unused) ``RandomSampler``.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 2, seed: int = 0) -> None:
        import optuna

        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
        super().__init__("median", pruner, seed)


@dataclass
class _TrialStandIn:
    """What Ray's ``AsyncHyperBandScheduler`` reads of a trial: its id."""

    trial_id: str


class RayAsha:
    """Ray Tune's ``AsyncHyperBandScheduler`` itself, driven without a Ray cluster.

    The scheduler is a plain Python object: ``on_trial_add`` assigns the trial to the
    (single) bracket, ``on_trial_result`` applies ``_Bracket.on_result``'s cutoff (the
    ``1 - 1/reduction_factor`` percentile of the values recorded at the rung) and says
    CONTINUE or STOP, ``on_trial_complete`` records the final result as Ray's controller does.

    Args:
        max_t: Epochs per trial (a trial reaching it is stopped, as in Ray).
        grace_period: The first rung, in epochs.
        reduction_factor: Rung spacing and the cutoff's percentile.
    """

    name = "asha"

    def __init__(self, max_t: int, grace_period: int = 2, reduction_factor: float = 3) -> None:
        from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

        self._stop = TrialScheduler.STOP
        self.scheduler = AsyncHyperBandScheduler(
            time_attr="epoch",
            metric="val_loss",
            mode="min",
            max_t=max_t,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            brackets=1,
        )
        self._trials: dict[str, _TrialStandIn] = {}
        self._last: dict[str, dict[str, float]] = {}
        self._cut: set[str] = set()  # trials this scheduler stopped before max_t

    @property
    def rungs(self) -> list[float]:
        """The rung milestones (epochs), ascending."""
        return sorted(m for m, _ in self.scheduler._brackets[0]._rungs)

    def start(self, key: str) -> None:
        """``on_trial_add``."""
        trial = _TrialStandIn(key)
        self._trials[key] = trial
        self.scheduler.on_trial_add(None, trial)

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """``on_trial_result`` with ``{"epoch": epoch, "val_loss": val_loss}``."""
        result = {"epoch": epoch, "val_loss": float(val_loss)}
        self._last[key] = result
        action = self.scheduler.on_trial_result(None, self._trials[key], result)
        stop = bool(action == self._stop)
        if stop and epoch < self.scheduler._max_t:
            self._cut.add(key)
        return stop

    def end(self, key: str, stopped: bool) -> bool:
        """``on_trial_complete`` with the last result; PRUNED if this scheduler stopped it
        before ``max_t``."""
        result = self._last.pop(key, None)
        trial = self._trials.pop(key)
        if result is not None:
            self.scheduler.on_trial_complete(None, trial, result)
        return key in self._cut


class _HashableTrial:
    """What Ray's ``MedianStoppingRule`` reads of a trial: a hashable object with an id."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


class _NoController:
    """The tune controller ``MedianStoppingRule`` asks for live trials (to pause): none."""

    def get_live_trials(self) -> list[Any]:
        """No paused or pending trials: the rule continues instead of pausing."""
        return []


class RayMedianStopping:
    """Ray Tune's ``MedianStoppingRule`` itself (hard stop), driven without a Ray cluster.

    It stops a trial at epoch ``t >= grace_period`` when its best val loss so far is worse than
    the median, over the trials that reached ``t``, of their running mean val loss over epochs
    ``grace_period..t``; with fewer than ``min_samples_required`` such trials it continues.

    Args:
        grace_period: Epochs before the rule judges.
        min_samples_required: Other trials needed at ``t``.
    """

    name = "ray-median"

    def __init__(self, grace_period: int = 2, min_samples_required: int = 3) -> None:
        from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

        self._stop = TrialScheduler.STOP
        self.scheduler = MedianStoppingRule(
            time_attr="epoch",
            metric="val_loss",
            mode="min",
            grace_period=grace_period,
            min_samples_required=min_samples_required,
            hard_stop=True,
        )
        self._controller = _NoController()
        self._trials: dict[str, _HashableTrial] = {}
        self._last: dict[str, dict[str, float]] = {}
        self._cut: set[str] = set()

    def start(self, key: str) -> None:
        """``on_trial_add``."""
        self._trials[key] = _HashableTrial(key)
        self.scheduler.on_trial_add(self._controller, self._trials[key])  # type: ignore[arg-type]

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """``on_trial_result`` with ``{"epoch": epoch, "val_loss": val_loss}``."""
        result = {"epoch": epoch, "val_loss": float(val_loss)}
        self._last[key] = result
        action = self.scheduler.on_trial_result(
            self._controller,  # type: ignore[arg-type]
            self._trials[key],  # type: ignore[arg-type]
            result,
        )
        stop = bool(action == self._stop)
        if stop:
            self._cut.add(key)
        return stop

    def end(self, key: str, stopped: bool) -> bool:
        """``on_trial_complete`` with the last result; PRUNED if the rule stopped it."""
        result = self._last.pop(key, None)
        trial = self._trials.pop(key)
        if result is not None and key not in self._cut:
            self.scheduler.on_trial_complete(self._controller, trial, result)  # type: ignore[arg-type]
        return key in self._cut


class Judge:
    """The project's ``OverfitJudge`` (rule + grace + median comparison) as a policy.

    Args:
        name: Name in tables (e.g. ``gl``, ``gl-nocmp``).
        rule: Registry name for ``make_rule``.
        grace_epochs: ``OverfitJudge(grace_epochs=...)``.
        compare: ``median`` or ``none``.
        compare_min_trials: ``OverfitJudge(compare_min_trials=...)``.
        **params: The rule's parameters.
    """

    def __init__(
        self,
        name: str,
        rule: str,
        grace_epochs: int = 2,
        compare: str = "median",
        compare_min_trials: int = 4,
        budget: dict[str, Any] | None = None,
        max_epochs: int | None = None,
        end_guard: int = 0,
        **params: Any,
    ) -> None:
        from overfit_search.pruning import OverfitJudge, make_budget, make_rule

        self.name = name
        self.judge = OverfitJudge(
            make_rule(rule, **params),
            grace_epochs=grace_epochs,
            compare=compare,  # type: ignore[arg-type]
            compare_min_trials=compare_min_trials,
            budget=make_budget(**budget) if budget else None,
            max_epochs=max_epochs,
            end_guard=end_guard,
        )
        self.stopped_by: dict[str, str] = {}

    @classmethod
    def preset(cls, name: str, level: str, max_epochs: int, grace_epochs: int = 2) -> Judge:
        """The two-part policy of ``pruning.preset: level`` (peak rule, budget rule and end
        guard) for trials of ``max_epochs``."""
        from overfit_search.pruning import preset

        settings = preset(level)
        rule = dict(settings["rule"])
        return cls(
            name,
            rule.pop("name"),
            grace_epochs=grace_epochs,
            budget=settings["budget"],
            max_epochs=max_epochs,
            end_guard=settings.get("end_guard", 0),
            **rule,
        )

    def start(self, key: str) -> None:
        """Nothing to set up (the judge creates the trial on its first epoch)."""

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """``OverfitJudge.observe``'s ``stop``."""
        decision = self.judge.observe(key, epoch, val_loss, train_eval_loss)
        if decision.stop and decision.firing is not None:
            self.stopped_by[key] = decision.firing.rule
        return decision.stop

    def end(self, key: str, stopped: bool) -> bool:
        """PRUNED if the judge's outcome says so (a stopped, competitive trial is COMPLETE)."""
        return self.judge.outcome(key).state == "PRUNED"


class Either:
    """Two policies side by side (the project's stopper composed with a Ray scheduler).

    Both see every epoch (so ASHA records its rungs as it would under Ray); the trial stops
    when either says so.

    Args:
        name: Name in tables.
        first: E.g. a :class:`Judge`.
        second: E.g. :class:`RayAsha`.
    """

    def __init__(self, name: str, first: Policy, second: Policy) -> None:
        self.name = name
        self.first = first
        self.second = second

    def start(self, key: str) -> None:
        """Start the trial in both."""
        self.first.start(key)
        self.second.start(key)

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> bool:
        """Feed both; stop if either stops."""
        a = self.first.observe(key, epoch, val_loss, train_eval_loss)
        b = self.second.observe(key, epoch, val_loss, train_eval_loss)
        return a or b

    def end(self, key: str, stopped: bool) -> bool:
        """End the trial in both; PRUNED if either records it so."""
        a = self.first.end(key, stopped)
        b = self.second.end(key, stopped)
        return a or b


PolicyFactory = Callable[[int, int], Policy]
"""``(seed, max_epochs) -> a fresh policy``."""


def _optuna(name: str, make: Callable[[Any], Any]) -> PolicyFactory:
    """A factory of :class:`OptunaPruner` around ``make(optuna.pruners)``."""

    def factory(seed: int, max_epochs: int) -> Policy:
        import warnings

        import optuna

        with warnings.catch_warnings():  # PatientPruner is "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            pruner = make(optuna.pruners)
        return OptunaPruner(name, pruner, seed=seed)

    return factory


BALANCED_R4_BUDGET = {
    "name": "halving",
    "first_rung": 1,
    "reduction_factor": 4.0,
    "min_trials": 5,
    "z": 3.0,
}
"""Round 4's ``balanced`` budget rule (with the peak rule at patience 4, z 2, smooth 5)."""


def frontier_policies() -> dict[str, PolicyFactory]:
    """Every policy of the issue-18 frontier, at a few aggressiveness levels each.

    The project's two-part policy at its three presets (``default`` is ``balanced``) and
    round 4's ``balanced`` (``balanced-r4``), the first default ``gl`` (alpha 5, grace 2,
    median comparison), Optuna's Median, Patient, SuccessiveHalving and Hyperband pruners,
    Ray's ASHA and MedianStoppingRule at two levels each, and ``none``.
    Optuna's pruners see the last val loss per epoch (``KerasPruningCallback``); ASHA ranks the
    last value at each rung, as Ray does. The "1 epoch each, keep the top K" baseline is not a
    sequential policy: see :func:`top_k`.
    """
    return {
        "default": lambda seed, t: Judge.preset("default", "balanced", t),
        "safe": lambda seed, t: Judge.preset("safe", "safe", t),
        "fast": lambda seed, t: Judge.preset("fast", "fast", t),
        # round 4's balanced, chosen on random subsets (the default until round 5)
        "balanced-r4": lambda seed, t: Judge(
            "balanced-r4",
            "peak",
            budget=BALANCED_R4_BUDGET,
            patience=4,
            z=2.0,
            smooth=5,
        ),
        "gl": lambda seed, t: Judge("gl", "gl", alpha=5.0),
        "median": _optuna("median", lambda p: p.MedianPruner(n_startup_trials=5, n_warmup_steps=2)),
        "median-w0": _optuna(
            "median-w0", lambda p: p.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        ),
        "patient": _optuna(
            "patient",
            lambda p: p.PatientPruner(
                p.MedianPruner(n_startup_trials=5, n_warmup_steps=2), patience=2
            ),
        ),
        "sh-r3": _optuna(
            "sh-r3", lambda p: p.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        ),
        "sh-r4": _optuna(
            "sh-r4", lambda p: p.SuccessiveHalvingPruner(min_resource=2, reduction_factor=4)
        ),
        "hyperband": _optuna(
            "hyperband", lambda p: p.HyperbandPruner(min_resource=1, reduction_factor=3)
        ),
        "asha": lambda seed, t: RayAsha(max_t=t, grace_period=2, reduction_factor=3),
        "asha-g1r4": lambda seed, t: RayAsha(max_t=t, grace_period=1, reduction_factor=4),
        "ray-median": lambda seed, t: RayMedianStopping(grace_period=2),
        "ray-median-g1": lambda seed, t: RayMedianStopping(grace_period=1),
        "none": lambda seed, t: NoStopping(),
    }


def top_k(curves: Sequence[Curve], k: int) -> ReplayResult:
    """Train every configuration 1 epoch, then the ``k`` best (on epoch 1's val loss) to the end.

    Args:
        curves: The configurations.
        k: How many go on, >= 1.

    Returns:
        The spend and best val loss found (``best_*`` and ``epochs_run`` filled).
    """
    result = ReplayResult(f"top{k}")
    ranked = sorted(curves, key=lambda c: c.val_loss[0] if math.isfinite(c.val_loss[0]) else 1e30)
    keep = {c.key for c in ranked[:k]}
    for curve in curves:
        run = curve.epochs if curve.key in keep else 1
        result.epochs += run
        result.trials_started += 1
        result.epochs_run[curve.key] = run
        result.seconds += sum(curve.seconds[:run]) if curve.seconds else math.nan
        if run < curve.epochs:
            result.stopped += 1
        for epoch in range(run):
            val = curve.val_loss[epoch]
            if math.isfinite(val) and val < result.best_val_loss:
                result.best_val_loss = val
                result.best_gap = val - curve.train_eval_loss[epoch]
                result.best_epoch = epoch + 1
                result.best_key = curve.key
                result.best_test_loss = curve.test_loss[epoch] if curve.test_loss else math.nan
    return result


def default_policies() -> dict[str, PolicyFactory]:
    """The benchmark's policies by name, in table order.

    ``gl`` is the project's default (GL alpha 5 %, grace 2, median comparison); the other
    rules take their registry defaults and the same grace and comparison. ``gl+asha`` is the
    project's ``gl`` stopper with ``pruning.scheduler: {name: asha, grace_period: 2,
    reduction_factor: 3}`` (DESIGN.md §6: the stopper composes with one Ray scheduler).
    """
    return {
        "default": lambda seed, t: Judge.preset("default", "balanced", t),
        "gl": lambda seed, t: Judge("gl", "gl", alpha=5.0),
        "gl-nocmp": lambda seed, t: Judge("gl-nocmp", "gl", compare="none", alpha=5.0),
        # GL that must hold for 3 epochs (added after the first results, see RESULTS.md)
        "gl-p3": lambda seed, t: Judge("gl-p3", "gl", alpha=5.0, patience=3),
        "gap": lambda seed, t: Judge("gap", "gap", max_gap=0.15, patience=2),
        "pq": lambda seed, t: Judge("pq", "pq", alpha=0.5, strip=5),
        "up": lambda seed, t: Judge("up", "up", strips=3, strip=5),
        "median": lambda seed, t: OptunaMedian(n_startup_trials=5, n_warmup_steps=2, seed=seed),
        "asha": lambda seed, t: RayAsha(max_t=t, grace_period=2, reduction_factor=3),
        "gl+asha": lambda seed, t: Either(
            "gl+asha", Judge("gl", "gl", alpha=5.0), RayAsha(max_t=t, grace_period=2)
        ),
        "gl-p3+asha": lambda seed, t: Either(
            "gl-p3+asha",
            Judge("gl-p3", "gl", alpha=5.0, patience=3),
            RayAsha(max_t=t, grace_period=2),
        ),
        "none": lambda seed, t: NoStopping(),
    }


@dataclass
class ReplayResult:
    """What one replay of one policy over one trial order spent and found.

    Attributes:
        policy: The policy's name.
        epochs: Epochs run in all (the compute spent).
        trials_started: Trials that ran at least one epoch.
        stopped: Trials the policy stopped before their last recorded epoch.
        pruned: Trials the policy records as PRUNED.
        premature: Stopped trials whose recorded curve later went below their best val loss
            at the stop (known only in a replay: what stopping threw away).
        best_val_loss: Lowest val loss seen at any epoch of any trial before it stopped.
        best_gap: ``val_loss - train_eval_loss`` of that trial at that epoch.
        best_epoch: That epoch (from 1).
        best_key: That trial's configuration key.
        best_test_loss: The test loss of that trial at that epoch: the loss, on images no
            trial is scored on, of the model the product exports (NaN when the bank has none).
        feasible_val_loss: Lowest val loss seen at an epoch whose gap is <= ``max_gap``.
        epochs_run: Epochs run per trial key.
        seconds: Recorded wall seconds of the epochs run (NaN when a curve has none).
    """

    policy: str
    epochs: int = 0
    trials_started: int = 0
    stopped: int = 0
    pruned: int = 0
    premature: int = 0
    best_val_loss: float = math.inf
    best_gap: float = math.nan
    best_epoch: int = 0
    best_key: str = ""
    best_test_loss: float = math.nan
    feasible_val_loss: float = math.inf
    epochs_run: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Feed(Protocol):
    """Where a replay's trials come from, and where their outcomes go (a sampler with feedback).

    A plain sequence of curves is a feed that ignores outcomes (:class:`_Fixed`);
    ``bench/_feedback.py`` proposes each next configuration with the product's own sampler,
    told every outcome as the product tells it.
    """

    def next(self) -> Curve | None:
        """The next trial's configuration, or None when the search is over."""
        ...

    def epoch(self, curve: Curve, epoch: int, val_loss: float) -> None:
        """Epoch ``epoch`` (from 1) of ``curve``'s trial ended with ``val_loss``."""
        ...

    def done(self, curve: Curve, epochs: int, pruned: bool) -> None:
        """``curve``'s trial ended after ``epochs`` epochs; ``pruned`` as the policy records."""
        ...


class _Fixed:
    """A fixed trial order: a feed that ignores outcomes."""

    def __init__(self, curves: Sequence[Curve]) -> None:
        self._queue = deque(curves)

    def next(self) -> Curve | None:
        return self._queue.popleft() if self._queue else None

    def epoch(self, curve: Curve, epoch: int, val_loss: float) -> None:
        pass

    def done(self, curve: Curve, epochs: int, pruned: bool) -> None:
        pass


def replay(
    curves: Sequence[Curve] | Feed,
    policy: Policy,
    concurrency: int = 1,
    budget: int | None = None,
    max_gap: float = 0.15,
) -> ReplayResult:
    """Feed ``curves`` (in this order) through ``policy`` epoch by epoch.

    ``concurrency`` trials run at a time; each round gives every running trial one epoch, in
    the order they started; a stopped or finished trial frees its slot for the next curve at
    the start of the next round. With ``budget``, the replay ends once that many epochs have
    been run (running trials are cut there, no new trial starts).

    Args:
        curves: The configurations, in sampler order, or a :class:`Feed` that proposes each
            next one after hearing how the earlier ones ended.
        policy: A fresh policy.
        concurrency: Trials run side by side, >= 1.
        budget: Total epoch budget, or None for no limit.
        max_gap: Gap threshold for ``feasible_val_loss`` (the demo's ``objective.max_gap``).

    Returns:
        The spend and the best val loss seen.

    Raises:
        ValueError: ``concurrency < 1``.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    result = ReplayResult(policy.name)
    feed: Feed = _Fixed(curves) if isinstance(curves, Sequence) else curves
    running: list[list[Any]] = []  # [curve, epochs done]
    more = True

    def exhausted() -> bool:
        return budget is not None and result.epochs >= budget

    def finish(curve: Curve, stopped: bool, epoch: int = 0) -> None:
        pruned = policy.end(curve.key, stopped)
        feed.done(curve, result.epochs_run.get(curve.key, 0), pruned)
        if pruned:
            result.pruned += 1
        if stopped:
            result.stopped += 1
            if min(curve.val_loss[epoch:]) < min(curve.val_loss[:epoch]):
                result.premature += 1

    while more or running:
        while len(running) < concurrency and more and not exhausted():
            proposed = feed.next()
            if proposed is None:
                more = False
                break
            curve = proposed
            policy.start(curve.key)
            result.trials_started += 1
            running.append([curve, 0])
        if not running:
            break
        for item in list(running):
            curve, done = item
            if exhausted():  # cut by the budget: ends as it stands
                running.remove(item)
                finish(curve, stopped=False)
                continue
            epoch = done + 1
            val, train = curve.val_loss[done], curve.train_eval_loss[done]
            item[1] = epoch
            result.epochs += 1
            result.seconds += curve.seconds[done] if curve.seconds else math.nan
            result.epochs_run[curve.key] = epoch
            if math.isfinite(val) and val < result.best_val_loss:
                result.best_val_loss = val
                result.best_gap = val - train
                result.best_epoch = epoch
                result.best_key = curve.key
                result.best_test_loss = curve.test_loss[done] if curve.test_loss else math.nan
            if math.isfinite(val) and val - train <= max_gap:
                result.feasible_val_loss = min(result.feasible_val_loss, val)
            feed.epoch(curve, epoch, val)
            stop = policy.observe(curve.key, epoch, val, train)
            if stop or epoch >= curve.epochs:
                running.remove(item)
                finish(curve, stopped=stop and epoch < curve.epochs, epoch=epoch)
    return result


def shuffled(curves: Sequence[Curve], seed: int) -> list[Curve]:
    """``curves`` in the order a seeded ``numpy.random.Generator`` permutes them."""
    order = np.random.default_rng(seed).permutation(len(curves))
    return [curves[i] for i in order]
