"""Running a converted geoseg model without TensorFlow: ONNX Runtime, OpenVINO, LiteRT.

A geoseg ``.keras`` model is converted once (:mod:`geoseg.model.convert`, which needs TensorFlow)
and the result is kept in a cache keyed by the model file's digest
(:func:`geoseg.model.model_archive.file_digest`): next to the model, in a ``.geoseg-cache`` folder,
or, when that folder cannot be written (a read-only installation), in the user's cache folder
(``$XDG_CACHE_HOME/geoseg``, ``~/.cache/geoseg``). :func:`cached_conversion` finds a
conversion without TensorFlow, so a run whose model was converted before never imports it.
A conversion is used only when the record written beside it (:func:`record_conversion`) says
it was made from a model of this digest and its files still have the digests recorded: a
file merely named like it, or changed since, is converted again.

The runtimes are imported when a model is opened: OpenVINO is a dependency of geoseg, the
others optional; a missing one is reported with what to install (``pip install
'geoseg[onnx]'``, ...).

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import ModelError
from geoseg.model.model_archive import file_digest
from geoseg.model.model_protocol import INT8
from geoseg.raster.batching import in_batches, windows_per_batch
from geoseg.raster.outputs import atomic_output

__all__ = [
    "CONVERTED_SUFFIX", "INT8", "INT8_INSTRUCTIONS", "OnnxPredictor", "OpenVinoPredictor",
    "TfLitePredictor",
    "cache_folders", "cached_conversion", "conversion_name", "cpu_has_int8", "open_runtime",
    "record_conversion", "thread_budget", "writable_cache_folder",
]

log = logging.getLogger(__name__)

CONVERTED_SUFFIX = {"onnx": ".onnx", "openvino": ".onnx", "tflite": ".tflite",
                    INT8: "-int8.xml"}
"""The file each backend runs (OpenVINO reads the ONNX conversion itself), and the int8
OpenVINO model (its weights in the ``.bin`` beside it)."""

INT8_INSTRUCTIONS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""The CPU flags (as Linux names them) of the int8 dot-product instructions that make an int8
model faster than float32 (AVX512-VNNI, AVX-VNNI, AMX-INT8): without them OpenVINO emulates
int8, no faster."""
CPUINFO = Path("/proc/cpuinfo")
"""Where Linux lists the CPU's flags."""

CACHE_FOLDER = ".geoseg-cache"
"""Name of the cache folder next to a model."""
RECORD_SUFFIX = ".json"
"""A conversion's record is the conversion's file name plus this."""


def thread_budget() -> int:
    """Threads a runtime may use: ``OMP_NUM_THREADS`` when set (a Dask worker's share of the
    cores, :mod:`geoseg.prediction.distributed`), else every core.

    >>> import os
    >>> os.environ["OMP_NUM_THREADS"] = "1"; thread_budget()
    1
    >>> del os.environ["OMP_NUM_THREADS"]; thread_budget() == (os.cpu_count() or 1)
    True
    """
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdecimal() and int(value) > 0 else (os.cpu_count() or 1)


def cpu_has_int8() -> bool:
    """Whether this CPU has int8 dot-product instructions (:data:`INT8_INSTRUCTIONS` among
    the flags of :data:`CPUINFO`). False where the flags cannot be read (systems other than
    Linux): float32 then stays the default."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":  # every core lists the same
            return not set(INT8_INSTRUCTIONS).isdisjoint(value.split())
    return False


def user_cache_folder() -> Path:
    """The user's cache folder for geoseg (``$XDG_CACHE_HOME/geoseg``, ``~/.cache/geoseg``;
    ``%LOCALAPPDATA%\\geoseg`` on Windows)."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "geoseg"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "geoseg"


def cache_folders(model_path: Path) -> list[Path]:
    """Where conversions of a model are looked for, first choice first."""
    return [model_path.resolve().parent / CACHE_FOLDER, user_cache_folder()]


def writable_cache_folder(model_path: Path) -> Path:
    """The first of a model's cache folders that can be created and written.

    Raises
    ------
    ModelError
        None can.
    """
    problems = []
    for folder in cache_folders(model_path):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):
                return folder
        except OSError as exc:
            problems.append(f"{folder}: {exc.strerror or exc}")
    raise ModelError("no folder to keep the converted model in: " + "; ".join(problems))


