"""Finishing vectorised features: metric measures, holes, islands, simplification, attributes.

:class:`Measure` gives areas and lengths in metres and WGS84 positions in any CRS;
:func:`feature_table` builds the attribute table (``id``, ``class``, ``area_m2``,
``compact``, ...)
that :func:`geoseg.vectors.vectorize.polygons_from_mask` returns.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import shapely
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

from geoseg.raster.outputs import displayed_path
from geoseg.vectors.geometry import repair_polygons
from geoseg.vectors.vector_blocks import Pieces

__all__ = [
    "Measure", "absorb_islands", "feature_table", "fill_small_holes", "polsby_popper",
    "simplified",
]

log = logging.getLogger("geoseg.vectors.vectorize")  # one logger for all of vectorising


TRUE_SCALE = 0.001
"""How far from true a projected CRS's scale may be, all over a scene, for areas and lengths to be
measured in it as they are: 0.1 % (UTM within its zone, national grids). A CRS further from true
(Web Mercator: 1/cos(latitude), x1.27 in length and x1.60 in area at 37.7°) is measured on an
equal-area projection centred on the scene."""


@dataclass(frozen=True)
class Measure:
    """Areas and lengths in metres, and WGS84 positions, of geometries in the raster's CRS.

    A projected CRS whose scale is true within :data:`TRUE_SCALE` over the scene is measured
    as it is (scaled to metres when its unit is not the metre). Any other CRS (geographic, Web
    Mercator, a conformal projection far from its centre) is measured on a Lambert azimuthal
    equal-area projection centred on the scene, on the CRS's own ellipsoid: areas exact, lengths
    within 0.01 % up to 150 km from the centre. Without CRS, map units are measured.
    """

    metres_per_unit: float
    """True metres per unit of the CRS: exact for a CRS measured as it is, else its largest scale
    along x or y at the scene's centre (what converts a distance in metres to the CRS's units,
    :meth:`units`). 1 without CRS."""
    to_equal_area: pyproj.Transformer | None
    """When set, areas and lengths are measured on this equal-area projection, not in the CRS."""
    to_wgs84: pyproj.Transformer | None

    @classmethod
    def for_raster(cls, dataset: rasterio.io.DatasetReader) -> Measure:
        """Measures for a raster's CRS over its bounds; none (map units, with a warning)
        without CRS."""
        if dataset.crs is None:
            log.warning(
                "%s has no CRS: area_m2, perim_m, min_area, fill_holes and simplify are in the "
                "raster's own units (pixels for a plain image), not metres",
                displayed_path(Path(dataset.name)),
            )
            return cls(1.0, None, None)
        crs = pyproj.CRS.from_user_input(dataset.crs.to_wkt())
        try:
            to_wgs84 = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        except pyproj.exceptions.ProjError:
            # A local (engineering) CRS has no place on the Earth.
            log.warning("%s: CRS %s cannot be related to WGS84; lon and lat are left empty",
                        dataset.name, crs.name)
            to_wgs84 = None
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        scales = _metres_per_unit(crs, dataset.bounds)
        if scales is None:  # no ellipsoid to measure on: the CRS's own units
            return cls(unit, None, to_wgs84)
        if crs.is_projected and bool(np.all(np.abs(scales / unit - 1) <= TRUE_SCALE)):
            return cls(unit, None, to_wgs84)
        to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
        left, bottom, right, top = dataset.bounds
        lon, lat = to_lonlat.transform((left + right) / 2, (bottom + top) / 2)
        centre = LambertAzimuthalEqualAreaConversion(latitude_natural_origin=lat,
                                                     longitude_natural_origin=lon)
        equal_area = ProjectedCRS(conversion=centre, geodetic_crs=crs.geodetic_crs)
        to_equal_area = pyproj.Transformer.from_crs(crs, equal_area, always_xy=True)
        return cls(float(scales[:, _CENTRE].max()), to_equal_area, to_wgs84)

    def _projected(self, geoms: np.ndarray) -> np.ndarray:
        if self.to_equal_area is None:
            return geoms
        return shapely.transform(geoms, _points_through(self.to_equal_area))

    def area(self, geoms: np.ndarray) -> np.ndarray:
        """Areas in m² (float64 array)."""
        if self.to_equal_area is not None:
            return shapely.area(self._projected(geoms))
        return shapely.area(geoms) * self.metres_per_unit**2

    def length(self, geoms: np.ndarray) -> np.ndarray:
        """Boundary lengths in m, holes included (float64 array)."""
        if self.to_equal_area is not None:
            return shapely.length(self._projected(geoms))
        return shapely.length(geoms) * self.metres_per_unit

    def units(self, metres: float) -> float:
        """A distance in metres in the CRS's units, at the scene's centre; where the CRS's scale
        varies (geographic, Web Mercator), never more than ``metres`` along x or y there."""
        return metres / self.metres_per_unit

    def lonlat(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude and latitude of points; NaN without CRS."""
        x, y = shapely.get_x(points), shapely.get_y(points)
        if self.to_wgs84 is None or len(points) == 0:
            return np.full(len(points), np.nan), np.full(len(points), np.nan)
        lon, lat = self.to_wgs84.transform(x, y)
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


