"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
MOBILENET_H5 = FIXTURES / "mobilenetv2_160_stanford_dogs.h5"
BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` (not a package) as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def write_sweep(tmp_path: Path) -> Any:
    """Write a sweep mapping (or raw text) to a YAML file and return its path."""

    def _write(doc: dict[str, Any] | str, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        path.write_text(text)
        return path

    return _write


def tiny_sweep(**sections: Any) -> dict[str, Any]:
    """A minimal valid sweep mapping on the digits source, with sections replaced."""
    doc: dict[str, Any] = {"name": "tiny", "data": {"source": "digits"}}
    doc.update(sections)
    return doc


def digits_sweep(name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small real sweep (3 digits at 16 px, 10 training images each, the builtin backbone,
    two trials at a time) for end-to-end tests; each given section updates the default one."""
    doc: dict[str, Any] = {
        "name": name,
        "data": {
            "source": "digits",
            "digits_classes": [5, 6, 7],
            "image_size": 16,
            "validation_fraction": 0.3,
            "train_per_class": 10,
        },
        "model": {"backbone": "builtin:digits_cnn"},
        "train": {"batch_size": 16, "max_epochs": 6, "augment_flip": False},
        "search": {
            "dropout": {"low": 0.0, "high": 0.5},
            "l2": {"low": 1e-6, "high": 1e-2, "log": True},
            "learning_rate": {"low": 1e-3, "high": 5e-2, "log": True},
            "augmentation": 0.0,
            "frozen_fraction": {"low": 0.0, "high": 1.0},
        },
        "objective": {"mode": "constrained", "max_gap": 0.2},
        "study": {"trials": 5, "n_startup_trials": 5, "seed": 1},
        "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
    }
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc


def fixture_digits_sweep(
    name: str, backbone: str, validation_fraction: float, **sections: dict[str, Any]
) -> dict[str, Any]:
    """Digits 5-9 at 32 px (20 training images each) on ``backbone``, usually the pretrained
    fixture (``file:{MOBILENET_H5}#mobilenetv2_1.00_160``, resized up to 160 px); each given
    section updates the default one."""
    doc: dict[str, Any] = {
        "name": name,
        "data": {
            "source": "digits",
            "image_size": 32,
            "digits_classes": [5, 6, 7, 8, 9],
            "train_per_class": 20,
            "validation_fraction": validation_fraction,
        },
        "model": {"backbone": backbone},
        "train": {"augment_flip": False},
    }
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc
