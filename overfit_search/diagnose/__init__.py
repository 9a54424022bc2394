"""``overfit-search diagnose``: read a finished training run and say whether it overfit.

Pure: no Keras, TensorFlow, Ray or Optuna imports. The input is any of

- Keras console output: TF2 style (``120/120 [====] - 41s 342ms/step - loss: … - val_loss: …``
  after the ``Epoch n/N`` line or on the same line) and Keras 3 style (``━━━━`` bars, ANSI
  colours, carriage returns and backspaces, metrics in any order), with extra metrics, text
  before and after, a log that starts mid-run (printed epoch numbers are kept) and a truncated
  last epoch (left out, with a note);
- a ``keras.callbacks.CSVLogger`` file (its ``epoch`` column counts from 0; epochs are shown from
  1 as Keras prints them), or a trial's ``history.csv`` written by ``overfit-search run``;
- a History JSON: ``json.dump(history.history, f)``, a mapping of metric name to per-epoch list.

The analysis follows DESIGN.md §5: ``E_opt(t)`` is the lowest validation loss up to epoch ``t``
and Prechelt's generalization loss is ``GL(t) = 100 * (E_va(t) / E_opt(t) - 1)``.

Modules: :mod:`.logs` (the parsers), :mod:`.verdict` (the analysis and the verdict),
:mod:`.advice`, :mod:`.render` (the human report), :mod:`.suggest` (the suggested sweep) and
:mod:`.cli` (the subcommand). The names below are the public ones, importable from here.
"""

from __future__ import annotations

from overfit_search.diagnose.cli import EPILOG, add_parser, run
from overfit_search.diagnose.logs import (
    FORMATS,
    LogFormat,
    TrainingLog,
    parse_console,
    parse_csv,
    parse_history_json,
    parse_log,
    read_log,
)
from overfit_search.diagnose.render import render_report
from overfit_search.diagnose.suggest import (
    DEFAULT_BACKBONE,
    PLACEHOLDER_DIR,
    suggest_sweep,
    sweep_name,
    write_sweep,
)
from overfit_search.diagnose.verdict import (
    CAVEAT,
    CAVEAT_CLEAN,
    Diagnosis,
    Thresholds,
    Verdict,
    diagnose,
)

__all__ = [
    "CAVEAT",
    "CAVEAT_CLEAN",
    "DEFAULT_BACKBONE",
    "EPILOG",
    "FORMATS",
    "PLACEHOLDER_DIR",
    "Diagnosis",
    "LogFormat",
    "Thresholds",
    "TrainingLog",
    "Verdict",
    "add_parser",
    "diagnose",
    "parse_console",
    "parse_csv",
    "parse_history_json",
    "parse_log",
    "read_log",
    "render_report",
    "run",
    "suggest_sweep",
    "sweep_name",
    "write_sweep",
]
