"""Ray Tune trial schedulers by the name ``pruning.scheduler`` gives them.

The overfit judge stops trials on its own (the stopper and the searcher); a scheduler is an
optional extra on top of it, e.g. ASHA. Ray is imported when a scheduler is built, not when
this module is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from overfit_search.config.schema import ASHASchedulerConfig, Sweep
from overfit_search.errors import ConfigError
from overfit_search.layout import ResultKey

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


def _none(sweep: Sweep) -> TrialScheduler | None:
    return None


def _asha(sweep: Sweep) -> TrialScheduler | None:
    from ray.tune.schedulers import ASHAScheduler

    sched = sweep.pruning.scheduler
    assert isinstance(sched, ASHASchedulerConfig)
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=ResultKey.VAL_LOSS,
        mode="min",
        max_t=sweep.train.max_epochs,
        grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor,
    )


SCHEDULERS: dict[str, Callable[[Sweep], TrialScheduler | None]] = {
    "none": _none,
    "asha": _asha,
}
"""Names to factories; ``config.schema.SchedulerConfig`` lists the same names (a test keeps
them in step)."""


def make_scheduler(sweep: Sweep) -> TrialScheduler | None:
    """The Ray Tune scheduler ``pruning.scheduler`` names (None for ``none``).

    Raises:
        ConfigError: An unknown name (the message lists the choices).
    """
    name = sweep.pruning.scheduler.name
    factory = SCHEDULERS.get(name)
    if factory is None:
        raise ConfigError(
            f"pruning.scheduler: unknown scheduler {name!r}; choose one of: "
            f"{', '.join(sorted(SCHEDULERS))}"
        )
    return factory(sweep)
