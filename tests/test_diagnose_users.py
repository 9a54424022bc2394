"""DESIGN §1's second user: ``overfit-search diagnose --emit-sweep`` on their own console log
(frozen TF-Hub MobileNetV2 feature vector, 5 hand signs, ImageDataGenerator with
validation_split=0.4, Adam, 5 epochs, Keras 2 progress bars) gives a sweep that validates.

``data/diagnose/asl_hub_tf2.log`` is written by hand in the format TF 2.x / Keras 2 prints when
its output is piped (one progress line per update, TensorFlow's start-up lines, the generators'
``Found n images`` lines, ``model.summary()``); its figures follow DESIGN §1's description."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overfit_search import diagnose as dg
from overfit_search.cli import main
from overfit_search.config import FloatRange, load_sweep

FIXTURES = Path(__file__).resolve().parent / "data" / "diagnose"
ASL_HUB = FIXTURES / "asl_hub_tf2.log"  # the console output of `python train.py | tee`
HUB_URL = "tfhub:https://tfhub.dev/google/tf2-preview/mobilenet_v2/feature_vector/4"


def test_the_asl_hub_log_is_diagnosed_and_its_emitted_sweep_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "next.yaml"
    assert main(["diagnose", str(ASL_HUB), "--emit-sweep", str(out)]) == 0
    report = capsys.readouterr().out
    assert f"{ASL_HUB}: Keras console log, 5 epoch(s) (1-5 of 5)" in report
    assert "Verdict: OVERFITTING" in report
    assert "best epoch         2  (val_loss 0.5712)" in report
    assert "wasted epochs      3  (epochs 3-5)" in report
    assert "images             1500 training, 1000 validation (40%), 5 classes" in report
    assert "1. Stop at epoch 2" in report
    assert "2. Check the split: training accuracy was 0.98 by epoch 2" in report
    assert f"Wrote {out}: set data.dir and model.backbone, then" in report

    assert main(["validate", str(out)]) == 0
    assert "data.dir" in capsys.readouterr().out  # noted: the placeholder does not exist
    text = out.read_text()
    assert "Set data.dir (now data/REPLACE_ME, or pass --data DIR) and model.backbone" in text
    sweep = load_sweep(out)
    assert sweep.name == "asl_hub_tf2"
    assert str(sweep.data.dir).endswith("data/REPLACE_ME")
    assert sweep.data.validation_fraction == 0.4  # the log's 1000 of 2500 images
    assert sweep.model.backbone == "mobilenet_v2"
    # the stopping: epochs about 2-3x the best epoch (2), the measured default stopping and
    # choice (bench/RESULTS.md, issues 18 and 19) written out
    assert sweep.train.max_epochs == 7  # max(2 x 2, 2 + 5)
    assert sweep.pruning.preset == "balanced" and sweep.pruning.rule.name == "peak"
    assert sweep.objective.mode == "val_loss"
    assert sweep.pruning.grace_epochs <= 2  # may stop right after the log's best epoch
    dropout, lr = sweep.search.dropout, sweep.search.learning_rate
    assert isinstance(dropout, FloatRange) and dropout.low >= 0.2  # more regularization
    assert isinstance(lr, FloatRange) and lr.high <= 1e-3  # at most Adam's default rate


def test_data_and_backbone_make_the_emitted_sweep_runnable_as_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "signs").mkdir()
    out = tmp_path / "next.yaml"
    argv = ["diagnose", str(ASL_HUB), "--emit-sweep", str(out), "--data", str(tmp_path / "signs")]
    assert main([*argv, "--backbone", HUB_URL]) == 0
    assert f"Wrote {out}: check it with `overfit-search validate {out}`" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0
    assert "does not exist" not in capsys.readouterr().out
    assert "REPLACE_ME" not in out.read_text()
    sweep = load_sweep(out)
    assert sweep.data.dir == tmp_path / "signs"
    assert sweep.model.backbone == HUB_URL
    assert sweep.search.frozen_fraction == 1.0  # a module is frozen all or nothing, as theirs was


def test_json_says_the_image_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(ASL_HUB), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["images"] == {"train": 1500, "validation": 1000, "classes": 5}
    assert (doc["best_epoch"], doc["verdict"]) == (2, "overfitting")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "imgs"], "--data and --backbone fill the sweep of --emit-sweep"),
        (["--emit-sweep", "{out}", "--backbone", "mobilenet_v9"], "unknown backbone"),
    ],
)
def test_bad_emit_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("{out}", str(tmp_path / "s.yaml")) for a in argv]
    assert main(["diagnose", str(ASL_HUB), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s.yaml").exists()


def _epochs(n: int) -> str:
    return "".join(
        f"Epoch {e}/{n}\n10/10 - 1s - loss: {1 / e:.3f} - val_loss: {0.9 + 0.01 * e:.3f}\n"
        for e in range(1, n + 1)
    )


@pytest.mark.parametrize(
    ("head", "images"),
    [
        # image_dataset_from_directory(validation_split=0.2, subset=...), Keras 3
        (
            "Found 2500 files belonging to 5 classes.\nUsing 2000 files for training.\n"
            "Found 2500 files belonging to 5 classes.\nUsing 500 files for validation.\n",
            {"train": 2000, "validation": 500, "classes": 5},
        ),
        # flow_from_directory on train/ then val/ (or one folder with validation_split)
        (
            "Found 180000 images belonging to 50 classes.\n"
            "Found 20000 images belonging to 50 classes.\n",
            {"train": 180000, "validation": 20000, "classes": 50},
        ),
        ("Found 600 images belonging to 5 classes.\n", {}),  # one generator: unknown split
        ("Found 80 images belonging to 2 classes.\n" * 3, {}),  # a test generator too: ambiguous
        ("Found 90 images belonging to 3 classes.\nFound 10 images belonging to 2 classes.\n", {}),
        ("", {}),
    ],
)
def test_image_counts_from_keras_directory_loaders(
    tmp_path: Path, head: str, images: dict[str, int]
) -> None:
    d = dg.diagnose(dg.parse_log(head + _epochs(4), "run.log"))
    assert d.images == images
    sweep = load_sweep(dg.write_sweep(d, tmp_path / "s.yaml"))
    fraction = images["validation"] / (images["train"] + images["validation"]) if images else 0.2
    assert sweep.data.validation_fraction == pytest.approx(fraction)


def test_split_check_names_the_printed_epoch_after_a_nan_epoch() -> None:
    nan = float("nan")
    history = {
        "loss": [nan, 0.30, 0.05, 0.03, 0.02],
        "accuracy": [nan, 0.90, 0.99, 0.995, 1.0],
        "val_loss": [nan, 0.60, 0.55, 0.60, 0.70],
        "val_accuracy": [nan, 0.78, 0.80, 0.80, 0.79],
    }
    d = dg.diagnose(dg.parse_log(json.dumps(history), "h.json"))
    split = [a for a in d.advice if a.startswith("Check the split")]
    assert split and "training accuracy was 0.99 by epoch 3" in split[0]  # not epoch 2
