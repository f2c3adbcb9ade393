"""What the scene pipeline needs from a model, and the settings a model runs with.

:class:`BatchPredictor` is the one protocol between the model layer (:mod:`geoseg.model.predictor`,
:mod:`geoseg.model.inference`, :mod:`geoseg.model.runtimes`) and the scene pipeline
(:func:`geoseg.prediction.predict.predict_scene`): any callable mapping a float32 batch
``(n, size, size, bands)`` to probabilities ``(n, size, size, classes)``, with a
``batch_size``. The run settings (device, precision, backend) and their check
(:func:`check_run_settings`) sit here too, so that every model module reads them from below
instead of from each other. This module imports neither TensorFlow nor any other geoseg
module but :mod:`geoseg.errors`.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from geoseg.errors import ParameterError, param

__all__ = [
    "BACKENDS", "DEVICES", "INT8", "PRECISIONS", "Backend", "BatchPredictor", "Device",
    "Precision", "check_run_settings",
]


class BatchPredictor(Protocol):
    """What :func:`geoseg.prediction.predict.predict_scene` needs from a model."""

    batch_size: int

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Map ``(n, size, size, bands)`` float32 to ``(n, size, size, classes)`` float32."""
        ...


Device = Literal["auto", "cpu", "gpu"]
Precision = Literal["auto", "float32", "bfloat16", "int8"]
Backend = Literal["auto", "keras", "onnx", "openvino", "tflite"]
DEVICES = ("auto", "cpu", "gpu")
"""Where a model may run: ``auto`` uses a GPU when TensorFlow sees one."""
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
"""Arithmetic a model may run in: int8 is the model's int8 version for OpenVINO, made by
:func:`geoseg.model.quantize.quantize_model` (``geoseg quantize``); ``auto`` is int8 where it is
faster and the model has one, else float32 (:func:`geoseg.model.predictor.resolve_precision`)."""
BACKENDS = ("auto", "keras", "onnx", "openvino", "tflite")
"""What runs a model: ``keras`` (TensorFlow), ``onnx`` (ONNX Runtime), ``openvino``,
``tflite`` (LiteRT); ``auto`` is :data:`geoseg.model.predictor.AUTO_BACKEND` when it can run, else
``keras``."""
INT8 = "int8"
"""The precision, and the kind of conversion, of a model quantised to int8 for OpenVINO
(:mod:`geoseg.model.quantize`)."""
BFLOAT16_BACKENDS = ("auto", "keras", "openvino")
"""Backends that run bfloat16."""


def check_run_settings(batch_size: int, device: str, precision: str,
                       backend: str = "keras") -> None:
    """Refuse a batch size below 1, an unknown device, precision or backend, and the
    combinations a backend cannot run (a GPU without Keras, bfloat16 on ONNX or LiteRT, int8
    without OpenVINO).

    Raises
    ------
    ParameterError
    """
    if batch_size < 1:
        raise ParameterError(f"{param('batch_size')} must be at least 1, got {batch_size}")
    if device not in DEVICES:
        raise ParameterError(f"{param('device')} must be one of {', '.join(DEVICES)}, got "
                             f"{device!r}")
    if precision not in PRECISIONS:
        raise ParameterError(f"{param('precision')} must be one of {', '.join(PRECISIONS)}, "
                             f"got {precision!r}")
    if backend not in BACKENDS:
        raise ParameterError(f"{param('backend')} must be one of {', '.join(BACKENDS)}, got "
                             f"{backend!r}")
    if device == "gpu" and backend not in ("auto", "keras"):
        raise ParameterError(f"{param('device')} gpu runs with {param('backend')} keras only; "
                             f"the {backend} backend runs on the CPU")
    if precision == "bfloat16" and backend not in BFLOAT16_BACKENDS:
        raise ParameterError(f"{param('precision')} bfloat16 runs with {param('backend')} "
                             f"keras or openvino, not {backend}")
    if precision == INT8 and (backend not in ("auto", "openvino") or device == "gpu"):
        raise ParameterError(f"{param('precision')} int8 runs with {param('backend')} "
                             f"openvino on the CPU, not {backend} on {device}")
