"""Running a Keras model on batches of tiles, on the GPU when there is one.

:class:`KerasPredictor` is the :class:`geoseg.model.model_protocol.BatchPredictor` used in practice:
it pads every batch to the same size so the compiled graph is traced once, and places the work
on the device asked for (``auto`` lets TensorFlow use a visible GPU, else the CPU).

Defaults come from ``bench/inference_speed.py`` (figures in ``bench/RESULTS.md``): on CPU, XLA
(``jit_compile``) was 1.8x slower than TensorFlow's own oneDNN kernels, and ONNX Runtime a
little slower; bfloat16 was 1.7x faster on a CPU with AVX512-BF16, but moved the landslide IoU
of one of two trained models by more than 0.005. So float32 without XLA stays the default and
both are options.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
# isort: on
import numpy as np
import tensorflow as tf

from geoseg.errors import InputError, ModelError, param
from geoseg.model.model_protocol import Device, Precision, check_run_settings
from geoseg.raster.batching import in_batches, windows_per_batch

__all__ = ["Device", "KerasPredictor", "Precision", "bfloat16_model", "resolve_device"]

log = logging.getLogger(__name__)



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
            raise InputError(f"{param('device')} gpu: TensorFlow sees no GPU here; use auto or cpu")
        return "/GPU:0"
    return "/GPU:0" if gpus else "/CPU:0"


def bfloat16_model(model: keras.Model) -> keras.Model:
    """A copy of ``model`` computing in bfloat16 (Keras ``mixed_bfloat16``), same weights.

    The layers producing the model's outputs stay float32, as Keras' mixed-precision guide
    advises for softmax and sigmoid outputs; weights stay float32 in every layer.

    Raises
    ------
    ModelError
        The model cannot be cloned (a subclassed, non-functional model).
    """
    outputs = {tensor._keras_history[0].name for tensor in model.outputs}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name not in outputs:
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model {model.name} cannot run in bfloat16 ({exc}); use float32") \
            from exc
    copy.set_weights(model.get_weights())
    return copy


class KerasPredictor:
    """Call a Keras segmentation model on fixed-size batches.

    Parameters
    ----------
    model : keras.Model
        Maps ``(n, size, size, bands)`` float32 to ``(n, size, size, classes)`` probabilities.
    batch_size : int
        Tiles per model call; smaller batches are padded so the graph is traced once.
    device : {"auto", "cpu", "gpu"}
    precision : {"float32", "bfloat16"}
        ``bfloat16`` runs a :func:`bfloat16_model` copy: faster on CPUs with bfloat16
        instructions (AVX512-BF16, AMX) and recent GPUs, slower elsewhere; probabilities move
        by up to ~0.1 on borderline pixels.
    jit_compile : bool
        Compile with XLA. If XLA is unavailable, the first call warns and falls back to the
        plain graph.
    resize : callable, optional
        ``resize(side)`` builds the same model for square tiles of another side (windows
        larger than the model's tile: :func:`geoseg.model.flexunet.resized_flexunet`); called once
        per new side. Without it, tiles of another side are refused.

    Raises
    ------
    InputError
        ``batch_size`` below 1, or ``gpu`` asked for without one.
    """

    def __init__(
        self,
        model: keras.Model,
        batch_size: int = 4,
        device: Device = "auto",
        *,
        precision: Precision = "float32",
        jit_compile: bool = False,
        resize: Callable[[int], keras.Model] | None = None,
    ):
        check_run_settings(batch_size, device, precision)
        self.model = bfloat16_model(model) if precision == "bfloat16" else model
        self._resize = resize
        self.takes_windows = resize is not None
        """Whether it runs windows larger than the model's tile."""
        self._side = model.input_shape[1]
        self._tile_size = self._side
        self._by_side: dict[int, tuple[keras.Model, Callable[[tf.Tensor], tf.Tensor]]] = {}
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.precision = precision
        self.jit_compile = jit_compile
        log.info("running the model on %s, %d tiles per batch, %s%s", self.device, batch_size,
                 precision, " with XLA" if jit_compile else "")
        self._forward = self._trace(jit_compile)
        self._by_side[self._side] = (self.model, self._forward)

    def _use_side(self, side: int) -> None:
        """Run tiles of ``side`` pixels from now on (building that model the first time)."""
        if side not in self._by_side:
            if self._resize is None:
                raise ModelError(f"the model takes {self._side}-pixel tiles, not {side}")
            model = self._resize(side)
            self.model = bfloat16_model(model) if self.precision == "bfloat16" else model
            self._by_side[side] = (self.model, self._trace(self.jit_compile))
        self.model, self._forward = self._by_side[side]
        self._side = side

    def _trace(self, jit_compile: bool) -> Callable[[tf.Tensor], tf.Tensor]:
        model = self.model
        with tf.device(self.device):
            return tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                               jit_compile=jit_compile)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            tensor = tf.convert_to_tensor(chunk, dtype=tf.float32)
            try:
                return np.asarray(self._forward(tensor))
            except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError,
                    tf.errors.InternalError, NotImplementedError) as exc:
                if not self.jit_compile:
                    raise
                log.warning("XLA is unavailable here (%s); running without jit_compile",
                            str(exc).splitlines()[0])
                self.jit_compile = False
                self._forward = self._trace(False)
                return np.asarray(self._forward(tensor))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of tiles (any count up to ``batch_size`` or more), or of
        windows larger than the model's tile, as many at a time as hold no more pixels
        (:func:`geoseg.raster.batching.windows_per_batch`)."""
        if batch.shape[1] != self._side:
            self._use_side(batch.shape[1])
        return in_batches(self._run, batch,
                          windows_per_batch(self.batch_size, self._tile_size, self._side))
