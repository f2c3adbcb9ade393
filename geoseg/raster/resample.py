"""Prediction at the model's pixel size: which pixel size a run reads a scene at, the scene
read resampled to it, and probabilities put back on the scene's own grid.

A model trained on 2 m pixels sees a 0.5 m scene as landslides four times their size. With
``resolution="auto"`` (:attr:`geoseg.prediction.predict.PredictOptions.resolution`) the scene is
read through a :class:`rasterio.vrt.WarpedVRT` on the same CRS with pixels of the model's training
size (:attr:`~geoseg.settings.ModelSettings.pixel_size_m`), averaged when coarser, bilinear when
finer; the run predicts that grid, and its probabilities are resampled back (bilinear) onto the
scene's grid, where the mask is classified with the scene's own validity
(:func:`geoseg.prediction.predict.predict_scene` does that). This module never imports TensorFlow.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Literal

import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT

from geoseg.errors import ParameterError, param
from geoseg.raster.imagery import format_metres, pixel_size_m

__all__ = [
    "AUTO_TOLERANCE",
    "MAX_PIXEL_FACTOR",
    "Resolution",
    "check_resolution",
    "on_scene_grid",
    "resampled_view",
    "resampling_scale",
]

log = logging.getLogger(__name__)

Resolution = Literal["native", "auto"] | float
"""``"native"`` (the scene's own pixels), ``"auto"`` (the model's training pixel size) or a
pixel size in metres."""

AUTO_TOLERANCE = 1.25
"""``"auto"`` resamples only when the scene's and the model's pixel sizes differ by more than
this factor, either way."""
MAX_PIXEL_FACTOR = 16.0
"""A pixel size may make the scene at most this many times more pixels (a quarter of the
scene's pixel size at the finest)."""


def check_resolution(value: object) -> Resolution:
    """``value`` as a resolution: ``"native"``, ``"auto"`` or a pixel size in metres > 0 (a
    number or its text, as a command line gives it).

    >>> check_resolution("auto"), check_resolution("2.5"), check_resolution(1)
    ('auto', 2.5, 1.0)

    Raises
    ------
    ParameterError
        Anything else.
    """
    if value == "native" or value == "auto":
        return value
    try:
        metres = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        metres = math.nan
    if isinstance(value, bool) or not (math.isfinite(metres) and metres > 0):
        raise ParameterError(f"{param('resolution')} must be native, auto or a pixel size in "
                             f"metres > 0, got {value!r}")
    return metres


def resampling_scale(resolution: Resolution, scene: rasterio.io.DatasetReader,
                     model_pixel_m: float | None, say: bool = True) -> float | None:
    """The side of the pixels to read ``scene`` with for ``resolution``, in scene pixels (2:
    pixels twice the scene's); None for the scene's own.

    ``"auto"`` is the model's training pixel size (``model_pixel_m``), unless it or the
    scene's (:func:`geoseg.raster.imagery.pixel_size_m`) is unknown or they are within
    :data:`AUTO_TOLERANCE` of each other: then the scene's own. With ``say``, the choice is
    said in one log line (a warning when a pixel size is unknown). A size
    in metres needs the scene's pixel size; it equal to the scene's is the scene's own.

    Raises
    ------
    ParameterError
        A size in metres for a scene of unknown pixel size, or one that would make the scene
        more than :data:`MAX_PIXEL_FACTOR` times more pixels.
    """
    if resolution == "native":
        return None
    name = Path(scene.name).name
    found = pixel_size_m(scene)
    if resolution == "auto":
        if model_pixel_m is None or found is None:
            unknown = "the model's training" if model_pixel_m is None else f"{name}'s"
            if say:
                log.warning("%s: %s pixel size is unknown; predicting at the scene's own pixels",
                            name, unknown)
            return None
        if max(found[0], model_pixel_m) / min(found[0], model_pixel_m) <= AUTO_TOLERANCE:
            if say:
                log.info("%s: %s pixels, the model's are %s: within %gx, predicting at the "
                         "scene's own pixels", name, format_metres(found[0]),
                         format_metres(model_pixel_m), AUTO_TOLERANCE)
            return None
        target = model_pixel_m
    else:
        if found is None:
            raise ParameterError(f"{param('resolution')} {resolution:g} m needs the scene's "
                                 f"pixel size in metres, but {name} has no CRS of known unit: "
                                 "give it one (gdal_edit.py -a_srs) or predict at native "
                                 "resolution")
        target = float(resolution)
        if math.isclose(target, found[0], rel_tol=1e-3):
            return None
    if (found[0] / target) ** 2 > MAX_PIXEL_FACTOR:
        raise ParameterError(
            f"{param('resolution')} {format_metres(target)} would make {name} "
            f"({format_metres(found[0])} pixels) {(found[0] / target) ** 2:.3g} times more "
            f"pixels; at most {MAX_PIXEL_FACTOR:g}: use a pixel size of at least "
            f"{format_metres(found[0] / math.sqrt(MAX_PIXEL_FACTOR))}")
    if say:
        log.info("%s: predicting at %s pixels (the scene's are %s), written back on the "
                 "scene's grid", name, format_metres(target), format_metres(found[0]))
    return target / found[0]


def resampled_view(scene: rasterio.io.DatasetReader, scale: float) -> WarpedVRT:
    """``scene`` read with pixels ``scale`` times the side of its own: same CRS and origin,
    its extent covered (the last row and column may reach beyond it, as nodata), averaged
    when coarser, bilinear when finer. Its validity is the scene's (nodata, masks and alpha
    become the view's alpha band, which :func:`geoseg.raster.scene.read_window` reads as the mask),
    so the scene's band numbers read the same bands. Close it (a context manager)."""
    return WarpedVRT(
        scene, crs=scene.crs, transform=scene.transform * Affine.scale(scale),
        width=max(1, math.ceil(scene.width / scale)),
        height=max(1, math.ceil(scene.height / scale)),
        resampling=Resampling.average if scale > 1 else Resampling.bilinear,
        add_alpha=ColorInterp.alpha not in scene.colorinterp,
    )


def on_scene_grid(probabilities: rasterio.io.DatasetReader,
                  scene: rasterio.io.DatasetReader) -> WarpedVRT:
    """Probabilities predicted on a :func:`resampled_view` of ``scene``, resampled (bilinear)
    onto the scene's grid; nodata where none of theirs is near. Close it (a context
    manager)."""
    return WarpedVRT(probabilities, crs=scene.crs, transform=scene.transform,
                     width=scene.width, height=scene.height, resampling=Resampling.bilinear)
