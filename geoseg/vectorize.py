"""Vectorise a class mask into polygons for GIS: one feature per connected landslide.

The mask is read block by block (non-overlapping windows from :func:`geoseg.tiling.
block_windows`), so a mask larger than memory works; only the polygons are held. Each block is
polygonised with :func:`rasterio.features.shapes` in *global pixel coordinates* (whole numbers,
exact in float64). A polygon that does not reach an internal block edge is complete; the
others are pieces of a component cut by the blocks. Pieces of one class are linked when they
share an edge (and, with 8-connectivity, also when they touch at a corner), linked pieces are
dissolved with :func:`shapely.union_all`, and every feature is then mapped to the raster's CRS.
Working on pixel corners keeps the union exact: no seam lines, no slivers.

Per feature the attributes are ``id`` (1..N, largest first), ``class`` (name), ``class_id``,
``area_m2``, ``perim_m`` (of the geometry as written, in metres), ``lon``/``lat`` (centroid in
WGS84) and, with a probability raster, ``mean_prob``/``max_prob`` (the probability of the
feature's class over the mask pixels that make it up, accumulated block by block, so exact for
merged features). Names are at most 10 characters so that a Shapefile keeps them.

Areas and lengths are metric: a projected CRS is used as is (scaled to metres if its unit is
not the metre), a geographic CRS is measured on a Lambert azimuthal equal-area projection
centred on the scene (exact areas; lengths are distorted by well under 0.1 % within a few
hundred kilometres of the centre), and a mask without CRS is measured in its own map units
(pixels for a plain image), with a warning.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import shapely
from affine import Affine
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion
from rasterio.features import rasterize, shapes
from rasterio.windows import Window
from shapely.geometry import shape

from geoseg.errors import ConfigError, InputError, OutputError
from geoseg.geometry import repair_polygons
from geoseg.outputs import atomic_output, check_output_path
from geoseg.predict import CLASS_NAMES_TAG
from geoseg.scene import open_scene, quiet_georeference
from geoseg.styles import polygon_style, write_style
from geoseg.tiling import block_windows

__all__ = [
    "VECTOR_FORMATS",
    "VectorizeSummary",
    "polygons_from_mask",
    "vectorize_mask",
    "write_polygons",
]

log = logging.getLogger(__name__)

VECTOR_FORMATS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": "GeoParquet",
}
"""Output file extension -> format (an OGR driver name, or GeoParquet written by geopandas).
A path without extension is written as a GeoPackage with ``.gpkg`` appended."""

_MIN_BLOCK = 16


@dataclass(frozen=True)
class VectorizeSummary:
    """What :func:`vectorize_mask` wrote."""

    count: int
    """Number of polygons (features)."""
    total_area_m2: float
    """Sum of the features' areas (in square map units when the mask has no CRS)."""
    largest_area_m2: float
    """Area of the largest feature, 0 when there is none."""
    path: Path
    """The file written."""
    area_unit: str = "m²"
    """Unit of the areas: ``m²``, or ``units²`` for a mask without CRS."""

    def describe(self) -> str:
        """One line for people: ``N polygons, total area X m², largest Y m² -> out.gpkg``."""
        noun = "polygon" if self.count == 1 else "polygons"
        return (
            f"{self.count} {noun}, total area {self.total_area_m2:,.0f} {self.area_unit}, "
            f"largest {self.largest_area_m2:,.0f} {self.area_unit} -> {self.path}"
        )


