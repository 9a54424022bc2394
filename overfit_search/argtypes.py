"""argparse ``type=`` converters shared by the subcommands (clear one-line messages)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """A converter to an integer in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {text}")
        return value

    return parse


positive_int = int_at_least(1)
"""An integer >= 1."""
