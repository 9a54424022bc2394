"""Serializable layers the project puts in its models (no Lambda layers: safe-mode loading)."""

from __future__ import annotations

from typing import Any

import keras
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
