"""Backbone builders behind one registry: applications, files, TF-Hub modules, builtins."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from overfit_search.config.schema import ModelConfig
from overfit_search.errors import ConfigError
from overfit_search.models.catalog import APPLICATIONS

logger = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A feature extractor and how to feed it.

    Attributes:
        model: Maps preprocessed images to a feature map (4D) or vector (2D).
        preprocess: The preprocessing mode it expects (see
            :func:`~overfit_search.models.layers.preprocess_layer`).
        input_size: The square input size it needs, or None when any size works.
        layer_freezable: False for modules that can only be frozen all or nothing.
        preprocess_from: How ``preprocess`` was decided: ``application`` (its family's
            ``preprocess_input``), ``builtin``, ``rescaling`` (the model's input path starts
            with its own Rescaling/Normalization layer: raw pixels), ``sweep``
            (``model.preprocess`` named it) or ``guess`` (a ``file:``/``tfhub:`` default that
            only the probe of :mod:`overfit_search.models.probe` can confirm).
    """

    model: keras.Model | keras.layers.Layer
    preprocess: str
    input_size: int | None = None
    layer_freezable: bool = True
    preprocess_from: str = "guess"


def _application(cfg: ModelConfig, image_size: int) -> Backbone:
    spec = APPLICATIONS[cfg.backbone]
    constructor = getattr(keras.applications, spec.constructor)
    weights: str | None = cfg.weights
    if weights == "none":
        weights = None
    elif weights not in ("imagenet", None) and not Path(weights).exists():
        raise ConfigError(f"model.weights: no weights file at {weights}")
    try:
        model = constructor(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
        )
    except Exception as exc:  # offline download, or an input size the weights do not allow
        if weights == "imagenet":
            raise ConfigError(
                f"model.weights: could not load the imagenet weights of {cfg.backbone} at "
                f"{image_size}px: they must be in the Keras cache (~/.keras/models) when "
                f"offline ({str(exc).splitlines()[0]})"
            ) from exc
        raise ConfigError(f"model.backbone: {cfg.backbone}: {exc}") from exc
    return Backbone(model, spec.preprocess, preprocess_from="application")


UNSAFE_LOAD_ENV = "OVERFIT_SEARCH_UNSAFE_LOAD"
"""``1`` (set by ``--unsafe-load``): model files load with Keras's safe mode off."""


def _file(cfg: ModelConfig, image_size: int) -> Backbone:
    target, _, layer = cfg.backbone[len("file:") :].partition("#")
    path = Path(target)
    if not path.is_file():
        raise ConfigError(f"model.backbone: no model file at {path}")
    unsafe = os.environ.get(UNSAFE_LOAD_ENV) == "1"
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:
        if "Lambda" in str(exc) and "safe_mode" in str(exc):
            raise ConfigError(
                f"model.backbone: {path} holds a Lambda layer, whose Python code would run on "
                "load; Keras's safe mode refuses it. If you trust the file, pass --unsafe-load"
            ) from None
        raise ConfigError(f"model.backbone: cannot load {path}: {exc}") from exc
    if layer:
        try:
            model = model.get_layer(layer)
        except ValueError:
            names = ", ".join(lay.name for lay in model.layers)
            raise ConfigError(
                f"model.backbone: {path} has no layer '{layer}'; its layers: {names}"
            ) from None
    shape = model.input_shape
    size = shape[1] if isinstance(shape, tuple) and len(shape) == 4 else None
    if rescales_inputs(model):
        return Backbone(model, "none", input_size=size, preprocess_from="rescaling")
    return Backbone(model, "tf", input_size=size)


_PASS_THROUGH = (keras.layers.Resizing, keras.layers.CenterCrop)


def rescales_inputs(model: keras.Model | keras.layers.Layer) -> bool:
    """Whether ``model``'s input path starts with its own Rescaling or Normalization layer.

    Such a model expects raw pixels in [0, 255] (preprocess ``none``). The first layers other
    than InputLayers are looked at, in order, through nested models; resizing, cropping and
    ``Random*`` augmentation layers before it are passed over.

    Args:
        model: A loaded model (a layer without sub-layers, e.g. a TF-Hub module, says False).

    Returns:
        True when the first layer that transforms values is a Rescaling or Normalization.
    """
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Rescaling | keras.layers.Normalization):
            return True
        if isinstance(layer, _PASS_THROUGH) or type(layer).__name__.startswith("Random"):
            continue
        if isinstance(layer, keras.Model):
            return rescales_inputs(layer)
        return False
    return False


HUB_TIMEOUT_S = 60.0
"""Seconds a TF-Hub download may wait on the network for one read before it is abandoned."""


