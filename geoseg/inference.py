"""Running a Keras model on batches of tiles, on the GPU when there is one.

:class:`KerasPredictor` is the :class:`geoseg.predict.BatchPredictor` used in practice: it pads
every batch to the same size so the compiled graph is traced once, and places the work on the
device asked for (``auto`` lets TensorFlow use a visible GPU, else the CPU).
"""

from __future__ import annotations

import logging
from typing import Literal

# isort: off
import geoseg._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
# isort: on
import numpy as np
import tensorflow as tf

from geoseg.errors import InputError

__all__ = ["Device", "KerasPredictor", "resolve_device"]

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu"]


def resolve_device(device: Device) -> str:
    """The TensorFlow device string for ``device``.

    Raises
    ------
    InputError
        ``gpu`` was asked for but TensorFlow sees none.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        return "/CPU:0"
    if device == "gpu":
        if not gpus:
            raise InputError("--device gpu: TensorFlow sees no GPU here; use --device auto or cpu")
        return "/GPU:0"
    return "/GPU:0" if gpus else "/CPU:0"


class KerasPredictor:
    """Call a Keras segmentation model on fixed-size batches.

    Parameters
    ----------
    model : keras.Model
        Maps ``(n, size, size, bands)`` float32 to ``(n, size, size, classes)`` probabilities.
    batch_size : int
        Tiles per model call; smaller batches are padded so the graph is traced once.
    device : {"auto", "cpu", "gpu"}
    """

    def __init__(self, model: keras.Model, batch_size: int = 4, device: Device = "auto"):
        if batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.device = resolve_device(device)
        log.info("running the model on %s, %d tiles per batch", self.device, batch_size)
        with tf.device(self.device):
            self._forward = tf.function(
                lambda x: model(x, training=False), reduce_retracing=True
            )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of tiles (any count up to ``batch_size`` or more)."""
        count = batch.shape[0]
        outputs = []
        for start in range(0, count, self.batch_size):
            chunk = batch[start : start + self.batch_size]
            short = self.batch_size - chunk.shape[0]
            if short:
                chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), chunk.dtype)])
            with tf.device(self.device):
                result = self._forward(tf.convert_to_tensor(chunk, dtype=tf.float32))
            outputs.append(np.asarray(result)[: self.batch_size - short])
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
