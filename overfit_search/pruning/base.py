"""The rule interface: a pure function of a trial's metric history."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Firing:
    """A rule fired.

    Attributes:
        rule: The rule's name (``gl``, ``pq``, ``up``, ``gap``).
        value: The figure that fired, e.g. GL in percent.
        threshold: The threshold it crossed.
        epoch: The epoch (from 1) at which it fired.
        reason: Human text, e.g. ``"GL 7.4% > 5% at epoch 6"``.
    """

    rule: str
    value: float
    threshold: float
    epoch: int
    reason: str


class Rule(Protocol):
    """An overfitting rule: decides from a trial's history whether it overfits now.

    Attributes:
        name: The rule's registry name (``gl``, ``pq``, ``up``, ``gap``, ``none``).
    """

    name: str

    def check(self, val_loss: Sequence[float], train_eval_loss: Sequence[float]) -> Firing | None:
        """Whether the rule fires at the last epoch of these histories.

        Args:
            val_loss: Clean validation loss per epoch; index 0 is epoch 1.
            train_eval_loss: Clean training loss per epoch, same length.

        Returns:
            A ``Firing`` if the rule fires at epoch ``len(val_loss)``, else None. Rules never
            fire on a non-finite value (the judge fails such a trial instead).
        """
        ...


def construct(kind: str, registry: Mapping[str, type], name: str, params: dict[str, Any]) -> Any:
    """``registry[name](**params)``, with one-line errors naming the choices or parameters.

    Args:
        kind: What is built, for the messages (``pruning rule``, ``budget rule``).
        registry: Names to classes.
        name: The name asked for.
        params: Keyword arguments; each must be a parameter of the class.

    Raises:
        ValueError: Unknown name (the message lists the valid ones) or unknown parameter.
    """
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        valid = f"valid: {', '.join(accepted)}" if accepted else "it takes no parameters"
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(
            f"{name}: unknown parameter{plural} {', '.join(map(repr, unknown))}; {valid}"
        )
    return cls(**params)
