"""Polygonising a class mask block by block, and merging the pieces cut by block edges.

Each block is polygonised with :func:`rasterio.features.shapes` in *global pixel
coordinates* (whole numbers, exact in float64), so pieces of one component cut by the blocks
dissolve exactly (:func:`merge_cut`): no seam lines, no slivers. As ``shapes`` costs about as
much per blank pixel as per selected one, only the rectangles holding selected pixels are
polygonised, packed side by side into one smaller image (:func:`_polygonise`); blocks are
shared between this process and worker processes (:mod:`geoseg.vectors.vector_workers`).
:func:`to_map` then places them in the raster's CRS. Probabilities are accumulated per piece (sum,
count, max), and so is an uncertainty raster's value (sum, count), so they stay exact for merged
features.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes
from rasterio.windows import Window

from geoseg.errors import InputError
from geoseg.vectors.geometry import repair_polygons

__all__ = [
    "Pieces", "merge_cut", "probability_band", "read_probability", "to_map", "vectorise_block",
]

log = logging.getLogger("geoseg.vectors.vectorize")  # one logger for all of vectorising


def to_map(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Geometries in global pixel coordinates -> the raster's CRS.

    Parameters
    ----------
    geoms : ndarray of shapely geometries
        In pixel coordinates of the whole raster (column, row of pixel corners).
    transform : Affine
        The raster's geotransform.

    Returns
    -------
    ndarray of shapely geometries
    """
    a, b, c, d, e, f = transform[:6]

    def apply(coords: np.ndarray) -> np.ndarray:
        col, row = coords[:, 0], coords[:, 1]
        return np.column_stack([a * col + b * row + c, d * col + e * row + f])

    return shapely.transform(geoms, apply)


@dataclass
class Pieces:
    """Polygons with their class, probability accumulators (sum, count, max) and uncertainty
    accumulators (sum, count)."""

    geoms: np.ndarray
    class_ids: np.ndarray
    prob_sum: np.ndarray
    prob_count: np.ndarray
    prob_max: np.ndarray
    unc_sum: np.ndarray
    unc_count: np.ndarray

    @classmethod
    def empty(cls) -> Pieces:
        """No pieces."""
        return cls.without_values(np.empty(0, dtype=object), np.empty(0, dtype=np.int64))

    @classmethod
    def without_values(cls, geoms: np.ndarray, class_ids: np.ndarray) -> Pieces:
        """Pieces whose accumulators hold nothing yet."""
        n = len(geoms)
        return cls(geoms, class_ids, np.zeros(n), np.zeros(n, dtype=np.int64),
                   np.full(n, -np.inf), np.zeros(n), np.zeros(n, dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Pieces]) -> Pieces:
        """All pieces of ``parts``, in order."""
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))

    def take(self, index: np.ndarray) -> Pieces:
        """The pieces at ``index`` (integer indices)."""
        return Pieces(*(getattr(self, name)[index] for name in _FIELDS))

    def __len__(self) -> int:
        return len(self.geoms)


_FIELDS = ("geoms", "class_ids", "prob_sum", "prob_count", "prob_max", "unc_sum", "unc_count")


def probability_band(prob: rasterio.io.DatasetReader, class_id: int) -> int:
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


def read_probability(prob: rasterio.io.DatasetReader, band: int, window: Window) -> np.ndarray:
    """One probability band, unscaled with its GDAL scale/offset, NaN where missing."""
    raw = prob.read(band, window=window)
    values = raw.astype(np.float64) * prob.scales[band - 1] + prob.offsets[band - 1]
    nodata = prob.nodatavals[band - 1]
    if nodata is not None and not math.isnan(nodata):
        values[raw == nodata] = np.nan
    # fmin / fmax pass over NaN without a copy of the values present
    low = np.fmin.reduce(values, axis=None) if values.size else np.nan
    high = np.fmax.reduce(values, axis=None) if values.size else np.nan
    if np.isnan(low):  # nothing present
        low = high = 0.0
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise InputError(
            f"{prob.name}: band {band} holds values from {low:g} to {high:g}, not 0..1; pass "
            "probabilities (uint8 ones need a GDAL scale of 1/254, as geoseg predict writes)"
        )
    return values


