"""The sweep file: pydantic schema and loader. Pure: no TensorFlow, Ray or Optuna."""

from __future__ import annotations

from overfit_search.config.loader import load_sweep, sweep_from_dict
from overfit_search.config.schema import FloatRange, IntRange, Sweep

__all__ = ["FloatRange", "IntRange", "Sweep", "load_sweep", "sweep_from_dict"]