def conversion_name(model_path: Path, digest: str, backend: str) -> str:
    """File name of a model's conversion for a backend (or :data:`INT8`):
    ``<stem>-<digest[:16]>.onnx``."""
    return f"{model_path.stem}-{digest[:16]}{CONVERTED_SUFFIX[backend]}"


def _conversion_files(conversion: Path) -> list[Path]:
    """The files of a conversion: the model, and an OpenVINO model's weights (``.bin``)."""
    if conversion.suffix == ".xml":
        return [conversion, conversion.with_suffix(".bin")]
    return [conversion]


def _record_path(conversion: Path) -> Path:
    return conversion.with_name(conversion.name + RECORD_SUFFIX)


def record_conversion(conversion: Path, digest: str) -> Path:
    """Write the record of a conversion just made: the digest of the model it was made from
    and its files' own digests, which :func:`cached_conversion` checks before using it.

    Returns the record's path (the conversion's, plus :data:`RECORD_SUFFIX`).
    """
    record = {"model": digest,
              "files": {path.name: file_digest(path) for path in _conversion_files(conversion)}}
    with atomic_output(_record_path(conversion), overwrite=True) as tmp:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return _record_path(conversion)


def _verified(conversion: Path, digest: str) -> bool:
    """Whether ``conversion``'s record says it was made from the model of ``digest``, and its
    files still have the digests recorded."""
    try:
        record = json.loads(_record_path(conversion).read_text(encoding="utf-8"))
        if record["model"] != digest:
            return False
        files = _conversion_files(conversion)
        return set(record["files"]) == {path.name for path in files} and all(
            file_digest(path) == record["files"][path.name] for path in files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cached_conversion(model_path: Path, digest: str, backend: str) -> Path | None:
    """The cached conversion of the model with this digest for ``backend`` (or its
    :data:`INT8` version), if any that its record verifies (see :func:`record_conversion`);
    a file of its name that it does not verify is logged and left out."""
    name = conversion_name(model_path, digest, backend)
    for folder in cache_folders(model_path):
        if (folder / name).is_file():
            if _verified(folder / name, digest):
                return folder / name
            log.warning("%s: not used, its record does not show it was made from %s as it is "
                        "now (a conversion of an older geoseg, or changed since)",
                        folder / name, model_path)
    return None


def _runtime_module(module: str, package: str, extra: str, backend: str) -> Any:
    """Import a backend's runtime ``module``, or say which package and extra install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"the {backend} backend needs the {package} package: "
                         f"pip install 'geoseg[{extra}]' (or choose another backend)") from exc


def _check_side(chunk: np.ndarray, side: object, backend: str) -> None:
    """Refuse tiles of another side than a fixed-size converted model takes."""
    if isinstance(side, int) and chunk.shape[1] != side:
        raise ModelError(f"the {backend} backend runs {side}-pixel tiles only, not "
                         f"{chunk.shape[1]}; predict larger windows with the openvino or keras "
                         "backend")


class OnnxPredictor:
    """A :class:`geoseg.model.model_protocol.BatchPredictor` over an ONNX model, with ONNX Runtime
    (CPU).

    Parameters
    ----------
    path : path
        The ``.onnx`` file (input ``(n, size, size, bands)`` float32).
    batch_size : int
        Tiles per call.

    Raises
    ------
    ModelError
        onnxruntime is not installed, or the file cannot be loaded.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 4):
        onnxruntime = _runtime_module("onnxruntime", "onnxruntime", "onnx", "onnx")
        self.batch_size = batch_size
        self.takes_windows = False
        try:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = thread_budget()
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
        self._input = self._session.get_inputs()[0].name
        self._side = self._session.get_inputs()[0].shape[1]
        log.info("running %s with ONNX Runtime %s on the CPU", path, onnxruntime.__version__)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        _check_side(chunk, self._side, "onnx")
        return np.asarray(self._session.run(None, {self._input: chunk})[0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, size, size, classes)`` for a batch of tiles."""
        return in_batches(self._run, batch, self.batch_size)


class OpenVinoPredictor:
    """A :class:`geoseg.model.model_protocol.BatchPredictor` over an ONNX model, with OpenVINO
    (CPU).

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    batch_size : int
        Tiles per call; the model is compiled for this batch, and for windows larger than the
        model's tile for as many as hold no more pixels
        (:func:`geoseg.raster.batching.windows_per_batch`).
    precision : {"float32", "bfloat16", "int8"}
        OpenVINO's inference precision. Left to itself OpenVINO computes in bfloat16 on CPUs
        with AVX512-BF16 or AMX, so float32 is asked for explicitly unless bfloat16 is. An
        int8 model (:mod:`geoseg.model.quantize`) runs its quantised layers in int8 and the others
        in float32. Threads are not pinned to cores.

    Raises
    ------
    ModelError
        openvino is not installed, or the file cannot be compiled.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 4,
                 precision: str = "float32"):
        openvino = _runtime_module("openvino", "openvino", "openvino", "openvino")
        self.batch_size = batch_size
        self.takes_windows = True
        self._path = path
        self._core = openvino.Core()
        self._config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            # Pinned threads wait for their own core: on a machine shared with other
            # processes that made OpenVINO 3x slower (bench/RESULTS.md).
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_NUM_THREADS": thread_budget(),
        }
        self._requests: dict[int, Any] = {}
        """An inference request per tile side, compiled the first time a side comes."""
        self._tile_size = self._compile(None)
        log.info("running %s with OpenVINO %s on the CPU in %s", path, openvino.__version__,
                 precision)

    def _compile(self, side: int | None) -> int:
        """Compile the model for tiles of ``side`` pixels (``None``: the model's own), in
        batches of :meth:`_chunk`; returns the side compiled."""
        try:
            model = self._core.read_model(str(self._path))
            shape = model.inputs[0].get_partial_shape()
            shape[0] = self.batch_size
            if side is not None:  # fully convolutional: the same graph, larger windows
                shape[0] = self._chunk(side)
                shape[1] = shape[2] = side
            model.reshape({model.inputs[0]: shape})
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:  # OpenVINO raises RuntimeError for everything
            raise ModelError(f"{self._path}: OpenVINO cannot compile it"
                             + (f" for {side}-pixel windows" if side else "")
                             + f" ({exc})") from exc
        compiled_side = int(compiled.inputs[0].get_shape()[1])
        self._requests[compiled_side] = compiled.create_infer_request()
        return compiled_side

    def _chunk(self, side: int) -> int:
        """Windows of ``side`` pixels per inference: a static shape, the last chunk padded."""
        return windows_per_batch(self.batch_size, self._tile_size, side)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        side = chunk.shape[1]
        if side not in self._requests:
            self._compile(side)
        result = self._requests[side].infer({0: chunk})
        return np.array(next(iter(result.values())))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, side, side, classes)`` for a batch of tiles of any side the
        network takes (windows larger than the model's tile are compiled once per side)."""
        return in_batches(self._run, batch, self._chunk(batch.shape[1]))


class TfLitePredictor:
    """A :class:`geoseg.model.model_protocol.BatchPredictor` over a ``.tflite`` model, with LiteRT
    (XNNPACK on the CPU).

    Parameters
    ----------
    path : path
        The ``.tflite`` file.
    batch_size : int
        Tiles per call; the interpreter is sized for this batch.

    Raises
    ------
    ModelError
        ai-edge-litert is not installed, or the file cannot be loaded.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 4):
        litert = _runtime_module("ai_edge_litert.interpreter", "ai-edge-litert", "tflite",
                                 "tflite")
        self.batch_size = batch_size
        self.takes_windows = False
        try:
            self._interpreter: Any = litert.Interpreter(model_path=str(path),
                                                        num_threads=thread_budget())
            detail = self._interpreter.get_input_details()[0]
            self._interpreter.resize_tensor_input(
                detail["index"], [batch_size, *detail["shape"][1:]])
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: LiteRT cannot load it ({exc})") from exc
        self._input = detail["index"]
        self._side = int(detail["shape"][1])
        self._output = self._interpreter.get_output_details()[0]["index"]
        log.info("running %s with LiteRT on the CPU", path)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        _check_side(chunk, self._side, "tflite")
        self._interpreter.set_tensor(self._input, chunk)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, size, size, classes)`` for a batch of tiles."""
        return in_batches(self._run, batch, self.batch_size)


def open_runtime(
    backend: str, path: Path, batch_size: int, precision: str = "float32"
) -> OnnxPredictor | OpenVinoPredictor | TfLitePredictor:
    """The predictor of a non-Keras backend over its converted model file.

    Raises
    ------
    ModelError
        The backend's package is missing, or it cannot load the file.
    """
    if backend == "onnx":
        return OnnxPredictor(path, batch_size)
    if backend == "openvino":
        return OpenVinoPredictor(path, batch_size, precision)
    if backend == "tflite":
        return TfLitePredictor(path, batch_size)
    raise ModelError(f"unknown backend {backend!r}")
