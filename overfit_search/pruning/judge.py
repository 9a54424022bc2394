"""The decision object behind the Ray stopper and the searcher's bookkeeping (DESIGN.md §5)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from overfit_search.pruning.base import Firing, Rule
from overfit_search.pruning.grace import Grace


@dataclass(frozen=True)
class Decision:
    """What to do with a trial after an epoch."""

    stop: bool
    firing: Firing | None = None
    failed: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a finished trial is recorded."""

    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    best_epoch: int | None
    best_val_loss: float | None
    gap_at_best: float | None
    epochs_run: int
    stopped_early: bool
    rule: str | None
    reason: str | None
    median: float | None


@dataclass
class _Trial:
    val: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    decision: Decision | None = None
    verdict: tuple[bool, float | None, str] | None = None  # (pruned, median, clause)
    peer: bool = True


_CONTINUE = Decision(stop=False)


class OverfitJudge:
    """Feeds every trial's epochs to the rule and decides PRUNED / COMPLETE / FAIL.

    Args:
        rule: The overfitting rule.
        grace_epochs: Epochs during which no rule fires.
        compare: ``median``: a stopped trial is PRUNED only if its best val_loss so far is worse
            than the median of the other trials' best up to the same epoch; ``none``: never.
        compare_min_trials: Fewer comparable other trials than this: nothing is PRUNED.
    """

    def __init__(
        self,
        rule: Rule,
        grace_epochs: int = 2,
        compare: Literal["median", "none"] = "median",
        compare_min_trials: int = 4,
    ) -> None:
        self.rule = Grace(rule, grace_epochs)
        self.compare = compare
        self.compare_min_trials = compare_min_trials
        self._trials: dict[str, _Trial] = {}

    def observe(self, key: str, epoch: int, val_loss: float, train_eval_loss: float) -> Decision:
        """Record epoch ``epoch`` of trial ``key`` and decide whether it stops now."""
        trial = self._trials.setdefault(key, _Trial())
        if trial.decision is not None:
            return trial.decision
        if epoch <= len(trial.val):
            return _CONTINUE  # a repeated report of an epoch already seen
        trial.val.append(val_loss)
        trial.train.append(train_eval_loss)
        for name, value in (("val_loss", val_loss), ("train_eval_loss", train_eval_loss)):
            if not math.isfinite(value):
                trial.peer = False
                trial.decision = Decision(stop=True, failed=f"{name} is {value} at epoch {epoch}")
                return trial.decision
        firing = self.rule.check(trial.val, trial.train)
        if firing is None:
            return _CONTINUE
        trial.decision = Decision(stop=True, firing=firing)
        trial.verdict = self._compare(key, firing.epoch)
        return trial.decision

    def seed(self, key: str, val_loss: Sequence[float]) -> None:
        """Add a finished trial from an earlier run as a comparison peer only."""
        finite = [v for v in val_loss if math.isfinite(v)]
        if finite:
            self._trials[key] = _Trial(val=list(finite), decision=Decision(stop=True))

    def _compare(self, key: str, epoch: int) -> tuple[bool, float | None, str]:
        best = min(self._trials[key].val)
        if self.compare == "none":
            return False, None, "compare: none, kept"
        peers = [
            min(t.val[:epoch]) for k, t in self._trials.items() if k != key and t.peer and t.val
        ]
        if len(peers) < self.compare_min_trials:
            return (
                False,
                None,
                f"fewer than {self.compare_min_trials} other trials to compare, kept",
            )
        median = statistics.median(peers)
        if best > median:
            clause = (
                f"best {best:.4f} worse than median {median:.4f} of {len(peers)} trials "
                f"at epoch {epoch}"
            )
            return True, median, clause
        clause = (
            f"best {best:.4f} not worse than median {median:.4f} of {len(peers)} trials "
            f"at epoch {epoch}, kept"
        )
        return False, median, clause

    def outcome(self, key: str, failed: str | None = None) -> Outcome:
        """How trial ``key`` is recorded, once it has ended.

        Args:
            key: The trial.
            failed: An error from outside the metrics (exception, crash): FAIL with it.
        """
        trial = self._trials.setdefault(key, _Trial())
        pairs = [
            (v, tr)
            for v, tr in zip(trial.val, trial.train, strict=True)
            if math.isfinite(v) and math.isfinite(tr)
        ]
        best_epoch = best_val = gap = None
        if pairs:
            index = min(range(len(pairs)), key=lambda i: pairs[i][0])
            best_epoch = index + 1
            best_val = pairs[index][0]
            gap = pairs[index][0] - pairs[index][1]
        epochs = len(trial.val)
        reason = failed or (trial.decision.failed if trial.decision else None)
        if reason is not None:
            trial.peer = False
            return Outcome("FAIL", best_epoch, best_val, gap, epochs, False, None, reason, None)
        firing = trial.decision.firing if trial.decision else None
        if firing is None or trial.verdict is None:
            return Outcome("COMPLETE", best_epoch, best_val, gap, epochs, False, None, None, None)
        pruned, median, clause = trial.verdict
        return Outcome(
            "PRUNED" if pruned else "COMPLETE",
            best_epoch,
            best_val,
            gap,
            epochs,
            True,
            firing.rule,
            f"{firing.reason}; {clause}",
            median,
        )

    def history(self, key: str) -> tuple[list[float], list[float]]:
        """The trial's val_loss and train_eval_loss per epoch."""
        trial = self._trials.get(key, _Trial())
        return list(trial.val), list(trial.train)
