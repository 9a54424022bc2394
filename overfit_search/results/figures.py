"""Figures of a sweep from trials.csv / histories.csv frames: Plotly for the report and dashboard,
matplotlib twins for PNG export.

Every builder is pure (frames in, figure out) and returns a plain
``plotly.graph_objects.Figure`` with a title and axis labels, so the same figures can be saved
into the Optuna study with ``optuna_dashboard.save_plotly_graph_object``. Text taken from the
results (states, stop rules, reasons) is HTML-escaped before it reaches a figure. No TensorFlow,
Ray or plotly.express.
"""

from __future__ import annotations

import html
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from overfit_search.layout import HISTORIES_TRIAL, ResultKey, TrialAttr

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""Trial colours (matplotlib's tab10, also a valid Plotly colour list)."""

STATE_COLOURS = {
    "COMPLETE": "#2ca02c",
    "PRUNED": "#ff7f0e",
    "FAIL": "#d62728",
    "RUNNING": "#1f77b4",
    "WAITING": "#7f7f7f",
}
"""Colour of each Optuna trial state."""

_FEASIBLE_SYMBOLS = {"feasible": "circle", "infeasible": "x", "unknown": "diamond"}
_MPL_MARKERS = {"feasible": "o", "infeasible": "x", "unknown": "D"}
_PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")


@dataclass(frozen=True)
class Curve:
    """One trial's learning curves, as drawn.

    Attributes:
        number: The trial number.
        epochs: Epoch numbers (from 1).
        val_loss: Clean validation loss per epoch.
        train_eval_loss: Clean training-subset loss per epoch (may hold NaN).
        best_epoch: The epoch of the lowest val_loss.
        best_val_loss: val_loss at ``best_epoch``.
    """

    number: int
    epochs: list[int]
    val_loss: list[float]
    train_eval_loss: list[float]
    best_epoch: int
    best_val_loss: float


@dataclass(frozen=True)
class PointGroup:
    """Trials of one state and one feasibility, for the gap vs val_loss scatter.

    Attributes:
        state: The Optuna state name.
        feasibility: ``feasible``, ``infeasible`` or ``unknown``.
        numbers: Trial numbers.
        val_loss: best_val_loss of each trial.
        gap: gap at the best epoch of each trial.
    """

    state: str
    feasibility: str
    numbers: list[int]
    val_loss: list[float]
    gap: list[float]

    @property
    def name(self) -> str:
        """Legend entry, e.g. ``COMPLETE (feasible)``."""
        return f"{self.state} ({self.feasibility})"


def value_column(trials: pd.DataFrame) -> str | None:
    """The column ranking trials: ``value_val_loss`` in a Pareto study, else ``value``.

    ``value_val_loss`` wins when both exist: a Pareto study's trials.csv also has an empty
    ``value`` column when a trial failed (``trials_frame`` writes ``value`` for trials
    without values).

    Args:
        trials: A trials.csv frame.

    Returns:
        The column name, or None when the frame has neither.
    """
    for name in ("value_val_loss", "value"):
        if name in trials.columns:
            return name
    return None


def ranked(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials sorted by their value (best first), trials without a value last.

    Args:
        trials: A trials.csv frame.

    Returns:
        A sorted copy (the original index is kept).
    """
    column = value_column(trials)
    if column is None or trials.empty:
        return trials.copy()
    keys = ["number"] if "number" in trials.columns else []
    return trials.sort_values([column, *keys], na_position="last", kind="stable")


def _floats(values: Any) -> list[float]:
    return [float("nan") if pd.isna(v) else float(v) for v in values]


def _curve(number: int, history: pd.DataFrame, best_epoch: Any) -> Curve | None:
    history = history.sort_values(ResultKey.EPOCH)
    val = _floats(history[ResultKey.VAL_LOSS])
    if not any(math.isfinite(v) for v in val):
        return None
    epochs = [int(e) for e in history[ResultKey.EPOCH]]
    train = (
        _floats(history[ResultKey.TRAIN_EVAL_LOSS])
        if ResultKey.TRAIN_EVAL_LOSS in history.columns
        else [float("nan")] * len(val)
    )
    if pd.isna(best_epoch) or int(best_epoch) not in epochs:
        best_epoch = epochs[min(range(len(val)), key=lambda i: _nan_last(val[i]))]
    best = int(best_epoch)
    return Curve(number, epochs, val, train, best, val[epochs.index(best)])


def _nan_last(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def top_curves(trials: pd.DataFrame, histories: pd.DataFrame, top: int = 5) -> list[Curve]:
    """The learning curves of the ``top`` best trials by value that have a history.

    Args:
        trials: A trials.csv frame (``number``, ``value`` or ``value_val_loss``,
            ``best_epoch``).
        histories: A histories.csv frame (``trial``, ``epoch``, ``val_loss``,
            ``train_eval_loss``).
        top: How many trials.

    Returns:
        Curves, best trial first.
    """
    column = value_column(trials)
    if column is None or ResultKey.VAL_LOSS not in histories.columns or histories.empty:
        return []
    with_value = ranked(trials[trials[column].notna()])
    curves: list[Curve] = []
    for _, row in with_value.iterrows():
        if len(curves) >= top:
            break
        number = int(row["number"])
        history = histories[histories[HISTORIES_TRIAL] == number]
        curve = _curve(number, history, row.get(TrialAttr.BEST_EPOCH)) if len(history) else None
        if curve is not None:
            curves.append(curve)
    return curves


def _feasibility(row: pd.Series, max_gap: float | None) -> str:
    feasible = row.get(TrialAttr.FEASIBLE)
    if feasible is not None and not pd.isna(feasible):
        return "feasible" if truthy(feasible) else "infeasible"
    if max_gap is None:
        return "unknown"
    return "feasible" if float(row[TrialAttr.GAP]) <= max_gap else "infeasible"


def truthy(value: Any) -> bool:
    """Whether a CSV cell means true (``True``, ``"true"``, ``1``; NaN and None are false).

    Args:
        value: The cell.

    Returns:
        The truth value.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def point_groups(trials: pd.DataFrame, max_gap: float | None) -> list[PointGroup]:
    """Trials with a value, best_val_loss and gap, grouped by state and feasibility.

    Args:
        trials: A trials.csv frame.
        max_gap: The objective's max_gap; decides feasibility when the ``feasible``
            column is empty (None: unknown).

    Returns:
        Groups in state order (COMPLETE, PRUNED, FAIL, …), feasible before infeasible.
    """
    column = value_column(trials)
    needed = {TrialAttr.BEST_VAL_LOSS, TrialAttr.GAP, TrialAttr.STATE, "number"}
    if column is None or not needed <= set(trials.columns):
        return []
    rows = trials[
        trials[column].notna()
        & trials[TrialAttr.BEST_VAL_LOSS].notna()
        & trials[TrialAttr.GAP].notna()
    ]
    found: dict[tuple[str, str], PointGroup] = {}
    for _, row in rows.iterrows():
        key = (str(row[TrialAttr.STATE]), _feasibility(row, max_gap))
        group = found.setdefault(key, PointGroup(*key, [], [], []))
        group.numbers.append(int(row["number"]))
        group.val_loss.append(float(row[TrialAttr.BEST_VAL_LOSS]))
        group.gap.append(float(row[TrialAttr.GAP]))
    order = [*STATE_COLOURS, *sorted({k[0] for k in found} - set(STATE_COLOURS))]
    feas = list(_FEASIBLE_SYMBOLS)
    return [found[k] for k in sorted(found, key=lambda k: (order.index(k[0]), feas.index(k[1])))]


def stop_category(row: pd.Series) -> str:
    """Why a trial ended, e.g. ``PRUNED: gl``, ``COMPLETE: max_epochs`` or ``FAIL``.

    Args:
        row: A trials.csv row.

    Returns:
        The label (not escaped).
    """
    state = str(row.get(TrialAttr.STATE))
    rule = row.get(TrialAttr.STOP_RULE)
    if rule is not None and not pd.isna(rule) and str(rule):
        return f"{state}: {rule}"
    if state == "COMPLETE":
        return "COMPLETE: max_epochs"
    return state


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(
        text=html.escape(message),
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 14},
    )
    return fig


def _layout(title: str, x: str, y: str, **extra: Any) -> go.Layout:
    return go.Layout(
        title={"text": title},
        xaxis={"title": {"text": x}},
        yaxis={"title": {"text": y}},
        template="plotly_white",
        **extra,
    )


def learning_curves(trials: pd.DataFrame, histories: pd.DataFrame, top: int = 5) -> go.Figure:
    """Clean train vs validation loss per epoch of the ``top`` best trials.

    Each trial has one colour: val_loss solid, train_eval_loss dashed, and a marker at its
    best epoch (lowest val_loss).

    Args:
        trials: A trials.csv frame.
        histories: A histories.csv frame.
        top: How many trials, best value first.

    Returns:
        The figure (three traces per trial; none and a note when there is nothing to draw).
    """
    curves = top_curves(trials, histories, top)
    title = f"Learning curves of the best trials (top {len(curves)} by value)"
    fig = go.Figure(layout=_layout(title, "epoch", "loss (solid: val_loss, dashed: train_eval)"))
    for i, c in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        group = f"trial {c.number}"
        common: dict[str, Any] = {"x": c.epochs, "legendgroup": group, "mode": "lines"}
        fig.add_trace(
            go.Scatter(
                y=c.val_loss,
                name=f"trial {c.number} val_loss",
                line={"color": colour, "dash": "solid"},
                **common,
            )
        )
        fig.add_trace(
            go.Scatter(
                y=c.train_eval_loss,
                name=f"trial {c.number} train_eval_loss",
                line={"color": colour, "dash": "dash"},
                **common,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[c.best_epoch],
                y=[c.best_val_loss],
                name=f"trial {c.number} best epoch",
                legendgroup=group,
                mode="markers",
                marker={"color": colour, "size": 11, "symbol": "star"},
                hovertext=[f"trial {c.number}: best epoch {c.best_epoch}"],
                showlegend=False,
            )
        )
    if not curves:
        _empty(fig, "no per-epoch history for any trial with a value")
    return fig


def gap_vs_val_loss(trials: pd.DataFrame, max_gap: float | None) -> go.Figure:
    """Gap at the best epoch against best val_loss of every trial with a value.

    Colour is the trial's state, the marker symbol its feasibility (circle: gap within
    max_gap, x: above it); a dotted horizontal line marks max_gap; Pareto-optimal trials
    (``pareto`` column) are joined by a line.

    Args:
        trials: A trials.csv frame.
        max_gap: The objective's max_gap (None: no line).

    Returns:
        The figure (one trace per state and feasibility, plus the Pareto front).
    """
    fig = go.Figure(layout=_layout("Gap vs validation loss", "best val_loss", "gap at best epoch"))
    groups = point_groups(trials, max_gap)
    for g in groups:
        fig.add_trace(
            go.Scatter(
                x=g.val_loss,
                y=g.gap,
                mode="markers",
                name=html.escape(g.name),
                marker={
                    "color": STATE_COLOURS.get(g.state, "#000000"),
                    "symbol": _FEASIBLE_SYMBOLS[g.feasibility],
                    "size": 9,
                },
                hovertext=[f"trial {n}" for n in g.numbers],
            )
        )
    _add_pareto_front(fig, trials)
    if max_gap is not None:
        fig.add_hline(
            y=max_gap,
            line={"dash": "dot", "color": "#555555"},
            annotation_text=f"max_gap {max_gap:g}",
        )
    if not groups:
        _empty(fig, "no trial has a value yet")
    return fig


def _add_pareto_front(fig: go.Figure, trials: pd.DataFrame) -> None:
    if "pareto" not in trials.columns or not {TrialAttr.BEST_VAL_LOSS, TrialAttr.GAP} <= set(
        trials.columns
    ):
        return
    front = trials[trials["pareto"].map(truthy) & trials[TrialAttr.BEST_VAL_LOSS].notna()]
    if front.empty:
        return
    front = front.sort_values(TrialAttr.BEST_VAL_LOSS)
    fig.add_trace(
        go.Scatter(
            x=_floats(front[TrialAttr.BEST_VAL_LOSS]),
            y=_floats(front[TrialAttr.GAP]),
            mode="lines",
            name="Pareto front",
            line={"color": "#444444", "dash": "dash", "width": 1},
            hoverinfo="skip",
        )
    )


def stop_counts(trials: pd.DataFrame) -> dict[str, dict[int, int]]:
    """How many trials stopped at each epoch, per :func:`stop_category`.

    Args:
        trials: A trials.csv frame (``epochs_run``, ``state``, ``stop_rule``).

    Returns:
        Category -> {epoch: trials}; trials without ``epochs_run`` are left out.
    """
    if TrialAttr.EPOCHS_RUN not in trials.columns:
        return {}
    counts: dict[str, dict[int, int]] = {}
    for _, row in trials[trials[TrialAttr.EPOCHS_RUN].notna()].iterrows():
        by_epoch = counts.setdefault(stop_category(row), {})
        epoch = int(row[TrialAttr.EPOCHS_RUN])
        by_epoch[epoch] = by_epoch.get(epoch, 0) + 1
    return dict(sorted(counts.items()))


def stop_epochs(trials: pd.DataFrame) -> go.Figure:
    """Stacked bars: how many trials stopped at each epoch, by state and stop rule.

    Colour is the state; within a state each stop rule has its own bar pattern.

    Args:
        trials: A trials.csv frame.

    Returns:
        The figure (one bar trace per category, e.g. ``PRUNED: gl``).
    """
    fig = go.Figure(layout=_layout("Where trials stopped", "epochs run", "trials", barmode="stack"))
    counts = stop_counts(trials)
    seen: dict[str, int] = {}
    for category, by_epoch in counts.items():
        state = category.split(":")[0]
        k = seen[state] = seen.get(state, -1) + 1
        fig.add_trace(
            go.Bar(
                x=list(by_epoch),
                y=list(by_epoch.values()),
                name=html.escape(category),
                marker={
                    "color": STATE_COLOURS.get(state, "#000000"),
                    "pattern": {"shape": _PATTERNS[k % len(_PATTERNS)]},
                },
            )
        )
    fig.update_xaxes(dtick=1)
    if not counts:
        _empty(fig, "no trial has run an epoch yet")
    return fig


def importances(study: optuna.Study) -> dict[str, float] | None:
    """Parameter importances (Optuna's default evaluator) of the val_loss objective.

    For a multi-objective study the first objective (val_loss) is the target.

    Args:
        study: The study.

    Returns:
        Parameter -> importance, or None with fewer than 2 COMPLETE trials, no sampled
        parameter, or when Optuna raises.
    """
    complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
    if len(complete) < 2:
        return None
    target = _first_value if len(study.directions) > 1 else None
    try:
        with warnings.catch_warnings():  # "computes the importances ... low target values"
            warnings.simplefilter("ignore", UserWarning)
            found = optuna.importance.get_param_importances(study, target=target)
    except Exception:  # too few distinct values, single-valued params, evaluator errors
        return None
    return dict(found) or None


def _first_value(trial: FrozenTrial) -> float:
    return float(trial.values[0])


def param_importances(study: optuna.Study) -> go.Figure | None:
    """Horizontal bars of parameter importance for val_loss (largest on top).

    Args:
        study: The study.

    Returns:
        The figure, or None when :func:`importances` has none.
    """
    found = importances(study)
    if found is None:
        return None
    names = list(found)[::-1]
    fig = go.Figure(layout=_layout("Parameter importance (val_loss)", "importance", "parameter"))
    fig.add_trace(
        go.Bar(
            x=[found[n] for n in names],
            y=[html.escape(n) for n in names],
            orientation="h",
            name="importance",
            marker={"color": PALETTE[0]},
        )
    )
    return fig


# --- matplotlib twins (PNG) -----------------------------------------------------------------


def _mpl_figure() -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # never switch a backend someone else uses
        matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _mpl_learning_curves(trials: pd.DataFrame, histories: pd.DataFrame, path: Path) -> Path:
    fig = _mpl_figure()
    ax = fig.add_subplot()
    curves = top_curves(trials, histories)
    for i, c in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(c.epochs, c.val_loss, color=colour, label=f"trial {c.number} val_loss")
        ax.plot(c.epochs, c.train_eval_loss, color=colour, linestyle="--")
        ax.plot([c.best_epoch], [c.best_val_loss], marker="*", markersize=12, color=colour)
    if curves:
        ax.legend(fontsize="small", title="dashed: train_eval_loss")
    else:
        ax.text(0.5, 0.5, "no per-epoch history", ha="center", transform=ax.transAxes)
    ax.set(title=f"Learning curves of the {len(curves)} best trials", xlabel="epoch", ylabel="loss")
    fig.savefig(path)
    return path


def _mpl_gap_vs_val_loss(trials: pd.DataFrame, max_gap: float | None, path: Path) -> Path:
    fig = _mpl_figure()
    ax = fig.add_subplot()
    groups = point_groups(trials, max_gap)
    for g in groups:
        ax.scatter(
            g.val_loss,
            g.gap,
            color=STATE_COLOURS.get(g.state, "#000000"),
            marker=_MPL_MARKERS[g.feasibility],
            label=g.name,
        )
    if max_gap is not None:
        ax.axhline(max_gap, linestyle=":", color="#555555", label=f"max_gap {max_gap:g}")
    if groups or max_gap is not None:
        ax.legend(fontsize="small")
    if not groups:
        ax.text(0.5, 0.5, "no trial has a value yet", ha="center", transform=ax.transAxes)
    ax.set(title="Gap vs validation loss", xlabel="best val_loss", ylabel="gap at best epoch")
    fig.savefig(path)
    return path


def save_pngs(
    trials: pd.DataFrame, histories: pd.DataFrame, max_gap: float | None, folder: Path
) -> list[Path]:
    """Write learning_curves.png and gap_vs_val_loss.png with matplotlib (Agg, no display).

    Args:
        trials: A trials.csv frame.
        histories: A histories.csv frame.
        max_gap: The objective's max_gap (None: no line).
        folder: Where to write (created if missing).

    Returns:
        The paths written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    return [
        _mpl_learning_curves(trials, histories, folder / "learning_curves.png"),
        _mpl_gap_vs_val_loss(trials, max_gap, folder / "gap_vs_val_loss.png"),
    ]
