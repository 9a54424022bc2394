"""The human report of a diagnosis."""

from __future__ import annotations

import math
import textwrap

from overfit_search.diagnose.logs import _epoch_range
from overfit_search.diagnose.verdict import Diagnosis


def _fmt(value: float | None, spec: str = ".4f") -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return format(value, spec)


_FORMAT_NAMES = {
    "keras-console": "Keras console log",
    "csv": "CSV history",
    "history-json": "History JSON",
}


def render_report(d: Diagnosis) -> str:
    """The human report: figures, verdict, ranked advice and the caveat."""
    of_total = f" of {d.total_epochs}" if d.total_epochs else ""
    lines = [
        f"{d.source}: {_FORMAT_NAMES[d.format]}, {len(d.epochs)} epoch(s) "
        f"({_epoch_range(d.epochs)}{of_total})",
        f"Verdict: {d.verdict.upper().replace('_', ' ')}",
        "",
        f"  best epoch         {d.best_epoch}  (val_loss {_fmt(d.best_val_loss)})",
    ]
    if d.onset_epoch is not None:
        lines.append(
            f"  onset              after epoch {d.onset_epoch} validation loss rises while "
            "training loss falls"
        )
    else:
        lines.append("  onset              none (validation loss does not rise for good)")
    lines += [
        f"  GL at last epoch   {_fmt(d.gl_last, '.1f')}%  (epoch {d.last_epoch}; overfitting "
        f"from {d.thresholds['gl_alpha']:g}%)",
        f"  gap at best        {_fmt(d.gap_at_best)}  (val_loss - loss at epoch {d.best_epoch})",
        f"  gap at end         {_fmt(d.gap_last)}  (epoch {d.last_epoch})",
        f"  wasted epochs      {d.wasted_epochs}"
        + (f"  (epochs {d.best_epoch + 1}-{d.last_epoch})" if d.wasted_epochs else ""),
    ]
    if d.val_improvement_pct is not None:
        lines.append(f"  val_loss trend     {-d.val_improvement_pct:+.1f}% per epoch at the end")
    if d.learning_rate is not None:
        lines.append(f"  learning rate      {d.learning_rate:.3g} at the best epoch")
    if d.diverged_epoch is not None:
        lines.append(f"  diverged           from epoch {d.diverged_epoch} (NaN/inf loss)")
    if d.images:
        lines.append(
            f"  images             {d.images['train']} training, {d.images['validation']} "
            f"validation ({100 * _validation_fraction(d.images):.0f}%), "
            f"{d.images['classes']} classes"
        )
    lines += ["", "Advice:"]
    for number, item in enumerate(d.advice, 1):
        wrapped = textwrap.wrap(item, width=92, subsequent_indent="     ")
        lines.append(f"  {number}. " + "\n".join(wrapped))
    for note in d.notes:
        lines.append("\n".join(textwrap.wrap(f"Note: {note}", width=100, subsequent_indent="  ")))
    lines.append("\n".join(textwrap.wrap(f"Caveat: {d.caveat}", 100, subsequent_indent="  ")))
    return "\n".join(lines)


def _validation_fraction(images: dict[str, int]) -> float:
    """The validation share of the images the log's fit read."""
    return images["validation"] / (images["train"] + images["validation"])
