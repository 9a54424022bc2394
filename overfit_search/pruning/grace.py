"""Grace period wrapper: no rule fires during the first epochs."""

from __future__ import annotations

from collections.abc import Sequence

from overfit_search.pruning.base import Firing, Rule


class Grace:
    """Wrap a rule so it never fires while ``t <= grace_epochs``."""

    def __init__(self, rule: Rule, grace_epochs: int) -> None:
        if grace_epochs < 0:
            raise ValueError(f"grace_epochs must be >= 0, got {grace_epochs}")
        self.rule = rule
        self.grace_epochs = grace_epochs
        self.name = rule.name

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        if len(val_loss) <= self.grace_epochs:
            return None
        return self.rule.check(val_loss, train_eval_loss)