_CENTRE = 4
"""Index of the scene's centre among the points :func:`_metres_per_unit` samples."""


def _metres_per_unit(crs: pyproj.CRS, bounds: tuple[float, float, float, float]
                     ) -> np.ndarray | None:
    """True metres per CRS unit along x (row 0) and y (row 1) at 3 x 3 points spread over
    ``bounds`` (the centre is column :data:`_CENTRE`), from geodesic distances on the CRS's
    ellipsoid over a thousandth of the scene; None for a CRS without one."""
    if crs.geodetic_crs is None:
        return None
    left, bottom, right, top = bounds
    step = max(right - left, top - bottom) / 1000 or 1.0
    # inside the bounds, the step included (a scene may reach a pole or the antimeridian)
    ys, xs = np.meshgrid(np.linspace(top - step, bottom, 3), np.linspace(left, right - step, 3),
                         indexing="ij")
    x, y = xs.ravel(), ys.ravel()
    try:
        to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
        lon, lat = to_lonlat.transform(x, y, errcheck=True)
        lon_x, lat_x = to_lonlat.transform(x + step, y, errcheck=True)
        lon_y, lat_y = to_lonlat.transform(x, y + step, errcheck=True)
    except pyproj.exceptions.ProjError:
        return None
    geod = crs.get_geod()
    if geod is None:
        return None
    along_x = geod.inv(lon, lat, lon_x, lat_x)[2]
    along_y = geod.inv(lon, lat, lon_y, lat_y)[2]
    return np.vstack([along_x, along_y]) / step


def _points_through(transformer: pyproj.Transformer) -> Callable[[np.ndarray], np.ndarray]:
    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return apply


