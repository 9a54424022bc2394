"""augment_flip auto: do mirror images keep their class? (decision table and real digits)"""

from __future__ import annotations

import numpy as np
import pytest

from overfit_search.models.flips import MIN_DROP, flip_verdict, probe_hits


def _pairs(n: int, acc: float, mirrored: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hits = rng.random(n) < acc
    m = rng.random(n) < mirrored
    return hits, m


@pytest.mark.parametrize(
    ("n", "acc", "mirrored", "flip"),
    [
        (400, 0.96, 0.42, False),  # digits: a mirrored 2 is not a 2
        (400, 0.90, 0.90, True),  # symmetric classes
        (400, 0.90, 0.89, True),  # a small drop is noise
        (20, 0.90, 0.60, True),  # too few images to tell: keep the default (flips on)
    ],
)
def test_the_verdict_needs_a_clear_and_significant_drop(
    n: int, acc: float, mirrored: float, flip: bool
) -> None:
    hits = np.zeros(n, dtype=bool)
    hits[: round(acc * n)] = True
    mirror = np.zeros(n, dtype=bool)
    mirror[: round(mirrored * n)] = True
    verdict = flip_verdict(hits, mirror)
    assert verdict.flip is flip
    assert verdict.images == n
    assert f"→ {str(flip).lower()}" in verdict.sentence()


def test_identical_hits_keep_flips() -> None:
    hits, _ = _pairs(100, 0.8, 0.8)
    verdict = flip_verdict(hits, hits)
    assert verdict.flip and verdict.p_value == 1.0
    assert verdict.accuracy - verdict.mirrored_accuracy < MIN_DROP


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        flip_verdict(np.ones(3, dtype=bool), np.ones(4, dtype=bool))


def test_on_real_digits_flips_are_off_and_on_symmetric_stripes_kept() -> None:
    """Raw pixels as features: a mirrored digit is misread; mirror-symmetric patterns are not."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = x.reshape(-1, 8, 8)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    tr, va = order[:600], order[600:1000]
    flat = images.reshape(len(images), -1)
    mirrored = images[:, :, ::-1].reshape(len(images), -1)
    hits, mhits = probe_hits(flat[tr], y[tr], flat[va], mirrored[va], y[va])
    assert not flip_verdict(hits, mhits).flip

    # Two classes of horizontal stripes (mirror-symmetric): mirroring keeps the class.
    labels = rng.integers(0, 2, 1000)
    rows = np.where(labels[:, None] == 0, np.arange(8) % 2, np.arange(8) // 4)[:, :, None]
    stripes = np.broadcast_to(rows, (1000, 8, 8)) + rng.normal(0, 0.3, (1000, 8, 8))
    flat = stripes.reshape(1000, -1)
    mirrored = stripes[:, :, ::-1].reshape(1000, -1)
    hits, mhits = probe_hits(flat[:600], labels[:600], flat[600:], mirrored[600:], labels[600:])
    verdict = flip_verdict(hits, mhits)
    assert verdict.flip and verdict.accuracy > 0.9
