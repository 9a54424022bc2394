"""``overfit-search diagnose``: parsers, analysis, verdicts, the suggested sweep, the CLI."""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from overfit_search import diagnose as dg
from overfit_search.config import FloatRange, load_sweep
from overfit_search.errors import ConfigError, OverfitSearchError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "data" / "diagnose"
VERBOSE1 = FIXTURES / "keras3_verbose1.log"  # real Keras 3 model.fit(verbose=1), 8 epochs
VERBOSE2 = FIXTURES / "keras3_verbose2_callbacks.log"  # verbose=2, EarlyStopping at 7
CSVLOGGER = FIXTURES / "keras3_csvlogger.csv"  # CSVLogger of the verbose=2 run
HISTORY = FIXTURES / "keras3_history.json"  # history.history of the verbose=2 run

# The example line, TF2 style.
TF2_EXAMPLE = (
    "Epoch 3/20 120/120 [==============================] - 41s 342ms/step - loss: 0.4120 - "
    "accuracy: 0.8700 - val_loss: 0.6031 - val_accuracy: 0.8010"
)

OVERFIT = (
    [1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08],
    [1.0, 0.8, 0.7, 0.68, 0.72, 0.78, 0.85, 0.93],
)
LARGE_GAP = ([0.5, 0.2, 0.1, 0.05, 0.04, 0.03], [1.0, 0.9, 0.85, 0.84, 0.835, 0.834])
UNDERFIT = ([2.0, 1.8, 1.6, 1.45, 1.3, 1.2], [2.1, 1.9, 1.75, 1.6, 1.48, 1.38])
HEALTHY = ([1.0, 0.6, 0.45, 0.40, 0.38, 0.37, 0.365], [1.0, 0.7, 0.6, 0.58, 0.575, 0.573, 0.572])


# ------------------------------------------------------------------------------------ helpers


def tf2_log(
    loss: Sequence[float],
    val_loss: Sequence[float],
    *,
    start: int = 1,
    total: int | None = None,
    same_line: bool = False,
    extra: bool = False,
) -> str:
    """A TF2-style console log (``Epoch n/N`` then the progress line, or on the same line)."""
    total = total or start + len(loss) - 1
    out = []
    for i, (tr, va) in enumerate(zip(loss, val_loss, strict=True)):
        header = f"Epoch {start + i}/{total}"
        more = " - top_5_accuracy: 0.9900 - my_f1: 0.7000" if extra else ""
        line = (
            f"120/120 [==============================] - 41s 342ms/step - loss: {tr:.4f} - "
            f"accuracy: 0.8700{more} - val_loss: {va:.4f} - val_accuracy: 0.8010"
        )
        if same_line:
            out.append(f"{header} {line}")
        else:
            out += [
                header,
                "  7/120 [>.............................] - ETA: 1:02 - loss: 9.9",
                line,
            ]
    return "\n".join(out) + "\n"


def history_log(loss: Sequence[float], val_loss: Sequence[float]) -> dg.TrainingLog:
    """A parsed History JSON from two curves."""
    text = json.dumps({"loss": list(loss), "val_loss": list(val_loss)})
    return dg.parse_history_json(text, "curve.json")


def cli(argv: list[str]) -> int:
    """What the lead's main() does: a parser with the subcommand, errors mapped to exit codes."""
    parser = argparse.ArgumentParser(prog="overfit-search")
    sub = parser.add_subparsers(dest="command", required=True)
    dg.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except OverfitSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


# ------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize(
    ("path", "fmt", "epochs", "best", "gl_last", "total"),
    [
        (VERBOSE1, "keras-console", list(range(1, 9)), 4, 42.2, 8),
        (VERBOSE2, "keras-console", list(range(1, 8)), 4, 11.6, 8),
        (CSVLOGGER, "csv", list(range(1, 8)), 4, 11.6, None),
        (HISTORY, "history-json", list(range(1, 8)), 4, 11.6, None),
    ],
)
def test_real_keras3_fixtures(
    path: Path, fmt: str, epochs: list[int], best: int, gl_last: float, total: int | None
) -> None:
    log = dg.read_log(path)
    assert log.format == fmt
    assert log.epochs == epochs
    assert log.total_epochs == total
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "top1", "val_top1"} <= set(log.metrics)
    d = dg.diagnose(log)
    assert d.best_epoch == best
    assert d.best_val_loss == pytest.approx(0.4952, abs=1e-4)
    assert d.gl_last == pytest.approx(gl_last, abs=0.1)
    assert d.onset_epoch == best
    assert d.overfitting is True
    assert d.verdict == "overfitting"
    assert d.advice[0].startswith(f"Stop at epoch {best}")


def test_real_verbose1_progress_segments_do_not_leak_into_epochs() -> None:
    # Each epoch prints a "1/5" segment with training metrics only, erased with \b and \r,
    # then the "5/5" segment with validation metrics: the latter is the epoch.
    log = dg.read_log(VERBOSE1)
    assert log.metrics["loss"][0] == pytest.approx(0.7206)
    assert log.metrics["val_loss"] == pytest.approx(
        [0.6207, 0.5690, 0.5507, 0.4952, 0.5036, 0.5779, 0.6369, 0.7042]
    )


def test_console_csv_and_json_of_one_run_agree() -> None:
    console, table, history = (dg.diagnose(dg.read_log(p)) for p in (VERBOSE2, CSVLOGGER, HISTORY))
    for other in (table, history):
        assert other.epochs == console.epochs
        assert other.val_loss == pytest.approx(console.val_loss, abs=1e-4)
        assert other.verdict == console.verdict
        assert other.gap_at_best == pytest.approx(console.gap_at_best, abs=1e-4)
    assert console.learning_rate == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("text", "epochs", "val_loss"),
    [
        (TF2_EXAMPLE, [3], [0.6031]),
        (tf2_log([0.5, 0.41], [0.7, 0.6031]), [1, 2], [0.7, 0.6031]),
        (tf2_log([0.5, 0.41], [0.7, 0.6031], same_line=True), [1, 2], [0.7, 0.6031]),
        (
            "Found 600 images belonging to 5 classes.\n\n"
            + "\n".join(
                "    " + ln for ln in tf2_log([0.5, 0.4], [0.7, 0.6], extra=True).split("\n")
            )
            + "\n\nSaved model to asl.h5\n",
            [1, 2],
            [0.7, 0.6],
        ),
        (  # verbose=2 in TF2: timings as metrics-free fields at the end
            "Epoch 1/2\n120/120 - 41s - loss: 0.5000 - val_loss: 0.7000 - 41s/epoch - 342ms/step\n"
            "Epoch 2/2\n120/120 - 40s - loss: 0.4000 - val_loss: 0.6000 - 40s/epoch - 335ms/step\n",
            [1, 2],
            [0.7, 0.6],
        ),
        (  # Keras 3, metrics in any order, scientific notation, colours, one epoch per line
            "Epoch 1/2\n\x1b[1m120/120\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m "
            "\x1b[1m41s\x1b[0m 342ms/step - val_loss: 0.7000 - accuracy: 0.8 - loss: 0.5000 - "
            "val_accuracy: 0.7 - learning_rate: 1.0000e-04\n"
            "Epoch 2/2\n120/120 ━━━━━━━━━━━━━━━━━━━━ 40s 335ms/step - loss: 0.4000 - "
            "top_k_categorical_accuracy: 0.9 - val_accuracy: 0.8 - val_loss: 0.6000\n",
            [1, 2],
            [0.7, 0.6],
        ),
        (  # Windows line ends, callbacks' messages between epochs
            "Epoch 1/3\r\n5/5 - 1s - loss: 0.5 - val_loss: 0.7\r\n\r\n"
            "Epoch 1: val_loss improved from inf to 0.70000, saving model to best.keras\r\n"
            "Epoch 2/3\r\n5/5 - 0s - loss: 0.4 - val_loss: 0.6\r\n"
            "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.0005.\r\n"
            "Epoch 3/3\r\n5/5 - 0s - loss: 0.3 - val_loss: 0.65\r\n"
            "Epoch 3: early stopping\r\n"
            "Restoring model weights from the end of the best epoch: 2.\r\n",
            [1, 2, 3],
            [0.7, 0.6, 0.65],
        ),
    ],
    ids=[
        "issue-example",
        "tf2-next-line",
        "tf2-same-line",
        "text-around",
        "tf2-v2",
        "keras3",
        "crlf",
    ],
)
def test_console_styles(text: str, epochs: list[int], val_loss: list[float]) -> None:
    log = dg.parse_log(text, "train.log")
    assert log.format == "keras-console"
    assert log.epochs == epochs
    assert log.metrics["val_loss"] == pytest.approx(val_loss)


def test_console_keeps_extra_metrics() -> None:
    log = dg.parse_log(tf2_log([0.5, 0.4], [0.7, 0.6], extra=True), "train.log")
    assert log.metrics["top_5_accuracy"] == [0.99, 0.99]
    assert log.metrics["my_f1"] == [0.7, 0.7]
    assert "ETA" not in log.metrics


def test_log_starting_mid_run_keeps_printed_epoch_numbers() -> None:
    partial = (
        "  37/120 [=====>........................] - ETA: 30s - loss: 0.3100 - accuracy: 0.9\n"
    )
    text = partial + tf2_log([0.30, 0.25, 0.20, 0.16], [0.50, 0.48, 0.55, 0.60], start=12, total=30)
    d = dg.diagnose(dg.parse_log(text, "tail.log"))
    assert d.epochs == [12, 13, 14, 15]
    assert d.total_epochs == 30
    assert d.best_epoch == 13
    assert d.onset_epoch == 13
    assert d.wasted_epochs == 2
    assert any("partial epoch" in n for n in d.notes)


def test_second_run_in_one_log_replaces_the_first() -> None:
    text = tf2_log([0.5, 0.4, 0.3], [0.7, 0.6, 0.5]) + tf2_log([0.9, 0.8], [1.0, 0.95])
    log = dg.parse_log(text, "two.log")
    assert log.epochs == [1, 2]
    assert log.metrics["val_loss"] == [1.0, 0.95]
    assert any("2 training runs" in n for n in log.notes)


@pytest.mark.parametrize(
    ("cut_after", "epochs"),
    [
        ("- val_accuracy: 0.8375 - val_lo", list(range(1, 8))),  # epoch 8 cut before val_loss
        ("Epoch 8/8\n", list(range(1, 8))),  # the log ends at the header
        ("- loss: 0.0114 - top1: 1.0000", list(range(1, 8))),  # only epoch 8's first segment
        ("val_loss: 0.70", list(range(1, 9))),  # cut inside the last number: kept as printed
    ],
)
def test_truncated_last_epoch_of_real_log(cut_after: str, epochs: list[int]) -> None:
    text = VERBOSE1.read_text(encoding="utf-8")
    end = text.rindex(cut_after) + len(cut_after)
    log = dg.parse_log(text[:end], "cut.log")
    assert log.epochs == epochs
    if len(epochs) == 7:
        assert any("Epoch 8 is incomplete" in n for n in log.notes)


def test_csv_truncated_last_row_is_left_out() -> None:
    text = CSVLOGGER.read_text()
    cut = text[: text.rindex("\n6,") + len("\n6,1.0,0.0024")]
    log = dg.parse_log(cut, "cut.csv")
    assert log.epochs == list(range(1, 7))
    assert any("Line 8 is incomplete" in n for n in log.notes)


def test_csv_bad_row_before_the_last_is_an_error() -> None:
    text = "epoch,loss,val_loss\n0,0.5,0.7\n1,oops,0.6\n2,0.3,0.5\n"
    with pytest.raises(ConfigError, match=r"bad\.csv: line 3: not a row of numbers"):
        dg.parse_log(text, "bad.csv")


