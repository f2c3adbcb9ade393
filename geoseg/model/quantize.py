"""An int8 version of a geoseg model for OpenVINO, calibrated on the user's own imagery.

:func:`quantize_model` takes the model's OpenVINO conversion (made once,
:mod:`geoseg.model.convert`), quantises it to int8 with NNCF's post-training quantisation,
calibrated on tiles of the given scenes read through the one tiler (:mod:`geoseg.raster.tiling`),
and keeps it in the model's conversion cache (:mod:`geoseg.model.runtimes`), where
``precision="int8"`` finds it. The first convolution stays in float32: it is the layer int8 hurts
most (``bench/inference_speed.py``: with it in float32, int8 ran 2.9-3.5x as fast as float32 Keras
and the masks moved by 0.007-0.008 IoU instead of 0.017-0.019). How far the int8 masks are from
float32's depends on the model and the imagery, so it is measured on other tiles of the same scenes
and reported.

Needs ``nncf`` (``pip install 'geoseg[int8]'``). TensorFlow is imported only to convert a model
that was never converted.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InputError, ModelError, ParameterError, param
from geoseg.model.bundled import resolve_model
from geoseg.model.model_archive import file_digest, read_settings
from geoseg.model.runtimes import (
    INT8,
    OpenVinoPredictor,
    cached_conversion,
    conversion_name,
    record_conversion,
    writable_cache_folder,
)
from geoseg.raster.mask_format import classify
from geoseg.raster.scene import open_scene, select_bands
from geoseg.raster.tiling import TileGrid, read_tile
from geoseg.settings import ModelSettings

__all__ = ["Quantized", "calibration_tiles", "int8_model", "quantize_if_installed",
           "quantize_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quantized:
    """An int8 version of a model, and how far its masks are from float32's."""

    path: Path
    """The int8 OpenVINO model (``.xml``, its weights in the ``.bin`` beside it) in the cache."""
    calibration_tiles: int
    checked_tiles: int
    """Other tiles of the same scenes, on which float32 and int8 were compared; 0 when the
    scenes had no other tile with data, and they were compared on the calibration tiles."""
    agreement_iou: float
    """IoU of the landslide pixels of int8 and of float32 on the checked tiles (1 when both
    have none)."""
    differing_pixels: float
    """Share of the checked tiles' valid pixels whose class differs."""


def calibration_tiles(scenes: Sequence[str | os.PathLike[str]], settings: ModelSettings,
                      count: int, bands: Sequence[int] | None = None) -> np.ndarray:
    """Up to ``count`` tiles with data, spread evenly over the tile grids of ``scenes`` (the
    model's tiles, read as prediction reads them), ``(n, size, size, bands)`` float32.

    Raises
    ------
    InputError
        A scene cannot be read or lacks the bands, or no tile holds data.
    """
    sizes = []
    for scene in scenes:  # checks every scene first; one open at a time (a glob may be long)
        with open_scene(scene, expect_crs=False) as src:  # pixels only
            select_bands(src, settings.bands, bands)
            sizes.append(len(TileGrid.for_model(src, settings)))
    total = sum(sizes)
    picks = np.linspace(0, total - 1, min(count, total)).round().astype(int)
    images: list[np.ndarray] = []
    start = 0
    for scene, size in zip(scenes, sizes, strict=True):
        mine = picks[(picks >= start) & (picks < start + size)] - start
        if len(mine):
            with open_scene(scene, expect_crs=False) as src:
                band_list = select_bands(src, settings.bands, bands)
                grid = TileGrid.for_model(src, settings)
                columns = grid.shape[1]
                for index in np.unique(mine):
                    image, valid = read_tile(src, grid.tile(*divmod(int(index), columns)),
                                             settings.image_size, band_list)
                    if valid.any():
                        images.append(image)
        start += size
    if not images:
        raise InputError(f"{', '.join(map(str, scenes))}: no tile holds data to calibrate on")
    return np.stack(images)


