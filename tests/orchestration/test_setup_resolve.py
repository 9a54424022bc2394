"""resolve_setup's decisions, with the probe's answer canned (no Ray, no Keras): the choice
goes into the sweep, a failed check stops unless forced, --resume reuses the stored choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from overfit_search.config import Sweep, sweep_from_dict
from overfit_search.data.dataset import ImageData
from overfit_search.errors import ConfigError
from overfit_search.models.probe import ProbeResult, ProbeRow, binomial_sf
from overfit_search.orchestration import setup_check
from tests.conftest import tiny_sweep


def _data() -> ImageData:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    y = np.repeat(np.arange(2, dtype=np.int32), 20)
    split = pd.DataFrame({"file": [], "label": [], "subset": [], "group": []})
    return ImageData(x[:20], y[::2].copy(), x[20:], y[1::2].copy(), ["a", "b"], split)


def _sweep(**model: Any) -> Sweep:
    return sweep_from_dict(tiny_sweep(model={"backbone": "file:/nowhere.keras", **model}))


def _answer(accuracies: dict[str, float], chosen: str, n: int = 200) -> dict[str, Any]:
    rows = [
        ProbeRow(c, 1.0 - a, a, binomial_sf(round(a * n), n, 0.5)) for c, a in accuracies.items()
    ]
    result = ProbeResult(rows, chosen, "probe", 2, 200, n, 0.5, 0.01 / len(rows), seconds=1.5)
    return {"result": result.to_dict()}


class FakeProbe:
    """Stands in for the Ray task: hands back queued answers, records the calls."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.calls: list[Sweep] = []

    def append(self, answer: dict[str, Any]) -> None:
        self.answers.append(answer)

    def __call__(self, sweep: Sweep, data: ImageData) -> tuple[dict[str, Any] | None, bool]:
        self.calls.append(sweep)
        return self.answers.pop(0), False


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> FakeProbe:
    fake = FakeProbe()
    monkeypatch.setattr(setup_check, "_run_probe", fake)
    return fake


def test_the_probe_choice_goes_into_the_sweep(tmp_path: Path, probe: FakeProbe) -> None:
    probe.append(_answer({"none": 0.6, "unit": 0.95, "tf": 0.9}, "unit"))
    sweep, result, started = setup_check.resolve_setup(
        _sweep(), _data(), tmp_path, resume=False, force=False
    )
    assert sweep.model.preprocess == "unit" and result is not None and result.passed
    assert not started
    check = json.loads((tmp_path / setup_check.CHECK_FILE).read_text())
    assert check["chosen"] == "unit" and check["seconds"] == 1.5 and "wall_seconds" in check
    assert setup_check.study_attr(result)["probe_seconds"] == 1.5


def test_a_failed_check_stops_unless_forced(tmp_path: Path, probe: FakeProbe) -> None:
    chance = {"none": 0.5, "unit": 0.52, "tf": 0.49}
    probe.append(_answer(chance, "unit"))
    with pytest.raises(ConfigError, match=r"setup check: .*none 0\.50, unit 0\.52, tf 0\.49"):
        setup_check.resolve_setup(_sweep(), _data(), tmp_path, resume=False, force=False)
    probe.append(_answer(chance, "unit"))
    sweep, result, _ = setup_check.resolve_setup(
        _sweep(), _data(), tmp_path, resume=False, force=True
    )
    assert result is not None and not result.passed and sweep.model.preprocess == "unit"


def test_a_backbone_that_cannot_be_built_is_a_config_error(
    tmp_path: Path, probe: FakeProbe
) -> None:
    probe.append({"config_error": "model.backbone: no model file at /nowhere.keras"})
    with pytest.raises(ConfigError, match="no model file"):
        setup_check.resolve_setup(_sweep(), _data(), tmp_path, resume=False, force=False)


def test_resume_reuses_the_stored_choice_and_probes_nothing(
    tmp_path: Path, probe: FakeProbe
) -> None:
    stored = _sweep(preprocess="caffe").model_dump(mode="json")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(stored))
    sweep, result, _ = setup_check.resolve_setup(
        _sweep(), _data(), tmp_path, resume=True, force=False
    )
    assert sweep.model.preprocess == "caffe" and result is None
    assert probe.calls == []
    # an explicit setting in the sweep file wins over the stored one
    sweep, _, _ = setup_check.resolve_setup(
        _sweep(preprocess="tf"), _data(), tmp_path, resume=True, force=False
    )
    assert sweep.model.preprocess == "tf"