@pytest.mark.parametrize(
    ("text", "epochs", "val_loss", "clean"),
    [
        ("epoch,loss,val_loss\n0,0.5,0.7\n1,0.4,NA\n", [1, 2], [0.7, math.nan], False),
        ("epoch;val_loss;loss\n4;0.7;0.5\n5;0.6;0.4\n", [5, 6], [0.7, 0.6], False),
        ("loss,val_loss\n0.5,0.7\n0.4,0.6\n", [1, 2], [0.7, 0.6], False),
        (  # a trial's history.csv from `overfit-search run`: epochs from 1, clean losses
            "epoch,val_loss,train_eval_loss,gap,val_accuracy,train_eval_accuracy,keras_loss,"
            "keras_val_loss,keras_accuracy,epoch_seconds\n"
            "1,0.7,0.5,0.2,0.8,0.9,0.6,0.75,0.85,3.1\n2,0.6,0.4,0.2,0.82,0.92,0.5,0.65,0.88,3.0\n",
            [1, 2],
            [0.7, 0.6],
            True,
        ),
    ],
)
def test_csv_variants(text: str, epochs: list[int], val_loss: list[float], clean: bool) -> None:
    log = dg.parse_log(text, "h.csv")
    assert log.format == "csv"
    assert log.epochs == epochs
    assert log.metrics["val_loss"] == pytest.approx(val_loss, nan_ok=True)
    assert log.clean_train_loss is clean
    caveat = dg.diagnose(log).caveat
    assert (
        ("clean train_eval_loss" in caveat) if clean else ("includes the regularization" in caveat)
    )


@pytest.mark.parametrize(
    ("text", "epochs", "val_loss"),
    [
        ('{"loss": [0.5, 0.4], "val_loss": [0.7, 0.6]}', [1, 2], [0.7, 0.6]),
        ('{"loss": [0.5, NaN], "val_loss": [0.7, null]}', [1, 2], [0.7, math.nan]),
        (
            '{"history": {"loss": [0.5, 0.4], "val_loss": [0.7, 0.6]}, "epoch": [9, 10]}',
            [10, 11],
            [0.7, 0.6],
        ),
        ('\ufeff  {"val_loss": [0.7], "loss": [0.5], "lr": [0.001, 0.0005]}', [1], [0.7]),
    ],
)
def test_history_json_variants(text: str, epochs: list[int], val_loss: list[float]) -> None:
    log = dg.parse_log(text, "h.json")
    assert log.format == "history-json"
    assert log.epochs == epochs
    assert log.metrics["val_loss"] == pytest.approx(val_loss, nan_ok=True)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"x\.log: empty file; understood formats: Keras console output"),
        (
            "Hello world\nthis is not a log\n",
            r"x\.log: not a training log .*CSVLogger.*History JSON",
        ),
        ("name: asl\ndata: {source: folder}\n", r"not a training log this command understands"),
        ('{"loss": [0.5, 0.4], "val_loss": [0.7', r"looks like JSON but does not parse \(line 1"),
        ('[{"loss": 0.5}]', r"JSON but not a History mapping of lists; understood formats"),
        ('{"loss": [0.5, 0.4], "val_loss": [0.7]}', r"loss has 2 values but val_loss 1"),
        ('{"loss": ["a"], "val_loss": [0.7]}', r"loss: expected a list of numbers"),
        ("epoch,trial,loss,val_loss\n1,0,0.5,0.7\n", r"several trials"),
        ("Epoch 1/3\nEpoch 2/3\n", r"`Epoch n/N` lines found but no losses"),
    ],
)
def test_unrecognised_input_is_a_config_error(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        dg.parse_log(text, "x.log")
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "text",
    [
        "Epoch 1/2\n5/5 - 1s - loss: 0.5 - accuracy: 0.8\nEpoch 2/2\n5/5 - 1s - loss: 0.4\n",
        "epoch,loss,accuracy\n0,0.5,0.8\n",
        '{"loss": [0.5], "accuracy": [0.8]}',
    ],
    ids=["console", "csv", "json"],
)
def test_no_validation_metrics_is_a_clear_error(text: str) -> None:
    with pytest.raises(
        ConfigError, match=r"no validation metrics \(val_loss\).*found: .*loss.*validation_data"
    ):
        dg.parse_log(text, "noval")


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.log: no such file"):
        dg.read_log(tmp_path / "nope.log")
    binary = tmp_path / "model.h5"
    binary.write_bytes(b"\x89HDF\r\n\x1a\n\0\0\0")
    with pytest.raises(ConfigError, match=r"model\.h5: a binary file.*understood formats"):
        dg.read_log(binary)


