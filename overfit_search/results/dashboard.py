"""optuna-dashboard on a sweep's study, with the project's own figures saved into it.

optuna-dashboard cannot plot one trial's training and validation curves together, so the run
saves study-level Plotly figures (``save_plotly_graph_object`` with fixed ids, so a resumed
sweep replaces them) and a study note; trial notes are written by the searcher before each
trial is told (``save_note`` needs the live trial).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import pandas as pd

from overfit_search.errors import ConfigError
from overfit_search.layout import TrialAttr
from overfit_search.results import figures

if TYPE_CHECKING:
    from overfit_search.config.schema import Sweep

logger = logging.getLogger(__name__)

FIGURE_IDS = ("ofs-learning-curves", "ofs-gap-vs-val-loss", "ofs-stop-epochs")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def save_figures(
    study: optuna.Study, trials: pd.DataFrame, histories: pd.DataFrame, sweep: Sweep
) -> list[str]:
    """Save the learning curves, gap vs val_loss and stop epochs figures into the study.

    Args:
        study: The study (its storage is written).
        trials: trials.csv as a frame.
        histories: histories.csv as a frame.
        sweep: The sweep (for ``max_gap`` and the note).

    Returns:
        The graph object ids written.
    """
    from optuna_dashboard import save_note, save_plotly_graph_object

    built = (
        figures.learning_curves(trials, histories),
        figures.gap_vs_val_loss(trials, sweep.objective.max_gap),
        figures.stop_epochs(trials),
    )
    for figure, graph_id in zip(built, FIGURE_IDS, strict=True):
        save_plotly_graph_object(study, figure, graph_object_id=graph_id)
    save_note(study, study_note(trials, sweep, chosen_line(study, sweep)))
    return list(FIGURE_IDS)


def chosen_line(study: optuna.Study, sweep: Sweep) -> str | None:
    """Markdown: the trial the export chose and why, and how it did on the test split.

    optuna-dashboard's own "Best Trial" card ignores the objective's rule (it can show an
    infeasible trial under ``constrained``), so the note says which trial best.yaml holds.
    """
    from overfit_search.errors import FatalError
    from overfit_search.layout import StudyAttr
    from overfit_search.results.exports import select_best

    try:
        choice = select_best(study, sweep)
    except FatalError:
        return None
    a = choice.trial.user_attrs
    line = (
        f"**Exported: trial {choice.trial.number}** ({choice.why}): val_loss "
        f"{a[TrialAttr.BEST_VAL_LOSS]:.4f} at epoch {a[TrialAttr.BEST_EPOCH]}, gap "
        f"{a[TrialAttr.GAP]:.4f}. This is the trial in best.yaml; the dashboard's Best Trial "
        "card applies no rule of ours and may name another."
    )
    test = study.user_attrs.get(StudyAttr.TEST_ESTIMATE)
    if isinstance(test, dict) and test.get("trial") == choice.trial.number:
        from overfit_search.reuse import test_line

        line += f" On the {test_line(test)}."
    return line


def study_note(trials: pd.DataFrame, sweep: Sweep, chosen: str | None = None) -> str:
    """The study's Markdown note: what was searched, how trials ended, which trial was
    exported (``chosen``, see :func:`chosen_line`), where to look."""
    counts = trials.state.value_counts().to_dict() if TrialAttr.STATE in trials else {}
    ended = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none yet"
    runs = (
        trials[TrialAttr.EPOCHS_RUN] if TrialAttr.EPOCHS_RUN in trials else pd.Series(dtype=float)
    )
    epochs = int(pd.to_numeric(runs, errors="coerce").fillna(0).sum())
    full = len(trials) * sweep.train.max_epochs
    return (
        f"## overfit-search: {sweep.name}\n\n"
        f"Backbone `{sweep.model.backbone}`, objective **{sweep.objective.mode}** "
        f"(max_gap {sweep.objective.max_gap:g}), rule `{sweep.pruning.rule.name}`.\n\n"
        f"Trials: {ended}. Epochs run: {epochs} of {full} without stopping.\n\n"
        + (f"{chosen}\n\n" if chosen else "")
        + "Values are the clean validation loss at each trial's best epoch; the gap is "
        "validation loss above clean training loss there. The figures below show the best "
        "trials' train vs validation curves, gap vs validation loss (feasible trials are "
        "circles), and the epoch at which each trial stopped and why. Each trial's note "
        "says why it stopped."
    )


def storage_for(target: str) -> str:
    """The storage URL of a results directory, or ``target`` itself when it is a URL.

    Raises:
        ConfigError: Neither a results directory nor a storage URL.
    """
    if "://" in target:
        return target
    from overfit_search.results.exports import load_results

    where = Path(target)
    if not where.is_dir():
        raise ConfigError(f"{target}: not a results directory or a storage URL")
    sweep, _ = load_results(where)
    return sweep.study.storage or f"sqlite:///{(where / 'study.db').resolve()}"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def make_dashboard_server(storage: str, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """A WSGI server of optuna-dashboard on ``storage``, bound but not yet serving.

    Args:
        storage: An Optuna storage URL.
        host: Address to bind (loopback by default).
        port: Port (0 picks a free one).

    Raises:
        ConfigError: The port cannot be bound.
    """
    from optuna_dashboard import wsgi

    app = wsgi(storage)
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(f"--host/--port: cannot listen on {host}:{port} ({exc})") from None


def url_of(server: WSGIServer, host: str) -> str:
    """The dashboard's address as a browser wants it."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{server.server_port}/dashboard/"


def start_in_thread(storage: str, host: str = "127.0.0.1", port: int = 0) -> tuple[WSGIServer, str]:
    """Serve the dashboard from a daemon thread (notebooks, tests); stop with ``shutdown()``."""
    server = make_dashboard_server(storage, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url_of(server, host)
