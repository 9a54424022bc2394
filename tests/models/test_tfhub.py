"""tfhub: backbones through keras.layers.TFSMLayer, on a SavedModel exported in the test."""

from __future__ import annotations

import hashlib
import http.server
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from overfit_search.config import Sweep, sweep_from_dict
from overfit_search.errors import ConfigError
from overfit_search.models.backbones import build_backbone, prepare_backbone, resolve_tfhub
from overfit_search.models.build import build_model, make_optimizer
from tests.conftest import MOBILENET_H5, digits_sweep, tiny_sweep

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tfhub: needs the TensorFlow backend"
)


@pytest.fixture(scope="module")
def saved_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny feature-vector module, as TF-Hub publishes them: images in [0, 1] -> (N, 8)."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("hub") / "feature_vector"
    keras.Model(inputs, x).export(str(path), verbose=False)
    return path


SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
PARAMS = {"dropout": 0.0, "l2": 0.0, "learning_rate": 0.05, "augmentation": 0.0,
          "frozen_fraction": 0.0}  # fmt: skip


def _sweep(backbone: str, frozen: float) -> Sweep:
    return sweep_from_dict(
        tiny_sweep(
            data={"source": "digits", "image_size": 16, "digits_classes": [1, 2]},
            model={"backbone": backbone},
            search={"dropout": 0.0, "l2": 0.0, "learning_rate": 0.01, "augmentation": 0.0,
                    "frozen_fraction": frozen},
        )
    )  # fmt: skip


@pytest.mark.parametrize(("frozen", "trainable"), [(0.0, True), (0.4, True), (0.5, False)])
def test_module_is_frozen_all_or_nothing_and_fine_tunes_when_trainable(
    saved_module: Path, frozen: float, trainable: bool
) -> None:
    sweep = _sweep(f"tfhub:{saved_module}", frozen)
    params = {"dropout": 0.0, "l2": 0.0, "learning_rate": 0.01, "augmentation": 0.0,
              "frozen_fraction": frozen}  # fmt: skip
    built = build_model(sweep, params, num_classes=2)
    module = next(lay for lay in built.model.layers if isinstance(lay, keras.layers.TFSMLayer))
    assert module.trainable is trainable
    assert (len(module.trainable_weights) > 0) is trainable
    model = built.model
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=16)
    before = [np.array(w) for w in module.weights]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    moved = any(
        not np.allclose(a, np.array(b)) for a, b in zip(before, module.weights, strict=True)
    )
    assert moved is trainable  # a trainable module fine-tunes, a frozen one does not
    assert model.predict(x, verbose=0).shape == (16, 2)


