"""report.html: one self-contained, offline page about a sweep, plus PNG figures.

Reads a results directory (DESIGN.md §7): sweep.yaml, trials.csv, histories.csv, and when
present split.csv, skipped.csv and check_data.json; the study gives the chosen trial, wall time
and parameter importance. plotly.js is inlined once, so the page needs no network. Everything
taken from the results (names, paths, reasons) is HTML-escaped. No TensorFlow or Ray.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from overfit_search.config.schema import Sweep
from overfit_search.layout import StudyAttr, TrialAttr
from overfit_search.results import figures
from overfit_search.results.analysis import (
    CHANCE_FACTOR,
    _baseline_row,
    _finished,
    at_chance,
    chance_note,
    improvement,
    split_counts,
    state_counts,
)
from overfit_search.results.reader import Results, read_results

REPORT = "report.html"
FIGURES_DIR = "figures"
MAX_ROWS = 100
"""Longest list (skipped files, unreadable files, duplicate pairs) shown in full."""


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} tr.chosen td{background:#fff3bf;font-weight:600}
table.facts th{text-align:left} table.facts td{text-align:left}
.note{color:#555} .warn{background:#fff4e5;border-left:4px solid #f08c00;padding:.5em 1em}
.scroll{overflow-x:auto}
"""


# --- small HTML helpers -----------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:.{digits}g}"
    return _e(value)


def _facts(rows: list[tuple[str, str]]) -> str:
    """A two-column table; the values are HTML already (escape them before)."""
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _table(frame: pd.DataFrame, limit: int | None = MAX_ROWS, **kwargs: Any) -> str:
    """A frame as an escaped HTML table, at most ``limit`` rows (None: all)."""
    limit = len(frame) if limit is None else limit
    more = len(frame) - limit
    shown = frame.head(limit).to_html(
        index=False, escape=True, na_rep="", border=0, float_format=_float, **kwargs
    )
    tail = f'<p class="note">… and {more} more</p>' if more > 0 else ""
    return f'<div class="scroll">{shown}</div>{tail}'


def _float(value: float) -> str:
    return f"{value:.4g}"


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


# --- header -----------------------------------------------------------------------------------


def _epochs_line(r: Results) -> str:
    ran = (
        r.trials[r.trials[TrialAttr.STATE] != "WAITING"]
        if TrialAttr.STATE in r.trials.columns
        else r.trials
    )
    if TrialAttr.EPOCHS_RUN not in ran.columns or ran.empty:
        return "–"
    total = int(ran[TrialAttr.EPOCHS_RUN].fillna(0).sum())
    max_epochs = int(r.study.user_attrs.get(StudyAttr.MAX_EPOCHS) or r.sweep.train.max_epochs)
    possible = len(ran) * max_epochs
    saved = f", {100 * (1 - total / possible):.0f}% saved by stopping" if possible else ""
    return f"{total} of {possible} ({len(ran)} trials × {max_epochs} max_epochs){saved}"


def _wall_line(r: Results) -> str:
    started = [t.datetime_start for t in r.study.get_trials(deepcopy=False) if t.datetime_start]
    ended = [t.datetime_complete for t in r.study.get_trials(deepcopy=False) if t.datetime_complete]
    parts = []
    if started and ended:
        parts.append(_duration((max(ended) - min(started)).total_seconds()) + " wall")
    if "seconds" in r.trials.columns and r.trials["seconds"].notna().any():
        parts.append(_duration(float(r.trials["seconds"].sum())) + " summed over trials")
    return ", ".join(parts) or "–"


def _objective_line(sweep: Sweep) -> str:
    o = sweep.objective
    text = {
        "val_loss": f"val_loss: minimize val_loss (gap reported; max_gap {o.max_gap:g})",
        "constrained": f"constrained: minimize val_loss with gap ≤ {o.max_gap:g}",
        "pareto": f"pareto: minimize (val_loss, gap); export within max_gap {o.max_gap:g}",
        "penalized": (
            f"penalized: minimize val_loss + {o.penalty_weight:g} × max(0, gap − {o.max_gap:g})"
        ),
    }[o.mode]
    return _e(text)


