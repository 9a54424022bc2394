"""The overfit rule as a Ray ``Stopper`` around the pure judge."""

from __future__ import annotations

import logging
from typing import Any

from ray.tune import Stopper

from overfit_search.layout import ResultKey
from overfit_search.pruning import OverfitJudge

logger = logging.getLogger(__name__)


class OverfitStopper(Stopper):
    """Stops a trial when the judge says so, or when it reports a failure.

    Also enforces ``study.max_total_epochs``: once the epochs run across all trials reach it,
    every trial is stopped.

    Args:
        judge: The shared decision object (the searcher reads its outcomes).
        max_total_epochs: Study-wide epoch budget, or None.
    """

    def __init__(self, judge: OverfitJudge, max_total_epochs: int | None = None) -> None:
        self.judge = judge
        self.max_total_epochs = max_total_epochs
        self.epochs: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if ResultKey.FAILED in result:
            return True
        if ResultKey.EPOCH not in result:
            return False
        epoch = int(result[ResultKey.EPOCH])
        self.epochs[trial_id] = max(self.epochs.get(trial_id, 0), epoch)
        try:
            decision = self.judge.observe(
                trial_id,
                epoch,
                float(result[ResultKey.VAL_LOSS]),
                float(result[ResultKey.TRAIN_EVAL_LOSS]),
            )
        except ValueError:  # an epoch report went missing: never let it crash the driver
            logger.warning("trial %s: epoch reported out of order", trial_id, exc_info=True)
            return False
        return decision.stop

    def stop_all(self) -> bool:
        return self.max_total_epochs is not None and sum(self.epochs.values()) >= (
            self.max_total_epochs
        )
