"""The layers the project puts in its models, made of Keras's own layers.

A model the tool writes must load with plain Keras (or TF Serving, or TFLite), without this
package installed: :func:`preprocess_layer` and :func:`attention_block` build the backbone's
input scaling and the attention head from built-in layers only, with fixed (non-adapted,
non-trainable) constants. No Lambda layers either (safe-mode loading).

:class:`Preprocess` and :class:`PositionAttention` are the custom layers models were built with
before; they stay registered so that models and weights saved then still load with the package.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

_CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
PREPROCESS_MODES = ("tf", "torch", "caffe", "unit", "none")


@keras.saving.register_keras_serializable(package="overfit_search")
class Preprocess(keras.layers.Layer):  # type: ignore[misc]
    """Scale RGB pixels in [0, 255] the way a backbone's ``preprocess_input`` does.

    Args:
        mode: ``tf`` ([-1, 1]), ``torch`` (ImageNet mean/std), ``caffe`` (BGR, ImageNet mean
            subtracted), ``unit`` ([0, 1], TF-Hub modules) or ``none``.
    """

    def __init__(self, mode: str = "tf", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"unknown preprocess mode {mode!r}; choose one of {PREPROCESS_MODES}")
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "caffe":
            bgr = ops.flip(x, axis=-1)
            return bgr - ops.convert_to_tensor(_CAFFE_MEAN, dtype=self.compute_dtype)
        return x

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["mode"] = self.mode
        return config


@keras.saving.register_keras_serializable(package="overfit_search")
class PositionAttention(keras.layers.Layer):  # type: ignore[misc]
    """Self-attention over the positions of a feature map, with a residual and BatchNorm.

    The block people graft onto a MobileNet: the (H, W, C) map is read as H*W tokens.

    Args:
        num_heads: Attention heads.
        key_dim: Size of each head; default ``C // num_heads``.
    """

    def __init__(self, num_heads: int, key_dim: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.mha: keras.layers.MultiHeadAttention | None = None
        self.norm = keras.layers.BatchNormalization()

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        key_dim = self.key_dim or max(1, channels // self.num_heads)
        self.mha = keras.layers.MultiHeadAttention(num_heads=self.num_heads, key_dim=key_dim)
        tokens = (input_shape[0], None, channels)
        self.mha.build(tokens, tokens)
        self.norm.build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        assert self.mha is not None
        shape = ops.shape(inputs)
        tokens = ops.reshape(inputs, (shape[0], shape[1] * shape[2], shape[3]))
        attended = self.mha(tokens, tokens, training=training)
        out = ops.reshape(attended, shape) + inputs
        return self.norm(out, training=training)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim)
        return config


def preprocess_layer(mode: str, name: str = "preprocess") -> keras.layers.Layer | None:
    """A built-in Keras layer that scales RGB pixels in [0, 255] as ``Preprocess(mode)`` does.

    ``tf`` and ``unit`` are a :class:`keras.layers.Rescaling`; ``torch`` a fixed
    :class:`keras.layers.Normalization` (ImageNet mean and variance in pixel units, not
    adapted); ``caffe`` a non-trainable 1x1 :class:`keras.layers.Conv2D` whose kernel is the
    RGB → BGR permutation and whose bias is minus the BGR ImageNet mean (exact: each output is
    one input times 1 plus the bias); ``none`` needs no layer. Each casts its input to its
    compute dtype, as ``Preprocess`` did under mixed precision.

    Args:
        mode: One of :data:`PREPROCESS_MODES`.
        name: The layer's name.

    Returns:
        The layer, or None for ``none``. A ``caffe`` layer comes built, its constants set.

    Raises:
        ValueError: Unknown mode.
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; choose one of {PREPROCESS_MODES}")
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)
    if mode == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name=name)
    if mode == "torch":
        mean = [255.0 * m for m in _TORCH_MEAN]
        variance = [(255.0 * s) ** 2 for s in _TORCH_STD]
        return keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name=name)
    if mode == "caffe":
        # zeros, not the default random initializers: no draw from the global seed stream
        conv = keras.layers.Conv2D(
            3,
            1,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            trainable=False,
            name=name,
        )
        conv.build((None, None, None, 3))
        kernel = np.zeros((1, 1, 3, 3), "float32")
        for out_channel in range(3):
            kernel[0, 0, 2 - out_channel, out_channel] = 1.0  # BGR output j = RGB input 2-j
        conv.set_weights([kernel, -np.asarray(_CAFFE_MEAN, "float32")])
        return conv
    return None


def attention_block(
    x: Any, num_heads: int, key_dim: int | None = None, name: str = "attention"
) -> Any:
    """Self-attention over the positions of a feature map, made of built-in layers.

    The same computation as :class:`PositionAttention`: the (H, W, C) map is read as H*W tokens
    (``Reshape``), attended (``MultiHeadAttention``), put back (``Reshape``), added to its input
    (``Add``) and normalized (``BatchNormalization``). H and W are the map's static sizes.

    Args:
        x: A symbolic 4D feature map with known H, W and C.
        num_heads: Attention heads.
        key_dim: Size of each head; default ``C // num_heads``.
        name: Prefix of the layers' names (``{name}_tokens``, ``_mha``, ``_map``, ``_add``,
            ``_norm``).

    Returns:
        The block's output, the shape of ``x``.

    Raises:
        ValueError: H, W or C of ``x`` is not known.
    """
    height, width, channels = (x.shape[1], x.shape[2], x.shape[3])
    if height is None or width is None or channels is None:
        raise ValueError(f"the attention head needs a feature map of known size, got {x.shape}")
    tokens = keras.layers.Reshape((height * width, channels), name=f"{name}_tokens")(x)
    mha = keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=key_dim or max(1, channels // num_heads), name=f"{name}_mha"
    )
    attended = mha(tokens, tokens)
    back = keras.layers.Reshape((height, width, channels), name=f"{name}_map")(attended)
    out = keras.layers.Add(name=f"{name}_add")([back, x])
    return keras.layers.BatchNormalization(name=f"{name}_norm")(out)
