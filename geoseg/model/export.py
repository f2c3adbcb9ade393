"""Exporting a geoseg model for serving elsewhere: TensorFlow SavedModel, ONNX, TFLite.

Each export carries the model's settings next to it (``<output>.geoseg.json``: tile size,
bands, normalisation, class names), because a serving runtime needs them as much as the
weights. Inputs stay raw pixel values: normalisation is inside the graph.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import numpy as np
import tensorflow as tf
# isort: on

from geoseg.errors import ModelError, OutputError, OutputExistsError, param
from geoseg.model.flexunet import load_model
from geoseg.raster.outputs import atomic_output, refuse_inputs, temporary_sibling

__all__ = ["ExportFormat", "EXPORT_FORMATS", "export_model", "settings_sidecar"]

ExportFormat = Literal["savedmodel", "onnx", "tflite"]
EXPORT_FORMATS: tuple[str, ...] = ("savedmodel", "onnx", "tflite")


def settings_sidecar(path: Path) -> Path:
    """Where the settings of an exported model are written: ``<path>.geoseg.json``."""
    return path.with_name(path.name + ".geoseg.json")


def _check_target(path: Path, overwrite: bool, model_path: str | os.PathLike[str]) -> None:
    refuse_inputs(path, [model_path])
    for target in (path, settings_sidecar(path)):
        if target.exists() and not overwrite:
            raise OutputExistsError(f"{target}: exists already; pass {param('overwrite')} to "
                                    "replace it")
    if not path.parent.exists():
        raise OutputError(f"{path}: folder {path.parent} does not exist; create it first")


def _quietly(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an exporter that prints progress to stdout, keeping stdout for our own report."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def export_model(
    model_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    export_format: ExportFormat,
    overwrite: bool = False,
) -> Path:
    """Export a geoseg ``.keras`` model.

    Parameters
    ----------
    model_path : path
        A model saved by geoseg.
    out_path : path
        A folder for ``savedmodel``, a ``.onnx`` or ``.tflite`` file otherwise.
    export_format : {"savedmodel", "onnx", "tflite"}
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    Path
        The exported model; its settings are in :func:`settings_sidecar` of it.

    Raises
    ------
    ModelError
        Unknown format, unreadable model, or ONNX export without ``tf2onnx`` installed.
    OutputError, OutputExistsError
    """
    if export_format not in EXPORT_FORMATS:
        raise ModelError(f"unknown export format {export_format!r}; choose one of "
                         f"{', '.join(EXPORT_FORMATS)}")
    target = Path(out_path)
    _check_target(target, overwrite, model_path)
    model, settings = load_model(model_path)
    size, channels = settings.image_size, settings.image_channels
    model(np.zeros((1, size, size, channels), dtype=np.float32))  # exporters need a called model
    if export_format == "savedmodel":
        staging = temporary_sibling(target)
        try:
            _quietly(model.export, str(staging), format="tf_saved_model")
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    elif export_format == "onnx":
        try:
            import tf2onnx  # noqa: F401
        except ImportError as exc:
            raise ModelError("ONNX export needs tf2onnx and onnxruntime: "
                             "pip install 'geoseg[onnx]'") from exc
        with atomic_output(target, overwrite) as tmp:
            _quietly(model.export, str(tmp), format="onnx")
    else:
        with atomic_output(target, overwrite) as tmp:
            saved = tmp.with_name("savedmodel")
            _quietly(model.export, str(saved), format="tf_saved_model")
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            tmp.write_bytes(converter.convert())
            shutil.rmtree(saved)
    with atomic_output(settings_sidecar(target), overwrite=True) as tmp:
        tmp.write_text(settings.to_json())
    return target
