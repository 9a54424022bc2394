"""bench/live.py: its policies are valid sweeps; its summary pools sweeps against no stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from overfit_search.config import load_sweep
from tests.conftest import load_bench

live = load_bench("live")
SETUPS = ("ov-59-hilr", "ov-59", "lo-all10")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ov-59-hilr-none-seed1", ("ov-59-hilr", "none", 1)),
        ("ov-59-asha", ("ov-59", "asha", None)),
        ("lo-all10-gl-asha-seed12", ("lo-all10", "gl-asha", 12)),
        ("demo-default", ("demo", "default", None)),
    ],
)
def test_parse_name_takes_the_longest_setup(name: str, expected: tuple[Any, ...]) -> None:
    assert live.parse_name(name, SETUPS) == expected


def test_parse_name_refuses_a_foreign_name() -> None:
    with pytest.raises(ValueError, match="not a live sweep name"):
        live.parse_name("asha", SETUPS)


@pytest.mark.parametrize("policy", sorted(live.POLICIES))
def test_every_policy_is_a_valid_sweep(policy: str, tmp_path: Path) -> None:
    doc = yaml.safe_load((live.ROOT / "sweeps" / "demo.yaml").read_text())
    pruning = {**doc["pruning"], **live.POLICIES[policy]}
    doc["pruning"] = {k: v for k, v in pruning.items() if v is not None}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    sweep = load_sweep(path)
    if policy == "rf3":
        assert sweep.pruning.budget.reduction_factor == 3.0  # type: ignore[union-attr]
        assert sweep.pruning.rule.name == "peak"


def _stand_in(overrides: dict[str, Any]) -> dict[str, Any]:
    """Resolves the backbone placeholder to a file name, without rebuilding anything."""
    from _record_selection import MOBILENET_PREFIX

    if str(overrides.get("model.backbone", "")).startswith(MOBILENET_PREFIX):
        return {**overrides, "model.backbone": "file:/m32.keras"}
    return overrides


def test_a_mobilenet_setup_gets_the_rebuilt_backbone_and_its_own_overrides() -> None:
    doc = live.sweep_doc("default", 6, "mn2-all10", 3, resolve=_stand_in)
    assert doc["model"]["backbone"] == "file:/m32.keras"
    assert doc["data"]["validation_fraction"] == 0.6
    assert doc["search"]["learning_rate"] == {"low": 2.0e-5, "high": 1.0e-3, "log": True}
    assert (doc["study"]["trials"], doc["study"]["seed"]) == (6, 3)
    assert doc["name"] == "mn2-all10-default-seed3"


def test_a_setup_without_placeholders_never_rebuilds_or_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import _photos
    import _record

    def refuse(*args: Any) -> None:
        raise AssertionError("made a backbone or photo set the setup does not use")

    monkeypatch.setattr(_record, "rebuild_mobilenet", refuse)
    monkeypatch.setattr(_photos, "write_photo_set", refuse)
    demo = yaml.safe_load((live.ROOT / "sweeps" / "demo.yaml").read_text())
    doc = live.sweep_doc("none", 4, "lo-679")
    assert doc["model"]["backbone"] == demo["model"]["backbone"]
    assert doc["pruning"]["rule"] == {"name": "none"}
    assert doc["name"] == "lo-679-none"


def _sweep(root: Path, setup: str, policy: str, seed: int, epochs: list[int], best: float) -> None:
    name = f"{setup}-{policy}-seed{seed}"
    doc = {"study": {"trials": len(epochs), "seed": seed}, "train": {"max_epochs": 10}}
    (root / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    (root / name).mkdir()
    states = ["COMPLETE"] * len(epochs)
    losses = [best + i for i in range(len(epochs))]
    pd.DataFrame({"state": states, "epochs_run": epochs, "best_val_loss": losses}).to_csv(
        root / name / "trials.csv", index=False
    )


def test_summary_pairs_each_sweep_with_no_stopping_of_its_setup_and_seed(tmp_path: Path) -> None:
    for seed, none_best in ((0, 1.0), (1, 2.0)):
        _sweep(tmp_path, "ov-59", "none", seed, [10, 10], none_best)
    _sweep(tmp_path, "ov-59", "fast", 0, [2, 3], 1.0)  # 0.25 of the epochs, same best
    _sweep(tmp_path, "ov-59", "fast", 1, [5, 5], 2.2)  # 0.5, 10 % worse
    _sweep(tmp_path, "lo-all10", "fast", 0, [1, 1], 9.0)  # no reference sweep: left out
    summary = live.summarize(live.collect([tmp_path], SETUPS))
    (row,) = summary.to_dict("records")
    assert row["policy"] == "fast"
    assert row["sweeps"] == 2
    assert row["fraction"] == pytest.approx(0.375)
    assert row["ratio"] == pytest.approx(1.05)
    assert row["within_1pct"] == pytest.approx(0.5)
    assert row["worst_ratio"] == pytest.approx(1.1)


def test_paired_scores_are_differences_on_the_same_setup_and_seed(tmp_path: Path) -> None:
    for seed in (0, 1):
        _sweep(tmp_path, "ov-59", "none", seed, [10, 10], 1.0)
        _sweep(tmp_path, "ov-59", "default", seed, [5, 5], 1.0)  # score 0.5 both seeds
    _sweep(tmp_path, "ov-59", "fast", 0, [2, 2], 1.1)  # 0.2 + 5 x 0.1 = 0.7: +0.2
    _sweep(tmp_path, "ov-59", "fast", 1, [2, 2], 1.0)  # 0.2: -0.3
    sweeps = live.collect([tmp_path], SETUPS)
    (row,) = live.paired(sweeps, "default").to_dict("records")
    assert (row["policy"], row["pairs"]) == ("fast", 2)
    assert row["diff"] == pytest.approx(-0.05)
    assert row["se"] == pytest.approx(0.25)
    png = live.plot_live(sweeps, tmp_path / "live.png")
    assert png.stat().st_size > 1000


def test_collect_refuses_two_sweeps_of_one_setup_seed_and_policy(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root).mkdir()
        _sweep(tmp_path / root, "ov-59", "none", 0, [10], 1.0)
    with pytest.raises(ValueError, match="two sweeps of ov-59, seed 0, policy none"):
        live.collect([tmp_path / "a", tmp_path / "b"], SETUPS)