# ------------------------------------------------------------------------------------ analysis


@pytest.mark.parametrize(
    ("curves", "verdict", "best", "onset"),
    [
        (OVERFIT, "overfitting", 4, 4),
        (LARGE_GAP, "large_gap", 6, None),
        (UNDERFIT, "underfitting", 6, None),
        (HEALTHY, "healthy", 7, None),
    ],
)
def test_verdict_table(
    curves: tuple[list[float], list[float]], verdict: str, best: int, onset: int | None
) -> None:
    d = dg.diagnose(history_log(*curves))
    assert (d.verdict, d.best_epoch, d.onset_epoch) == (verdict, best, onset)
    assert d.overfitting is (verdict == "overfitting")
    assert d.advice


@pytest.mark.parametrize(
    ("curves", "thresholds", "verdict"),
    [
        (OVERFIT, {"gl_alpha": 40.0}, "healthy"),  # GL 36.8% < 40; gap 0.33 < 0.5 * 0.68
        (OVERFIT, {"gl_alpha": 40.0, "gap_ratio": 0.45}, "large_gap"),
        (LARGE_GAP, {"gap_ratio": 1.0}, "healthy"),
        (UNDERFIT, {"improve_pct": 10.0}, "healthy"),
        (HEALTHY, {"improve_pct": 0.01, "window": 1}, "underfitting"),
        (OVERFIT, {"min_rise_epochs": 5, "gap_ratio": 0.45}, "large_gap"),  # 4 after the best
    ],
)
def test_thresholds_move_the_verdict(
    curves: tuple[list[float], list[float]], thresholds: dict[str, Any], verdict: str
) -> None:
    d = dg.diagnose(history_log(*curves), dg.Thresholds(**thresholds))
    assert d.verdict == verdict


@pytest.mark.parametrize(
    ("loss", "val_loss", "onset", "overfitting"),
    [
        (OVERFIT[0], OVERFIT[1], 4, True),
        (  # a spike that recovers to new lows: no onset, lower-LR advice
            [1, 0.8, 0.6, 0.5, 0.45, 0.4, 0.38, 0.36],
            [1.0, 0.8, 0.6, 1.2, 0.62, 0.58, 0.57, 0.565],
            None,
            False,
        ),
        ([1, 0.8, 0.6, 0.5, 0.45, 0.4], [1.0, 0.8, 0.6, 0.55, 1.1, 0.57], None, False),
        ([1, 0.8, 0.6, 0.7, 0.9, 1.1], [1, 0.8, 0.6, 0.7, 0.9, 1.1], None, False),  # both rise
        ([1, 0.8, 0.6, 0.5], [1, 0.8, 0.6, 0.9], None, False),  # one epoch after the best
        ([1, 0.8, 0.6, 0.5, 0.4, 0.3], [1, 0.8, 0.6, 0.605, 0.61, 0.615], 3, False),  # GL 2.5%
        ([1, 0.8, 0.6, 0.5, 0.4, 0.3], [1, 0.8, 0.6, 0.6, 0.6, 0.6], None, False),  # plateau
    ],
    ids=["classic", "recovering-spike", "late-spike", "both-rise", "short", "small-gl", "flat"],
)
def test_onset_detection(
    loss: list[float], val_loss: list[float], onset: int | None, overfitting: bool
) -> None:
    d = dg.diagnose(history_log(loss, val_loss))
    assert d.onset_epoch == onset
    assert d.overfitting is overfitting


@pytest.mark.parametrize(
    ("val_loss", "gl"),
    [([1.0, 0.8, 0.9], 12.5), ([0.5, 0.4, 0.3], 0.0), ([0.5, 0.6], 20.0), ([0.4], 0.0)],
)
def test_gl_at_last_epoch(val_loss: list[float], gl: float) -> None:
    d = dg.diagnose(history_log([0.1] * len(val_loss), val_loss))
    assert d.gl_last == pytest.approx(gl)


