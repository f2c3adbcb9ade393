"""From a model file to a batch predictor, with TensorFlow loaded only when it is needed.

:func:`load_predictor` reads the model's settings from its ``.keras`` file at once (no
TensorFlow: a missing or foreign model file is refused in a fraction of a second) and starts
loading TensorFlow and the model in a background thread. Everything else a run checks (the
scene, its bands, the outputs) is checked meanwhile, and a mistake there is reported before
TensorFlow has even finished importing; the first batch waits for the model.

This module never imports TensorFlow itself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from geoseg.errors import ParameterError, param
from geoseg.model_file import read_settings
from geoseg.settings import ModelSettings

if TYPE_CHECKING:
    from geoseg.inference import KerasPredictor

__all__ = ["DEVICES", "PRECISIONS", "ModelPredictor", "file_digest", "load_predictor"]

DEVICES = ("auto", "cpu", "gpu")
"""Where a model may run: ``auto`` uses a GPU when TensorFlow sees one."""
PRECISIONS = ("float32", "bfloat16")
"""Arithmetic a model may run in."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (the identity of a model file in a resume journal)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelPredictor:
    """A :class:`geoseg.predict.BatchPredictor` over a model file, loaded on first use.

    Parameters
    ----------
    path : path
        A geoseg ``.keras`` model.
    batch_size : int
        Tiles per model call.
    device : {"auto", "cpu", "gpu"}
    precision : {"float32", "bfloat16"}

    Raises
    ------
    ModelError
        The file is missing or not a geoseg model (found without TensorFlow).
    ParameterError
        A batch size below 1, an unknown device or precision.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 4,
                 device: Literal["auto", "cpu", "gpu"] = "auto",
                 precision: Literal["float32", "bfloat16"] = "float32"):
        if batch_size < 1:
            raise ParameterError(f"{param('batch_size')} must be at least 1, got {batch_size}")
        if device not in DEVICES:
            raise ParameterError(f"{param('device')} must be one of {', '.join(DEVICES)}, "
                                 f"got {device!r}")
        if precision not in PRECISIONS:
            raise ParameterError(f"{param('precision')} must be one of {', '.join(PRECISIONS)}, "
                                 f"got {precision!r}")
        self.path = Path(path)
        self.settings: ModelSettings = read_settings(self.path)
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self._loaded: KerasPredictor | None = None

    def ready(self) -> KerasPredictor:
        """The Keras predictor, loading TensorFlow and the model the first time.

        Raises
        ------
        ModelError
            The archive's Keras model cannot be loaded or does not fit its settings.
        """
        if self._loaded is None:
            from geoseg.inference import KerasPredictor
            from geoseg.model import load_model

            model, _ = load_model(self.path)
            self._loaded = KerasPredictor(model, self.batch_size, self.device,
                                          precision=self.precision)
        return self._loaded

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, size, size, classes)`` for a batch of tiles."""
        return self.ready()(batch)


def load_predictor(path: str | os.PathLike[str], batch_size: int = 4,
                   device: Literal["auto", "cpu", "gpu"] = "auto",
                   precision: Literal["float32", "bfloat16"] = "float32") -> ModelPredictor:
    """The one way geoseg turns a model file into a batch predictor (see :class:`ModelPredictor`).

    >>> load_predictor("missing.keras")
    Traceback (most recent call last):
    ...
    geoseg.errors.ModelError: missing.keras: model file not found
    """
    return ModelPredictor(path, batch_size, device, precision)
