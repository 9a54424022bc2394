"""Assemble a trial's model: augmentation, preprocessing, backbone, head.

Every layer the project adds is one of Keras's own (:mod:`overfit_search.models.layers`), so the
model written for deployment (:func:`inference_model`: the same graph and layers, minus the
training-only augmentation) loads with plain Keras, TF Serving or TFLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from overfit_search.config.schema import Sweep
from overfit_search.errors import ConfigError
from overfit_search.models.augment import AUGMENTATION_LAYER, augmentation
from overfit_search.models.backbones import Backbone, build_backbone, freeze_for_trial
from overfit_search.models.layers import (
    PositionAttention,
    Preprocess,
    attention_block,
    preprocess_layer,
)

__all__ = ["AUGMENTATION_LAYER", "BuiltModel", "build_model", "inference_model", "make_optimizer"]


@dataclass
class BuiltModel:
    """The model and facts about it the trial logs.

    Attributes:
        model: The whole model, not compiled.
        frozen_layers: Backbone layers frozen by the trial's ``frozen_fraction`` /
            ``frozen_layers`` (already applied).
        backbone_layers: Layers of the backbone.
        backbone: The backbone inside ``model`` (two-phase training re-freezes it).
    """

    model: keras.Model
    frozen_layers: int
    backbone_layers: int
    backbone: Backbone | None = None


def build_model(
    sweep: Sweep,
    params: dict[str, Any],
    num_classes: int,
    seed: int = 0,
    *,
    legacy: bool = False,
) -> BuiltModel:
    """Build backbone + head for one trial's hyperparameters.

    Head: ``[attention] → pooling → [Dense(hidden) → Dropout] → Dropout(dropout) →
    Dense(classes, L2(l2))``. Inputs are RGB in [0, 255]; augmentation runs on them (training
    only), then the backbone's own preprocessing. Every added layer is a built-in Keras layer
    (a model made with ``legacy=True`` holds the package's old custom ``Preprocess`` and
    ``PositionAttention`` instead: what older trials trained, whose weights files load only
    into it).

    Args:
        sweep: The sweep (model, data and train sections are read).
        params: ``dropout``, ``l2``, ``learning_rate``, ``augmentation`` and
            ``frozen_fraction`` or ``frozen_layers``.
        num_classes: Output classes.
        seed: Seed of the augmentation layers.
        legacy: Build with the old custom layers (to read weights saved by them).
    """
    size = sweep.data.image_size
    backbone = build_backbone(sweep.model, size)
    frozen = freeze_for_trial(backbone, params, sweep.model.batchnorm)
    l2 = keras.regularizers.L2(float(params["l2"])) if params["l2"] > 0 else None

    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    flip = sweep.train.augment_flip is not False  # "auto" unresolved (no run): flips on
    aug = augmentation(float(params["augmentation"]), flip=flip, seed=seed)
    if aug is not None:
        x = aug(x)
    if backbone.input_size is not None and backbone.input_size != size:
        x = keras.layers.Resizing(backbone.input_size, backbone.input_size, name="resize")(x)
    if legacy:
        x = Preprocess(backbone.preprocess, name="preprocess")(x)
    else:
        scale = preprocess_layer(backbone.preprocess)
        if scale is not None:
            x = scale(x)
    x = backbone.model(x)
    if isinstance(x, dict):  # TFSMLayer returns the signature's outputs by name
        x = next(iter(x.values()))
    head = sweep.model.head
    if len(x.shape) == 4:
        if head.attention_heads:
            if legacy:
                x = PositionAttention(head.attention_heads, name="attention")(x)
            elif None in tuple(x.shape[1:]):
                raise ConfigError(
                    f"model.head.attention_heads: the backbone's feature map {tuple(x.shape)} "
                    "has no fixed size; the attention head needs one (set data.image_size)"
                )
            else:
                x = attention_block(x, head.attention_heads, name="attention")
        pool = (
            keras.layers.GlobalAveragePooling2D
            if head.pooling == "avg"
            else keras.layers.GlobalMaxPooling2D
        )
        x = pool(name="pool")(x)
    if head.hidden_units:
        x = keras.layers.Dense(
            head.hidden_units, activation="relu", kernel_regularizer=l2, name="hidden"
        )(x)
        x = keras.layers.Dropout(float(params["dropout"]), name="hidden_dropout")(x)
    x = keras.layers.Dropout(float(params["dropout"]), name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", kernel_regularizer=l2, dtype="float32", name="classes"
    )(x)
    model = keras.Model(inputs, outputs, name="overfit_search_model")
    n_layers = len(getattr(backbone.model, "layers", [])) or 1
    return BuiltModel(model, frozen, n_layers, backbone)


def inference_model(model: keras.Model) -> keras.Model:
    """The model to deploy: ``model``'s own layers (weights shared) minus its augmentation.

    The training-only augmentation is left out of the graph (it does nothing in inference, but
    its random layers are not for serving); every other layer is the same object, so the
    weights are those of ``model``. A model without augmentation is returned as is.

    Args:
        model: A model :func:`build_model` made (or a trial returned).

    Returns:
        A Functional model from the ``image`` input to the class probabilities.
    """
    if not any(layer.name == AUGMENTATION_LAYER for layer in model.layers):
        return model

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if layer.name == AUGMENTATION_LAYER:
            return args[0]
        return layer(*args, **kwargs)

    spec = model.inputs[0]
    inputs = keras.Input(spec.shape[1:], dtype=spec.dtype, name="image")
    return keras.models.clone_model(
        model, input_tensors=inputs, clone_function=lambda layer: layer, call_function=call
    )


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The sweep's optimizer at a learning rate (SGD with momentum 0.9)."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    return keras.optimizers.Adam(learning_rate)