def test_gaps_and_wasted_epochs() -> None:
    d = dg.diagnose(history_log(*OVERFIT))
    assert d.gap_at_best == pytest.approx(0.68 - 0.35)
    assert d.gap_last == pytest.approx(0.93 - 0.08)
    assert (d.wasted_epochs, d.last_epoch) == (4, 8)


def test_recovering_spike_advises_a_lower_learning_rate() -> None:
    d = dg.diagnose(
        history_log(
            [1, 0.8, 0.6, 0.5, 0.45, 0.4, 0.38, 0.36],
            [1.0, 0.8, 0.6, 1.2, 0.575, 0.574, 0.573, 0.572],
        )
    )
    assert (d.verdict, d.best_epoch, d.onset_epoch) == ("healthy", 8, None)
    assert any(
        a.startswith("Lower the learning rate") and "spiked at epoch(s) 4" in a for a in d.advice
    )


def test_one_epoch() -> None:
    d = dg.diagnose(history_log([0.5], [0.6]))
    assert (d.best_epoch, d.onset_epoch, d.gl_last, d.verdict) == (1, None, 0.0, "healthy")
    assert d.val_improvement_pct is None
    assert any("Only 1 epoch" in n for n in d.notes)
    assert d.advice == ["Train for more epochs: too few to judge overfitting."]


def test_nan_in_the_middle_is_left_out() -> None:
    d = dg.diagnose(history_log([1.0, 0.8, math.nan, 0.5, 0.4], [1.0, 0.9, 0.85, 0.8, 0.9]))
    assert d.nonfinite_epochs == [3]
    assert d.diverged_epoch is None
    assert d.best_epoch == 4
    assert d.to_json_dict()["loss"][2] is None


def test_nan_at_the_end_is_divergence() -> None:
    d = dg.diagnose(
        history_log([1.0, 0.8, 0.6, math.nan, math.nan], [1.0, 0.9, 0.8, math.inf, math.nan])
    )
    assert (d.diverged_epoch, d.nonfinite_epochs, d.last_epoch) == (4, [4, 5], 3)
    assert d.advice[0].startswith("Training diverged at epoch 4")
    json.dumps(d.to_json_dict(), allow_nan=False)


def test_all_nan_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"every epoch's loss or val_loss is NaN"):
        dg.diagnose(history_log([math.nan, math.nan], [math.nan, math.nan]))


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match=r"window must be >= 1, got 0"):
        dg.Thresholds(window=0)
    with pytest.raises(ValueError, match=r"gl_alpha must be a finite number >= 0"):
        dg.Thresholds(gl_alpha=-1.0)


# ------------------------------------------------------------------------------ realistic logs


def mobilenet_sgd_log() -> str:
    """DESIGN §1, case 1: MobileNet + attention, 50 classes, SGD, ~1 h per epoch, 30 epochs;
    val loss lowest at epoch 10, then climbing while training loss keeps falling."""
    lines = [
        "Found 180000 images belonging to 50 classes.",
        "Found 20000 images belonging to 50 classes.",
    ]
    for e in range(1, 31):
        loss = 3.2 * math.exp(-e / 7) + 0.15
        val = 1.25 + 0.004 * (e - 10) ** 2 + 0.002 * math.sin(3 * e)
        acc = 1 - loss / 4
        lines += [
            f"Epoch {e}/30",
            f"2813/2813 [==============================] - 3412s 1s/step - loss: {loss:.4f} - "
            f"accuracy: {acc:.4f} - top_k_categorical_accuracy: {min(1.0, acc + 0.2):.4f} - "
            f"val_loss: {val:.4f} - val_accuracy: {0.9 - val / 5:.4f} - "
            f"val_top_k_categorical_accuracy: 0.8900",
        ]
        if e <= 10:
            lines.append(f"Epoch {e}: val_loss improved, saving model to ckpt.h5")
    return "\n".join(lines) + "\n"


