"""A replay with sampler feedback: the product's TPE proposes each next configuration of a bank.

The random-subset replay of ``bench/pruning.py`` draws a search's configurations before it
starts, so a stopping policy's decisions never change which configurations run. In a real
sweep they do: TPE hears how each trial ended (COMPLETE at its best val loss, PRUNED at its
best so far) and proposes the next configuration near the good ones, so trials crowd the good
region and a rule that keeps every trial within noise of the leader keeps more of them (the
live sweeps of round 4 ran 0.55-0.85 of the epochs where the random-subset replay said 0.33-0.56).

:class:`SamplerFeed` closes that loop on a recorded bank: an Optuna study with the product's
own sampler (``overfit_search.orchestration.samplers.make_sampler``, TPE, multivariate with
constant liar, 8 random start-up trials) over the bank's knob ranges (log for ``l2`` and
``learning_rate``); each proposal is snapped to the nearest configuration of the bank not run
yet in this search (distance in the unit cube of the ranges), which then runs under its own
recorded knob values (``study.enqueue_trial``); every epoch is reported as the product reports
it, and the trial is told as the product's searcher tells it. A proposal is never re-run: a
recorded curve has one seed, where a live re-run would draw another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from _policies import Curve

LOG_KNOBS = frozenset({"l2", "learning_rate"})


def search_space(curves: Sequence[Curve]) -> dict[str, tuple[float, float, bool]]:
    """Each knob that varies in the bank: ``(low, high, log)`` over its recorded values."""
    space: dict[str, tuple[float, float, bool]] = {}
    for knob in curves[0].params:
        values = [c.params[knob] for c in curves]
        low, high = min(values), max(values)
        if high > low:
            space[knob] = (low, high, knob in LOG_KNOBS and low > 0)
    return space


class SamplerFeed:
    """Configurations of ``curves`` proposed one by one by the product's sampler.

    Args:
        curves: The bank (each configuration runs at most once).
        trials: Trials in the search.
        seed: ``study.seed``.
        sampler: ``study.sampler`` (``tpe`` by default, as the product).
        n_startup_trials: ``study.n_startup_trials`` (the product's default, 8).
    """

    def __init__(
        self,
        curves: Sequence[Curve],
        trials: int,
        seed: int,
        sampler: str = "tpe",
        n_startup_trials: int = 8,
    ) -> None:
        import optuna

        from overfit_search.config.schema import StudyConfig
        from overfit_search.orchestration.samplers import make_sampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        config = StudyConfig(sampler=sampler, seed=seed, n_startup_trials=n_startup_trials)
        self.study = optuna.create_study(direction="minimize", sampler=make_sampler(config))
        self.space = search_space(curves)
        self._distributions = {
            k: optuna.distributions.FloatDistribution(lo, hi, log=log)
            for k, (lo, hi, log) in self.space.items()
        }
        self._unused = list(curves)
        self._left = min(trials, len(curves))
        self._running: dict[str, Any] = {}
        self._best: dict[str, float] = {}
        self.order: list[str] = []
        """The configurations run, in the order they started."""

    def _unit(self, params: dict[str, float]) -> list[float]:
        out = []
        for knob, (lo, hi, log) in self.space.items():
            v = params[knob]
            if log:
                out.append((math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)))
            else:
                out.append((v - lo) / (hi - lo))
        return out

    def next(self) -> Curve | None:
        """Ask the sampler; run the nearest unused configuration under its own knob values."""
        if self._left <= 0 or not self._unused:
            return None
        self._left -= 1
        proposal = self.study.ask(self._distributions)
        # the proposal only points: the trial the sampler learns from is the configuration run
        self.study.tell(proposal, state=self._optuna.trial.TrialState.FAIL)
        target = self._unit(proposal.params)

        def distance(c: Curve) -> float:
            return sum((a - b) ** 2 for a, b in zip(self._unit(c.params), target, strict=True))

        curve = min(self._unused, key=distance)
        self._unused.remove(curve)
        self.study.enqueue_trial({k: curve.params[k] for k in self.space})
        self._running[curve.key] = self.study.ask(self._distributions)
        self._best[curve.key] = math.inf
        self.order.append(curve.key)
        return curve

    def epoch(self, curve: Curve, epoch: int, val_loss: float) -> None:
        """Report the epoch, as the product's searcher does (step = epoch)."""
        if math.isfinite(val_loss):
            self._running[curve.key].report(float(val_loss), epoch)
            self._best[curve.key] = min(self._best[curve.key], val_loss)

    def done(self, curve: Curve, epochs: int, pruned: bool) -> None:
        """Tell the trial as the product does: COMPLETE at its best val loss, or PRUNED with its
        reported epochs (TPE ranks a PRUNED trial by its last reported epoch, not its value)."""
        from optuna.trial import TrialState

        trial = self._running.pop(curve.key)
        best = self._best.pop(curve.key)
        if not math.isfinite(best):
            self.study.tell(trial, state=TrialState.FAIL)
        elif pruned:  # TPE ranks a PRUNED trial by its last reported epoch
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, best)
