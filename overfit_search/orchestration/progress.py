"""One live table of the sweep's progress (rich), instead of Ray's log stream."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


class SweepProgress:
    """Counts trials by state and shows the best value so far and the elapsed time.

    Args:
        name: The study name.
        total: Trials this run will start.
        already: Finished trials the study held before this run (resume).
        console: Where to draw; a non-terminal console prints the final table only.
        enabled: False draws nothing (library use, tests).
    """

    def __init__(
        self,
        name: str,
        total: int,
        already: int = 0,
        console: Console | None = None,
        enabled: bool = True,
    ) -> None:
        self.name = name
        self.total = total
        self.already = already
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.running = 0
        self.numbers: set[int] = set()
        self.best: float | None = None
        self.best_number: int | None = None
        self.epochs = 0
        self.started = time.monotonic()
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the searcher (which holds this) into its experiment state.
        state = self.__dict__.copy()
        for key in ("console", "_lock", "_live"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True)
        self._lock = threading.Lock()
        self._live = None

    def trial_started(self, number: int) -> None:
        with self._lock:
            self.running += 1
            self.numbers.add(number)

    def trial_finished(
        self, state: str, value: float | None, number: int, epochs: int, eligible: bool = True
    ) -> None:
        """Count a finished trial; ``eligible``: it may be the export's choice
        (:func:`overfit_search.scoring.counts_for_best`), so it may be the "best" shown."""
        with self._lock:
            self.running = max(0, self.running - 1)
            self.counts[state] = self.counts.get(state, 0) + 1
            self.epochs += epochs
            finite = value is not None and math.isfinite(value) and state != "FAIL" and eligible
            if finite and (self.best is None or value < self.best):  # type: ignore[operator]
                self.best, self.best_number = value, number

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def __rich__(self) -> Table:
        elapsed = time.monotonic() - self.started
        table = Table(title=f"overfit-search · {self.name}", title_justify="left")
        for column in ("done", "running", "complete", "pruned", "failed", "best", "elapsed"):
            table.add_column(column, justify="right")
        best = "—" if self.best is None else f"{self.best:.4f} (#{self.best_number})"
        table.add_row(
            f"{self.done}/{self.total}" + (f" (+{self.already} earlier)" if self.already else ""),
            str(self.running),
            str(self.counts["COMPLETE"]),
            str(self.counts["PRUNED"]),
            str(self.counts["FAIL"]),
            best,
            f"{elapsed:.0f}s",
        )
        return table

    def __enter__(self) -> SweepProgress:
        if self.enabled:
            self._live = Live(self, console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None


__all__ = ["SweepProgress"]
