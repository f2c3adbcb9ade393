"""Vector labels: polygons of a layer rasterised per window onto the scene grid.

:class:`VectorLabels` reads the layer once (GeoPandas with pyogrio), reprojects and repairs
its polygons (:func:`geoseg.vectors.geometry.repair_polygons`), gives each its class (from a column
of ids or names) and burns only the polygons meeting each window.

This module never imports TensorFlow.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from rasterio.features import rasterize
from rasterio.io import DatasetReader
from rasterio.transform import array_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from geoseg.errors import ConfigError, InputError
from geoseg.labels.label_source import LabelSource, PathLike, _crs_text, _is_integer, _listing
from geoseg.vectors.geometry import polygonal_parts, repair_polygons
from geoseg.vectors.vector_formats import data_layer

__all__ = ["VectorLabels"]

_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7  # shapely.get_type_id codes


def _check_class_names(class_names: Sequence[str], num_classes: int) -> dict[str, int]:
    names = list(class_names)
    if len(names) != num_classes or len(set(names)) != len(names):
        raise ConfigError(
            f"class_names: need {num_classes} distinct names (one per class id, background "
            f"first), got {names}"
        )
    return {name: cls for cls, name in enumerate(names)}


def _read_vector(path: Path) -> gpd.GeoDataFrame:
    try:
        return gpd.read_file(path, engine="pyogrio", layer=data_layer(path))
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: cannot be read as a vector layer ({reason})") from None


def _class_id(value: Any, names: Mapping[str, int]) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        if text in names:
            return names[text]
        return int(text) if text.isdecimal() else None
    if isinstance(value, bool | np.bool_) or pd.isna(value):
        return None
    if _is_integer(value):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return None


def _feature_classes(
    values: pd.Series,
    column: str,
    class_names: Sequence[str] | None,
    num_classes: int,
    source: str,
) -> np.ndarray:
    """Class id of each feature from its ``column`` value (a class name or an integer id)."""
    names = _check_class_names(class_names, num_classes) if class_names is not None else {}
    lookup: dict[Hashable, int] = {}
    bad: list[str] = []
    named = False  # some refused value is text
    for value in pd.unique(values):
        cls = _class_id(value, names)
        if cls is not None and 0 <= cls < num_classes:
            lookup[value] = cls
        elif isinstance(value, str):
            bad.append(repr(value))
            named = True
        else:
            bad.append("empty" if pd.isna(value) else str(value))
    if bad:
        if names:
            hint = f" or names {list(names)}"
        else:
            hint = "; give class_names to use names" if named else ""
        raise InputError(
            f"{source}: column {column!r} has values {_listing(bad)} that are not class ids "
            f"0..{num_classes - 1}{hint}"
        )
    return values.map(lookup).to_numpy(dtype=np.uint8)


def _polygonal_features(geoms: np.ndarray) -> tuple[np.ndarray, Counter[str]]:
    """Which features may hold polygons, and a count of the others by geometry type."""
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    keep = ~missing & np.isin(shapely.get_type_id(geoms), (_POLYGON, _MULTIPOLYGON, _COLLECTION))
    ignored = Counter(
        "empty" if gone else geom.geom_type
        for geom, gone in zip(geoms[~keep], missing[~keep], strict=True)
    )
    return keep, ignored


def _polygon_parts(
    geoms: np.ndarray, crs: CRS, scene_crs: object
) -> tuple[np.ndarray, np.ndarray, int]:
    """Single polygons in the scene CRS, the feature each came from, and how many were repaired.

    Geometries are reprojected, then repaired (lines and points left by the repair dropped),
    then split into single polygons.
    """
    series = gpd.GeoSeries(shapely.force_2d(geoms), crs=crs)
    target = CRS.from_user_input(scene_crs)
    if not series.crs.equals(target):
        series = series.to_crs(target)
    shapes = np.asarray(series.array, dtype=object)
    repaired = int(np.count_nonzero(~shapely.is_valid(shapes)))
    parts, owner = polygonal_parts(repair_polygons(shapes))
    return parts, owner, repaired


class VectorLabels(LabelSource):
    """Polygons of a vector layer, rasterised per window onto the scene grid.

    The layer is read once (GeoPandas with pyogrio), reprojected to the scene CRS, repaired and
    indexed (STR tree); each :meth:`read` burns only the polygons meeting the window, with the
    window's own transform, so a huge scene never needs a whole-scene label array. A window
    read is identical to the same slice of a whole-scene rasterisation.

    - Rasterisation uses ``all_touched=False``: a pixel gets a polygon's class when its centre
      is inside the polygon (GDAL's rule), so labels neither grow by a pixel all round nor
      depend on the window. Pixels outside every polygon are background (0).
    - Without ``class_column`` every polygon is class 1 (landslide). With it, each value is a
      name of ``class_names`` or an integer class id (text digits accepted).
    - Where polygons of different classes overlap, the higher class id wins.
    - Invalid polygons are repaired with :func:`shapely.make_valid` (after reprojection);
      features without polygonal parts (points, lines, empty) are ignored with a warning.

    Parameters
    ----------
    path : path-like
        A vector layer GDAL/OGR reads (its first layer is used; QGIS's style table in a
        GeoPackage is not a layer).
    scene : rasterio dataset
        The open scene; its CRS, transform and size define the grid.
    class_column : str, optional
        Column holding each polygon's class.
    class_names : sequence of str, optional
        Name of each class id, background first (``len == num_classes``).
    num_classes : int
        Number of classes, background included.

    Raises
    ------
    InputError
        The layer cannot be read, has no CRS, the scene has no CRS, the column is missing or
        holds unknown classes, no polygon is left, or the polygons miss the scene.
    ConfigError
        ``num_classes`` or ``class_names`` is invalid.
    """

    def __init__(
        self,
        path: PathLike,
        scene: DatasetReader,
        *,
        class_column: str | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int = 2,
    ) -> None:
        super().__init__(scene, num_classes)
        self.path = Path(path)
        source = str(self.path)
        frame = _read_vector(self.path)
        if frame.crs is None:
            raise InputError(
                f"{source}: has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:...) so its "
                f"polygons can be placed on {self.scene_name}"
            )
        if scene.crs is None:
            raise InputError(
                f"{self.scene_name}: has no CRS, so the polygons of {source} cannot be placed on "
                "it; assign the scene a CRS (e.g. gdal_edit.py -a_srs EPSG:...)"
            )
        if class_column is not None and class_column not in frame.columns:
            columns = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
            raise InputError(f"{source}: has no column {class_column!r}; columns: {columns}")
        if class_names is not None:
            _check_class_names(class_names, num_classes)

        geoms = np.asarray(frame.geometry.array, dtype=object)
        keep, ignored = _polygonal_features(geoms)
        if class_column is None:
            feature_classes = np.ones(int(keep.sum()), dtype=np.uint8)
        else:
            feature_classes = _feature_classes(
                frame.loc[keep, class_column], class_column, class_names, num_classes, source
            )
        parts, owner, repaired = _polygon_parts(geoms[keep], frame.crs, scene.crs)
        if repaired:
            warnings.warn(
                f"{source}: repaired {repaired} invalid polygon(s) with make_valid",
                UserWarning,
                stacklevel=2,
            )
        degenerate = int(keep.sum()) - len(np.unique(owner))
        if degenerate:
            ignored["without area"] += degenerate
        if ignored:
            detail = ", ".join(f"{n} {kind}" for kind, n in sorted(ignored.items()))
            warnings.warn(
                f"{source}: ignored {sum(ignored.values())} feature(s) that are not polygons "
                f"({detail})",
                UserWarning,
                stacklevel=2,
            )
        if not len(parts):
            raise InputError(f"{source}: has no polygons to burn; labels need polygon features")

        part_classes = feature_classes[owner]
        order = np.argsort(part_classes, kind="stable")  # burnt last = wins: higher class ids
        self._polygons: np.ndarray = parts[order]
        self._classes: np.ndarray = part_classes[order]
        self._tree = shapely.STRtree(self._polygons)
        scene_box = shapely.box(*array_bounds(self.height, self.width, self.transform))
        if not len(self._tree.query(scene_box, predicate="intersects")):
            raise InputError(
                f"{source} does not overlap {self.scene_name}: check the CRS "
                f"(labels {_crs_text(frame.crs)}, scene {_crs_text(scene.crs)})"
            )

    def _read_window(self, window: Window) -> np.ndarray:
        shape = (int(window.height), int(window.width))
        hits = np.sort(
            self._tree.query(
                shapely.box(*window_bounds(window, self.transform)), predicate="intersects"
            )
        )
        if not len(hits):
            return np.zeros(shape, dtype=np.uint8)
        return rasterize(
            zip(self._polygons[hits], self._classes[hits].tolist(), strict=True),
            out_shape=shape,
            transform=window_transform(window, self.transform),
            fill=0,
            all_touched=False,
            dtype=np.uint8,
        )

    def close(self) -> None:
        """Drop the polygons and their index (nothing is held open)."""
        self._polygons = self._polygons[:0]
        self._classes = self._classes[:0]
        self._tree = shapely.STRtree(self._polygons)
