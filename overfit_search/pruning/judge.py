"""The decision object behind the Ray stopper and the searcher's bookkeeping (DESIGN.md §5).

``OverfitJudge.observe`` is fed every epoch of every trial (by the stopper, in the driver) and says
whether the trial stops now; ``OverfitJudge.outcome`` says how an ended trial is recorded:

- FAIL: a NaN/inf loss was observed, or the trial failed outside the metrics.
- COMPLETE, not stopped early: no rule fired.
- PRUNED: a rule fired at epoch ``t`` and the trial's best val loss so far was strictly worse than
  the median, over the other trials, of their best val loss up to epoch ``t``.
- COMPLETE, stopped early: a rule fired but the trial was competitive (or there were too few
  others to compare with, or ``compare="none"``).

The median verdict is taken when the rule fires, so trials that finish later never change it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from overfit_search.pruning.base import Firing, Rule
from overfit_search.pruning.budget import BudgetRule
from overfit_search.pruning.grace import Grace


@dataclass(frozen=True)
class Decision:
    """What to do with a trial after an epoch.

    Attributes:
        stop: Stop the trial now.
        firing: The rule that fired, if that is why it stops.
        failed: Why the trial failed (a non-finite loss), if that is why it stops.
    """

    stop: bool
    firing: Firing | None = None
    failed: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How an ended trial is recorded.

    Attributes:
        state: ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        best_epoch: Epoch (from 1) of the lowest val loss; None if no epoch was finite.
        best_val_loss: The lowest val loss.
        gap_at_best: ``val_loss - train_eval_loss`` at the best epoch.
        epochs_run: Epochs observed (up to the one at which it was told to stop).
        stopped_early: A rule fired.
        rule: Name of the rule that fired.
        reason: The firing's reason plus the median clause, or the failure text.
        median: The median the trial was compared with, if any.
    """

    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    best_epoch: int | None
    best_val_loss: float | None
    gap_at_best: float | None
    epochs_run: int
    stopped_early: bool
    rule: str | None
    reason: str | None
    median: float | None


@dataclass(frozen=True)
class _Verdict:
    pruned: bool
    median: float | None
    clause: str


@dataclass
class _Trial:
    val: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    decision: Decision | None = None
    verdict: _Verdict | None = None
    peer: bool = True  # counts in other trials' medians
    seeded: bool = False  # a finished trial from an earlier run: a peer only


_CONTINUE = Decision(stop=False)


