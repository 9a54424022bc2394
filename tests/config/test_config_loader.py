from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from overfit_search.config import FloatRange, IntRange, load_sweep
from overfit_search.errors import ConfigError
from tests.conftest import tiny_sweep


def test_minimal_sweep_gets_defaults(write_sweep: Any) -> None:
    sweep = load_sweep(write_sweep(tiny_sweep()))
    assert sweep.name == "tiny"
    assert sweep.objective.mode == "val_loss"  # issue 19 (bench/selection.py)
    # issue 18: the balanced preset (peak rule + halving budget rule) is the default
    assert (sweep.pruning.preset, sweep.pruning.rule.name, sweep.pruning.budget.name) == (
        "balanced",
        "peak",
        "halving",
    )
    assert isinstance(sweep.search.frozen_fraction, FloatRange)
    assert sweep.search.active_knobs()[-1] == "frozen_fraction"


@pytest.mark.parametrize(
    ("sections", "fragment"),
    [
        (
            {"search": {"dropout": {"low": 0, "high": 1.5}}},
            r"search\.dropout\.high: must be <= 0\.99, got 1\.5",
        ),
        (
            {"search": {"dropuot": 0.3}},
            r"search\.dropuot: unknown setting; did you mean 'dropout'\?",
        ),
        (
            {"resources": {"ray_address": "ray://head:10001"}},
            r"resources\.ray_address: Ray Client \(ray://\) is not supported",
        ),
        (
            {"search": {"l2": {"low": 0, "high": 0.1, "log": True}}},
            r"search\.l2: a log range needs low > 0",
        ),
        (
            {"search": {"learning_rate": {"low": 0.1, "high": 0.01}}},
            r"search\.learning_rate: low must be <= high",
        ),
        ({"search": {"dropout": "lots"}}, r"search\.dropout: .*got 'lots'"),
        (
            {"search": {"frozen_fraction": 0.5, "frozen_layers": 10}},
            r"search: give frozen_fraction or frozen_layers, not both",
        ),
        (
            {"resources": {"gpus_per_trial": 1.5}},
            r"resources\.gpus_per_trial: above 1 must be a whole number of GPUs.*got 1\.5",
        ),
        (
            {"resources": {"gpus_per_trial": 4}, "train": {"batch_size": 30}},
            r"train\.batch_size: 30 does not split evenly over the 4 GPUs",
        ),
        (
            {"train": {"max_epochs": 4, "head_epochs": {"low": 1, "high": 5}}},
            r"train\.head_epochs: must be at most train\.max_epochs \(4\)",
        ),
        (
            {"model": {"backbone": "resnet9000"}},
            r"model\.backbone: unknown backbone 'resnet9000'.*mobilenet_v2",
        ),
        (
            {"model": {"backbone": "builtin:nope"}},
            r"model\.backbone: unknown builtin backbone 'nope'.*digits_cnn",
        ),
        ({"study": {"sampler": "bayes"}}, r"study\.sampler: .*got 'bayes'"),
        (
            {"pruning": {"rule": {"name": "gl", "alpha": -1}}},
            r"pruning\.rule\.alpha: .*greater than 0, got -1",
        ),
        (
            {"pruning": {"rule": {"name": "magic"}}},
            r"pruning\.rule: .*'gl', 'pq', 'up', 'gap', 'none'",
        ),
        (
            {"objective": {"mode": "pareto"}, "pruning": {"scheduler": {"name": "asha"}}},
            r"pruning\.scheduler: ASHA .* 'pareto'",
        ),
        ({"data": {"source": "folder"}}, r"data\.dir: required when source is 'folder'"),
        (
            {"data": {"source": "digits", "group_pattern": "("}},
            r"data\.group_pattern: .*not a valid regular expression",
        ),
        ({"train": {"max_epochs": 0}}, r"train\.max_epochs: .*greater than or equal to 1, got 0"),
        (
            {"search": {"baseline": {"momentum": 0.9}}},
            r"search\.baseline: unknown knob\(s\) momentum; choose from .*finetune_lr_factor, "
            r"frozen_fraction, head_epochs",
        ),
        (
            {"search": {"baseline": {"head_epochs": 1.5}}},
            r"search\.baseline: head_epochs must be a whole number >= 0, got 1\.5",
        ),
        (
            {"search": {"baseline": {"finetune_lr_factor": 0}}},
            r"search\.baseline: finetune_lr_factor must be > 0, got 0",
        ),
        (
            {"train": {"max_epochs": 3}, "search": {"baseline": {"head_epochs": 4}}},
            r"search\.baseline: head_epochs must be at most train\.max_epochs \(3\), got 4",
        ),
        (
            {"model": {"backbone": "tfhub:/m"}, "search": {"frozen_layers": {"low": 1, "high": 5}}},
            r"frozen all or nothing",
        ),
    ],
)
def test_bad_settings_name_file_and_path(
    write_sweep: Any, sections: dict[str, Any], fragment: str
) -> None:
    path = write_sweep(tiny_sweep(**sections))
    with pytest.raises(ConfigError, match=fragment) as info:
        load_sweep(path)
    assert str(info.value).startswith(str(path))
    assert len(str(info.value).splitlines()) <= 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\ndata: [1, 2\n", r"not valid YAML at line \d+, column \d+"),
        ("- a\n- b\n", r"must be a mapping of sections, found a list"),
        ("", r"found an empty file"),
        ("data: {source: digits}\n", r"name: required setting is missing"),
    ],
)
def test_bad_files(write_sweep: Any, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_sweep(write_sweep(text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such sweep file"):
        load_sweep(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_cwd(
    write_sweep: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(
        write_sweep(
            {
                "name": "x",
                "data": {"source": "folder", "dir": "imgs"},
                "model": {"backbone": "file:m.keras#inner"},
            }
        )
    )
    assert sweep.data.dir == tmp_path / "imgs"
    assert sweep.model.backbone == f"file:{tmp_path / 'm.keras'}#inner"


def test_overrides_apply_before_validation(write_sweep: Any) -> None:
    sweep = load_sweep(write_sweep(tiny_sweep()), {"study.trials": 3, "train.max_epochs": 2})
    assert (sweep.study.trials, sweep.train.max_epochs) == (3, 2)
    with pytest.raises(ConfigError, match=r"study\.trials"):
        load_sweep(write_sweep(tiny_sweep()), {"study.trials": 0})


def test_frozen_layers_int_range(write_sweep: Any) -> None:
    sweep = load_sweep(write_sweep(tiny_sweep(search={"frozen_layers": {"low": 2, "high": 9}})))
    assert isinstance(sweep.search.frozen_layers, IntRange)
    assert sweep.search.frozen_fraction is None
    assert sweep.search.active_knobs()[-1] == "frozen_layers"


@pytest.mark.parametrize("name", ["demo.yaml", "asl.yaml", "deepfashion.yaml"])
def test_shipped_sweeps_validate(name: str) -> None:
    sweep = load_sweep(Path(__file__).resolve().parents[2] / "sweeps" / name)
    assert sweep.name == name.removesuffix(".yaml")