def hand_signs_log() -> str:
    """DESIGN §1, case 2: frozen TF-Hub MobileNetV2, 5 hand signs, validation_split=0.4, Adam,
    Keras 3 style; training accuracy ~1.0 by epoch 2 while validation accuracy stalls at 0.8."""
    rows = [
        (0.5520, 0.8200, 0.6200, 0.7900),
        (0.0610, 0.9850, 0.5800, 0.8000),
        (0.0210, 0.9950, 0.6100, 0.8000),
        (0.0110, 0.9980, 0.6600, 0.8100),
        (0.0070, 1.0000, 0.7000, 0.8000),
        (0.0050, 1.0000, 0.7350, 0.8000),
        (0.0040, 1.0000, 0.7700, 0.7950),
        (0.0030, 1.0000, 0.8000, 0.8000),
        (0.0025, 1.0000, 0.8300, 0.8000),
        (0.0020, 1.0000, 0.8500, 0.8000),
    ]
    lines = [
        "Found 1500 images belonging to 5 classes.",
        "Found 1000 images belonging to 5 classes.",
    ]
    for e, (loss, acc, val, val_acc) in enumerate(rows, 1):
        lines += [
            f"Epoch {e}/10",
            "\x1b[1m47/47\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m "
            "\x1b[1m38s\x1b[0m "
            f"805ms/step - accuracy: {acc:.4f} - loss: {loss:.4f} - val_accuracy: {val_acc:.4f} - "
            f"val_loss: {val:.4f}",
        ]
    return "\n".join(lines) + "\nSaved asl.keras\n"


def test_realistic_mobilenet_sgd_run() -> None:
    d = dg.diagnose(dg.parse_log(mobilenet_sgd_log(), "deepfashion.log"))
    assert d.epochs == list(range(1, 31))
    assert (d.best_epoch, d.onset_epoch, d.wasted_epochs, d.verdict) == (10, 10, 20, "overfitting")
    assert d.gl_last == pytest.approx(100 * (d.val_loss[-1] / d.best_val_loss - 1))
    assert d.gl_last > 100
    assert d.advice[0].startswith("Stop at epoch 10")
    assert not any("Check the split" in a for a in d.advice)
    assert "top_k_categorical_accuracy" in d.metrics


def test_realistic_hand_signs_run_suspects_the_split() -> None:
    d = dg.diagnose(dg.parse_log(hand_signs_log(), "asl.log"))
    assert (d.best_epoch, d.onset_epoch, d.verdict) == (2, 2, "overfitting")
    assert d.advice[0].startswith("Stop at epoch 2")
    assert d.advice[1].startswith("Check the split: training accuracy was 0.98 by epoch 2")
    lower = [a for a in d.advice if a.startswith("Lower the learning rate")]
    assert lower and "lowest already at epoch 2" in lower[0]


def test_report_mentions_the_figures() -> None:
    d = dg.diagnose(dg.read_log(VERBOSE1))
    report = dg.render_report(d)
    assert "Verdict: OVERFITTING" in report
    assert "best epoch         4  (val_loss 0.4952)" in report
    assert "GL at last epoch   42.2%" in report
    assert "wasted epochs      4  (epochs 5-8)" in report
    assert "1. Stop at epoch 4" in report
    assert "Caveat: Keras's logged training loss includes the regularization penalty" in report


# ------------------------------------------------------------------------------ emitted sweep


@pytest.mark.parametrize("curves", [OVERFIT, LARGE_GAP, UNDERFIT, HEALTHY])
def test_emitted_sweep_validates(tmp_path: Path, curves: tuple[list[float], list[float]]) -> None:
    d = dg.diagnose(history_log(*curves))
    out = dg.write_sweep(d, tmp_path / "sub" / "suggested.yaml")
    sweep = load_sweep(out)
    assert sweep.name == "curve"
    assert sweep.data.source == "folder"
    assert str(sweep.data.dir).endswith("data/REPLACE_ME")
    assert out.read_text().startswith("# Suggested by `overfit-search diagnose curve.json`")


