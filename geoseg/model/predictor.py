"""From a model file to a batch predictor, with its runtime loaded only when it is needed.

:class:`ModelPredictor` reads the model's settings from its ``.keras`` file at once (no
TensorFlow: a missing or foreign model file is refused in a fraction of a second), and loads
the runtime and the model on the first batch, after everything else a run checks (the scene,
its bands, the outputs). A model converted before can start loading in a background thread
meanwhile (:meth:`ModelPredictor.start`).

The runtime is a *backend* (:data:`BACKENDS`): Keras on TensorFlow, or a conversion of the
model (made once and cached, :mod:`geoseg.model.convert`) run by ONNX Runtime, OpenVINO or LiteRT
(:mod:`geoseg.model.runtimes`), which do not need TensorFlow once the conversion exists.

This module never imports TensorFlow itself.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoseg.errors import ModelError
from geoseg.model.bundled import resolve_model
from geoseg.model.model_archive import file_digest, read_settings
from geoseg.model.model_protocol import (
    BACKENDS,
    BFLOAT16_BACKENDS,
    DEVICES,
    INT8,
    PRECISIONS,
    Backend,
    BatchPredictor,
    Device,
    Precision,
    check_run_settings,
)
from geoseg.model.runtimes import cached_conversion, cpu_has_int8
from geoseg.settings import ModelSettings

__all__ = [
    "AUTO_BACKEND", "BACKENDS", "DEVICES", "PRECISIONS", "WINDOW_BACKENDS", "Backend", "Device",
    "ModelPredictor", "ModelSpec", "Precision", "check_run_settings", "file_digest",
    "gpu_likely", "load_predictor", "resolve_backend", "resolve_precision",
]

log = logging.getLogger(__name__)

AUTO_BACKEND = "openvino"
"""The backend ``auto`` prefers: the fastest within 0.005 landslide IoU of float32 Keras on
every model measured (``bench/inference_speed.py``, figures in ``bench/RESULTS.md``: OpenVINO
in float32 was 1.11x and 1.17x as fast, with the same masks, and starts without TensorFlow
once the model is converted)."""
WINDOW_BACKENDS = ("keras", "openvino")
"""Backends that run windows larger than the model's tile (the others run fixed-size
conversions)."""
_PACKAGES = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "ai_edge_litert"}


def _no_int8(model_path: Path) -> ModelError:
    return ModelError(f"{model_path}: no int8 version of this model yet; quantise it on imagery "
                      "like yours first (geoseg quantize MODEL SCENES, or "
                      "geoseg.model.quantize.quantize_model)")


NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
"""Where the NVIDIA driver lists the GPUs it drives (Linux)."""


def gpu_likely(gpus_folder: Path = NVIDIA_GPUS) -> bool:
    """Whether TensorFlow will likely see a GPU, guessed without importing it (which takes
    seconds): the NVIDIA driver lists one, and ``CUDA_VISIBLE_DEVICES`` does not hide them
    all."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    try:
        return any(gpus_folder.iterdir())
    except OSError:
        return False


def resolve_backend(backend: str, device: str = "auto", precision: str = "float32",
                    model_path: Path | None = None) -> str:
    """The backend that runs: ``auto`` becomes :data:`AUTO_BACKEND` when the run suits it
    (not on a GPU: neither asked for nor, with device ``auto``, likely here by
    :func:`gpu_likely`; in one of its precisions), its package is installed and the model can be
    converted for it or was before (with ``model_path``), else ``keras``."""
    if backend != "auto":
        return backend
    if precision == INT8:
        return "openvino"  # the only one with an int8 version
    choice = AUTO_BACKEND
    if choice == "keras" or device == "gpu" or (device == "auto" and gpu_likely()) or (
            precision == "bfloat16" and choice not in BFLOAT16_BACKENDS):
        return "keras"
    if importlib.util.find_spec(_PACKAGES[choice]) is None:
        return "keras"
    if model_path is not None and choice in ("onnx", "openvino") \
            and importlib.util.find_spec("tf2onnx") is None:
        if cached_conversion(model_path, file_digest(model_path), choice) is None:
            return "keras"  # nothing here can convert it
    return choice


