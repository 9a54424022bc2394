"""Models written by ``retrain`` and ``export`` load without overfit-search (issue 16).

Each model is loaded in a subprocess that cannot import ``overfit_search`` (the package is
installed editable, so a ``sys.meta_path`` finder refuses it; the subprocess first proves the
import fails) and its predictions are compared with the trial's best-epoch weights as the tool
itself loads them in-process (:func:`~overfit_search.training.final.load_trial_weights`).

Tolerances: keras and SavedModel run the same float32 kernels: 1e-5 on the probabilities.
TFLite runs its own float32 kernels (XNNPACK's convolutions and its softmax sum in another
order), so its probabilities differ by float32 rounding accumulated through the network:
:data:`TFLITE_ATOL` is 1e-4: measured 7.2e-7 on the digits CNN and 1.8e-6 (3.3e-9 with a
smaller validation split) on the MobileNetV2 fixture, so 50 times the largest, and still far
below what a wrong graph (preprocessing missing, weights not loaded) would give.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overfit_search.cli import main
from overfit_search.config import load_sweep
from tests.conftest import MOBILENET_H5, fixture_digits_sweep

pytestmark = pytest.mark.slow

ATOL = 1e-5
TFLITE_ATOL = 1e-4

BLOCK_PACKAGE = """
import sys


class _NoOverfitSearch:
    def find_spec(self, name, path=None, target=None):
        if name == "overfit_search" or name.startswith("overfit_search."):
            raise ImportError(f"{name} is blocked: the model must load without it")
        return None


sys.meta_path.insert(0, _NoOverfitSearch())
try:
    import overfit_search  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("overfit_search could be imported: the block failed")
