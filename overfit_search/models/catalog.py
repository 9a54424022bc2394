"""Pure catalogue of backbones: names only, no Keras import (``validate`` relies on it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApplicationSpec:
    """A ``keras.applications`` backbone.

    Attributes:
        constructor: Attribute name in ``keras.applications``.
        module: Sub-module holding its ``preprocess_input``.
        default_size: The input size its ImageNet weights were trained at.
        preprocess: How its ``preprocess_input`` scales uint8 pixels: ``tf`` ([-1, 1]),
            ``torch`` (ImageNet mean/std), ``caffe`` (BGR, mean subtracted) or ``none``
            (the model rescales inside itself).
    """

    constructor: str
    module: str
    default_size: int
    preprocess: str


APPLICATIONS: dict[str, ApplicationSpec] = {
    "mobilenet": ApplicationSpec("MobileNet", "mobilenet", 224, "tf"),
    "mobilenet_v2": ApplicationSpec("MobileNetV2", "mobilenet_v2", 224, "tf"),
    "mobilenet_v3_small": ApplicationSpec("MobileNetV3Small", "mobilenet_v3", 224, "none"),
    "mobilenet_v3_large": ApplicationSpec("MobileNetV3Large", "mobilenet_v3", 224, "none"),
    "efficientnet_b0": ApplicationSpec("EfficientNetB0", "efficientnet", 224, "none"),
    "efficientnet_b1": ApplicationSpec("EfficientNetB1", "efficientnet", 240, "none"),
    "efficientnet_v2_b0": ApplicationSpec("EfficientNetV2B0", "efficientnet_v2", 224, "none"),
    "resnet50": ApplicationSpec("ResNet50", "resnet", 224, "caffe"),
    "resnet50_v2": ApplicationSpec("ResNet50V2", "resnet_v2", 224, "tf"),
    "densenet121": ApplicationSpec("DenseNet121", "densenet", 224, "torch"),
    "inception_v3": ApplicationSpec("InceptionV3", "inception_v3", 299, "tf"),
    "xception": ApplicationSpec("Xception", "xception", 299, "tf"),
    "vgg16": ApplicationSpec("VGG16", "vgg16", 224, "caffe"),
    "convnext_tiny": ApplicationSpec("ConvNeXtTiny", "convnext", 224, "none"),
}

BUILTINS: tuple[str, ...] = ("digits_cnn",)
"""Small backbones the project pretrains itself, offline (``builtin:NAME``)."""

SCHEMES: tuple[str, ...] = ("file:", "tfhub:", "builtin:")

PREPROCESS_CONVENTIONS: tuple[str, ...] = ("none", "unit", "tf", "caffe", "torch")
"""Input conventions a ``file:``/``tfhub:`` backbone is probed under (``model.preprocess``
names them; ``none`` is raw 0-255), in the order the probe tries them."""
