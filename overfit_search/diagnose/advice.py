"""Concrete, ranked advice for a diagnosis."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overfit_search.diagnose.verdict import Thresholds, Verdict


def _spikes(val: list[float], epochs: list[int]) -> list[int]:
    """Epochs where val loss jumped by >= 25% and came back at least half-way the next epoch."""
    found = []
    for i in range(1, len(val) - 1):
        jump = val[i] - val[i - 1]
        if val[i - 1] > 0 and jump >= 0.25 * val[i - 1] and val[i + 1] <= val[i] - 0.5 * jump:
            found.append(epochs[i])
    return found


def _train_rises(train: list[float], epochs: list[int]) -> list[int]:
    """Epochs where the training loss rose by more than 10% over the previous epoch."""
    return [
        epochs[i]
        for i in range(1, len(train))
        if train[i - 1] > 0 and train[i] > 1.10 * train[i - 1]
    ]


def _advice(
    *,
    verdict: Verdict,
    epochs: list[int],
    val: list[float],
    train: list[float],
    best: int,
    onset: int | None,
    gl_last: float,
    gap_at_best: float,
    improvement: float | None,
    diverged: int | None,
    split: tuple[int, float, float] | None,
    th: Thresholds,
) -> list[str]:
    """Concrete steps, ranked: divergence, stopping, the split, regularization, freezing, the
    learning rate, training longer."""
    out: list[str] = []
    best_epoch = epochs[best]
    gapping = verdict in ("overfitting", "large_gap")
    if diverged is not None:
        out.append(
            f"Training diverged at epoch {diverged} (NaN or infinite loss): lower the learning "
            "rate about 10x (or clip gradients); the figures here stop at epoch "
            f"{epochs[-1]}."
        )
    if verdict == "overfitting":
        out.append(
            f"Stop at epoch {best_epoch}: validation loss was lowest there ({val[best]:.4f}) "
            f"and rose for {epochs[-1] - best_epoch} epoch(s) after it (GL {gl_last:.1f}%) "
            f"while training loss kept falling. Retrain for {best_epoch} epochs, or use "
            "EarlyStopping(monitor='val_loss', patience=2, restore_best_weights=True)."
        )
    elif onset is not None:
        out.append(
            f"Validation loss has crept up since epoch {onset} while training loss fell "
            f"(GL {gl_last:.1f}% < {th.gl_alpha:g}%): keep the epoch-{onset} weights "
            "(restore_best_weights=True); longer runs will overfit."
        )
    if split is not None:
        epoch, acc, val_acc = split
        out.append(
            f"Check the split: training accuracy was {acc:.2f} by epoch {epoch} while "
            f"validation accuracy stalled at {val_acc:.2f}. The split may leak or be "
            "unrepresentative: near-duplicates (frames of one video, one person) on both sides, "
            "or ImageDataGenerator's validation_split, which takes the last files of each class "
            "folder; split by source (data.group_pattern) and look for duplicates across it."
        )
    if gapping:
        share = 100.0 * gap_at_best / val[best] if val[best] > 0 else math.inf
        out.append(
            f"Regularize: the gap at the best epoch is {gap_at_best:.4f} ({share:.0f}% of the "
            "validation loss). Raise dropout before the classifier (0.3-0.5), add L2 on the head "
            "(1e-4 to 1e-3) and augmentation (flips, small rotations, zoom, contrast)."
        )
        out.append(
            "Freeze more of the backbone (train the head, then only the top blocks): fewer "
            "trainable weights overfit less on a small data set."
        )
    spikes = _spikes(val, epochs)
    rises = _train_rises(train, epochs)
    reasons = []
    if verdict == "overfitting" and best <= 1 and len(val) > 2:
        reasons.append(f"validation loss was lowest already at epoch {best_epoch}")
    if spikes:
        reasons.append(f"validation loss spiked at epoch(s) {', '.join(map(str, spikes))}")
    if rises:
        reasons.append(f"training loss rose at epoch(s) {', '.join(map(str, rises))}")
    if reasons and diverged is None:
        out.append(
            f"Lower the learning rate (3-10x, or decay it): {'; '.join(reasons)}. "
            "Fine-tuning a pretrained backbone wants small steps."
        )
    if verdict == "underfitting" and improvement is not None:
        out.append(
            f"Train longer: validation loss still fell {improvement:.1f}% per epoch over the last "
            f"{min(th.window, len(val) - 1)} epoch(s); the run ended while improving."
        )
        out.append(
            "If a longer run plateaus high, freeze fewer backbone layers (fine-tune more of it), "
            "lower dropout/L2, or raise the learning rate."
        )
    if verdict == "healthy" and not out:
        if len(val) < 3:
            out.append("Train for more epochs: too few to judge overfitting.")
        else:
            out.append(
                f"Nothing urgent: validation loss is lowest at epoch {best_epoch} with a modest "
                f"gap. Keep {best_epoch} epochs, and guard longer runs with "
                "EarlyStopping(restore_best_weights=True)."
            )
    return out
