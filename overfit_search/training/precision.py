"""The dtype policy a trial trains under (``train.mixed_precision``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from overfit_search.training.distribute import visible_gpus

POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def accelerator_present() -> bool:
    """Whether the backend sees a GPU (float16 pays off there; CPUs have bfloat16 instead)."""
    return bool(visible_gpus(keras.backend.backend()))


def policy_name(setting: bool | str) -> str:
    """The Keras dtype policy for a ``train.mixed_precision`` value.

    Args:
        setting: ``False`` (float32), ``"float16"``, ``"bfloat16"``, or ``True``: float16 when
            a GPU is visible (Keras then scales the loss against float16 underflow), else
            bfloat16, which CPUs and TPUs compute natively and which needs no loss scaling.

    Returns:
        ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
    """
    if setting is False:
        return "float32"
    if setting is True:
        setting = "float16" if accelerator_present() else "bfloat16"
    return POLICIES[str(setting)]


@contextlib.contextmanager
def dtype_policy(setting: bool | str) -> Iterator[str]:
    """Build models under the policy for ``setting``; the previous global policy comes back after.

    Layers keep the policy they were built with, so a model built inside stays mixed after the
    block ends (the head's last Dense is float32 whatever the policy: see ``models/build.py``).

    Yields:
        The policy's name.
    """
    before = keras.config.dtype_policy()
    name = policy_name(setting)
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(before)
