"""Where and in which format ``retrain`` and ``export`` write a model (no TensorFlow imported).

Formats (``--format``):

- ``keras``: one ``.keras`` file; ``keras.models.load_model(path)`` loads it, with no
  overfit-search installed (every layer in it is one of Keras's own).
- ``savedmodel``: a TensorFlow SavedModel directory (``model.export(path,
  format="tf_saved_model")``) for TF Serving or ``tf.saved_model.load(path).serve(images)``.
- ``tflite``: one ``.tflite`` flatbuffer from TensorFlow's ``tf.lite.TFLiteConverter``.

Without ``--format`` the output names it: ``.keras`` → keras, ``.tflite`` → tflite, an
existing directory or a path without a suffix → savedmodel. Any other suffix, or a suffix
that contradicts ``--format``, is an error; so are savedmodel and tflite under a Keras backend
other than TensorFlow. The labels (``<stem>.labels.txt``) and metrics JSON
(``<stem>.metrics.json``) are written beside the model in every format.
"""

from __future__ import annotations

from pathlib import Path

from overfit_search.errors import ConfigError

FORMATS = ("keras", "savedmodel", "tflite")
SUFFIXES = {".keras": "keras", ".tflite": "tflite"}
TF_ONLY = ("savedmodel", "tflite")


def sidecars(output: Path) -> tuple[Path, Path]:
    """The labels file and the metrics JSON written beside a model ``output``."""
    return output.with_suffix(".labels.txt"), output.with_suffix(".metrics.json")


def model_format(output: Path, fmt: str | None) -> str:
    """The format to write ``output`` in: ``fmt``, or the one its name says.

    Args:
        output: The ``--output`` path.
        fmt: ``--format`` (None: infer it from ``output``).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        ConfigError: The suffix names no format, or contradicts ``fmt``.
    """
    said = SUFFIXES.get(output.suffix)
    if fmt is None:
        if said is not None:
            return said
        if output.is_dir() or not output.suffix:
            return "savedmodel"
        raise ConfigError(
            f"--output: {output} must end in .keras or .tflite, or be a directory (a "
            "SavedModel); or say which with --format keras|savedmodel|tflite"
        )
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "savedmodel":
        if said is not None:
            raise ConfigError(
                f"--output: {output} ends in {output.suffix}, but --format savedmodel writes a "
                "directory; give a directory path"
            )
        return fmt
    expected = ".keras" if fmt == "keras" else ".tflite"
    if output.suffix != expected:
        raise ConfigError(f"--output: {output} must end in {expected} for --format {fmt}")
    return fmt


def check_output(output: Path, fmt: str | None, force: bool, backend: str | None) -> str:
    """Check an ``--output`` before any work; return the format to write.

    Args:
        output: The ``--output`` path.
        fmt: ``--format`` (None: from the path, :func:`model_format`).
        force: ``--force``: an existing model may be replaced.
        backend: The Keras backend (``keras.config.backend()``), needed only for the
            TensorFlow-only formats; None skips that check.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        ConfigError: Bad suffix; a TensorFlow-only format under another backend; the output
            exists without ``--force``, or is a directory that holds no SavedModel.
    """
    chosen = model_format(output, fmt)
    if chosen in TF_ONLY and backend is not None and backend != "tensorflow":
        raise ConfigError(
            f"--format {chosen}: needs the TensorFlow backend (Keras runs on {backend} here: "
            "set KERAS_BACKEND=tensorflow), or write --format keras"
        )
    if output.exists():
        if not force:
            raise ConfigError(f"--output: {output} exists; pass --force to replace it")
        if chosen == "savedmodel":
            if not output.is_dir():
                raise ConfigError(f"--output: {output} is a file, not a SavedModel directory")
            if any(output.iterdir()) and not (output / "saved_model.pb").is_file():
                raise ConfigError(
                    f"--output: {output} is a directory with no saved_model.pb in it; "
                    "--force replaces only a SavedModel"
                )
        elif output.is_dir():
            raise ConfigError(f"--output: {output} is a directory; give a file path")
    return chosen