# ------------------------------------------------------------------------------ measuring
@dataclass(frozen=True)
class _Metric:
    """Areas and lengths in metres, and WGS84 positions, of geometries in the raster's CRS."""

    metres_per_unit: float
    to_equal_area: pyproj.Transformer | None
    to_wgs84: pyproj.Transformer | None

    @classmethod
    def for_raster(cls, dataset: rasterio.io.DatasetReader) -> _Metric:
        if dataset.crs is None:
            log.warning(
                "%s has no CRS: area_m2, perim_m, min_area and fill_holes are in the raster's "
                "own units (pixels for a plain image), not metres", dataset.name
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
        if crs.is_geographic:
            left, bottom, right, top = dataset.bounds
            centre = LambertAzimuthalEqualAreaConversion(
                latitude_natural_origin=(bottom + top) / 2,
                longitude_natural_origin=(left + right) / 2,
            )
            equal_area = ProjectedCRS(conversion=centre, geodetic_crs=crs.geodetic_crs)
            to_equal_area = pyproj.Transformer.from_crs(crs, equal_area, always_xy=True)
            return cls(1.0, to_equal_area, to_wgs84)
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return cls(factor, None, to_wgs84)

    def _projected(self, geoms: np.ndarray) -> np.ndarray:
        if self.to_equal_area is None:
            return geoms
        return shapely.transform(geoms, _points_through(self.to_equal_area))

    def area(self, geoms: np.ndarray) -> np.ndarray:
        """Areas in m² (float64 array)."""
        return shapely.area(self._projected(geoms)) * self.metres_per_unit**2

    def length(self, geoms: np.ndarray) -> np.ndarray:
        """Boundary lengths in m, holes included (float64 array)."""
        return shapely.length(self._projected(geoms)) * self.metres_per_unit

    def lonlat(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude and latitude of points; NaN without CRS."""
        x, y = shapely.get_x(points), shapely.get_y(points)
        if self.to_wgs84 is None or len(points) == 0:
            return np.full(len(points), np.nan), np.full(len(points), np.nan)
        lon, lat = self.to_wgs84.transform(x, y)
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _points_through(transformer: pyproj.Transformer) -> Callable[[np.ndarray], np.ndarray]:
    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return apply


def _to_map(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Geometries in global pixel coordinates -> the raster's CRS."""
    a, b, c, d, e, f = transform[:6]

    def apply(coords: np.ndarray) -> np.ndarray:
        col, row = coords[:, 0], coords[:, 1]
        return np.column_stack([a * col + b * row + c, d * col + e * row + f])

    return shapely.transform(geoms, apply)


# ------------------------------------------------------------------------------ pieces
@dataclass
class _Pieces:
    """Polygons with their class and probability accumulators (sum, count, max)."""

    geoms: np.ndarray
    class_ids: np.ndarray
    prob_sum: np.ndarray
    prob_count: np.ndarray
    prob_max: np.ndarray

    @classmethod
    def empty(cls) -> _Pieces:
        return cls(np.empty(0, dtype=object), np.empty(0, dtype=np.int64),
                   np.empty(0), np.empty(0, dtype=np.int64), np.empty(0))

    @classmethod
    def concat(cls, parts: Sequence[_Pieces]) -> _Pieces:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))

    def take(self, index: np.ndarray) -> _Pieces:
        return _Pieces(*(getattr(self, name)[index] for name in _FIELDS))

    def __len__(self) -> int:
        return len(self.geoms)


_FIELDS = ("geoms", "class_ids", "prob_sum", "prob_count", "prob_max")


# ------------------------------------------------------------------------------ inputs
def _open(path: Path) -> rasterio.io.DatasetReader:
    # A mask without CRS is reported below, with what it means for areas.
    return open_scene(path, expect_crs=False)


def _check_mask(src: rasterio.io.DatasetReader) -> None:
    if src.count != 1:
        raise InputError(
            f"{src.name}: has {src.count} bands; pass a single-band class mask (the mask "
            "written by geoseg predict), not an image or a probability raster"
        )
    dtype = np.dtype(src.dtypes[0])
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"{src.name}: has {dtype} pixels; pass a class mask of integer ids")


def _class_names(src: rasterio.io.DatasetReader) -> list[str]:
    text = src.tags().get(CLASS_NAMES_TAG)
    if text is None:
        return []
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        log.warning("%s: tag %s is not a JSON list of names; using class_<id>",
                    src.name, CLASS_NAMES_TAG)
        return []
    return names


