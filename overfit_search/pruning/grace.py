"""Grace period wrapper: no rule fires during the first epochs."""

from __future__ import annotations

from collections.abc import Sequence

from overfit_search.pruning.base import Firing, Rule


class Grace:
    """Wrap a rule so that it never fires while ``t <= grace_epochs``.

    Args:
        rule: The rule to wrap.
        grace_epochs: Epochs (from 1) during which nothing fires, >= 0.

    Raises:
        ValueError: ``grace_epochs`` is not an integer >= 0.
    """

    def __init__(self, rule: Rule, grace_epochs: int) -> None:
        if isinstance(grace_epochs, bool) or not isinstance(grace_epochs, int):
            raise ValueError(f"grace_epochs must be an integer, got {grace_epochs!r}")
        if grace_epochs < 0:
            raise ValueError(f"grace_epochs must be >= 0, got {grace_epochs}")
        self.rule = rule
        self.grace_epochs = grace_epochs
        self.name = rule.name

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """The wrapped rule's answer, or None during the grace period."""
        if len(val_loss) <= self.grace_epochs:
            return None
        return self.rule.check(val_loss, train_eval_loss)