def resolve_precision(precision: str, device: str = "auto", backend: str = "auto",
                      model_path: Path | None = None) -> str:
    """The precision that runs: ``auto`` is int8 when the model has an int8 version (bundled
    models ship theirs; ``geoseg quantize`` and ``geoseg train`` make one), the CPU has int8
    instructions (:func:`geoseg.model.runtimes.cpu_has_int8`, without them int8 is no faster) and
    the run is OpenVINO's on the CPU (a backend ``auto`` or ``openvino``, no GPU asked for
    nor, with ``auto`` for both, likely here); float32 otherwise."""
    if precision != "auto":
        return precision
    on_cpu = device == "cpu" or (device == "auto" and (backend == "openvino" or not gpu_likely()))
    if (model_path is None or not model_path.is_file() or backend not in ("auto", "openvino")
            or not on_cpu or importlib.util.find_spec(_PACKAGES["openvino"]) is None
            or not cpu_has_int8()):
        return "float32"
    found = cached_conversion(model_path, file_digest(model_path), INT8)
    return INT8 if found is not None else "float32"


@dataclass(frozen=True)
class ModelSpec:
    """Which model to run, and how: a model file, tiles per call, device, precision, backend.

    ``path`` may also name a bundled model (:func:`geoseg.model.bundled.resolve_model`). Precision
    ``auto`` is resolved here, once (:func:`resolve_precision`): the spec holds the precision
    that runs, and Dask workers run the same.

    Small and picklable, so it travels to Dask workers, which load the model themselves.

    Raises
    ------
    ParameterError
        A batch size below 1, an unknown device, precision or backend, or a combination
        the backend cannot run.
    """

    path: Path
    batch_size: int = 4
    device: Device = "auto"
    precision: Precision = "auto"
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", resolve_model(self.path))
        check_run_settings(self.batch_size, self.device, self.precision, self.backend)
        object.__setattr__(self, "precision", resolve_precision(
            self.precision, self.device, self.backend, self.path))

    @property
    def takes_windows(self) -> bool:
        """Whether the backend that runs (``auto`` resolved) takes windows larger than the
        model's tile (:data:`WINDOW_BACKENDS`)."""
        return resolve_backend(self.backend, self.device, self.precision,
                               self.path) in WINDOW_BACKENDS

    def runtime(self, backend: str | None = None, digest: str | None = None) -> str:
        """What computes the probabilities: the backend (``auto`` resolved, unless the
        resolved ``backend`` is given), the precision and the device, e.g. ``"openvino float32
        auto"``. Another runtime gives slightly other probabilities, so a resumed run must use
        the same (it is in the resume journal). ``digest``: the model file's, when known."""
        if backend is None:
            backend = resolve_backend(self.backend, self.device, self.precision, self.path)
        precision: str = self.precision
        if precision == INT8:  # which int8 version: quantising again makes another
            found = cached_conversion(self.path, digest or file_digest(self.path), INT8)
            if found is not None:
                precision = f"int8:{file_digest(found.with_suffix('.bin'))[:12]}"
        return f"{backend} {precision} {self.device}"