def _need_tensorflow() -> None:
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            "model.backbone: tfhub: backbones need the TensorFlow backend: TF-Hub modules are "
            f"TensorFlow SavedModels (KERAS_BACKEND={keras.backend.backend()}; set it to "
            "tensorflow)"
        )


def _hub_cache_dir() -> str:
    """The directory tensorflow_hub caches downloads in (``TFHUB_CACHE_DIR`` or its default)."""
    from tensorflow_hub import resolver

    return str(resolver.tfhub_cache_dir(use_temp=True))


def resolve_tfhub(handle: str) -> Path:
    """The local SavedModel directory of a TF-Hub handle, downloaded and cached if need be.

    Accepts what ``hub.KerasLayer`` accepts, through ``tensorflow_hub.resolve`` itself: a
    local SavedModel directory, a ``https://tfhub.dev/...`` or ``https://www.kaggle.com/models/
    ...`` model URL (tfhub.dev redirects to Kaggle Models), or the URL of a ``.tar.gz`` of a
    SavedModel. A URL is downloaded once into ``TFHUB_CACHE_DIR`` (default: the system's temp
    directory ``/tfhub_modules``) and read from there afterwards, with no network request.

    Raises:
        ConfigError: The handle cannot be resolved (offline and not cached, HTTP error, not a
            SavedModel), in one line naming ``model.backbone``.
    """
    _need_tensorflow()
    path = Path(handle).expanduser()
    if path.is_dir():
        resolved = path
    elif "://" not in handle:
        raise ConfigError(
            f"model.backbone: TF-Hub module {handle} is neither a local SavedModel directory nor "
            "a URL"
        )
    else:
        import tensorflow_hub as hub

        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(HUB_TIMEOUT_S)  # tensorflow_hub's urlopen has no timeout
        try:
            resolved = Path(hub.resolve(handle))
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(
                f"model.backbone: cannot resolve TF-Hub handle {handle}: {reason} (it is not in "
                f"the TF-Hub cache {_hub_cache_dir()} either; offline, set TFHUB_CACHE_DIR to a "
                "cache that holds it, or give a local SavedModel directory)"
            ) from exc
        finally:
            socket.setdefaulttimeout(previous)
    if not (resolved / "saved_model.pb").is_file():
        raise ConfigError(
            f"model.backbone: TF-Hub module {handle} is not a SavedModel (no saved_model.pb in "
            f"{resolved})"
        )
    return resolved.resolve()


def prepare_backbone(cfg: ModelConfig) -> ModelConfig:
    """Fetch what the backbone needs once, in the driver, before any trial; return the config
    the trials should build from.

    For a ``tfhub:`` handle: resolved (downloaded and cached when it is a URL) with
    :func:`resolve_tfhub`, and the returned config names the local directory, so trials on
    this machine (or a cluster sharing the disk) never touch the network. Other schemes come
    back unchanged.

    Raises:
        ConfigError: The module cannot be resolved, or TF-Hub without the TensorFlow backend.
    """
    if cfg.scheme != "tfhub":
        return cfg
    local = resolve_tfhub(cfg.backbone[len("tfhub:") :])
    return cfg.model_copy(update={"backbone": f"tfhub:{local}"})


def _slot_safe_names(layer: keras.layers.TFSMLayer) -> None:
    """Rename the layer's variables so that optimizers can build slots from them.

    TFSMLayer wraps each restored ``tf.Variable`` in a ``keras.Variable`` named after it, so
    the names keep TensorFlow's ``:0`` suffix (``conv2d_kernel:0``). Keras optimizers name a
    slot ``{path}_{slot}`` (``conv2d_kernel:0_momentum``; ``BaseOptimizer.
    add_variable_from_reference`` strips ``:`` only from references without a ``path``), and
    a TensorFlow variable name cannot hold ``:``, so Adam, AdamW and SGD with momentum fail on
    the first step of a trainable module. The wrapper's name is only a label: renaming it
    changes neither the restored variable nor the saved weights (stored by position).
    """
    for variable in layer.weights:
        for attr in ("_name", "_path"):
            value = getattr(variable, attr, None)
            if isinstance(value, str) and ":" in value:
                setattr(variable, attr, value.replace(":", "_"))


def _tfhub(cfg: ModelConfig, image_size: int) -> Backbone:
    path = resolve_tfhub(cfg.backbone[len("tfhub:") :])
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default", trainable=True)
    _slot_safe_names(layer)
    return Backbone(layer, "unit", layer_freezable=False)


def _builtin(cfg: ModelConfig, image_size: int) -> Backbone:
    from overfit_search.models.builtin import load_builtin

    model = load_builtin(cfg.backbone[len("builtin:") :], image_size)
    return Backbone(model, "unit", preprocess_from="builtin")