def _chosen_line(r: Results) -> str:
    if r.choice is None:
        return "none: no trial finished COMPLETE"
    t = r.choice.trial
    val, gap = t.user_attrs.get(TrialAttr.BEST_VAL_LOSS), t.user_attrs.get(TrialAttr.GAP)
    epoch = t.user_attrs.get(TrialAttr.BEST_EPOCH)
    return (
        f"trial {t.number} ({_e(r.choice.why)}): val_loss {_num(val)} at epoch "
        f"{_num(epoch)}, gap {_num(gap)}"
    )


def _test_row(r: Results) -> list[tuple[str, str]]:
    """The chosen trial on the held-out test split, when the run evaluated it."""
    test = r.study.user_attrs.get(StudyAttr.TEST_ESTIMATE)
    if not isinstance(test, dict) or r.choice is None or test.get("trial") != r.choice.trial.number:
        return []
    from overfit_search.reuse import test_line

    return [("test split", _e(test_line(test)))]


def _warnings(r: Results, counts: dict[str, int]) -> str:
    finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    notes = []
    chance = chance_note(r)
    if chance:
        notes.append(_e(chance))
    if not finished:
        if counts.get("FAIL") and counts["FAIL"] == sum(counts.values()):
            notes.append(
                f"All {counts['FAIL']} trials failed: see the stop reasons below and "
                "trials/&lt;number&gt;/ for tracebacks."
            )
        else:
            notes.append("No trial has finished yet: there is nothing to compare.")
    base = _baseline_row(r.trials)
    if base is not None and not _finished(base):
        notes.append(
            f"The baseline (trial {int(base['number'])}) did not finish: "
            f"{_e(base.get('state'))}, {_e(_reason(base))}."
        )
    return "".join(f'<p class="warn">{n}</p>' for n in notes)


def _header(r: Results) -> str:
    counts = state_counts(r.trials)
    by_state = ", ".join(f"{n} {_e(s)}" for s, n in counts.items()) or "none"
    stopped = r.trials.get(TrialAttr.STOPPED_EARLY)
    early = int(stopped.map(figures.truthy).sum()) if stopped is not None else 0
    rows = [
        ("objective", _objective_line(r.sweep)),
        ("trials", f"{len(r.trials)}: {by_state}; {early} stopped early"),
        ("epochs run", _epochs_line(r)),
        ("time", _wall_line(r)),
        ("chosen trial", _chosen_line(r)),
        *_test_row(r),
        ("backbone", _e(r.sweep.model.backbone)),
        ("sampler", _e(f"{r.sweep.study.sampler} (seed {r.sweep.study.seed})")),
        ("results", _e(r.out.resolve())),
    ]
    if r.version:
        rows.append(("overfit-search", _e(r.version)))
    if figures.value_column(r.trials) == "value_val_loss" and r.choice is not None:
        front = ", ".join(map(str, r.choice.pareto_numbers)) or "–"
        rows.insert(4, ("Pareto set", front))
    title = f"<h1>Sweep {_e(r.sweep.name)}</h1>"
    return f"<header>{title}{_facts(rows)}{_warnings(r, counts)}</header>"


# --- trials and baseline ----------------------------------------------------------------------


def _highlight(table_html: str, position: int) -> str:
    """Give the ``position``-th body row (from 0) of a to_html table the class ``chosen``."""
    head, sep, body = table_html.partition("<tbody>")
    rows = body.split("<tr>")
    if not sep or position + 1 >= len(rows):
        return table_html
    rows[position + 1] = ' class="chosen">' + rows[position + 1]
    return (
        head + sep + "<tr>".join(rows[: position + 1]) + "<tr" + "<tr>".join(rows[position + 1 :])
    )


def _trials_section(r: Results) -> str:
    if r.trials.empty:
        return _section("trials", "Trials", '<p class="note">No trials in this study.</p>')
    ordered = figures.ranked(r.trials).reset_index(drop=True)
    position = None
    if r.choice is not None and "number" in ordered.columns:
        hits = ordered.index[ordered["number"] == r.choice.trial.number]
        position = int(hits[0]) if len(hits) else None
    table = _table(ordered, limit=None, table_id="trials-table", classes="trials")
    if position is not None:
        table = _highlight(table, position)
    column = figures.value_column(r.trials) or "value"
    note = (
        f'<p class="note">Sorted by {_e(column)} (best first); the chosen trial is highlighted. '
        "Losses are clean cross-entropy without the L2 term (DESIGN §4).</p>"
    )
    return _section("trials", "Trials", note, table)


def _reason(row: pd.Series) -> str:
    reason = row.get(TrialAttr.STOP_REASON)
    return "no reason recorded" if reason is None or pd.isna(reason) else str(reason)