def _class_name(names: Sequence[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class_{class_id}"


def fill_small_holes(
    geoms: np.ndarray, metric: Measure, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Remove holes smaller than ``threshold`` m²; also says which geometries changed.

    Parameters
    ----------
    geoms : ndarray of shapely (Multi)Polygons
    metric : Measure
        Measures of the geometries' CRS.
    threshold : float
        Largest hole area to fill, in m².

    Returns
    -------
    geoms : ndarray of shapely (Multi)Polygons
    changed : ndarray of bool
        True where a hole was filled.
    """
    out = geoms.copy()
    changed = np.zeros(len(geoms), dtype=bool)
    has_holes = np.flatnonzero([
        shapely.get_num_interior_rings(shapely.get_parts(g)).sum() > 0 for g in geoms
    ])
    for index in has_holes:
        parts = shapely.get_parts(geoms[index])
        new_parts = []
        for part in parts:
            holes = np.array(list(part.interiors), dtype=object)
            if len(holes) == 0:
                new_parts.append(part)
                continue
            small = metric.area(np.asarray(shapely.polygons(holes), dtype=object)) < threshold
            if small.any():
                changed[index] = True
                part = shapely.Polygon(part.exterior, holes=list(holes[~small]))
            new_parts.append(part)
        if changed[index]:
            # Parts inside a filled hole (diagonal contacts) now overlap: dissolve them.
            out[index] = shapely.union_all(new_parts)
    return out, changed


def absorb_islands(pieces: Pieces, filled: np.ndarray) -> Pieces:
    """Drop features lying in a filled hole of a feature of their class; merge their stats.

    Parameters
    ----------
    pieces : Pieces
        Features after :func:`fill_small_holes`.
    filled : ndarray of bool
        Its ``changed``: features that had holes filled.

    Returns
    -------
    Pieces
    """
    if not filled.any():
        return pieces
    tree = shapely.STRtree(pieces.geoms)
    containers = np.flatnonzero(filled)
    outer, inner = tree.query(pieces.geoms[containers], predicate="contains")
    outer = containers[outer]
    same = (pieces.class_ids[outer] == pieces.class_ids[inner]) & (outer != inner)
    outer, inner = outer[same], inner[same]
    dropped = np.zeros(len(pieces), dtype=bool)
    dropped[inner] = True
    kept_outer = ~dropped[outer]
    for o, i in zip(outer[kept_outer], inner[kept_outer], strict=True):
        pieces.prob_sum[o] += pieces.prob_sum[i]
        pieces.prob_count[o] += pieces.prob_count[i]
        pieces.prob_max[o] = max(pieces.prob_max[o], pieces.prob_max[i])
        pieces.unc_sum[o] += pieces.unc_sum[i]
        pieces.unc_count[o] += pieces.unc_count[i]
    return pieces.take(np.flatnonzero(~dropped))


def simplified(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker that keeps every ring valid; invalid results repaired.

    Parameters
    ----------
    geoms : ndarray of shapely (Multi)Polygons
    tolerance : float
        In the CRS's units (:meth:`Measure.units` converts metres).

    Returns
    -------
    ndarray of shapely (Multi)Polygons
    """
    return repair_polygons(shapely.simplify(geoms, tolerance, preserve_topology=True))


def polsby_popper(area: np.ndarray, perimeter: np.ndarray) -> np.ndarray:
    """Compactness ``4 pi A / P²`` (Polsby-Popper) of areas and perimeters in true metres:
    1 for a disc, about 0.785 for a square, towards 0 for long thin or ragged shapes; NaN
    for a zero perimeter.

    >>> polsby_popper(np.array([np.pi, 1.0]), np.array([2 * np.pi, 4.0])).round(3).tolist()
    [1.0, 0.785]
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan)


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    parts, index = shapely.get_parts(geoms, return_index=True)
    return np.asarray(shapely.multipolygons(parts, indices=index), dtype=object)


def feature_table(
    pieces: Pieces,
    metric: Measure,
    names: Sequence[str],
    crs: rasterio.crs.CRS | None,
    with_probabilities: bool,
    min_area: float,
    uncertainty: str | None = None,
) -> gpd.GeoDataFrame:
    """The attribute table, sorted largest first, ids 1..N.

    Parameters
    ----------
    pieces : Pieces
        The features, in the raster's CRS.
    metric : Measure
        Measures of that CRS.
    names : sequence of str
        Class names by id (``class_<id>`` beyond them).
    crs : CRS, optional
        The raster's CRS.
    with_probabilities : bool
        Add ``mean_prob`` and ``max_prob``.
    min_area : float
        Drop features smaller than this, in m² (empty ones always go).
    uncertainty : str, optional
        Add the mean of the uncertainty raster over each feature's pixels as this column
        (``tta_spread`` or ``entropy``: :mod:`geoseg.prediction.uncertainty`), after ``max_prob``.

    Returns
    -------
    geopandas.GeoDataFrame
        As :func:`geoseg.vectors.vectorize.polygons_from_mask` describes it.
    """
    geoms = pieces.geoms
    area = metric.area(geoms) if len(geoms) else np.empty(0)
    keep = (area >= min_area) & (area > 0) & ~shapely.is_empty(geoms)
    pieces, area = pieces.take(np.flatnonzero(keep)), area[keep]
    geoms = pieces.geoms
    lon, lat = metric.lonlat(shapely.centroid(geoms))
    perimeter = metric.length(geoms) if len(geoms) else np.empty(0)
    columns: dict[str, object] = {
        "class": pd.Series([_class_name(names, int(c)) for c in pieces.class_ids],
                           dtype=object),
        "class_id": pieces.class_ids.astype(np.int64),
        "area_m2": area,
        "perim_m": perimeter,
        "compact": polsby_popper(area, perimeter),
    }
    if with_probabilities:
        count = pieces.prob_count
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["mean_prob"] = np.where(count > 0, pieces.prob_sum / count, np.nan)
        columns["max_prob"] = np.where(count > 0, pieces.prob_max, np.nan)
    if uncertainty is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            columns[uncertainty] = np.where(pieces.unc_count > 0,
                                            pieces.unc_sum / pieces.unc_count, np.nan)
    columns["lon"], columns["lat"] = lon, lat
    frame = gpd.GeoDataFrame(
        pd.DataFrame(columns),
        geometry=gpd.GeoSeries(_as_multipolygons(geoms) if len(geoms) else [], crs=crs),
    )
    bounds = shapely.bounds(geoms) if len(geoms) else np.empty((0, 4))
    frame["_top"], frame["_left"] = -bounds[:, 3], bounds[:, 0]
    frame = frame.sort_values(["area_m2", "class_id", "_top", "_left"],
                              ascending=[False, True, True, True], kind="stable")
    frame = frame.drop(columns=["_top", "_left"]).reset_index(drop=True)
    frame.insert(0, "id", np.arange(1, len(frame) + 1, dtype=np.int64))
    return frame