def quantize_model(model_path: str | os.PathLike[str],
                   scenes: Sequence[str | os.PathLike[str]], *, tiles: int = 64,
                   bands: Sequence[int] | None = None) -> Quantized:
    """Make (or make again) the int8 version of a model, calibrated on ``tiles`` tiles of
    ``scenes``, and compare it with float32 on as many other tiles of them.

    Parameters
    ----------
    model_path : path
        A geoseg ``.keras`` model, or a bundled model's name.
    scenes : sequence of paths
        Imagery like the imagery the model will predict (rasters GDAL opens).
    tiles : int
        Tiles to calibrate on (NNCF's default subset is 300; the benchmarks calibrated on 24-32).
    bands : sequence of int, optional
        Bands to read, as ``geoseg predict --bands``.

    Raises
    ------
    ModelError
        nncf or openvino is not installed, or the model cannot be converted or quantised.
    InputError
        A scene cannot be read, or holds no data.
    ParameterError
        ``tiles`` below 1.
    """
    if tiles < 1:
        raise ParameterError(f"{param('tiles')} must be at least 1, got {tiles}")
    if not scenes:
        raise InputError("no scene to calibrate on")
    path = resolve_model(model_path)
    settings = read_settings(path)
    openvino = _module("openvino")
    _module("nncf")  # before reading any tile
    sample = calibration_tiles(scenes, settings, 2 * tiles, bands)
    calibration, check = sample[::2], sample[1::2]
    digest = file_digest(path)
    source = cached_conversion(path, digest, "openvino")
    if source is None:  # never converted: TensorFlow converts it, once
        from geoseg.model.convert import converted_model

        source = converted_model(path, "openvino", digest)
    quantised = int8_model(source, calibration)
    target = writable_cache_folder(path) / conversion_name(path, digest, INT8)
    _save_atomically(openvino, quantised, target)
    record_conversion(target, digest)
    agreement, differing = _agreement(source, target, check if len(check) else calibration,
                                      settings)
    return Quantized(target, len(calibration), len(check), agreement, differing)


def quantize_if_installed(model_path: str | os.PathLike[str],
                          scenes: Sequence[str | os.PathLike[str]]) -> Quantized | None:
    """:func:`quantize_model` with its default tiles when NNCF and OpenVINO are installed
    (``geoseg train`` makes a trained model's int8 version so, on its training scenes);
    None when they are not.

    Raises
    ------
    ModelError, InputError
        As :func:`quantize_model`.
    """
    if any(importlib.util.find_spec(name) is None for name in ("nncf", "openvino")):
        return None
    return quantize_model(model_path, scenes)


def int8_model(source: Path, calibration: np.ndarray, float_convolutions: int = 1) -> Any:
    """An OpenVINO model (``openvino.Model``) of the ONNX or OpenVINO model ``source``,
    quantised to int8 by NNCF (post-training, the ``MIXED`` preset: symmetric int8 weights per
    channel, asymmetric activations) on the ``calibration`` tiles ``(n, size, size, bands)``,
    with its first ``float_convolutions`` convolutions left in float32.

    Raises
    ------
    ModelError
        nncf or openvino is not installed, or NNCF cannot quantise the model.
    """
    nncf = _module("nncf")
    openvino = _module("openvino")
    model = openvino.Core().read_model(str(source))
    model.reshape({model.inputs[0]: [1, *calibration.shape[1:]]})
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops()
                    if op.get_type_name() == "Convolution"]
    log.info("quantising %s to int8 on %d tiles", source, len(calibration))
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    try:  # NNCF logs its steps and draws progress bars on stdout
        nncf_log.setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.quantize(
                model, nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))]),
                preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration),
                ignored_scope=nncf.IgnoredScope(names=convolutions[:float_convolutions]))
    except Exception as exc:  # NNCF raises its own untyped errors
        raise ModelError(f"{source}: NNCF cannot quantise it ({exc})") from exc
    finally:
        nncf_log.setLevel(level)


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ModelError(f"an int8 model needs the {name} package: pip install "
                         "'geoseg[int8]'") from exc


def _save_atomically(openvino: Any, model: Any, target: Path) -> None:
    """Save an OpenVINO model as ``target`` (.xml) and its .bin, the .xml last, so a half
    written model is never found."""
    staged = target.with_name(f".{target.stem}.{os.getpid()}.xml")
    try:
        openvino.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        staged.with_suffix(".bin").unlink(missing_ok=True)


def _agreement(float32: Path, int8: Path, tiles: np.ndarray,
               settings: ModelSettings) -> tuple[float, float]:
    """Landslide IoU between the float32 and int8 models' masks on ``tiles`` (classified as
    prediction classifies them), and the share of pixels whose class differs."""
    masks = []
    for path, precision in ((float32, "float32"), (int8, INT8)):
        probabilities = OpenVinoPredictor(path, batch_size=1, precision=precision)(tiles)
        valid = np.ones(probabilities.shape[:3], dtype=bool)
        masks.append(classify(np.moveaxis(probabilities, -1, 0), valid, settings.threshold))
    both = np.count_nonzero((masks[0] == 1) & (masks[1] == 1))
    either = np.count_nonzero((masks[0] == 1) | (masks[1] == 1))
    return (both / either if either else 1.0), float(np.mean(masks[0] != masks[1]))
