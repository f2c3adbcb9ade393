"""Vectorise a class mask into polygons for GIS: one feature per connected landslide.

The mask is read block by block (non-overlapping windows from :func:`geoseg.raster.tiling.
block_windows`), so a mask larger than memory works; only the polygons are held. Blocks are
polygonised on all cores (``workers``: this process and worker processes, since
:func:`rasterio.features.shapes` holds the GIL), each with :func:`rasterio.features.shapes`
over only the parts of the block holding selected pixels, in *global pixel coordinates* (whole
numbers, exact in float64). A polygon that does not reach an internal block edge is complete; the
others are pieces of a component cut by the blocks. Pieces of one class are linked when they
share an edge (and, with 8-connectivity, also when they touch at a corner), linked pieces are
dissolved with :func:`shapely.union_all`, and every feature is then mapped to the raster's CRS.
Working on pixel corners keeps the union exact: no seam lines, no slivers.

Per feature the attributes are ``id`` (1..N, largest first), ``class`` (name), ``class_id``,
``area_m2``, ``perim_m`` (of the geometry as written, in metres), ``compact`` (Polsby-Popper
``4 pi area / perim²`` of those metres: 1 for a disc, lower for elongated or ragged shapes),
``lon``/``lat`` (centroid in WGS84) and, with a probability raster, ``mean_prob``/``max_prob``
(the probability of the feature's class over the mask pixels that make it up, accumulated block
by block, so exact for merged features) and, with an uncertainty raster
(:mod:`geoseg.prediction.uncertainty`), its mean over those pixels, named after its measure:
``tta_spread`` or ``entropy``. Names are at most 10 characters so that a Shapefile keeps them.

Areas and lengths are true metres whatever the CRS
(:class:`~geoseg.vectors.vector_features.Measure`): a projected CRS whose scale is true within 0.1 %
over the scene (UTM within its zone, national grids) is used as is (scaled to metres if its unit is
not the metre); any other (geographic, Web Mercator, whose areas are 1/cos²(latitude) too large) is
measured on a Lambert azimuthal equal-area projection centred on the scene (exact areas; lengths are
distorted by well under
0.1 % within a few hundred kilometres of the centre). ``min_area`` and ``fill_holes`` compare
those areas; the ``simplify`` tolerance, in metres, is converted to the CRS's units at the
scene's centre (the larger of the scales along x and y, so that no vertex moves further than
the tolerance there). A mask without CRS is measured in its own map units (pixels for a plain
image), with a warning.

What to vectorise and how to clean it is a :class:`~geoseg.vectors.polygon_options.PolygonOptions`.
This module is the public face: it runs the steps, which live in :mod:`geoseg.vectors.vector_blocks`
(polygonising and merging), :mod:`geoseg.vectors.vector_features` (measures, finishing, attributes)
and :mod:`geoseg.vectors.vector_formats` (writing). It never imports TensorFlow or click.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio

from geoseg.errors import InputError, ParameterError, param
from geoseg.prediction.uncertainty import UNCERTAINTY_KINDS, UNCERTAINTY_TAG
from geoseg.raster.mask_format import CLASS_NAMES_TAG
from geoseg.raster.outputs import is_same_file
from geoseg.raster.scene import open_scene
from geoseg.raster.scene_paths import scene_stem
from geoseg.raster.styles import polygon_style
from geoseg.raster.tiling import block_windows
from geoseg.vectors.polygon_options import PolygonOptions
from geoseg.vectors.vector_blocks import Pieces, merge_cut, to_map
from geoseg.vectors.vector_features import (
    Measure,
    absorb_islands,
    feature_table,
    fill_small_holes,
    simplified,
)
from geoseg.vectors.vector_formats import VECTOR_FORMATS, check_vector_output, write_polygons
from geoseg.vectors.vector_workers import vectorise_blocks

__all__ = [
    "VECTOR_FORMATS",
    "PolygonOptions",
    "VectorizeSummary",
    "polygons_from_mask",
    "vectorize_mask",
    "write_polygons",
]

log = logging.getLogger(__name__)

_MIN_BLOCK = 16
_MIN_CACHE = 8 << 20
"""Bytes of GDAL block cache at least, while vectorising (see :func:`_gdal_options`)."""


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


def _open(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
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


def _check_classes(classes: Sequence[int] | None, names: Sequence[str], mask: str) -> None:
    """The selected classes exist in the mask (their form is checked by PolygonOptions)."""
    for class_id in classes or ():
        if names and class_id >= len(names):
            known = ", ".join(f"{i} {n}" for i, n in enumerate(names))
            raise ParameterError(f"{param('classes')}: {mask} has no class {class_id} (it has "
                                 f"{known})")


def _check_probabilities(prob: rasterio.io.DatasetReader, src: rasterio.io.DatasetReader,
                         what: str = "probabilities") -> None:
    """``prob`` (the probabilities, or another raster ``what`` written with the mask) is on
    the mask's grid and not the mask itself."""
    if is_same_file(prob.name, src.name):
        raise InputError(f"{prob.name}: is the mask itself; pass the {what} raster written "
                         f"with it (the prediction's {what} output)")
    same = (
        prob.width == src.width
        and prob.height == src.height
        and prob.crs == src.crs
        and prob.transform.almost_equals(src.transform)
    )
    if not same:
        raise InputError(
            f"{prob.name}: its grid ({prob.width}x{prob.height}, {prob.crs}) differs from the "
            f"mask {src.name} ({src.width}x{src.height}, {src.crs}); pass the {what} "
            "written together with this mask"
        )


