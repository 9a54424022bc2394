"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
MOBILENET_H5 = FIXTURES / "mobilenetv2_160_stanford_dogs.h5"


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