class ModelPredictor:
    """A :class:`geoseg.model.model_protocol.BatchPredictor` over a model file, loaded on first use.

    Parameters
    ----------
    spec : ModelSpec
        The model file and how to run it.

    Raises
    ------
    ModelError
        The file is missing or not a geoseg model (found without TensorFlow), or precision
        int8 is asked for and the model has no int8 version (:mod:`geoseg.model.quantize`).
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.settings: ModelSettings = read_settings(spec.path)
        self.batch_size = spec.batch_size
        self.backend = resolve_backend(spec.backend, spec.device, spec.precision, spec.path)
        """The backend that runs the model (``auto`` resolved)."""
        self.takes_windows = self.backend in WINDOW_BACKENDS
        """Whether it runs windows larger than the model's tile."""
        self._kind = INT8 if spec.precision == INT8 else self.backend
        """The conversion it runs (:func:`geoseg.model.runtimes.cached_conversion`)."""
        self._loaded: BatchPredictor | None = None
        self._loader: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._digest: str | None = None
        if self._kind == INT8 and cached_conversion(spec.path, self._model_digest(),
                                                    INT8) is None:
            raise _no_int8(spec.path)
        self.runtime = spec.runtime(self.backend, self._digest)
        """What computes the probabilities (:meth:`ModelSpec.runtime`)."""

    def _model_digest(self) -> str:
        """The model file's digest, read once (a large model takes seconds to hash)."""
        if self._digest is None:
            self._digest = file_digest(self.spec.path)
        return self._digest

    def start(self) -> None:
        """Begin loading a converted model in a background thread, when one is cached.

        A Keras model, or one to convert, still loads on the first batch: importing TensorFlow
        silences file descriptor 2 while it runs (:mod:`geoseg.model._quiet_tf`), which in a
        background thread swallowed the main thread's messages (an ``Error:`` line, warnings),
        for ~0.1 s gained on the sample scene. The thread is not a daemon: an interpreter
        that exits meanwhile waits for it. A failure is raised by :meth:`ready`.
        """
        if self._loaded is not None or self._loader is not None or self.backend == "keras":
            return
        if cached_conversion(self.spec.path, self._model_digest(), self._kind) is None:
            return
        self._loader = threading.Thread(target=self._load_in_background,
                                        name="geoseg-model-loader")
        self._loader.start()

    def _load_in_background(self) -> None:
        try:
            self._loaded = self._load()
        except BaseException as exc:  # raised by ready(), in the thread that needs the model
            self._failure = exc

    def _load(self) -> BatchPredictor:
        spec = self.spec
        log.info("loading %s with the %s backend", spec.path, self.backend)
        if self.backend == "keras":
            from geoseg.model.flexunet import load_model, resized_flexunet
            from geoseg.model.inference import KerasPredictor

            model, settings = load_model(spec.path)
            return KerasPredictor(model, spec.batch_size, spec.device, precision=spec.precision,
                                  resize=functools.partial(resized_flexunet, model, settings))
        from geoseg.model.runtimes import open_runtime

        digest = self._model_digest()
        converted = cached_conversion(spec.path, digest, self._kind)
        if converted is None and self._kind == INT8:
            raise _no_int8(spec.path)
        if converted is None:  # the first run with this model: TensorFlow converts it
            from geoseg.model.convert import converted_model

            converted = converted_model(spec.path, self.backend, digest)
        return open_runtime(self.backend, converted, spec.batch_size, spec.precision)

    def ready(self) -> BatchPredictor:
        """The predictor, loading the runtime and the model the first time.

        Raises
        ------
        ModelError
            The model cannot be loaded, does not fit its settings, cannot be converted for
            the backend, or the backend's package is not installed.
        """
        if self._loader is not None:
            self._loader.join()
            self._loader = None
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, size, size, classes)`` for a batch of tiles."""
        return self.ready()(batch)


def load_predictor(path: str | os.PathLike[str], batch_size: int = ModelSpec.batch_size,
                   device: Device = ModelSpec.device, precision: Precision = ModelSpec.precision,
                   backend: Backend = ModelSpec.backend) -> ModelPredictor:
    """The one way geoseg turns a model file into a batch predictor (see :class:`ModelPredictor`);
    its defaults are :class:`ModelSpec`'s.

    >>> load_predictor("missing.keras")
    Traceback (most recent call last):
    ...
    geoseg.errors.ModelError: missing.keras: model file not found
    """
    return ModelPredictor(ModelSpec(Path(path), batch_size, device, precision, backend))
