"""Property: no mutation of a valid sweep file makes `validate` raise a traceback."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overfit_search.cli import main

VALID: dict[str, Any] = {
    "name": "fuzz",
    "data": {"source": "digits", "image_size": 32, "validation_fraction": 0.3},
    "model": {"backbone": "builtin:digits_cnn", "head": {"hidden_units": 0}},
    "train": {"batch_size": 16, "max_epochs": 5},
    "search": {
        "dropout": {"low": 0.0, "high": 0.5},
        "l2": {"low": 1e-6, "high": 1e-2, "log": True},
        "learning_rate": 0.001,
        "baseline": {"dropout": 0.1},
    },
    "objective": {"mode": "constrained", "max_gap": 0.1},
    "pruning": {"rule": {"name": "gl", "alpha": 5}, "scheduler": {"name": "none"}},
    "study": {"trials": 4, "sampler": "tpe"},
    "resources": {"cpus_per_trial": 1},
}

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["auto", "asha", "pareto", "nsga2", "file:", "tfhub:", "builtin:x", "-1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(doc: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc) if isinstance(doc, dict) else []
        if not paths or draw(st.integers(0, 19)) == 0:
            return draw(VALUES)  # the whole document replaced
        *parents, leaf = draw(st.sampled_from(paths))
        node = doc
        for key in parents:
            node = node[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            node[leaf] = draw(VALUES)
        elif action == "delete":
            del node[leaf]
        elif isinstance(node.get(leaf), dict):
            node[leaf][draw(st.text(max_size=8))] = draw(VALUES)
    return doc


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=mutated())
def test_mutated_sweeps_never_raise_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    rc = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert rc in (0, 2), err
    assert "Traceback" not in err
    if rc == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) <= 2 and lines[0].startswith("error: "), err
