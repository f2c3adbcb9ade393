"""Converting a geoseg model for another runtime, once, into the conversion cache.

:func:`converted_model` returns the file a backend of :mod:`geoseg.model.runtimes` runs: the cached
conversion when there is one (found without TensorFlow), else a new one made from the
``.keras`` file with TensorFlow (ONNX through Keras' exporter and tf2onnx, TFLite through
TensorFlow's converter) and written atomically into the first cache folder that can be
written, with its record (:func:`geoseg.model.runtimes.record_conversion`). Conversions are keyed
by the model file's digest and checked against their records, so a changed model is converted
again and a stale or altered conversion is never used.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from pathlib import Path

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import numpy as np
import tensorflow as tf
# isort: on

from geoseg.errors import ModelError
from geoseg.model.flexunet import load_model
from geoseg.model.model_archive import file_digest
from geoseg.model.runtimes import (
    cached_conversion,
    conversion_name,
    record_conversion,
    writable_cache_folder,
)

__all__ = ["converted_model"]

log = logging.getLogger(__name__)


def _convert(model_path: Path, backend: str, target: Path) -> None:
    """Write the conversion of the model for ``backend`` to ``target``."""
    model, settings = load_model(model_path)
    size, channels = settings.image_size, settings.image_channels
    model(np.zeros((1, size, size, channels), dtype=np.float32))  # exporters need a called model
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".converting-") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):  # the exporters print their progress
        if backend in ("onnx", "openvino"):
            try:
                import tf2onnx  # noqa: F401
            except ImportError as exc:
                raise ModelError(f"converting for the {backend} backend needs tf2onnx, a "
                                 "dependency of geoseg: pip install tf2onnx") from exc
            staged = Path(tmp) / "model.onnx"
            model.export(str(staged), format="onnx")
        else:
            saved = Path(tmp) / "savedmodel"
            model.export(str(saved), format="tf_saved_model")
            staged = Path(tmp) / "model.tflite"
            staged.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
        os.replace(staged, target)


def converted_model(model_path: str | os.PathLike[str], backend: str,
                    digest: str | None = None) -> Path:
    """The file ``backend`` runs for a geoseg model, converting it the first time.

    Parameters
    ----------
    model_path : path
        A geoseg ``.keras`` model.
    backend : {"onnx", "openvino", "tflite"}
        See :mod:`geoseg.model.runtimes`.
    digest : str, optional
        The model file's :func:`~geoseg.model.predictor.file_digest`, when known already.

    Returns
    -------
    Path
        The converted model in the cache.

    Raises
    ------
    ModelError
        The model cannot be loaded or converted, the converter is not installed, or no
        cache folder can be written.
    """
    source = Path(model_path)
    digest = digest or file_digest(source)
    found = cached_conversion(source, digest, backend)
    if found is not None:
        return found
    folder = writable_cache_folder(source)
    target = folder / conversion_name(source, digest, backend)
    log.warning("converting %s for %s, once: kept as %s", source, backend, target)
    start = time.perf_counter()
    try:
        _convert(source, backend, target)
    except ModelError:
        raise
    except Exception as exc:  # converters raise many types for graphs they do not support
        raise ModelError(f"{source}: cannot be converted for {backend} ({exc})") from exc
    record_conversion(target, digest)
    log.info("converted in %.1f s", time.perf_counter() - start)
    return target