def _change_row(label: str, before: float, after: float) -> tuple[str, str]:
    delta, pct = improvement(before, after)
    pct_text = "" if pct is None else f", {pct:+.1f}%"
    return label, f"{before:.4g} → {after:.4g} ({delta:+.4g}{pct_text})"


def _baseline_section(r: Results) -> str:
    base = _baseline_row(r.trials)
    if base is None or not _finished(base):
        return ""
    if r.choice is None:
        body = '<p class="note">The baseline finished but no trial finished COMPLETE.</p>'
        return _section("baseline", "Improvement over the baseline", body)
    win = r.trials[r.trials["number"] == r.choice.trial.number]
    if int(base["number"]) == r.choice.trial.number or win.empty:
        body = '<p class="note">The baseline itself is the chosen trial: no improvement found.</p>'
        return _section("baseline", "Improvement over the baseline", body)
    w = win.iloc[0]
    rows = [
        ("trials", f"baseline {int(base['number'])} → chosen {int(w['number'])}"),
        _change_row(
            "val_loss", float(base[TrialAttr.BEST_VAL_LOSS]), float(w[TrialAttr.BEST_VAL_LOSS])
        ),
    ]
    if not (pd.isna(base.get(TrialAttr.GAP)) or pd.isna(w.get(TrialAttr.GAP))):
        rows.append(_change_row("gap", float(base[TrialAttr.GAP]), float(w[TrialAttr.GAP])))
    note = '<p class="note">Negative changes are improvements (both are minimized).</p>'
    return _section("baseline", "Improvement over the baseline", _facts(rows), note)


# --- figures ----------------------------------------------------------------------------------


def _figures(r: Results) -> list[tuple[str, str, Any]]:
    """(anchor, heading, figure or a note when there is none)."""
    importance = figures.param_importances(r.study)
    return [
        (
            "learning-curves",
            "Learning curves",
            figures.learning_curves(r.trials, r.histories),
        ),
        ("gap", "Gap vs validation loss", figures.gap_vs_val_loss(r.trials, r.max_gap)),
        ("stops", "Where trials stopped and why", figures.stop_epochs(r.trials)),
        (
            "importance",
            "Parameter importance",
            importance
            if importance is not None
            else "Parameter importance needs at least 2 COMPLETE trials with sampled "
            "parameters that vary.",
        ),
    ]


def _figure_sections(r: Results, pngs: list[Path]) -> str:
    parts = []
    inlined = False
    for anchor, heading, fig in _figures(r):
        if isinstance(fig, str):
            parts.append(_section(anchor, heading, f'<p class="note">{_e(fig)}</p>'))
            continue
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=not inlined,
            div_id=f"fig-{anchor}",
            default_height="480px",
            config={"displaylogo": False},
        )
        inlined = True
        parts.append(_section(anchor, heading, div))
    links = ", ".join(f'<a href="{_e(FIGURES_DIR)}/{_e(p.name)}">{_e(p.name)}</a>' for p in pngs)
    if links:
        parts.append(f'<p class="note">Static copies (PNG): {links}.</p>')
    return "".join(parts)


# --- data check -------------------------------------------------------------------------------


def _split_part(split: pd.DataFrame | None) -> str:
    if split is None or not {"label", "subset"} <= set(split.columns):
        return ""
    parts = [f"<h3>Split ({len(split)} images)</h3>", _table(split_counts(split))]
    if "group" in split.columns and split["group"].notna().any():
        groups = split[split["group"].notna() & (split["group"].astype(str) != "")]
        if not groups.empty:
            n = groups.groupby("subset")["group"].nunique().to_dict()
            text = ", ".join(f"{_e(k)}: {v}" for k, v in n.items())
            parts.append(f'<p class="note">Groups (sources) per subset: {text}.</p>')
    return "".join(parts)


def _skipped_part(skipped: pd.DataFrame | None) -> str:
    if skipped is None:
        return ""
    if skipped.empty:
        return "<h3>Skipped files</h3><p>None.</p>"
    return f"<h3>Skipped files ({len(skipped)} unreadable)</h3>{_table(skipped)}"


_CHECK_SCALARS = (
    "train_images",
    "validation_images",
    "duplicates_across_split",
    "duplicate_fraction",
    "duplicate_pairs_across_split",
    "label_conflicts",
    "imbalance_ratio",
    "tiny_classes",
)


