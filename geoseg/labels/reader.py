"""Training labels on the scene grid: vector polygons, label rasters and RGB-coded masks.

Training must see tiles exactly as prediction sees them, so labels are read per window of the
scene grid (the windows of :class:`geoseg.raster.tiling.TileGrid`) and padded to the tile size with
:func:`geoseg.raster.tiling.pad_to_tile`, the padding :func:`geoseg.raster.tiling.read_tile` applies
to the image. A whole-scene label array is never built.

Three kinds of labels are read:

- a **vector layer** (GeoPackage, shapefile, GeoJSON, ...): polygons reprojected to the scene
  CRS and rasterised per window (:class:`VectorLabels`);
- a **label raster** of class ids on the scene grid, or on another grid with nearest-neighbour
  resampling (:class:`RasterLabels`);
- an **RGB-coded mask** (the reference dataset's PNG masks) decoded with an ``rgb_map`` of
  colour -> class id, by nearest colour with a tolerance (:func:`decode_rgb_mask`,
  :func:`read_mask_png`; :class:`RasterLabels` decodes an RGB label raster the same way).

Class ids are ``uint8``; pixels with no label (label-raster nodata, transparent mask pixels,
scene pixels outside a resampled label raster) hold :data:`NO_LABEL` (255), to be left out of
losses and metrics.

This module is the public face and the opener (:func:`open_labels`); the work is done in
:mod:`geoseg.labels.label_source` (the window-reader contract, :data:`NO_LABEL`),
:mod:`geoseg.labels.label_vectors` and :mod:`geoseg.labels.label_rasters` (label rasters and RGB
masks).

This module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pyogrio
from rasterio.io import DatasetReader

from geoseg.errors import InputError
from geoseg.labels.label_rasters import (
    DEFAULT_TOLERANCE,
    RasterLabels,
    RgbMap,
    decode_index_mask,
    decode_rgb_mask,
    read_mask_png,
    validate_rgb_map,
)
from geoseg.labels.label_source import NO_LABEL, LabelSource, PathLike, label_fraction
from geoseg.labels.label_vectors import VectorLabels

__all__ = [
    "NO_LABEL",
    "DEFAULT_TOLERANCE",
    "VECTOR_SUFFIXES",
    "LabelSource",
    "VectorLabels",
    "RasterLabels",
    "open_labels",
    "validate_rgb_map",
    "decode_rgb_mask",
    "decode_index_mask",
    "read_mask_png",
    "label_fraction",
]

VECTOR_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite", ".gdb"}
)
"""File suffixes opened as vector layers (other files are rasters unless only OGR opens them)."""

_RASTER_SUFFIXES: Final = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".vrt", ".jp2"})


def _is_vector(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in VECTOR_SUFFIXES or path.is_dir():
        return True
    if suffix in _RASTER_SUFFIXES:
        return False
    try:
        pyogrio.read_info(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        return False
    return True


def open_labels(
    path: PathLike,
    scene: DatasetReader,
    *,
    class_column: str | None = None,
    class_names: Sequence[str] | None = None,
    num_classes: int = 2,
    rgb_map: RgbMap | None = None,
    resample: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> LabelSource:
    """Open the labels of a scene, vector or raster, as a per-window :class:`LabelSource`.

    Files with a suffix in :data:`VECTOR_SUFFIXES` (or folders, e.g. a FileGDB) are vector
    layers (:class:`VectorLabels`); others are rasters (:class:`RasterLabels`), unless only
    OGR can open them. Options of the other kind are ignored (``class_column`` and
    ``class_names`` for rasters; ``rgb_map``, ``resample`` and ``tolerance`` for vectors), so
    one configuration serves both.

    Parameters
    ----------
    path : path-like
        Labels file.
    scene : rasterio dataset
        The open scene whose grid the labels are read on.
    class_column, class_names :
        Vector labels: see :class:`VectorLabels`.
    num_classes : int
        Number of classes, background included.
    rgb_map, resample, tolerance :
        Raster labels: see :class:`RasterLabels`.

    Returns
    -------
    LabelSource
        To be closed (use ``with``).

    Raises
    ------
    InputError
        The file does not exist or is unsuitable (see the two classes).
    ConfigError
        An option is invalid.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    if _is_vector(path):
        return VectorLabels(
            path, scene, class_column=class_column, class_names=class_names, num_classes=num_classes
        )
    return RasterLabels(
        path,
        scene,
        num_classes=num_classes,
        rgb_map=rgb_map,
        resample=resample,
        tolerance=tolerance,
    )
