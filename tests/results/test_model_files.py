"""``--output`` / ``--format`` rules of retrain and export (no Keras work, no sweep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from overfit_search.cli import main
from overfit_search.errors import ConfigError
from overfit_search.results.model_files import check_output, model_format, sidecars


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("m.keras", None, "keras"),
        ("m.tflite", None, "tflite"),
        ("served", None, "savedmodel"),
        ("m.keras", "keras", "keras"),
        ("m.tflite", "tflite", "tflite"),
        ("served.v1", "savedmodel", "savedmodel"),
    ],
)
def test_the_format_comes_from_the_flag_or_the_suffix(
    tmp_path: Path, name: str, fmt: str | None, expected: str
) -> None:
    assert model_format(tmp_path / name, fmt) == expected


def test_an_existing_directory_is_a_savedmodel(tmp_path: Path) -> None:
    (tmp_path / "dir.v2").mkdir()
    assert model_format(tmp_path / "dir.v2", None) == "savedmodel"


@pytest.mark.parametrize(
    ("name", "fmt", "match"),
    [
        ("m.h5", None, r"must end in \.keras or \.tflite, or be a directory"),
        ("m.keras", "tflite", r"must end in \.tflite for --format tflite"),
        ("m.tflite", "keras", r"must end in \.keras for --format keras"),
        ("m.keras", "savedmodel", "writes a directory"),
    ],
)
def test_a_suffix_that_contradicts_the_format_is_refused(
    tmp_path: Path, name: str, fmt: str | None, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        model_format(tmp_path / name, fmt)


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_tensorflow_only_formats_are_refused_under_another_backend(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / ("m.tflite" if fmt == "tflite" else "m")
    with pytest.raises(ConfigError, match=f"--format {fmt}: needs the TensorFlow backend"):
        check_output(path, fmt, False, "jax")
    assert check_output(path, fmt, False, "tensorflow") == fmt
    assert check_output(tmp_path / "m.keras", None, False, "jax") == "keras"


def test_force_replaces_only_a_savedmodel_directory(tmp_path: Path) -> None:
    target = tmp_path / "served"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists; pass --force"):
        check_output(target, None, False, "tensorflow")
    with pytest.raises(ConfigError, match=r"no saved_model\.pb"):
        check_output(target, None, True, "tensorflow")
    (target / "saved_model.pb").write_bytes(b"")
    assert check_output(target, None, True, "tensorflow") == "savedmodel"
    (tmp_path / "m.keras").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        check_output(tmp_path / "m.keras", None, True, None)


def test_labels_and_metrics_sit_beside_the_model() -> None:
    assert sidecars(Path("out/m.tflite")) == (Path("out/m.labels.txt"), Path("out/m.metrics.json"))
    assert sidecars(Path("out/served")) == (
        Path("out/served.labels.txt"),
        Path("out/served.metrics.json"),
    )


@pytest.mark.parametrize("command", ["retrain", "export"])
def test_cli_refuses_a_contradicting_output_with_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # tmp_path is no results directory: the output is checked first, so its error wins
    rc = main([command, str(tmp_path), "--output", str(tmp_path / "m.keras"), "--format", "tflite"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: --output: {tmp_path / 'm.keras'} must end in .tflite for --format tflite"
    ]
