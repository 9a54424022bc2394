"""The probe: ``preprocess: auto`` finds a backbone's input convention, and the setup check
tells a backbone whose features separate the classes from one whose features cannot."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from overfit_search.config.schema import DataConfig, ModelConfig
from overfit_search.data import load_data
from overfit_search.data.dataset import ImageData
from overfit_search.models.catalog import PREPROCESS_CONVENTIONS
from overfit_search.models.probe import (
    ProbeResult,
    binomial_sf,
    probe_backbone,
    probe_sample,
)
from tests.conftest import MOBILENET_H5
from tests.models.convention_models import (
    SIZE,
    features_are_constant,
)


@pytest.fixture(scope="module")
def models(convention_backbone: Callable[[str], Path]) -> dict[str, Path]:
    """Tiny backbones pretrained under each convention (made once for the session)."""
    return {c: convention_backbone(c) for c in ("unit", "tf", "rescaling", "dead")}


@pytest.fixture(scope="module")
def digits() -> ImageData:
    """Digits 5-9 (the pretrained ones saw 0-4) at 16 px, a 30% validation split."""
    cfg = DataConfig(
        source="digits", digits_classes=[5, 6, 7, 8, 9], image_size=SIZE, validation_fraction=0.3
    )
    return load_data(cfg)


def _probe(path: Path, data: ImageData, **kwargs: object) -> ProbeResult:
    cfg = ModelConfig(backbone=f"file:{path}", **kwargs)  # type: ignore[arg-type]
    return probe_backbone(cfg, SIZE, probe_sample(data, 0), data.num_classes)


@pytest.mark.parametrize("convention", ["unit", "tf"])
def test_auto_finds_the_convention_a_file_model_was_trained_under(
    models: dict[str, Path], digits: ImageData, convention: str
) -> None:
    result = _probe(models[convention], digits)
    print(f"\n{convention} model ({result.seconds:.1f}s):\n{result.table()}")
    assert result.decided_by == "probe"
    assert [r.convention for r in result.rows] == list(PREPROCESS_CONVENTIONS)
    assert result.chosen == convention
    assert result.passed and result.ok
    assert result.best.val_accuracy > 0.7  # 5 classes: chance is 0.2


def test_a_model_with_its_own_rescaling_layer_gets_raw_pixels_without_a_probe(
    models: dict[str, Path], digits: ImageData
) -> None:
    result = _probe(models["rescaling"], digits)
    assert result.decided_by == "rescaling"
    assert [r.convention for r in result.rows] == ["none"]
    assert result.chosen == "none" and result.ok
    # and the probe, asked to compare, agrees: raw pixels are what it was trained on
    cfg = ModelConfig(backbone=f"file:{models['rescaling']}")
    forced = probe_backbone(
        cfg, SIZE, probe_sample(digits, 0), digits.num_classes, PREPROCESS_CONVENTIONS
    )
    print(f"\nrescaling model, all conventions:\n{forced.table()}")
    assert forced.chosen == "none"


def test_an_explicit_preprocess_is_the_only_one_tried(
    models: dict[str, Path], digits: ImageData
) -> None:
    result = _probe(models["tf"], digits, preprocess="tf")
    assert result.decided_by == "sweep" and [r.convention for r in result.rows] == ["tf"]


def test_a_backbone_with_constant_features_fails_the_setup_check(
    models: dict[str, Path], digits: ImageData
) -> None:
    assert features_are_constant(models["dead"])
    result = _probe(models["dead"], digits)
    assert result.conclusive and not result.ok and not result.passed
    assert all(r.val_accuracy <= result.chance + 1e-9 for r in result.rows)
    verdict = result.verdict()
    assert "do not separate the classes" in verdict
    for convention in PREPROCESS_CONVENTIONS:
        assert f"{convention} 0." in verdict  # every convention tried, with its accuracy


def test_rescaling_is_found_through_nested_models_and_passthrough_layers() -> None:
    import keras

    from overfit_search.models.backbones import rescales_inputs

    inner_in = keras.Input((8, 8, 3))
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(2, 3)]
    )
    outer_in = keras.Input((8, 8, 3))
    x = keras.layers.Resizing(8, 8)(outer_in)
    nested = keras.Model(outer_in, inner(x))
    assert rescales_inputs(nested)
    assert rescales_inputs(keras.Model(inner_in, keras.layers.Normalization(axis=-1)(inner_in)))
    plain = keras.Model(inner_in, keras.layers.Conv2D(2, 3)(inner_in))
    assert not rescales_inputs(plain)
    late = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.Rescaling(2.0)]
    )
    assert not rescales_inputs(late)  # only the input path counts


def test_binomial_tail_matches_the_direct_sum() -> None:
    for n, p in ((10, 0.5), (50, 0.2), (200, 0.1)):
        for k in (0, 1, n // 3, n // 2, n):
            direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
            assert binomial_sf(k, n, p) == pytest.approx(direct, rel=1e-9, abs=1e-300)
    assert binomial_sf(6, 6, 0.5) == pytest.approx(1 / 64)


def test_six_validation_images_are_inconclusive_and_do_not_fail() -> None:
    from overfit_search.models.probe import ProbeRow

    result = ProbeResult(
        [ProbeRow("tf", 0.7, 0.5, binomial_sf(3, 6, 0.5))], "tf", "probe", 2, 12, 6, 0.5, 0.01
    )
    assert not result.conclusive and not result.ok and result.passed
    assert result.verdict().startswith("inconclusive")
    assert ProbeResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


def test_the_sample_is_seeded_and_capped_per_class(digits: ImageData) -> None:
    a = probe_sample(digits, 3)
    b = probe_sample(digits, 3)
    c = probe_sample(digits, 4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert np.bincount(a[1]).max() <= 40 and np.bincount(a[3]).max() <= 40
    assert len(a[1]) == 5 * 40 and set(a[3].tolist()) == set(range(5))


@pytest.mark.slow
@pytest.mark.skipif(not MOBILENET_H5.is_file(), reason=f"the fixture {MOBILENET_H5} is absent")
def test_the_pretrained_mobilenet_v2_fixture_is_probed_as_tf() -> None:
    cfg = DataConfig(
        source="digits", digits_classes=[5, 6, 7, 8, 9], image_size=32, validation_fraction=0.3
    )
    data = load_data(cfg)
    x_tr, y_tr, x_va, y_va = probe_sample(data, 0)
    keep_tr = np.concatenate([np.flatnonzero(y_tr == c)[:16] for c in range(5)])
    keep_va = np.concatenate([np.flatnonzero(y_va == c)[:16] for c in range(5)])
    sample = (x_tr[keep_tr], y_tr[keep_tr], x_va[keep_va], y_va[keep_va])
    model = ModelConfig(backbone=f"file:{MOBILENET_H5}#mobilenetv2_1.00_160")
    result = probe_backbone(model, 32, sample, 5)
    print(f"\nMobileNetV2 fixture ({result.seconds:.1f}s):\n{result.table()}")
    assert result.decided_by == "probe"
    assert result.chosen == "tf"
    assert result.ok
