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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from geoseg.errors import ParameterError, param
from geoseg.model_file import read_settings
from geoseg.settings import ModelSettings

if TYPE_CHECKING:
    from geoseg.inference import KerasPredictor

__all__ = [
    "DEVICES", "PRECISIONS", "Device", "ModelPredictor", "ModelSpec", "Precision",
    "check_run_settings", "file_digest", "load_predictor",
]

Device = Literal["auto", "cpu", "gpu"]
Precision = Literal["float32", "bfloat16"]
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


def check_run_settings(batch_size: int, device: str, precision: str) -> None:
    """Refuse a batch size below 1, an unknown device or an unknown precision.

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


@dataclass(frozen=True)
class ModelSpec:
    """Which model to run, and how: a model file, tiles per call, device and precision.

    Small and picklable, so it travels to Dask workers, which load the model themselves.

    Raises
    ------
    ParameterError
        A batch size below 1, an unknown device or precision.
    """

    path: Path
    batch_size: int = 4
    device: Device = "auto"
    precision: Precision = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        check_run_settings(self.batch_size, self.device, self.precision)


class ModelPredictor:
    """A :class:`geoseg.predict.BatchPredictor` over a model file, loaded on first use.

    Parameters
    ----------
    spec : ModelSpec
        The model file and how to run it.

    Raises
    ------
    ModelError
        The file is missing or not a geoseg model (found without TensorFlow).
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.settings: ModelSettings = read_settings(spec.path)
        self.batch_size = spec.batch_size
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

            model, _ = load_model(self.spec.path)
            self._loaded = KerasPredictor(model, self.spec.batch_size, self.spec.device,
                                          precision=self.spec.precision)
        return self._loaded

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, size, size, classes)`` for a batch of tiles."""
        return self.ready()(batch)


def load_predictor(path: str | os.PathLike[str], batch_size: int = 4, device: Device = "auto",
                   precision: Precision = "float32") -> ModelPredictor:
    """The one way geoseg turns a model file into a batch predictor (see :class:`ModelPredictor`).

    >>> load_predictor("missing.keras")
    Traceback (most recent call last):
    ...
    geoseg.errors.ModelError: missing.keras: model file not found
    """
    return ModelPredictor(ModelSpec(Path(path), batch_size, device, precision))