def _class_name(names: Sequence[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class_{class_id}"


def _check_classes(classes: Sequence[int] | None, names: Sequence[str], mask: str) -> None:
    if classes is None:
        return
    if not classes:
        raise ConfigError("classes: give at least one class id, or none for all non-zero ids")
    for class_id in classes:
        if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)):
            raise ConfigError(f"classes: {class_id!r} is not an integer class id")
        if class_id < 0:
            raise ConfigError(f"classes: {class_id} is negative; class ids start at 0")
        if names and class_id >= len(names):
            known = ", ".join(f"{i} {n}" for i, n in enumerate(names))
            raise ConfigError(f"classes: {mask} has no class {class_id} (it has {known})")


def _check_probabilities(prob: rasterio.io.DatasetReader, src: rasterio.io.DatasetReader) -> None:
    if Path(prob.name).resolve() == Path(src.name).resolve():
        raise InputError(f"{prob.name}: is the mask itself; pass the probability raster "
                         "written with it (the prediction's probabilities output)")
    same = (
        prob.width == src.width
        and prob.height == src.height
        and prob.crs == src.crs
        and prob.transform.almost_equals(src.transform)
    )
    if not same:
        raise InputError(
            f"{prob.name}: its grid ({prob.width}x{prob.height}, {prob.crs}) differs from the "
            f"mask {src.name} ({src.width}x{src.height}, {src.crs}); pass the probabilities "
            "written together with this mask"
        )


def _probability_band(prob: rasterio.io.DatasetReader, class_id: int) -> int:
    """1-based band of a class: band c+1 (one band per class, background first), or the
    single band of a one-output binary model for class 1."""
    if prob.count == 1 and class_id == 1:
        return 1
    if prob.count > 1 and 0 <= class_id < prob.count:
        return class_id + 1
    raise InputError(
        f"{prob.name}: has {prob.count} band(s), none for class {class_id} of the mask; pass the "
        "probabilities written together with this mask (one band per class)"
    )


def _read_probability(prob: rasterio.io.DatasetReader, band: int, window: Window) -> np.ndarray:
    """One probability band, unscaled with its GDAL scale/offset, NaN where missing."""
    raw = prob.read(band, window=window)
    values = raw.astype(np.float64) * prob.scales[band - 1] + prob.offsets[band - 1]
    nodata = prob.nodatavals[band - 1]
    if nodata is not None and not math.isnan(nodata):
        values[raw == nodata] = np.nan
    present = values[~np.isnan(values)]
    low, high = (present.min(), present.max()) if present.size else (0.0, 0.0)
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise InputError(
            f"{prob.name}: band {band} holds values from {low:g} to {high:g}, not 0..1; pass "
            "probabilities (uint8 ones need a GDAL scale of 1/254, as geoseg predict writes)"
        )
    return values