def _records(items: Any, columns: tuple[str, ...]) -> pd.DataFrame:
    """A list of mappings or of pairs as a frame (pairs get ``columns``)."""
    items = list(items or [])
    if items and all(isinstance(i, list | tuple) for i in items):
        width = max(len(i) for i in items)
        names = [*columns, *(f"item {k}" for k in range(len(columns), width))][:width]
        return pd.DataFrame([list(i) for i in items], columns=names)
    return pd.DataFrame([i if isinstance(i, dict) else {"value": i} for i in items])


def _check_part(check: dict[str, Any] | str | None) -> str:
    if check is None:
        return ""
    if isinstance(check, str):
        return f'<h3>Data check</h3><p class="warn">{_e(check)}</p>'
    parts = ["<h3>Data check (check_data.json)</h3>"]
    parts += [f'<p class="warn">{_e(w)}</p>' for w in check.get("warnings") or []]
    scalars = [(k, _scalar(check[k])) for k in _CHECK_SCALARS if k in check]
    if scalars:
        parts.append(_facts(scalars))
    classes = check.get("classes")
    if isinstance(classes, dict) and classes:
        frame = pd.DataFrame.from_dict(classes, orient="index").rename_axis("class")
        parts += ["<h4>Classes</h4>", _table(frame.reset_index())]
    for key, title, columns in (
        ("unreadable", "Unreadable files", ("path", "reason")),
        ("duplicate_examples", "Near-duplicates across the split", ("train", "validation")),
    ):
        frame = _records(check.get(key), columns)
        if not frame.empty:
            parts += [f"<h4>{title} ({len(frame)})</h4>", _table(frame)]
    return "".join(parts)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return _e(", ".join(map(str, value))) or "none"
    return _num(value)


def _data_section(r: Results) -> str:
    parts = [_split_part(r.split), _skipped_part(r.skipped), _check_part(r.check)]
    if not any(parts):
        parts = ['<p class="note">No split.csv, skipped.csv or check_data.json here.</p>']
    return _section("data", "Data", *parts)


# --- page -------------------------------------------------------------------------------------


def _page(title: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def render(r: Results, pngs: list[Path]) -> str:
    """The report page for read results.

    Args:
        r: The results.
        pngs: PNG files written beside the page (linked).

    Returns:
        The HTML text.
    """
    builders: list[Callable[[Results], str]] = [_header, _trials_section, _baseline_section]
    sections = [build(r) for build in builders]
    sections += [_figure_sections(r, pngs), _data_section(r)]
    return _page(f"overfit-search: {r.sweep.name}", sections)


def write_report(out: Path, study: optuna.Study | None = None) -> Path:
    """Write ``out/report.html`` and ``out/figures/*.png`` for a results directory.

    Args:
        out: The directory ``run`` wrote (sweep.yaml, trials.csv, histories.csv, …).
        study: The study when already open; else opened from the sweep's storage or
            ``out/study.db``.

    Returns:
        The path of report.html.

    Raises:
        ConfigError: ``out`` is not a results directory or holds no study.
    """
    return _write(read_results(Path(out), study))


def write_review(out: Path, study: optuna.Study | None = None, *, dashboard: bool = True) -> Path:
    """:func:`write_report`, and the same figures saved into the study for optuna-dashboard.

    The results directory is read once for both.

    Args:
        out: The directory ``run`` wrote.
        study: The study when already open.
        dashboard: Also save the figures and the study note into the study.

    Returns:
        The path of report.html.

    Raises:
        ConfigError: ``out`` is not a results directory or holds no study.
    """
    results = read_results(Path(out), study)
    path = _write(results)
    if dashboard:
        from overfit_search.results.dashboard import save_figures

        save_figures(results.study, results.trials, results.histories, results.sweep)
    return path


def _write(results: Results) -> Path:
    out = results.out
    pngs = figures.save_pngs(results.trials, results.histories, results.max_gap, out / FIGURES_DIR)
    path = out / REPORT
    path.write_text(render(results, pngs), encoding="utf-8")
    return path


__all__ = [
    "CHANCE_FACTOR",
    "FIGURES_DIR",
    "REPORT",
    "Results",
    "at_chance",
    "chance_note",
    "improvement",
    "read_results",
    "render",
    "split_counts",
    "state_counts",
    "write_report",
    "write_review",
]