def _describe(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "inf" if value > 0 else "-inf"


def _trials_word(n: int) -> str:
    return "trial" if n == 1 else "trials"


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class OverfitJudge:
    """Feeds every trial's epochs to the rule and decides PRUNED / COMPLETE / FAIL.

    Args:
        rule: The overfitting rule (wrapped in a ``Grace`` of ``grace_epochs`` here).
        grace_epochs: Epochs during which no rule fires, >= 0.
        compare: ``median``: a stopped trial is PRUNED only if its best val loss so far is worse
            than the median of the other trials' best up to the same epoch; ``none``: never
            PRUNED.
        compare_min_trials: With fewer other trials to compare with, nothing is PRUNED; >= 0.
        budget: A budget rule (e.g. ``HalvingRule``) asked after every epoch on which the
            overfitting rule did not fire, with the other trials' val loss as its peers; a
            trial it stops is PRUNED (it ranked out), with the budget rule's name as its rule.
            None: no budget rule.
        max_epochs: The trials' epoch limit (``train.max_epochs``); needed by ``end_guard``.
        end_guard: The overfitting rule is not asked in the last ``end_guard`` epochs of
            ``max_epochs``: a stop there saves at most that many epochs, and a trial past its
            peak that close to the end can still set a new best. 0: asked at every epoch.

    Raises:
        ValueError: A bad argument (the message names it).
    """

    def __init__(
        self,
        rule: Rule,
        grace_epochs: int = 2,
        compare: Literal["median", "none"] = "median",
        compare_min_trials: int = 4,
        budget: BudgetRule | None = None,
        max_epochs: int | None = None,
        end_guard: int = 0,
    ) -> None:
        if isinstance(end_guard, bool) or not isinstance(end_guard, int) or end_guard < 0:
            raise ValueError(f"end_guard must be an integer >= 0, got {end_guard!r}")
        if end_guard and max_epochs is None:
            raise ValueError("end_guard needs max_epochs (the trials' epoch limit)")
        if compare not in ("median", "none"):
            raise ValueError(f"compare must be 'median' or 'none', got {compare!r}")
        if isinstance(compare_min_trials, bool) or not isinstance(compare_min_trials, int):
            raise ValueError(f"compare_min_trials must be an integer, got {compare_min_trials!r}")
        if compare_min_trials < 0:
            raise ValueError(f"compare_min_trials must be >= 0, got {compare_min_trials}")
        self.rule = Grace(rule, grace_epochs)
        self.compare = compare
        self.compare_min_trials = compare_min_trials
        self.budget = budget
        self.rule_until = None if not end_guard or max_epochs is None else max_epochs - end_guard
        self._trials: dict[str, _Trial] = {}

    @property
    def grace_epochs(self) -> int:
        """Epochs during which no rule fires."""
        return self.rule.grace_epochs

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> Decision:
        """Record epoch ``epoch`` of trial ``key`` and decide whether it stops now.

        Epochs arrive 1, 2, 3, …; a repeat of an epoch already seen is ignored. Once a trial has
        been told to stop, every later call returns that same decision and records nothing.

        Args:
            key: The trial.
            epoch: The epoch (from 1) these losses belong to.
            val_loss: Clean validation loss.
            train_eval_loss: Clean training loss.

        Returns:
            ``Decision(stop=True, failed=...)`` on a NaN/inf loss, ``Decision(stop=True,
            firing=...)`` when the rule fires, else ``Decision(stop=False)``.

        Raises:
            ValueError: ``epoch`` skips ahead of the next expected epoch.
        """
        trial = self._trials.setdefault(key, _Trial())
        if trial.decision is not None:
            return trial.decision
        expected = len(trial.val) + 1
        if epoch < expected:
            return _CONTINUE  # a repeated report of an epoch already seen
        if epoch > expected:
            raise ValueError(
                f"trial {key!r}: epoch {epoch} reported, expected epoch {expected} "
                "(epochs must arrive in order from 1)"
            )
        val_loss, train_eval_loss = float(val_loss), float(train_eval_loss)
        trial.val.append(val_loss)
        trial.train.append(train_eval_loss)
        for name, value in (("val_loss", val_loss), ("train_eval_loss", train_eval_loss)):
            if not math.isfinite(value):
                trial.peer = False
                trial.decision = Decision(
                    stop=True, failed=f"{name} is {_describe(value)} at epoch {epoch}"
                )
                return trial.decision
        guarded = self.rule_until is not None and epoch > self.rule_until
        firing = None if guarded else self.rule.check(trial.val, trial.train)
        if firing is None and self.budget is not None:
            peers = [o.val for k, o in self._trials.items() if k != key and o.peer and o.val]
            firing = self.budget.check(trial.val, peers)
            if firing is not None:
                trial.verdict = _Verdict(True, None, "ranked out")
                trial.decision = Decision(stop=True, firing=firing)
                return trial.decision
        if firing is None:
            return _CONTINUE
        trial.verdict = self._compare(key, trial, firing.epoch)
        trial.decision = Decision(stop=True, firing=firing)
        return trial.decision

    def seed(self, key: str, val_loss: Sequence[float]) -> None:
        """Add a finished trial from an earlier run (resume), as a comparison peer only.

        A history with a non-finite (or missing) value, or an empty one, is not a peer and is
        ignored.

        Args:
            key: A key no live trial uses.
            val_loss: Its val loss per epoch, from epoch 1.
        """
        values = list(val_loss)
        if not values or not all(_is_finite_number(v) for v in values):
            return
        self._trials[key] = _Trial(
            val=[float(v) for v in values], decision=Decision(stop=True), seeded=True
        )

    def _compare(self, key: str, trial: _Trial, epoch: int) -> _Verdict:
        if self.compare == "none":
            return _Verdict(False, None, "compare: none, kept")
        best = min(trial.val[:epoch])
        peers = [
            min(other.val[:epoch])
            for other_key, other in self._trials.items()
            if other_key != key and other.peer and other.val
        ]
        if len(peers) < self.compare_min_trials:
            return _Verdict(
                False,
                None,
                f"fewer than {self.compare_min_trials} other "
                f"{_trials_word(self.compare_min_trials)} to compare, kept",
            )
        if not peers:  # compare_min_trials == 0 and nobody else: nothing to be worse than
            return _Verdict(False, None, "no other trials to compare, kept")
        median = statistics.median(peers)
        where = f"median {median:.4f} of {len(peers)} {_trials_word(len(peers))} at epoch {epoch}"
        if best > median:
            return _Verdict(True, median, f"best {best:.4f} worse than {where}")
        return _Verdict(False, median, f"best {best:.4f} not worse than {where} (kept)")

    def outcome(self, key: str, failed: str | None = None) -> Outcome:
        """How trial ``key`` is recorded, once it has ended.

        Args:
            key: The trial.
            failed: An error from outside the metrics (exception, crash, timeout): FAIL with it.
                A failed trial is no longer a comparison peer.

        Returns:
            The outcome. A trial with no epoch observed (and no other failure) is FAIL
            ("no epoch was reported"); a seeded trial is COMPLETE with no gap.
        """
        trial = self._trials.get(key) or _Trial()
        best: tuple[int, float, float | None] | None = None  # (epoch, val, gap)
        for index, value in enumerate(trial.val):
            train = trial.train[index] if index < len(trial.train) else None
            if not math.isfinite(value) or (train is not None and not math.isfinite(train)):
                continue
            if best is None or value < best[1]:
                best = (index + 1, value, None if train is None else value - train)
        best_epoch, best_val, gap = best if best is not None else (None, None, None)
        epochs = len(trial.val)
        reason = failed or (trial.decision.failed if trial.decision else None)
        if reason is None and epochs == 0:
            reason = "no epoch was reported"
        if reason is not None:
            if key in self._trials:
                trial.peer = False
            return Outcome("FAIL", best_epoch, best_val, gap, epochs, False, None, reason, None)
        firing = trial.decision.firing if trial.decision else None
        if firing is None or trial.verdict is None:
            return Outcome("COMPLETE", best_epoch, best_val, gap, epochs, False, None, None, None)
        verdict = trial.verdict
        return Outcome(
            "PRUNED" if verdict.pruned else "COMPLETE",
            best_epoch,
            best_val,
            gap,
            epochs,
            True,
            firing.rule,
            f"{firing.reason}; {verdict.clause}",
            verdict.median,
        )

    def history(self, key: str) -> tuple[list[float], list[float]]:
        """The trial's val loss and train-eval loss per epoch (copies; empty if unknown).

        Args:
            key: The trial.

        Returns:
            ``(val_loss, train_eval_loss)``, index 0 is epoch 1.
        """
        trial = self._trials.get(key) or _Trial()
        return list(trial.val), list(trial.train)
