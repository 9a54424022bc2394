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
    """

    constructor: str
    module: str
    default_size: int


APPLICATIONS: dict[str, ApplicationSpec] = {
    "mobilenet": ApplicationSpec("MobileNet", "mobilenet", 224),
    "mobilenet_v2": ApplicationSpec("MobileNetV2", "mobilenet_v2", 224),
    "mobilenet_v3_small": ApplicationSpec("MobileNetV3Small", "mobilenet_v3", 224),
    "mobilenet_v3_large": ApplicationSpec("MobileNetV3Large", "mobilenet_v3", 224),
    "efficientnet_b0": ApplicationSpec("EfficientNetB0", "efficientnet", 224),
    "efficientnet_b1": ApplicationSpec("EfficientNetB1", "efficientnet", 240),
    "efficientnet_v2_b0": ApplicationSpec("EfficientNetV2B0", "efficientnet_v2", 224),
    "resnet50": ApplicationSpec("ResNet50", "resnet", 224),
    "resnet50_v2": ApplicationSpec("ResNet50V2", "resnet_v2", 224),
    "densenet121": ApplicationSpec("DenseNet121", "densenet", 224),
    "inception_v3": ApplicationSpec("InceptionV3", "inception_v3", 299),
    "xception": ApplicationSpec("Xception", "xception", 299),
    "vgg16": ApplicationSpec("VGG16", "vgg16", 224),
    "convnext_tiny": ApplicationSpec("ConvNeXtTiny", "convnext", 224),
}

BUILTINS: tuple[str, ...] = ("digits_cnn",)
"""Small backbones the project pretrains itself, offline (``builtin:NAME``)."""

SCHEMES: tuple[str, ...] = ("file:", "tfhub:", "builtin:")
