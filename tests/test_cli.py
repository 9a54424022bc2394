from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from overfit_search.cli import main
from tests.conftest import tiny_sweep

ROOT = Path(__file__).resolve().parents[1]


def test_import_help_and_validate_load_neither_tensorflow_nor_ray() -> None:
    code = (
        "import sys\n"
        "from overfit_search.cli import main\n"
        "import overfit_search\n"
        f"assert main(['validate', {str(ROOT / 'sweeps' / 'demo.yaml')!r}]) == 0\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'ray', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)


HEAVY = {
    "numpy", "pandas", "PIL", "optuna", "ray", "keras", "tensorflow", "jax", "sklearn",
    "scipy", "matplotlib", "plotly", "pyarrow", "torch",
}  # fmt: skip
COMMANDS = ("run", "validate", "best", "report", "dashboard", "retrain", "export", "confirm",
            "diagnose", "check-data", "check-model")  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["validate", "sweeps/demo.yaml"], *([c, "--help"] for c in COMMANDS)],
    ids=lambda argv: " ".join(argv),
)
def test_help_and_validate_import_no_heavy_module(argv: list[str]) -> None:
    """`overfit-search --help` and `validate` stay fast: the command as run, with Python's own
    record of every module it imported (-X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "overfit_search", *argv],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "overfit_search.cli" in imported  # the record is there: the check can fail
    loaded = sorted({name.split(".")[0] for name in imported} & HEAVY)
    assert not loaded, f"{' '.join(argv)} imported {loaded}"
    if argv == ["validate", "sweeps/demo.yaml"]:
        assert "ok (study 'demo'" in done.stdout


def test_validate_ok(write_sweep: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write_sweep(tiny_sweep()))]) == 0
    assert "ok (study 'tiny'" in capsys.readouterr().out


def test_validate_bad_file_exits_2_with_one_line(
    write_sweep: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep(tiny_sweep(search={"dropout": {"low": 0, "high": 1.5}}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: search.dropout.high: must be <= 0.99, got 1.5"


def test_run_without_data_exits_2_naming_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    rc = main(
        [
            "run",
            str(ROOT / "sweeps" / "asl.yaml"),
            "--output",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert f"data.dir: directory {tmp_path / 'data' / 'asl'} does not exist" in err
    assert "one sub-folder per class" in err
    assert "Traceback" not in err


def test_resume_and_overwrite_together_is_an_input_error(
    write_sweep: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "run",
            str(write_sweep(tiny_sweep())),
            "--output",
            str(tmp_path / "o"),
            "--resume",
            "--overwrite",
            "--no-progress",
        ]
    )
    assert rc == 2
    assert "--resume and --overwrite" in capsys.readouterr().err


def test_best_on_a_non_results_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["best", str(tmp_path)]) == 2
    assert "not a results directory" in capsys.readouterr().err


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(
    tmp_path: Path, write_sweep: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from overfit_search.orchestration.runner import LOCK_FILE, _output_lock

    sweep = write_sweep(tiny_sweep(model={"backbone": "builtin:digits_cnn"}))
    out = tmp_path / "out"
    with _output_lock(out):
        assert f"pid {os.getpid()}" in (out / LOCK_FILE).read_text()
        rc = main(["run", str(sweep), "--output", str(out), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "another overfit-search run is writing here" in err and f"pid {os.getpid()}" in err
    assert not (out / "study.db").exists()  # nothing was touched
    with _output_lock(out):  # released: the next run may take it
        pass