BACKBONES: dict[str, Callable[[ModelConfig, int], Backbone]] = {
    "application": _application,
    "file": _file,
    "tfhub": _tfhub,
    "builtin": _builtin,
}


def build_backbone(cfg: ModelConfig, image_size: int) -> Backbone:
    """Build the backbone the sweep names (see :data:`BACKBONES`).

    With ``model.preprocess: auto`` its convention is the one :class:`Backbone` says
    (``preprocess_from``); ``run`` resolves a ``guess`` with the probe before the first trial
    and writes the choice into the results' sweep.yaml, so trials, retrain and export never see
    ``auto`` for a ``file:`` or ``tfhub:`` backbone.

    Built under the global dtype policy; a loaded one (``file:``, ``builtin:``) keeps the
    policy it was saved with, so under a mixed policy it is cloned into that policy.
    """
    backbone = BACKBONES[cfg.scheme](cfg, image_size)
    if cfg.preprocess != "auto":
        backbone.preprocess = cfg.preprocess
        backbone.preprocess_from = "sweep"
    if isinstance(backbone.model, keras.Model):
        backbone.model = in_global_policy(backbone.model)
    return backbone


def in_global_policy(model: keras.Model) -> keras.Model:
    """``model`` again with every layer in the global dtype policy, weights copied.

    Returns the model itself when its layers already use that policy, or, with a warning,
    when a layer cannot be rebuilt from its config (it then computes in its saved dtype).
    """
    policy = keras.config.dtype_policy()
    layers = [lay for lay in _all_layers(model) if not isinstance(lay, keras.layers.InputLayer)]
    if all(lay.dtype_policy.name == policy.name for lay in layers):
        return model

    def rebuild(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy.name})

    try:
        clone = keras.models.clone_model(model, clone_function=rebuild, recursive=True)
        clone.set_weights(model.get_weights())
    except Exception as exc:  # a custom layer whose config does not round-trip
        logger.warning(
            "model.backbone: %s stays in its saved dtype (%s), not %s: %s",
            model.name,
            layers[0].dtype_policy.name if layers else "?",
            policy.name,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return model
    return clone


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found: list[keras.layers.Layer] = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_all_layers(layer))
    return found


def freeze(
    backbone: Backbone,
    frozen_fraction: float | None,
    frozen_layers: int | None,
    batchnorm: str = "frozen",
) -> int:
    """Freeze the backbone from the input side; return how many layers are frozen.

    Layers are the backbone's own ``layers`` list without its InputLayer, in order, so
    ``frozen_layers: 20`` freezes the first 20 of them and ``frozen_fraction: 0.5`` the
    first ``round(0.5 * n)``. Frozen BatchNormalization layers run in inference mode
    (Keras 3 does that for any non-trainable BatchNormalization). With ``batchnorm`` of
    ``"frozen"`` every BatchNormalization layer of the backbone (nested ones too) is frozen,
    including those among the unfrozen layers: in training mode they would normalise with the
    statistics of each small fine-tuning batch while evaluation uses moving statistics that
    barely move (momentum 0.99 or 0.999), and the two disagree (the Keras transfer-learning
    guide's advice; measured in ``tests/models/test_batchnorm.py``).

    Args:
        backbone: The backbone to freeze in place.
        frozen_fraction: Fraction of the layers to freeze, or None.
        frozen_layers: Number of layers to freeze, or None (with ``frozen_fraction`` None
            too: none).
        batchnorm: ``"frozen"`` or ``"train"`` (``model.batchnorm``).

    Returns:
        The number of layers frozen (for a module that cannot be frozen layer by layer: 1 or
        0).
    """
    model = backbone.model
    if not backbone.layer_freezable:
        frozen = (frozen_fraction is not None and frozen_fraction >= 0.5) or bool(frozen_layers)
        model.trainable = not frozen
        return 1 if frozen else 0
    layers = [lay for lay in model.layers if not isinstance(lay, keras.layers.InputLayer)]
    n = len(layers)
    count = round(frozen_fraction * n) if frozen_fraction is not None else int(frozen_layers or 0)
    count = max(0, min(n, count))
    model.trainable = True
    for i, lay in enumerate(layers):
        lay.trainable = i >= count
    if batchnorm == "frozen":
        for lay in _all_layers(model):
            if isinstance(lay, keras.layers.BatchNormalization):
                lay.trainable = False
    return count


def freeze_for_trial(backbone: Backbone, params: dict[str, Any], batchnorm: str) -> int:
    """:func:`freeze` with a trial's ``frozen_fraction`` / ``frozen_layers`` knob values."""
    return freeze(backbone, params.get("frozen_fraction"), params.get("frozen_layers"), batchnorm)