def _uncertainty_kind(unc: rasterio.io.DatasetReader) -> str:
    """The measure an uncertainty raster holds (its tag), which names the polygons' column."""
    kind = unc.tags().get(UNCERTAINTY_TAG)
    if unc.count != 1 or kind not in UNCERTAINTY_KINDS:
        raise InputError(f"{unc.name}: is not an uncertainty raster written by geoseg predict "
                         f"(one band tagged {UNCERTAINTY_TAG}); pass the uncertainty output "
                         "written with this mask")
    return kind


def _check_execution(block_size: int, workers: int | None) -> None:
    if block_size < _MIN_BLOCK:
        raise ParameterError(f"{param('block_size')} must be >= {_MIN_BLOCK} pixels, got "
                             f"{block_size}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ParameterError(f"{param('workers')} must be a whole number >= 1 (or None for "
                             f"all cores), got {workers!r}")


def _gdal_options(
    src: rasterio.io.DatasetReader, prob: rasterio.io.DatasetReader | None, block_size: int
) -> dict[str, int]:
    """A GDAL block cache for what one block needs, unless the user set one.

    Each block is read once, so a larger cache only holds what will not be read again (by
    default GDAL keeps up to 5% of the machine's memory, in every process). A file stored in
    strips as wide as the raster needs a row of blocks, or each strip would be decoded again
    for every block beside it.
    """
    if "GDAL_CACHEMAX" in os.environ:  # a user's own setting wins
        return {}
    inputs = [src] + ([prob] if prob is not None else [])
    pixel_bytes = sum(np.dtype(d).itemsize for dataset in inputs for d in dataset.dtypes)
    striped = any(dataset.block_shapes[0][1] >= dataset.width for dataset in inputs)
    width = src.width if striped else min(block_size, src.width)
    return {"GDAL_CACHEMAX": max(_MIN_CACHE, min(block_size, src.height) * width * pixel_bytes)}


def polygons_from_mask(
    mask_path: str | os.PathLike[str],
    options: PolygonOptions | None = None,
    *,
    probabilities_path: str | os.PathLike[str] | None = None,
    uncertainty_path: str | os.PathLike[str] | None = None,
    block_size: int = 2048,
    workers: int | None = None,
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
    uncertainty_path : path, optional
        The uncertainty raster written with the mask (:mod:`geoseg.prediction.uncertainty`): adds
        its mean over each polygon's pixels, ``tta_spread`` or ``entropy`` after its measure.
    options : PolygonOptions, optional
        Minimum area, simplification, hole filling, connectivity and classes
        (:class:`~geoseg.vectors.polygon_options.PolygonOptions`; its defaults when not given).
    block_size : int
        Side of the blocks read at a time (>= 16); sets the memory used for the raster.
    workers : int, optional
        Processes polygonising blocks at the same time (all cores, ``os.cpu_count()``, by
        default; 1 for none but this one). The result does not depend on it.
    progress : callable, optional
        Called as ``progress(blocks_just_finished, blocks_total)`` after each block.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``id, class, class_id, area_m2, perim_m, compact, [mean_prob, max_prob,]
        [tta_spread or entropy,] lon, lat``
        and MultiPolygon geometries in the mask's CRS, largest first. Empty (with these
        columns) when the mask has no selected pixels.

    Raises
    ------
    InputError
        Unreadable or multi-band mask, non-integer values, probabilities on another grid or
        without a band for a class.
    ParameterError
        ``block_size`` or ``workers`` out of range, or a class id the mask does not name.
    """
    opts = options if options is not None else PolygonOptions()
    _check_execution(block_size, workers)
    with ExitStack() as stack:
        src = stack.enter_context(_open(mask_path))
        _check_mask(src)
        names = _class_names(src)
        _check_classes(opts.classes, names, src.name)
        prob = None
        if probabilities_path is not None:
            prob = stack.enter_context(_open(probabilities_path))
            _check_probabilities(prob, src)
        uncertainty, kind = None, None
        if uncertainty_path is not None:
            uncertainty = stack.enter_context(_open(uncertainty_path))
            _check_probabilities(uncertainty, src, "uncertainty")
            kind = _uncertainty_kind(uncertainty)
        metric = Measure.for_raster(src)
        # Without later changes to the geometry, small complete polygons can go at once.
        drop_early = opts.min_area > 0 and opts.simplify == 0 and opts.fill_holes == 0
        blocks = list(block_windows(src.height, src.width, block_size))
        log.info("%s: vectorising %d block(s) of up to %d px", src.name, len(blocks), block_size)
        gdal_options = _gdal_options(src, prob, block_size)
        stack.enter_context(rasterio.Env(**gdal_options))
        complete, cut = [], []
        # Closed on the way out, even on an error: no worker process outlives the call.
        found = stack.enter_context(closing(vectorise_blocks(
            src, prob, blocks, opts.classes, opts.connectivity, workers or os.cpu_count() or 1,
            gdal_options, uncertainty)))
        for window, (pieces, on_edge) in zip(blocks, found, strict=True):
            whole = pieces.take(np.flatnonzero(~on_edge))
            whole.geoms = to_map(whole.geoms, src.transform)
            if drop_early and len(whole):
                whole = whole.take(np.flatnonzero(metric.area(whole.geoms) >= opts.min_area))
            complete.append(whole)
            cut.append(pieces.take(np.flatnonzero(on_edge)))
            log.debug("block %s: %d complete, %d cut polygons", window, len(whole), on_edge.sum())
            if progress is not None:
                progress(1, len(blocks))
        cut_pieces = Pieces.concat(cut)
        merged = (merge_cut(cut_pieces, opts.connectivity) if len(cut_pieces)
                  else Pieces.empty())
        log.info("%d polygons cut by block edges merged into %d", len(cut_pieces), len(merged))
        merged.geoms = to_map(merged.geoms, src.transform)
        pieces = Pieces.concat([*complete, merged])
        if opts.fill_holes > 0 and len(pieces):
            pieces.geoms, filled = fill_small_holes(pieces.geoms, metric, opts.fill_holes)
            pieces = absorb_islands(pieces, filled)
        if opts.simplify > 0 and len(pieces):
            pieces.geoms = simplified(pieces.geoms, metric.units(opts.simplify))
        return feature_table(pieces, metric, names, src.crs, prob is not None, opts.min_area,
                             kind)


def vectorize_mask(
    mask_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    options: PolygonOptions | None = None,
    *,
    layer: str | None = None,
    style: bool = True,
    overwrite: bool = False,
    probabilities_path: str | os.PathLike[str] | None = None,
    uncertainty_path: str | os.PathLike[str] | None = None,
    block_size: int = 2048,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VectorizeSummary:
    """Vectorise a class mask and write the polygons.

    ``options``, ``probabilities_path``, ``uncertainty_path``, ``block_size``, ``workers``
    and ``progress`` are those of :func:`polygons_from_mask`.

    The output format comes from the extension of ``out_path`` (:data:`VECTOR_FORMATS`); a
    GeoPackage layer is named ``layer`` (default: the mask's file stem). The output is checked
    before any work and written atomically; a mask without foreground gives an empty layer.
    With ``style``, the polygons get a QGIS style (semi-transparent red fill): inside a
    GeoPackage (its default style), else as a ``.qml`` sidecar, which must not be the mask's
    or the probabilities' own (:func:`~geoseg.vectors.vector_formats.check_vector_output`).

    Returns
    -------
    VectorizeSummary
        Feature count, total and largest area, the path written.

    Raises
    ------
    InputError, ParameterError
        As :func:`polygons_from_mask`.
    OutputError
        Unknown extension, pyarrow missing for ``.parquet``, unwritable folder.
    OutputExistsError
        The output (or its style sidecar) exists and ``overwrite`` is False.
    OutputIsInputError
        The output is the mask or the probabilities, or its style sidecar is theirs.
    """
    inputs = [p for p in (mask_path, probabilities_path, uncertainty_path) if p is not None]
    final, _ = check_vector_output(out_path, overwrite, inputs, layers=inputs, style=style)
    frame = polygons_from_mask(mask_path, options, probabilities_path=probabilities_path,
                               uncertainty_path=uncertainty_path, block_size=block_size,
                               workers=workers, progress=progress)
    written = write_polygons(frame, final, layer=layer or scene_stem(mask_path),
                             overwrite=overwrite, style=polygon_style() if style else None)
    areas = frame["area_m2"].to_numpy()
    log.info("%s: %d polygons written", written, len(frame))
    return VectorizeSummary(
        count=len(frame),
        total_area_m2=float(areas.sum()),
        largest_area_m2=float(areas.max()) if len(areas) else 0.0,
        path=written,
        area_unit="m²" if frame.crs is not None else "units²",
    )
