"""The bad-input corpus: every case exits 2 with one or two lines naming the file and setting,
no traceback, and nothing written to an existing study."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from overfit_search.cli import main
from tests.conftest import tiny_sweep

BAD_SWEEPS: list[tuple[str, str | dict[str, Any], list[str]]] = [
    ("yaml syntax", "name: x\ndata: a: b\n", ["line 2, column"]),
    ("non-mapping root", "- a\n- b\n", ["mapping"]),
    ("unknown key", tiny_sweep(serch={}), ["serch", "did you mean 'search'"]),
    ("nested unknown key", tiny_sweep(search={"dropuot": 0.1}), ["search.dropuot", "dropout"]),
    ("wrong type", tiny_sweep(train={"max_epochs": "ten"}), ["train.max_epochs"]),
    ("out of range", tiny_sweep(search={"dropout": {"low": 0.1, "high": 1.5}}), ["dropout.high"]),
    ("low > high", tiny_sweep(search={"l2": {"low": 0.1, "high": 0.01}}), ["search.l2", "low"]),
    (
        "log range low <= 0",
        tiny_sweep(search={"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}),
        ["search.learning_rate", "low > 0"],
    ),
    ("unknown backbone", tiny_sweep(model={"backbone": "mobilenet_v9"}), ["mobilenet_v2"]),
    ("unknown sampler", tiny_sweep(study={"sampler": "bayes"}), ["study.sampler", "tpe"]),
    ("unknown batchnorm", tiny_sweep(model={"batchnorm": "fixed"}), ["model.batchnorm", "frozen"]),
    ("unknown rule", tiny_sweep(pruning={"rule": {"name": "glx"}}), ["pruning.rule", "gl"]),
    (
        "invalid group regex",
        {"name": "g", "data": {"dir": "d", "group_pattern": "([a-z"}},
        ["data.group_pattern", "regular expression"],
    ),
    ("asha with pareto", tiny_sweep(objective={"mode": "pareto"}, study={"sampler": "nsga2"},
                                    pruning={"scheduler": {"name": "asha"}}), ["asha", "pareto"]),
    ("python tag never evaluated", "name: !!python/object/apply:os.system ['true']\n", ["yaml"]),
]  # fmt: skip


def _write(path: Path, doc: str | dict[str, Any]) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def _check(rc: int, err: str, fragments: list[str], name: str | None = None) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, err
    if name is not None:
        assert name in err, err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), (fragment, err)


@pytest.mark.parametrize(("case", "doc", "fragments"), BAD_SWEEPS, ids=[c[0] for c in BAD_SWEEPS])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_sweep_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    case: str,
    doc: str | dict[str, Any],
    fragments: list[str],
) -> None:
    path = _write(tmp_path / "bad.yaml", doc)
    extra = ["--output", str(tmp_path / "out"), "--no-progress"] if command == "run" else []
    rc = main([command, str(path), *extra])
    _check(rc, capsys.readouterr().err, fragments, "bad.yaml")
    assert not (tmp_path / "out" / "study.db").exists()


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / name / f"{i}.png")
    return root


LAYOUTS: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    ("missing data dir", lambda p: p / "nowhere", ["data.dir", "does not exist"]),
    ("empty class folder", lambda p: _classes(p / "d", {"a": 3, "b": 0}), ["holds no images"]),
    ("one class only", lambda p: _classes(p / "d", {"a": 3}), ["single class"]),
    ("no class folders", lambda p: _classes(p / "d", {}), ["no class folders"]),
]


@pytest.mark.parametrize(("case", "make", "fragments"), LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_bad_data_layouts_exit_2_and_leave_an_existing_study_alone(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    make: Callable[[Path], Path],
    fragments: list[str],
) -> None:
    (tmp_path / "d").mkdir()
    directory = make(tmp_path)
    doc = {"name": "layout", "data": {"source": "folder", "dir": str(directory)}}
    path = _write(tmp_path / "layout.yaml", doc)
    out = tmp_path / "out"
    out.mkdir()
    study = out / "study.db"
    import optuna

    optuna.create_study(study_name="layout", storage=f"sqlite:///{study}")
    before = hashlib.sha256(study.read_bytes()).hexdigest()
    rc = main(["run", str(path), "--output", str(out), "--no-progress", "--resume"])
    _check(rc, capsys.readouterr().err, fragments)
    assert hashlib.sha256(study.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("case", "setup", "fragments"),
    [
        ("output under a file", lambda p: ["--output", str(_file(p) / "out")], ["--output"]),
        (
            "storage that cannot connect",
            lambda p: ["--output", str(p / "out"), "--resume"],
            ["study.storage", "postgresql://u:***@"],
        ),
    ],
)
def test_bad_output_and_storage(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    setup: Callable[[Path], list[str]],
    fragments: list[str],
) -> None:
    doc = tiny_sweep(name="st")
    if "storage" in case:
        doc["study"] = {"storage": "postgresql://u:secret@127.0.0.1:1/nodb"}
    path = _write(tmp_path / "s.yaml", doc)
    rc = main(["run", str(path), "--no-progress", *setup(tmp_path)])
    err = capsys.readouterr().err
    _check(rc, err, fragments)
    assert "secret" not in err


def _file(tmp_path: Path) -> Path:
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    return target
