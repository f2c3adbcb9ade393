"""Polygon repair: make geometries valid and keep only their polygon parts.

Label layers, polygonised masks and simplified outlines can be invalid (self-intersecting
digitised outlines, 8-connected pixel shapes touching themselves at a corner), and repairing
them or clipping them can leave lines and points beside the polygons. Every module that needs
polygons with an area goes through these two functions.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

__all__ = ["polygonal_parts", "repair_polygons"]

_POLYGON = 3  # shapely.get_type_id
_MULTIPOLYGON = 6


def polygonal_parts(geoms: ArrayLike) -> tuple[NDArray[np.object_], NDArray[np.intp]]:
    """The single non-empty polygons in each geometry, and the geometry each comes from.

    Multi-part geometries and collections are split (a collection may hold multipolygons);
    points, lines, empty parts and missing geometries give nothing.

    Parameters
    ----------
    geoms : array_like of shapely geometries
        Any geometries, None allowed.

    Returns
    -------
    polygons : ndarray of shapely.Polygon
        The polygons, in the order of ``geoms`` and of their parts.
    owner : ndarray of int
        For each polygon, the index in ``geoms`` of the geometry it comes from.

    Examples
    --------
    >>> import shapely
    >>> mixed = shapely.GeometryCollection(
    ...     [shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)]),
    ...      shapely.LineString([(0, 0), (5, 5)])])
    >>> polygons, owner = polygonal_parts([shapely.Point(0, 0), mixed, shapely.box(0, 0, 4, 4)])
    >>> [p.area for p in polygons], owner.tolist()
    ([1.0, 1.0, 16.0], [1, 1, 2])
    """
    parts, owner = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    # Twice: a collection (from make_valid, an intersection or a file) may hold multipolygons.
    parts, inner = shapely.get_parts(parts, return_index=True)
    owner = owner[inner]
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    return parts[keep], owner[keep]


def repair_polygons(
    geoms: ArrayLike, *, method: Literal["linework", "structure"] = "linework"
) -> NDArray[np.object_]:
    """Each geometry valid and polygonal: invalid ones made valid, lines and points dropped.

    Geometries go through :func:`shapely.make_valid`; a Polygon or MultiPolygon it returns
    is kept as it is. Any other result (a collection from the repair or from an intersection,
    a point, a line, None) becomes a MultiPolygon of its polygon parts
    (:func:`polygonal_parts`), empty when it has none.

    Parameters
    ----------
    geoms : array_like of shapely geometries
        The geometries; the input array is not changed.
    method : {"linework", "structure"}
        How :func:`shapely.make_valid` repairs. ``"linework"`` (GEOS's default) keeps every
        line of the input: a self-intersecting ring becomes the areas it encloses, and what
        collapses becomes lines (dropped here); a valid geometry comes back unchanged, so
        only invalid ones are passed. It suits pixel outlines (vectorised masks, their
        simplification) and label layers, whose burnt pixels tests pin. ``"structure"`` reads
        rings as shells and holes, the area being shells minus holes, and drops what collapses
        (``keep_collapsed=False``): the intent of a hand-digitised outline, which
        :func:`geoseg.evaluation.object_matching.match_objects` compares by area. It rebuilds valid
        geometries too (same area, but the rings may start at another vertex); match_objects has
        always scored the rebuilt ones, so every geometry is passed and its IoUs stay the same to
        the last bit.

    Returns
    -------
    ndarray of shapely.Polygon or shapely.MultiPolygon
        One valid polygonal geometry per input, in order.

    Examples
    --------
    >>> import shapely
    >>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    >>> repaired = repair_polygons([bowtie, shapely.LineString([(0, 0), (1, 1)])])
    >>> [(g.geom_type, len(g.geoms), g.area) for g in repaired]
    [('MultiPolygon', 2, 2.0), ('MultiPolygon', 0, 0.0)]
    """
    out = np.array(geoms, dtype=object)
    if method == "structure":
        out = shapely.make_valid(out, method="structure", keep_collapsed=False)
    else:
        invalid = ~shapely.is_valid(out)
        out[invalid] = shapely.make_valid(out[invalid])
    other = np.flatnonzero(~np.isin(shapely.get_type_id(out), (_POLYGON, _MULTIPOLYGON)))
    if other.size:
        polygons, owner = polygonal_parts(out[other])
        collected = np.full(other.size, shapely.MultiPolygon(), dtype=object)
        shapely.multipolygons(polygons, indices=owner, out=collected)
        out[other] = collected
    return out