def test_a_handle_already_in_tfhub_cache_dir_needs_no_network(
    saved_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    cached = tmp_path / hashlib.sha1(handle.encode()).hexdigest()
    cached.symlink_to(saved_module, target_is_directory=True)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    from overfit_search.models.backbones import build_backbone

    sweep = _sweep(f"tfhub:{handle}", 1.0)
    backbone = build_backbone(sweep.model, 16)
    assert isinstance(backbone.model, keras.layers.TFSMLayer)


@pytest.fixture
def hub_server(saved_module: Path, tmp_path: Path) -> Iterator[HubServer]:
    """A TF-Hub-like HTTP server on 127.0.0.1 serving the module as a tar.gz (see HubServer)."""
    server = HubServer(saved_module, tmp_path / "module.tar.gz")
    yield server
    server.close()


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "tfhub_cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    return cache


@pytest.mark.parametrize(
    "path",
    [
        "/google/tf2-preview/feature_vector/4",  # a model page: answers ?tf-hub-format=compressed
        "/tfhub.dev/google/feature_vector/4",  # tfhub.dev: redirects to Kaggle Models
        "/files/feature_vector.tar.gz",  # a compressed-tarball URL
    ],
)
def test_a_url_handle_is_downloaded_once_into_the_cache(
    hub_server: HubServer, hub_cache: Path, path: str
) -> None:
    handle = hub_server.url(path)
    local = resolve_tfhub(handle)
    assert local == (hub_cache / hashlib.sha1(handle.encode()).hexdigest()).resolve()
    assert (local / "saved_model.pb").is_file()
    assert all("tf-hub-format=compressed" in r for r in hub_server.requests)
    assert len(hub_server.requests) == (2 if path.startswith("/tfhub.dev") else 1)
    seen = len(hub_server.requests)
    assert resolve_tfhub(handle) == local
    backbone = build_backbone(_sweep(f"tfhub:{handle}", 1.0).model, 16)
    assert isinstance(backbone.model, keras.layers.TFSMLayer)
    assert len(hub_server.requests) == seen  # cached: no second request


def test_the_driver_resolves_the_handle_for_the_trials(
    hub_server: HubServer, hub_cache: Path
) -> None:
    handle = hub_server.url("/google/feature_vector/4")
    model = prepare_backbone(_sweep(f"tfhub:{handle}", 1.0).model)
    local = Path(model.backbone[len("tfhub:") :])
    assert local.is_absolute() and local.parent == hub_cache.resolve()
    assert prepare_backbone(model) == model  # a local directory resolves to itself
    assert len(hub_server.requests) == 1


@pytest.mark.parametrize("broken", ["404", "unreachable"])
def test_an_unresolvable_handle_is_one_config_error(
    hub_server: HubServer, hub_cache: Path, broken: str
) -> None:
    if broken == "404":
        handle = hub_server.url("/missing/feature_vector/4")
    else:
        handle = f"http://127.0.0.1:{_free_port()}/google/feature_vector/4"
    with pytest.raises(ConfigError) as info:
        resolve_tfhub(handle)
    message = str(info.value)
    assert message.startswith(f"model.backbone: cannot resolve TF-Hub handle {handle}: ")
    assert ("404" in message) if broken == "404" else ("refused" in message.lower())
    assert str(hub_cache) in message and "\n" not in message
    assert not list(hub_cache.glob("*.lock"))  # tensorflow_hub cleaned up after itself


def test_run_with_an_unresolvable_handle_exits_2_before_any_trial(
    hub_server: HubServer,
    hub_cache: Path,
    tmp_path: Path,
    write_sweep: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from overfit_search.cli import main

    handle = hub_server.url("/missing/feature_vector/4")
    doc = tiny_sweep(
        data={"source": "digits", "image_size": 16, "digits_classes": [1, 2]},
        model={"backbone": f"tfhub:{handle}"},
    )
    out = tmp_path / "out"
    rc = main(["run", str(write_sweep(doc)), "--output", str(out), "--no-progress"])
    assert rc == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert f"model.backbone: cannot resolve TF-Hub handle {handle}: HTTP Error 404" in err[0]
    assert not (out / "trials").exists() and not (out / "study.db").exists()


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_a_trainable_module_fine_tunes_with_every_optimizer(
    saved_module: Path, optimizer: str
) -> None:
    """Keras names optimizer slots after the variable (``conv2d_kernel:0_momentum`` was not a
    valid TensorFlow name: every trainable trial with Adam, AdamW or SGD failed)."""
    built = build_model(_sweep(f"tfhub:{saved_module}", 0.0), PARAMS, num_classes=2)
    module = next(lay for lay in built.model.layers if isinstance(lay, keras.layers.TFSMLayer))
    assert module.trainable and module.trainable_weights
    assert not any(":" in w.path for w in module.weights)
    built.model.compile(
        optimizer=make_optimizer(optimizer, 0.05), loss="sparse_categorical_crossentropy"
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=16)
    before = [np.array(w) for w in module.trainable_weights]
    built.model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = [np.array(w) for w in module.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam"])
def test_a_sweep_fine_tunes_a_downloaded_module_in_ray_trials(
    hub_server: HubServer, hub_cache: Path, tmp_path: Path, optimizer: str
) -> None:
    """End to end: the driver downloads the module once, Ray trials fine-tune it (frozen
    fraction 0, Adam: every trial was FAIL before) from the cached directory."""
    from optuna.trial import TrialState

    from overfit_search.orchestration.runner import run_sweep

    handle = hub_server.url("/google/feature_vector/4")
    doc = digits_sweep(
        "hub",
        model={"backbone": f"tfhub:{handle}"},
        train={"max_epochs": 2, "optimizer": optimizer},
        search={"frozen_fraction": 0.0},
        study={"trials": 2, "n_startup_trials": 2},
    )
    result = run_sweep(sweep_from_dict(doc), output=tmp_path / "out", progress=False)
    states = [t.state for t in result.study.trials]
    assert len(states) == 2 and TrialState.FAIL not in states, [
        t.user_attrs.get("fail_reason") for t in result.study.trials
    ]
    assert len(hub_server.requests) == 1  # the trials never touched the network
    assert handle in (tmp_path / "out" / "sweep.yaml").read_text()  # the handle as written


def _hub_mobilenet_v2(path: Path, size: int) -> None:
    """The pretrained fixture MobileNetV2 exported as TF-Hub's feature vectors are: [0, 1]
    images of ``size`` px -> (N, 1280), rescaled to MobileNetV2's [-1, 1] inside."""
    full = keras.saving.load_model(MOBILENET_H5, compile=False)
    pretrained = full.get_layer("mobilenetv2_1.00_160")
    twin = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=None
    )
    twin.set_weights(pretrained.get_weights())  # the weights do not depend on the input size
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(twin(x))
    keras.Model(inputs, x).export(str(path), verbose=False)


def _hand_signs(root: Path, size: int, per_class: int) -> None:
    """Five class folders of small PNGs, each class its own colour and stripe, with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(5):
        (root / f"sign_{c}").mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(size, size, 3))
            img[:, :, c % 3] += 120
            img[(c * size) // 5 : ((c + 1) * size) // 5] += 60
            Image.fromarray(img.astype("uint8")).save(root / f"sign_{c}" / f"{i:03d}.png")


@pytest.mark.slow
@pytest.mark.skipif(not MOBILENET_H5.is_file(), reason=f"the fixture {MOBILENET_H5} is absent")
def test_the_asl_hub_sweep_runs_on_a_served_mobilenet_v2_feature_vector(
    tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sweeps/asl-hub.yaml as written (frozen TF-Hub MobileNetV2 URL, 5 classes, split: sorted
    at 0.4, Adam), its URL replaced by the fixture served from 127.0.0.1, small images, 2 short
    trials."""
    from optuna.trial import TrialState

    from overfit_search.config import load_sweep
    from overfit_search.orchestration.runner import run_sweep

    monkeypatch.setenv("OVERFIT_SEARCH_CACHE", str(tmp_path / "cache"))  # Ray workers get it too
    size = 32
    module = tmp_path / "mobilenet_v2_feature_vector"
    _hub_mobilenet_v2(module, size)
    _hand_signs(tmp_path / "signs", size, per_class=10)
    server = HubServer(module, tmp_path / "module.tar.gz")
    try:
        handle = server.url("/google/tf2-preview/mobilenet_v2/feature_vector/4")
        sweep = load_sweep(
            SWEEPS / "asl-hub.yaml",
            {
                "model.backbone": f"tfhub:{handle}",
                "data.dir": str(tmp_path / "signs"),
                "data.image_size": size,
                "train.batch_size": 8,
                "train.max_epochs": 2,
                "study.trials": 2,
                "resources.cpus_per_trial": 1,
            },
        )
        assert sweep.data.split == "sorted" and sweep.data.validation_fraction == 0.4
        assert sweep.train.optimizer == "adam" and sweep.search.frozen_fraction == 1.0
        result = run_sweep(sweep, output=tmp_path / "out", progress=False)
    finally:
        server.close()
    trials = result.study.trials
    assert len(trials) == 2
    assert all(t.state != TrialState.FAIL for t in trials), [t.user_attrs for t in trials]
    assert trials[0].user_attrs.get("baseline")  # the user's own setup ran first
    assert len(server.requests) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubServer:
    """Serves ``module`` as a gzipped tarball the way tfhub.dev / Kaggle Models do.

    ``/missing/...`` is 404; ``/tfhub.dev/...`` redirects (302, query kept) to
    ``/kaggle/...``; any other path answers with the tarball. Every request's path and query
    is recorded in ``requests``.
    """

    def __init__(self, module: Path, tarball: Path) -> None:
        with tarfile.open(tarball, "w:gz") as tar:
            for item in sorted(module.rglob("*")):
                tar.add(item, arcname=str(item.relative_to(module)), recursive=False)
        self.requests: list[str] = []
        payload = tarball.read_bytes()
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if self.path.startswith("/missing/"):
                    self.send_error(404)
                    return
                if self.path.startswith("/tfhub.dev/"):
                    self.send_response(302)
                    self.send_header("Location", "/kaggle/" + self.path[len("/tfhub.dev/") :])
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-gzip")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