def test_emitted_sweep_ranges_follow_the_log(tmp_path: Path) -> None:
    over = load_sweep(dg.write_sweep(dg.diagnose(dg.read_log(VERBOSE2)), tmp_path / "o.yaml"))
    under = load_sweep(dg.write_sweep(dg.diagnose(history_log(*UNDERFIT)), tmp_path / "u.yaml"))
    assert over.name == "keras3_verbose2_callbacks"
    lr, over_dropout, under_dropout = (
        over.search.learning_rate,
        over.search.dropout,
        under.search.dropout,
    )
    assert isinstance(lr, FloatRange)
    assert isinstance(over_dropout, FloatRange)
    assert isinstance(under_dropout, FloatRange)
    assert lr.low == pytest.approx(0.00033)  # the log's rate, searched downwards
    assert lr.high == pytest.approx(0.01)
    assert lr.log
    assert over_dropout.low >= 0.2
    assert under_dropout.high <= 0.3
    assert over.train.max_epochs == 9  # best epoch 4: max(2 * 4, 4 + 5)
    assert under.train.max_epochs == 12  # 2 x the 6 epochs run


def test_emitted_sweep_does_not_overwrite_without_force(tmp_path: Path) -> None:
    d = dg.diagnose(history_log(*HEALTHY))
    out = tmp_path / "s.yaml"
    out.write_text("keep me")
    with pytest.raises(ConfigError, match=r"s\.yaml: already exists; pass --force"):
        dg.write_sweep(d, out)
    assert out.read_text() == "keep me"
    dg.write_sweep(d, out, force=True)
    assert load_sweep(out).name == "curve"


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("training.log", "training"),
        ("runs/my run (2).txt", "my-run-2"),
        ("-", "diagnosed"),
        ("<stdin>", "diagnosed"),
        ("___.log", "diagnosed"),
        ("history.csv", "history"),
    ],
)
def test_sweep_name(source: str, name: str) -> None:
    assert dg.sweep_name(source) == name


# ------------------------------------------------------------------------------ command line


def test_run_json_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "next.yaml"
    assert cli(["diagnose", str(VERBOSE1), "--json", "--emit-sweep", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    required = {
        "epochs",
        "best_epoch",
        "best_val_loss",
        "overfitting",
        "onset_epoch",
        "gl_last",
        "gap_at_best",
        "gap_last",
        "verdict",
        "advice",
    }
    assert required <= set(doc)
    assert doc["epochs"] == list(range(1, 9))
    assert (doc["best_epoch"], doc["onset_epoch"], doc["overfitting"]) == (4, 4, True)
    assert doc["verdict"] == "overfitting"
    assert doc["gl_last"] == pytest.approx(42.2, abs=0.1)
    assert doc["sweep_file"] == str(out)
    assert load_sweep(out).name == "keras3_verbose1"


def test_run_report_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(tf2_log(*UNDERFIT)))
    assert cli(["diagnose", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<stdin>: Keras console log, 6 epoch(s) (1-6 of 6)")
    assert "Verdict: UNDERFITTING" in out
    assert "Train longer" in out


def test_run_threshold_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["diagnose", str(VERBOSE1), "--json", "--gl-threshold", "50"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["verdict"], doc["overfitting"], doc["onset_epoch"]) == ("large_gap", False, 4)
    assert doc["thresholds"]["gl_alpha"] == 50.0


def test_run_unknown_format_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("nothing to see\n")
    assert cli(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: not a training log")
    assert "understood formats" in err


@pytest.mark.parametrize(
    "argv", [["--window", "0"], ["--gl-threshold", "x"], ["--gap-ratio", "-1"]]
)
def test_run_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli(["diagnose", str(VERBOSE1), *argv])
    assert info.value.code == 2
    assert "diagnose: error: argument" in capsys.readouterr().err


def test_help_states_the_verdict_rules(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli(["diagnose", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for needle in ("overfitting", "large_gap", "underfitting", "healthy", "--gl-threshold", "GL"):
        assert needle in out
    assert out.index("overfitting   there is an onset") < out.index("large_gap     the gap")
    assert out.index("large_gap     the gap") < out.index("underfitting  validation loss")


def test_diagnose_imports_no_heavy_framework() -> None:
    code = (
        "import sys\nimport overfit_search.diagnose\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'ray', 'optuna', 'jax') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