def _class_block(src: rasterio.io.DatasetReader, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read a mask block: class ids as int32 and the mask of pixels holding data."""
    block = src.read(1, window=window)
    valid = np.ones(block.shape, dtype=bool)
    if np.issubdtype(block.dtype, np.floating):
        valid &= ~np.isnan(block)
    if src.nodata is not None and not math.isnan(src.nodata):
        valid &= block != src.nodata
    values = block[valid]
    if np.issubdtype(block.dtype, np.floating):
        fractional = values != np.floor(values)
        if fractional.any():
            example = values[fractional][0]
            raise InputError(
                f"{src.name}: holds non-integer values such as {example:g}; pass a class mask "
                "of integer class ids (geoseg predict's mask), not probabilities"
            )
    info = np.iinfo(np.int32)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise InputError(f"{src.name}: holds class ids beyond the 32-bit integer range")
    return np.where(valid, block, 0).astype(np.int32), valid


# ------------------------------------------------------------------------------ blocks
def _block_stats(
    geoms: np.ndarray,
    class_ids: np.ndarray,
    window: Window,
    prob: rasterio.io.DatasetReader,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, count and max of each polygon's class probability over its pixels in the block."""
    n = len(geoms)
    labels = rasterize(
        zip(geoms, range(1, n + 1), strict=True),
        out_shape=(window.height, window.width),
        transform=Affine.translation(window.col_off, window.row_off),
        fill=0,
        dtype="int32",
    )
    inside = labels > 0
    owner = labels[inside]
    owner_class = class_ids[owner - 1]
    values = np.full(owner.shape, np.nan)
    for class_id in np.unique(owner_class):
        band = _read_probability(prob, _probability_band(prob, int(class_id)), window)
        pick = owner_class == class_id
        values[pick] = band[inside][pick]
    ok = ~np.isnan(values)
    owner, values = owner[ok], values[ok]
    sums = np.bincount(owner, weights=values, minlength=n + 1)[1:]
    counts = np.bincount(owner, minlength=n + 1)[1:]
    maxes = np.full(n + 1, -np.inf)
    np.maximum.at(maxes, owner, values)
    return sums, counts, maxes[1:]


def _vectorise_block(
    src: rasterio.io.DatasetReader,
    prob: rasterio.io.DatasetReader | None,
    window: Window,
    classes: Sequence[int] | None,
    connectivity: int,
) -> tuple[_Pieces, np.ndarray]:
    """Polygons of one block in global pixel coordinates, and which reach an internal edge."""
    ids, valid = _class_block(src, window)
    selected = valid & (np.isin(ids, classes) if classes is not None else ids != 0)
    if not selected.any():
        return _Pieces.empty(), np.empty(0, dtype=bool)
    found = list(shapes(ids, mask=selected, connectivity=connectivity,
                        transform=Affine.translation(window.col_off, window.row_off)))
    # 8-connected shapes touch themselves at pixel corners: invalid until repaired.
    geoms = repair_polygons([shape(g) for g, _ in found])
    class_ids = np.array([int(v) for _, v in found], dtype=np.int64)
    n = len(geoms)
    if prob is not None:
        sums, counts, maxes = _block_stats(geoms, class_ids, window, prob)
    else:
        sums, counts, maxes = np.zeros(n), np.zeros(n, dtype=np.int64), np.full(n, -np.inf)
    pieces = _Pieces(geoms, class_ids, sums, counts, maxes)
    left, top, right, bottom = shapely.bounds(geoms).T
    col_end, row_end = window.col_off + window.width, window.row_off + window.height
    cut = (
        ((left == window.col_off) & (window.col_off > 0))
        | ((top == window.row_off) & (window.row_off > 0))
        | ((right == col_end) & (col_end < src.width))
        | ((bottom == row_end) & (row_end < src.height))
    )
    return pieces, cut


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes linked by index pairs (union-find)."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(i) for i in range(n)])


def _merge_cut(pieces: _Pieces, connectivity: int) -> _Pieces:
    """Dissolve pieces of one component cut by block edges (pixel coordinates, exact).

    Pieces of one class are linked when they share an edge; with 8-connectivity also when they
    touch only at a corner (a diagonal contact across a block edge).
    """
    merged = []
    for class_id in np.unique(pieces.class_ids):
        group = pieces.take(np.flatnonzero(pieces.class_ids == class_id))
        tree = shapely.STRtree(group.geoms)
        left, right = tree.query(group.geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        if connectivity == 4:
            # Boundaries meeting along a line (DE-9IM boundary/boundary of dimension 1).
            edge = shapely.relate_pattern(group.geoms[left], group.geoms[right], "****1****")
            left, right = left[edge], right[edge]
        labels = _components(len(group), np.column_stack([left, right]))
        for label in np.unique(labels):
            members = group.take(np.flatnonzero(labels == label))
            geom = members.geoms[0] if len(members) == 1 else shapely.union_all(members.geoms)
            # Drop the vertices left along the former block edges (exactly collinear).
            merged.append(_Pieces(
                np.array([shapely.simplify(geom, 0.0)], dtype=object),
                np.array([class_id]),
                np.array([members.prob_sum.sum()]),
                np.array([members.prob_count.sum()]),
                np.array([members.prob_max.max()]),
            ))
    return _Pieces.concat(merged)


# ------------------------------------------------------------------------------ finishing
def _fill_small_holes(
    geoms: np.ndarray, metric: _Metric, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Remove holes smaller than ``threshold`` m²; also says which geometries changed."""
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
            small = metric.area(shapely.polygons(holes)) < threshold
            if small.any():
                changed[index] = True
                part = shapely.Polygon(part.exterior, holes=list(holes[~small]))
            new_parts.append(part)
        if changed[index]:
            # Parts inside a filled hole (diagonal contacts) now overlap: dissolve them.
            out[index] = shapely.union_all(new_parts)
    return out, changed


def _absorb_islands(pieces: _Pieces, filled: np.ndarray) -> _Pieces:
    """Drop features lying in a filled hole of a feature of their class; merge their stats."""
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
    return pieces.take(np.flatnonzero(~dropped))


def _simplified(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker that keeps every ring valid; invalid results repaired."""
    return repair_polygons(shapely.simplify(geoms, tolerance, preserve_topology=True))


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    parts, index = shapely.get_parts(geoms, return_index=True)
    return shapely.multipolygons(parts, indices=index)


def _frame(
    pieces: _Pieces,
    metric: _Metric,
    names: Sequence[str],
    crs: rasterio.crs.CRS | None,
    with_probabilities: bool,
    min_area: float,
) -> gpd.GeoDataFrame:
    """The attribute table, sorted largest first, ids 1..N."""
    geoms = pieces.geoms
    area = metric.area(geoms) if len(geoms) else np.empty(0)
    keep = (area >= min_area) & (area > 0) & ~shapely.is_empty(geoms)
    pieces, area = pieces.take(np.flatnonzero(keep)), area[keep]
    geoms = pieces.geoms
    lon, lat = metric.lonlat(shapely.centroid(geoms))
    columns: dict[str, object] = {
        "class": pd.Series([_class_name(names, int(c)) for c in pieces.class_ids],
                           dtype=object),
        "class_id": pieces.class_ids.astype(np.int64),
        "area_m2": area,
        "perim_m": metric.length(geoms) if len(geoms) else np.empty(0),
    }
    if with_probabilities:
        count = pieces.prob_count
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["mean_prob"] = np.where(count > 0, pieces.prob_sum / count, np.nan)
        columns["max_prob"] = np.where(count > 0, pieces.prob_max, np.nan)
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


def _check_settings(
    min_area: float, simplify: float, fill_holes: float, connectivity: int, block_size: int
) -> None:
    for name, value in (("min_area", min_area), ("simplify", simplify),
                        ("fill_holes", fill_holes)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0, got {value}")
    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity}")
    if block_size < _MIN_BLOCK:
        raise ConfigError(f"block_size must be >= {_MIN_BLOCK} pixels, got {block_size}")


def polygons_from_mask(
    mask_path: str | os.PathLike[str],
    *,
    probabilities_path: str | os.PathLike[str] | None = None,
    min_area: float = 0.0,
    simplify: float = 0.0,
    fill_holes: float = 0.0,
    connectivity: int = 8,
    classes: Sequence[int] | None = None,
    block_size: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of the foreground classes of a class mask, one feature per connected region.

    Parameters
    ----------
    mask_path : path
        Single-band raster of integer class ids (0 = background; the nodata value marks
        pixels without data). A float raster is accepted when all its values are integral.
        Its ``GEOSEG_CLASS_NAMES`` tag (JSON list) names the classes, else ``class_<id>``.
    probabilities_path : path, optional
        Per-class probabilities on the same grid (band c+1 for class c; a single band is the
        foreground of a binary mask), float or uint8 with a GDAL scale/offset, which is
        applied. Adds ``mean_prob`` and ``max_prob``.
    min_area : float
        Drop features smaller than this, in m² (of the geometry as written).
    simplify : float
        Douglas-Peucker tolerance in map units (0: keep the pixel outlines); every ring stays
        valid, invalid results are repaired.
    fill_holes : float
        Fill holes smaller than this, in m²; features of the same class inside a filled hole
        are absorbed (their pixels added to the probability statistics).
    connectivity : {4, 8}
        Pixel connectivity: with 8, pixels touching at a corner belong to one feature
        (a MultiPolygon whose parts touch at points).
    classes : sequence of int, optional
        Class ids to vectorise; all non-zero ids by default.
    block_size : int
        Side of the blocks read at a time (>= 16); sets the memory used for the raster.
    progress : callable, optional
        Called as ``progress(blocks_just_finished, blocks_total)`` after each block.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``id, class, class_id, area_m2, perim_m, [mean_prob, max_prob,] lon, lat``
        and MultiPolygon geometries in the mask's CRS, largest first. Empty (with these
        columns) when the mask has no selected pixels.

    Raises
    ------
    InputError
        Unreadable or multi-band mask, non-integer values, probabilities on another grid or
        without a band for a class.
    ConfigError
        A setting out of range, or a class id the mask does not name.
    """
    _check_settings(min_area, simplify, fill_holes, connectivity, block_size)
    with ExitStack() as stack:
        src = stack.enter_context(_open(Path(mask_path)))
        _check_mask(src)
        names = _class_names(src)
        _check_classes(classes, names, src.name)
        prob = None
        if probabilities_path is not None:
            prob = stack.enter_context(_open(Path(probabilities_path)))
            _check_probabilities(prob, src)
        metric = _Metric.for_raster(src)
        # Without later changes to the geometry, small complete polygons can go at once.
        drop_early = min_area > 0 and simplify == 0 and fill_holes == 0
        blocks = list(block_windows(src.height, src.width, block_size))
        log.info("%s: vectorising %d block(s) of up to %d px", src.name, len(blocks), block_size)
        complete, cut = [], []
        for window in blocks:
            pieces, on_edge = _vectorise_block(src, prob, window, classes, connectivity)
            whole = pieces.take(np.flatnonzero(~on_edge))
            whole.geoms = _to_map(whole.geoms, src.transform)
            if drop_early and len(whole):
                whole = whole.take(np.flatnonzero(metric.area(whole.geoms) >= min_area))
            complete.append(whole)
            cut.append(pieces.take(np.flatnonzero(on_edge)))
            log.debug("block %s: %d complete, %d cut polygons", window, len(whole), on_edge.sum())
            if progress is not None:
                progress(1, len(blocks))
        cut_pieces = _Pieces.concat(cut)
        merged = _merge_cut(cut_pieces, connectivity) if len(cut_pieces) else _Pieces.empty()
        log.info("%d polygons cut by block edges merged into %d", len(cut_pieces), len(merged))
        merged.geoms = _to_map(merged.geoms, src.transform)
        pieces = _Pieces.concat([*complete, merged])
        if fill_holes > 0 and len(pieces):
            pieces.geoms, filled = _fill_small_holes(pieces.geoms, metric, fill_holes)
            pieces = _absorb_islands(pieces, filled)
        if simplify > 0 and len(pieces):
            pieces.geoms = _simplified(pieces.geoms, simplify)
        return _frame(pieces, metric, names, src.crs, prob is not None, min_area)


# ------------------------------------------------------------------------------ writing
def _output_format(path: Path) -> tuple[Path, str]:
    """The output path (``.gpkg`` appended when it has no extension) and its format."""
    if not path.suffix:
        path = path.with_name(path.name + ".gpkg")
    fmt = VECTOR_FORMATS.get(path.suffix.lower())
    if fmt is None:
        valid = ", ".join(VECTOR_FORMATS)
        raise OutputError(f"{path}: unknown vector format {path.suffix!r}; use one of {valid}")
    if fmt == "GeoParquet" and importlib.util.find_spec("pyarrow") is None:
        raise OutputError(
            f"{path}: writing GeoParquet needs the pyarrow package; install it with "
            "`pip install pyarrow`, or write .gpkg instead"
        )
    return path, fmt


def write_polygons(
    frame: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write polygons in the format named by the file extension (see :data:`VECTOR_FORMATS`).

    The file is written atomically (:func:`geoseg.outputs.atomic_output`); geometries are
    declared MultiPolygon, so an empty frame still gives a layer with its schema and CRS.

    Parameters
    ----------
    frame : geopandas.GeoDataFrame
        Features to write, with a CRS (or none).
    path : path
        Output file; ``.gpkg`` is appended when it has no extension.
    layer : str, optional
        GeoPackage layer name (the file stem by default); other formats have one layer.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        Unknown extension, pyarrow missing for ``.parquet``, unwritable folder.
    OutputExistsError
        The file exists and ``overwrite`` is False.
    """
    final, fmt = _output_format(Path(path))
    with atomic_output(final, overwrite) as tmp, quiet_georeference():
        if fmt == "GeoParquet":
            frame.to_parquet(tmp, index=False)
        else:
            options = {"layer": layer or final.stem} if fmt == "GPKG" else {}
            frame.to_file(tmp, driver=fmt, engine="pyogrio", geometry_type="MultiPolygon",
                          index=False, **options)
    return final


def vectorize_mask(
    mask_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    probabilities_path: str | os.PathLike[str] | None = None,
    min_area: float = 0.0,
    simplify: float = 0.0,
    fill_holes: float = 0.0,
    connectivity: int = 8,
    classes: Sequence[int] | None = None,
    block_size: int = 2048,
    layer: str | None = None,
    style: bool = True,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> VectorizeSummary:
    """Vectorise a class mask and write the polygons (see :func:`polygons_from_mask`).

    The output format comes from the extension of ``out_path`` (:data:`VECTOR_FORMATS`); a
    GeoPackage layer is named ``layer`` (default: the mask's file stem). The output is checked
    before any work and written atomically; a mask without foreground gives an empty layer.
    With ``style``, a QGIS ``.qml`` sidecar (semi-transparent red fill) is written next to it.

    Returns
    -------
    VectorizeSummary
        Feature count, total and largest area, the path written.

    Raises
    ------
    InputError, ConfigError
        As :func:`polygons_from_mask`.
    OutputError
        Unknown extension, pyarrow missing for ``.parquet``, unwritable folder.
    OutputExistsError
        The output exists and ``overwrite`` is False.
    OutputIsInputError
        The output is the mask or the probabilities.
    """
    inputs = [p for p in (mask_path, probabilities_path) if p is not None]
    check_output_path(out_path, overwrite, inputs)
    final, _ = _output_format(Path(out_path))
    frame = polygons_from_mask(
        mask_path, probabilities_path=probabilities_path, min_area=min_area, simplify=simplify,
        fill_holes=fill_holes, connectivity=connectivity, classes=classes, block_size=block_size,
        progress=progress,
    )
    written = write_polygons(frame, final, layer=layer or Path(mask_path).stem,
                             overwrite=overwrite)
    if style:
        write_style(written, polygon_style(), overwrite=True)
    areas = frame["area_m2"].to_numpy()
    log.info("%s: %d polygons written", written, len(frame))
    return VectorizeSummary(
        count=len(frame),
        total_area_m2=float(areas.sum()),
        largest_area_m2=float(areas.max()) if len(areas) else 0.0,
        path=written,
        area_unit="m²" if frame.crs is not None else "units²",
    )
