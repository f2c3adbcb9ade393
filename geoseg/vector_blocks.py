"""Polygonising a class mask block by block, and merging the pieces cut by block edges.

Each block is polygonised with :func:`rasterio.features.shapes` in *global pixel
coordinates* (whole numbers, exact in float64), so pieces of one component cut by the blocks
dissolve exactly (:func:`merge_cut`): no seam lines, no slivers. :func:`to_map` then places
them in the raster's CRS. Probabilities are accumulated per piece (sum, count, max), so they
stay exact for merged features.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes
from rasterio.windows import Window
from shapely.geometry import shape

from geoseg.errors import InputError
from geoseg.geometry import repair_polygons

__all__ = ["Pieces", "merge_cut", "to_map", "vectorise_block"]


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
    """Polygons with their class and probability accumulators (sum, count, max)."""

    geoms: np.ndarray
    class_ids: np.ndarray
    prob_sum: np.ndarray
    prob_count: np.ndarray
    prob_max: np.ndarray

    @classmethod
    def empty(cls) -> Pieces:
        """No pieces."""
        return cls(np.empty(0, dtype=object), np.empty(0, dtype=np.int64),
                   np.empty(0), np.empty(0, dtype=np.int64), np.empty(0))

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


_FIELDS = ("geoms", "class_ids", "prob_sum", "prob_count", "prob_max")


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


def vectorise_block(
    src: rasterio.io.DatasetReader,
    prob: rasterio.io.DatasetReader | None,
    window: Window,
    classes: Sequence[int] | None,
    connectivity: int,
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

    Returns
    -------
    pieces : Pieces
        The block's polygons (repaired), classes and probability accumulators.
    cut : ndarray of bool
        True for polygons touching a block edge inside the raster: pieces for
        :func:`merge_cut`.
    """
    ids, valid = _class_block(src, window)
    selected = valid & (np.isin(ids, classes) if classes is not None else ids != 0)
    if not selected.any():
        return Pieces.empty(), np.empty(0, dtype=bool)
    found = list(shapes(ids, mask=selected, connectivity=connectivity,
                        transform=Affine.translation(window.col_off, window.row_off)))
    # 8-connected shapes touch themselves at pixel corners: invalid until repaired.
    geoms = repair_polygons(np.array([shape(g) for g, _ in found], dtype=object))
    class_ids = np.array([int(v) for _, v in found], dtype=np.int64)
    n = len(geoms)
    if prob is not None:
        sums, counts, maxes = _block_stats(geoms, class_ids, window, prob)
    else:
        sums, counts, maxes = np.zeros(n), np.zeros(n, dtype=np.int64), np.full(n, -np.inf)
    pieces = Pieces(geoms, class_ids, sums, counts, maxes)
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
            ))
    return Pieces.concat(merged)