_SHAPES_DTYPES = frozenset({"uint8", "uint16", "int16", "int32"})
"""Integer pixel types :func:`rasterio.features.shapes` reads as they are (others: int32)."""


def _class_block(src: rasterio.io.DatasetReader, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read a mask block: class ids (int32, or the mask's own integer type when
    :func:`~rasterio.features.shapes` reads it) and the mask of pixels holding data."""
    block = src.read(1, window=window)
    floating = np.issubdtype(block.dtype, np.floating)
    valid = ~np.isnan(block) if floating else np.ones(block.shape, dtype=bool)
    if src.nodata is not None and not math.isnan(src.nodata):
        valid &= block != src.nodata
    if block.dtype.name in _SHAPES_DTYPES:
        return block, valid  # pixels without data are never selected: their values stay
    values = block[valid]
    if floating:
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


def _owners(geoms: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """The block's pixels inside a polygon (a mask) and, for each, its polygon (1-based)."""
    labels = rasterize(
        zip(geoms, range(1, len(geoms) + 1), strict=True),
        out_shape=(window.height, window.width),
        transform=Affine.translation(window.col_off, window.row_off),
        fill=0,
        dtype="int32",
    )
    inside = labels > 0
    return inside, labels[inside]


def _block_stats(
    class_ids: np.ndarray,
    window: Window,
    prob: rasterio.io.DatasetReader,
    inside: np.ndarray,
    owner: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, count and max of each polygon's class probability over its pixels in the block
    (``inside``, ``owner``: :func:`_owners`)."""
    n = len(class_ids)
    owner_class = class_ids[owner - 1]
    values = np.full(owner.shape, np.nan)
    for class_id in np.unique(owner_class):
        band = read_probability(prob, probability_band(prob, int(class_id)), window)
        pick = owner_class == class_id
        values[pick] = band[inside][pick]
    ok = ~np.isnan(values)
    owner, values = owner[ok], values[ok]
    sums = np.bincount(owner, weights=values, minlength=n + 1)[1:]
    counts = np.bincount(owner, minlength=n + 1)[1:]
    maxes = np.full(n + 1, -np.inf)
    np.maximum.at(maxes, owner, values)
    return sums, counts, maxes[1:]


def _uncertainty_stats(
    n: int, window: Window, uncertainty: rasterio.io.DatasetReader, inside: np.ndarray,
    owner: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of each of ``n`` polygons' uncertainty over its pixels in the block,
    read as probabilities are (:func:`read_probability`: GDAL scale applied, nodata left out)."""
    values = read_probability(uncertainty, 1, window)[inside]
    ok = ~np.isnan(values)
    return (np.bincount(owner[ok], weights=values[ok], minlength=n + 1)[1:],
            np.bincount(owner[ok], minlength=n + 1)[1:])


_CELL = 8
"""Side, in pixels, of the cells in which a block's selected pixels are gathered for
:func:`_polygonise` (8 polygonised the fewest pixels on ``bench/vectorize_speed.py``'s mask;
8 bytes of a cell's row are also read at once, as one 64-bit word)."""


@dataclass(frozen=True)
class _Region:
    """Rows and columns of a block holding one 8-connected group of occupied cells, and the
    selected pixels of that group (True) within them."""

    rows: slice
    cols: slice
    own: np.ndarray


def _label_boxes(labels: np.ndarray, count: int) -> np.ndarray:
    """Bounding boxes ``(top, left, bottom, right)``, ends excluded, of labels 1..count."""
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    order = np.argsort(flat[where], kind="stable")
    where = where[order]
    starts = np.searchsorted(flat[where], np.arange(1, count + 1))
    row, col = np.divmod(where, labels.shape[1])
    return np.column_stack([
        np.minimum.reduceat(row, starts), np.minimum.reduceat(col, starts),
        np.maximum.reduceat(row, starts) + 1, np.maximum.reduceat(col, starts) + 1,
    ])


def _regions(selected: np.ndarray) -> list[_Region]:
    """Rectangles that together hold every selected pixel, each component whole in one.

    The block is cut into :data:`_CELL`-pixel cells; a cell is occupied when it holds a
    selected pixel. Two 8-connected pixels lie in the same or in 8-adjacent cells, so every
    connected component of pixels lies in one 8-connected group of occupied cells: its region.
    """
    height, width = selected.shape
    cell_rows, cell_cols = -(-height // _CELL), -(-width // _CELL)
    padded = np.zeros((cell_rows * _CELL, cell_cols * _CELL), dtype=bool)
    padded[:height, :width] = selected
    words = padded.view(np.uint64)  # one word per row of a cell
    occupied = (words != 0).reshape(cell_rows, _CELL, cell_cols).any(axis=1)
    groups = shapes(occupied.view(np.uint8), mask=occupied, connectivity=8)
    # Cell-aligned outlines burn exactly their cells (pixel-centre rule).
    labels = rasterize(((g, label) for label, (g, _) in enumerate(groups, 1)),
                       out_shape=occupied.shape, fill=0, dtype="int32")
    regions = []
    for label, (top, left, bottom, right) in enumerate(_label_boxes(labels, labels.max()), 1):
        rows = slice(top * _CELL, min(bottom * _CELL, height))
        cols = slice(left * _CELL, min(right * _CELL, width))
        cells = labels[top:bottom, left:right] == label
        own = np.repeat(np.repeat(cells, _CELL, axis=0), _CELL, axis=1)
        own = own[: rows.stop - rows.start, : cols.stop - cols.start] & selected[rows, cols]
        regions.append(_Region(rows, cols, own))
    return regions


def _pack(regions: Sequence[_Region], width: int) -> tuple[list[tuple[int, int]], int]:
    """Top-left corners for the regions in shelves ``width`` wide, one blank pixel between
    any two (so that no pixel of one touches another, even at a corner), and the height."""
    corners = [(0, 0)] * len(regions)
    x = y = shelf = 0
    for index in sorted(range(len(regions)), key=lambda i: -regions[i].own.shape[0]):
        rows, cols = regions[index].own.shape
        if x + cols > width:
            x, y, shelf = 0, y + shelf + 1, 0
        corners[index] = (y, x)
        x, shelf = x + cols + 1, max(shelf, rows)
    return corners, y + shelf


def _polygons(found: Sequence[tuple[dict, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Shapely polygons and values of :func:`~rasterio.features.shapes`' GeoJSON-like
    results, built in bulk (three times faster than :func:`shapely.geometry.shape` on each)."""
    if not found:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    rings = [ring for geom, _ in found for ring in geom["coordinates"]]
    ring_counts = [len(geom["coordinates"]) for geom, _ in found]
    sizes = np.fromiter(map(len, rings), dtype=np.intp, count=len(rings))
    coords = np.fromiter(chain.from_iterable(chain.from_iterable(rings)), dtype=np.float64,
                         count=2 * int(sizes.sum())).reshape(-1, 2)
    ring_of = np.repeat(np.arange(len(rings)), sizes)
    linear = np.asarray(shapely.linearrings(coords, indices=ring_of), dtype=object)
    # The first ring of each polygon is its shell, the others its holes.
    geoms = shapely.polygons(linear, indices=np.repeat(np.arange(len(found)), ring_counts))
    return np.asarray(geoms, dtype=object), np.array([int(v) for _, v in found], dtype=np.int64)


def _polygonise(
    ids: np.ndarray, selected: np.ndarray, connectivity: int, row_off: int, col_off: int
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (shapely, global pixel coordinates) of the selected pixels, and their values.

    :func:`rasterio.features.shapes` costs about as much per blank pixel as per selected
    one, so the regions holding selected pixels (:func:`_regions`) are copied side by side
    into a smaller image, an atlas, polygonised in one call, and each polygon is moved back
    from its region's place in the atlas. A block mostly covered is polygonised as it is.
    """
    if not selected.any():
        return _polygons([])
    regions = _regions(selected)
    corners, atlas_height = _pack(regions, selected.shape[1])
    if atlas_height * selected.shape[1] * 2 > selected.size:
        return _polygons(list(shapes(ids, mask=selected, connectivity=connectivity,
                                     transform=Affine.translation(col_off, row_off))))
    atlas = np.zeros((atlas_height, selected.shape[1]), dtype=ids.dtype)
    atlas_mask = np.zeros(atlas.shape, dtype=bool)
    owner = np.zeros(atlas.shape, dtype=np.int32)
    shift = np.empty((len(regions), 2))
    for index, (region, (top, left)) in enumerate(zip(regions, corners, strict=True)):
        place = (slice(top, top + region.own.shape[0]), slice(left, left + region.own.shape[1]))
        atlas[place] = ids[region.rows, region.cols]
        atlas_mask[place] = region.own
        owner[place] = index
        shift[index] = (col_off + region.cols.start - left, row_off + region.rows.start - top)
    geoms, values = _polygons(list(shapes(atlas, mask=atlas_mask, connectivity=connectivity)))
    left_col, top_row = shapely.bounds(geoms)[:, :2].astype(int).T
    # The top-left pixel of a polygon's bounds lies in its region's place in the atlas.
    moves = shift[owner[top_row, left_col]]
    coords, which = shapely.get_coordinates(geoms, return_index=True)
    shapely.set_coordinates(geoms, coords + moves[which])
    return geoms, values


def vectorise_block(
    src: rasterio.io.DatasetReader,
    prob: rasterio.io.DatasetReader | None,
    window: Window,
    classes: Sequence[int] | None,
    connectivity: int,
    uncertainty: rasterio.io.DatasetReader | None = None,
) -> tuple[Pieces, np.ndarray]:
    """Polygons of one block in global pixel coordinates, and which reach an internal edge.

    Parameters
    ----------
    src : rasterio dataset
        The class mask.
    prob : rasterio dataset, optional
        Probabilities on the mask's grid, accumulated per polygon.
    window : Window
        The block.
    classes : sequence of int, optional
        Class ids to polygonise; all non-zero ids by default.
    connectivity : {4, 8}
        Pixel connectivity.
    uncertainty : rasterio dataset, optional
        An uncertainty raster on the mask's grid (:mod:`geoseg.prediction.uncertainty`), accumulated
        per polygon.

    Returns
    -------
    pieces : Pieces
        The block's polygons (repaired), classes, probability and uncertainty accumulators.
    cut : ndarray of bool
        True for polygons touching a block edge inside the raster: pieces for
        :func:`merge_cut`.
    """
    ids, valid = _class_block(src, window)
    selected = valid & (np.isin(ids, classes) if classes is not None else ids != 0)
    if not selected.any():
        return Pieces.empty(), np.empty(0, dtype=bool)
    geoms, class_ids = _polygonise(ids, selected, connectivity, window.row_off, window.col_off)
    # 8-connected shapes touch themselves at pixel corners: invalid until repaired.
    geoms = repair_polygons(geoms)
    pieces = Pieces.without_values(geoms, class_ids)
    if prob is not None or uncertainty is not None:
        inside, owner = _owners(geoms, window)
        if prob is not None:
            pieces.prob_sum, pieces.prob_count, pieces.prob_max = _block_stats(
                class_ids, window, prob, inside, owner)
        if uncertainty is not None:
            pieces.unc_sum, pieces.unc_count = _uncertainty_stats(
                len(geoms), window, uncertainty, inside, owner)
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


def merge_cut(pieces: Pieces, connectivity: int) -> Pieces:
    """Dissolve pieces of one component cut by block edges (pixel coordinates, exact).

    Pieces of one class are linked when they share an edge; with 8-connectivity also when they
    touch only at a corner (a diagonal contact across a block edge).

    Parameters
    ----------
    pieces : Pieces
        The cut pieces of every block, in global pixel coordinates.
    connectivity : {4, 8}
        Pixel connectivity.

    Returns
    -------
    Pieces
        One piece per component, its accumulators combined.
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
            merged.append(Pieces(
                np.array([shapely.simplify(geom, 0.0)], dtype=object),
                np.array([class_id]),
                np.array([members.prob_sum.sum()]),
                np.array([members.prob_count.sum()]),
                np.array([members.prob_max.max()]),
                np.array([members.unc_sum.sum()]),
                np.array([members.unc_count.sum()]),
            ))
    return Pieces.concat(merged)