"""

PREDICT = """
import json
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for job in json.loads(sys.argv[1]):
    x = np.load(job["x"])
    if job["format"] == "keras":
        import keras

        p = keras.models.load_model(job["model"]).predict(x, verbose=0)
    elif job["format"] == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(job["model"])  # kept: its variables live with it
        p = loaded.serve(tf.constant(x)).numpy()
    else:
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=job["model"])
        given = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(given["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        p = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.save(job["out"], p)
assert "overfit_search" not in sys.modules
print("loaded", len(json.loads(sys.argv[1])), "models without overfit_search")
"""


def predict_without_package(
    models: dict[str, tuple[str, Path]], x: np.ndarray, work: Path
) -> dict[str, np.ndarray]:
    """Predict ``x`` with each model in one subprocess that cannot import overfit_search.

    Args:
        models: key → (format, path).
        x: float32 RGB images in [0, 255].
        work: A folder for the inputs and outputs.

    Returns:
        key → the predicted probabilities.
    """
    np.save(work / "x.npy", x.astype("float32"))
    jobs = [
        {"format": fmt, "model": str(path), "x": str(work / "x.npy"), "out": str(work / f"{k}.npy")}
        for k, (fmt, path) in models.items()
    ]
    done = subprocess.run(
        [sys.executable, "-I", "-c", BLOCK_PACKAGE + PREDICT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "without overfit_search" in done.stdout
    return {k: np.load(work / f"{k}.npy") for k in models}


def test_the_subprocess_really_cannot_import_the_package() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-c", BLOCK_PACKAGE + "print('blocked')"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "blocked" in done.stdout, done.stderr
    # and without the block it can: the block, not the environment, is what stops it
    plain = subprocess.run(
        [sys.executable, "-I", "-c", "import overfit_search; print('importable')"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "importable" in plain.stdout, plain.stderr


def _cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    p = np.asarray(p, np.float64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))


# --- the shared digits sweep, attention head and augmentation on, through the CLI ---------


@pytest.fixture(scope="module")
def digits_exports(
    finished_digits_sweep: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A tiny real sweep (attention head, augmentation: tests/conftest.py's reuse_sweep_doc,
    shared with tests/test_reuse.py), exported in the three formats and retrained once; the
    kept weights loaded in-process as the tool does."""
    import keras

    from overfit_search import reuse
    from overfit_search.layout import BEST_WEIGHTS
    from overfit_search.training.final import load_trial_weights

    if keras.config.backend() != "tensorflow":
        pytest.skip("SavedModel and TFLite need the TensorFlow backend")
    root = tmp_path_factory.mktemp("portable")
    out = finished_digits_sweep
    assert load_sweep(out / "sweep.yaml").model.head.attention_heads == 2
    assert load_sweep(out / "sweep.yaml").search.augmentation == 0.3
    models = {
        # distinct stems: the labels and metrics files are named <stem>.labels.txt, ...
        "keras": ("keras", root / "export.keras"),
        "savedmodel": ("savedmodel", root / "export_savedmodel"),  # no suffix: a SavedModel
        "tflite": ("tflite", root / "export_lite.tflite"),
    }
    for _, path in models.values():
        assert main(["export", str(out), "--output", str(path)]) == 0
    models["retrain"] = ("keras", root / "retrain.keras")
    assert main(["retrain", str(out), "--output", str(root / "retrain.keras")]) == 0

    source = reuse.resolve(out)
    assert source.trial is not None
    data = reuse.load_split_data(source)
    weights = out / "trials" / str(source.trial.number) / BEST_WEIGHTS
    model = load_trial_weights(source.sweep, source.params, data.num_classes, weights, source.seed)
    x = np.asarray(data.x_val, "float32")
    return {
        "models": models,
        "x": x,
        "y": data.y_val,
        "expected": model.predict(x, verbose=0),
        "got": predict_without_package(models, x, root),
        "class_names": data.class_names,
    }


@pytest.mark.parametrize("key", ["keras", "savedmodel", "tflite"])
def test_exported_digits_model_loads_without_the_package_and_predicts_as_the_trial(
    digits_exports: dict[str, Any], key: str
) -> None:
    fmt, path = digits_exports["models"][key]
    got, expected = digits_exports["got"][key], digits_exports["expected"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TFLITE_ATOL if fmt == "tflite" else ATOL)
    print(f"{key}: max abs diff {np.abs(got - expected).max():.3g}")  # shown with pytest -rP
    labels = path.with_suffix(".labels.txt").read_text().split()
    assert labels == list(digits_exports["class_names"])
    metrics = json.loads(path.with_suffix(".metrics.json").read_text())
    assert metrics["format"] == fmt and metrics["made_by"] == "export"
    assert _cross_entropy(got, digits_exports["y"]) == pytest.approx(
        metrics["val_loss"], rel=1e-3 if fmt == "tflite" else 1e-5
    )


def test_retrained_digits_model_loads_without_the_package(digits_exports: dict[str, Any]) -> None:
    _, path = digits_exports["models"]["retrain"]
    metrics = json.loads(path.with_suffix(".metrics.json").read_text())
    assert metrics["made_by"] == "retrain"
    got = digits_exports["got"]["retrain"]
    # the model measured in-process before it was written, now loaded with plain Keras
    assert _cross_entropy(got, digits_exports["y"]) == pytest.approx(metrics["val_loss"], rel=1e-5)


# --- the pretrained MobileNetV2 fixture (160 px, resized up from 32 px digits) ---------------


@pytest.mark.skipif(
    not MOBILENET_H5.is_file(), reason=f"the pretrained fixture {MOBILENET_H5} is absent"
)
def test_mobilenetv2_fixture_exports_load_without_the_package(tmp_path: Path) -> None:
    import keras

    from overfit_search.config import sweep_from_dict
    from overfit_search.data import load_data
    from overfit_search.layout import BEST_WEIGHTS
    from overfit_search.models.build import inference_model
    from overfit_search.training.final import load_trial_weights, write_model
    from overfit_search.training.trial import run_trial

    if keras.config.backend() != "tensorflow":
        pytest.skip("SavedModel and TFLite need the TensorFlow backend")
    sweep = sweep_from_dict(
        fixture_digits_sweep(
            "fixture_export",
            f"file:{MOBILENET_H5}#mobilenetv2_1.00_160",
            0.05,  # ~9 validation images per class: each epoch measures them at 160 px
            data={"train_per_class": 4},
            train={"batch_size": 16, "max_epochs": 1},
        )
    )
    params = {
        "dropout": 0.1,
        "l2": 1e-4,
        "learning_rate": 1e-3,
        "augmentation": 0.3,
        "frozen_fraction": 0.9,
    }
    data = load_data(sweep.data)
    run_trial(sweep, params, data, lambda row: None, tmp_path / "trial", seed=5)
    model = load_trial_weights(
        sweep, params, data.num_classes, tmp_path / "trial" / BEST_WEIGHTS, 5
    )
    x = np.asarray(data.x_val, "float32")[:8]
    expected = model.predict(x, verbose=0)
    served = inference_model(model)
    models = {
        "keras": ("keras", tmp_path / "mnv2.keras"),
        "savedmodel": ("savedmodel", tmp_path / "mnv2_savedmodel"),
        "tflite": ("tflite", tmp_path / "mnv2.tflite"),
    }
    for fmt, path in models.values():
        write_model(served, path, fmt)
    got = predict_without_package(models, x, tmp_path)
    for key, (fmt, _) in models.items():
        diff = float(np.abs(got[key] - expected).max())
        print(f"MobileNetV2 {key}: max abs diff {diff:.3g}")  # shown with pytest -rP
        assert diff <= (TFLITE_ATOL if fmt == "tflite" else ATOL), (key, diff)


# --- mixed precision: the TFLite file is the float32 twin (the converter takes no float16) -----


def test_a_mixed_precision_model_exports_to_keras_and_tflite(tmp_path: Path) -> None:
    import keras

    from overfit_search.config import sweep_from_dict
    from overfit_search.models.build import build_model, inference_model
    from overfit_search.training.final import float32_model, write_model
    from overfit_search.training.precision import dtype_policy
    from tests.conftest import tiny_sweep

    if keras.config.backend() != "tensorflow":
        pytest.skip("TFLite needs the TensorFlow backend")
    sweep = sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 16},
            model={"backbone": "builtin:digits_cnn", "head": {"attention_heads": 2}},
            train={"mixed_precision": "float16"},
        )
    )
    params = {
        "dropout": 0.1,
        "l2": 1e-4,
        "learning_rate": 1e-3,
        "augmentation": 0.3,
        "frozen_fraction": 0.5,
    }
    with dtype_policy(sweep.train.mixed_precision):
        served = inference_model(build_model(sweep, params, num_classes=3, seed=0).model)
    twin = float32_model(served)
    assert twin is not served and twin.get_layer("preprocess").compute_dtype == "float32"
    models = {
        "keras": ("keras", tmp_path / "mixed.keras"),
        "tflite": ("tflite", tmp_path / "m.tflite"),
    }
    for fmt, path in models.values():
        write_model(served, path, fmt)
    x = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    got = predict_without_package(models, x, tmp_path)
    np.testing.assert_allclose(got["keras"], served.predict(x, verbose=0), atol=ATOL)
    np.testing.assert_allclose(got["tflite"], twin.predict(x, verbose=0), atol=TFLITE_ATOL)
    # float32 against float16 arithmetic: measured 2.8e-4 here
    np.testing.assert_allclose(got["tflite"], served.predict(x, verbose=0), atol=1e-2)
