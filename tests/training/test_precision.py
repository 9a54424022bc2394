"""train.mixed_precision: the dtype policy, the float32 head, loss scaling, and a real trial."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import pytest

from overfit_search.data import load_data
from overfit_search.training import precision
from overfit_search.training.trial import run_trial
from tests.training.test_two_phase import PARAMS, _sweep


@pytest.mark.parametrize(
    ("setting", "gpu", "expected"),
    [
        (False, True, "float32"),
        ("float16", False, "mixed_float16"),
        ("bfloat16", True, "mixed_bfloat16"),
        (True, True, "mixed_float16"),  # GPUs: float16 with loss scaling
        (True, False, "mixed_bfloat16"),  # CPUs (and TPUs) compute bfloat16 natively
    ],
)
def test_policy_name(
    monkeypatch: pytest.MonkeyPatch, setting: bool | str, gpu: bool, expected: str
) -> None:
    monkeypatch.setattr(precision, "accelerator_present", lambda: gpu)
    assert precision.policy_name(setting) == expected


def test_the_previous_policy_comes_back_even_after_an_error() -> None:
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(RuntimeError, match="boom"), precision.dtype_policy("bfloat16") as name:
        assert name == keras.config.dtype_policy().name == "mixed_bfloat16"
        raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize(
    ("setting", "compute", "scaled"),
    [("bfloat16", "bfloat16", False), ("float16", "float16", True)],
)
def test_a_mixed_trial_trains_with_a_float32_head(
    tmp_path: Path, setting: str, compute: str, scaled: bool
) -> None:
    sweep = _sweep(head_epochs=0, max_epochs=2)
    sweep.train.mixed_precision = setting  # type: ignore[assignment]
    rows: list[dict[str, Any]] = []
    model = run_trial(sweep, PARAMS, load_data(sweep.data), rows.append, tmp_path, seed=1)

    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["val_loss"]) and math.isfinite(r["train_eval_loss"]) for r in rows)
    conv = next(
        layer
        for layer in model.get_layer("digits_cnn").layers
        if isinstance(layer, keras.layers.Conv2D)
    )
    assert conv.compute_dtype == compute
    assert conv.kernel.dtype == "float32"  # variables stay float32
    assert model.get_layer("classes").compute_dtype == "float32"
    assert model.outputs[0].dtype == "float32"  # softmax and the loss in float32
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is scaled
    assert f"dtype policy mixed_{setting}" in (tmp_path / "trial.log").read_text()
    assert keras.config.dtype_policy().name == "float32"  # nothing leaks into the process
