"""Landslide regions from a landslide probability map, whole or streamed, with one result.

:func:`postprocess_array` and :func:`postprocess_raster` run the steps of a
:class:`~geoseg.postprocessing.postprocess_recipe.PostProcessing` recipe (threshold, smoothing,
hysteresis, minimum area, hole filling, watershed split) and give a label array (int32: 0 no region,
1..n regions, numbered in raster order of their first pixel; split parts follow their
region's number in the order of their markers) and the class mask derived from it (uint8:
1 landslide, 0 background, 255 no data). Split regions touch, so polygons must be made from
the labels (one polygon per label), not from the mask.

A raster is read in blocks of rows and the result is *exactly* the one of the whole array,
whatever the block height (tested down to 1-row blocks):

- **smoothing** is the one local step: each block is read with a halo of the Gaussian's radius
  (``int(4 * sigma + 0.5)`` pixels, SciPy's truncation) above and below, so every row kept is
  computed from the same values, in the same order, as on the whole array;
- **component decisions** (hysteresis on a region's peak, minimum area, which holes to fill,
  numbering) are not local: each is taken from a streamed connected-components pass
  (:class:`~geoseg.postprocessing.components.ComponentScan`: union-find across block boundaries,
  collecting each component's area, bounding box and peak), one pass per step; a last pass computes
  each block again, from the probabilities and the decisions, and writes it (the numbering
  pass is left out when only a class mask is written and no hole is filled: the regions kept
  are then the regions, counted without it);
- **split** works on each region's bounding box
(:func:`~geoseg.postprocessing.region_split.split_region`),
  read from a temporary raster of region numbers, on arrays as on rasters. It is exact; its
  memory is that of the bounding boxes of the regions crossing a block row. A region whose
  bounding box has more than :data:`SPLIT_MAX_PIXELS` pixels is not split (on arrays either,
  so the results stay the same), and the log says so.

Memory for a raster: about 40 bytes a pixel of a block of rows with its halos, a few numbers
per connected piece in a block, and the split regions' boxes. Passes over the probabilities:
one to find the regions, one more with hysteresis or a minimum area, one more with holes, one
to write (two with a split).

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
from numpy.typing import ArrayLike, NDArray
from rasterio.windows import Window
from scipy import ndimage

from geoseg.errors import ParameterError, param
from geoseg.postprocessing.components import Components, ComponentScan
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.postprocessing.region_split import split_region
from geoseg.raster.imagery import pixel_size_m
from geoseg.raster.mask_format import CLASS_NAMES_TAG, MASK_NODATA
from geoseg.raster.outputs import atomic_output, check_output_path, is_same_file, temporary_sibling
from geoseg.raster.scene import open_scene
from geoseg.raster.styles import class_colours
from geoseg.settings import default_class_names
from geoseg.vectors.vector_blocks import probability_band, read_probability

__all__ = [
    "POSTPROCESSING_TAG",
    "SPLIT_MAX_PIXELS",
    "PostProcessed",
    "Regions",
    "region_pixel_size",
    "postprocess_array",
    "postprocess_raster",
]

log = logging.getLogger(__name__)

SPLIT_MAX_PIXELS = 1 << 24
"""Largest bounding box (pixels) of a region that is split; larger ones stay whole."""
POSTPROCESSING_TAG = "GEOSEG_POSTPROCESSING"
"""Dataset tag of the outputs holding the recipe as JSON."""
GAUSSIAN_TRUNCATE = 4.0
"""Radius of the smoothing kernel, in standard deviations (SciPy's default)."""

_Sink = Callable[[int, NDArray[np.int64], NDArray[np.bool_]], None]
_Stage = Callable[[int], tuple[NDArray[np.bool_], NDArray[np.float64]]]
_Values = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def _peak(prob: NDArray[np.float64]) -> NDArray[np.float64]:
    """A region's peak is its largest probability."""
    return prob


def _nodata(prob: NDArray[np.float64]) -> NDArray[np.float64]:
    """The maximum of this is 1 for a component holding a pixel without data."""
    return np.isnan(prob).astype(np.float64)


class _Source(Protocol):
    """Landslide probabilities to read by window: float64, NaN where there is no data."""

    height: int
    width: int

    def read(self, rows: slice, cols: slice) -> NDArray[np.float64]: ...


@dataclass
class _ArraySource:
    prob: NDArray[np.float64]
    height: int
    width: int

    def read(self, rows: slice, cols: slice) -> NDArray[np.float64]:
        return self.prob[rows, cols]


@dataclass
class _RasterSource:
    dataset: rasterio.io.DatasetReader
    band: int
    height: int
    width: int

    def read(self, rows: slice, cols: slice) -> NDArray[np.float64]:
        return read_probability(self.dataset, self.band, Window.from_slices(rows, cols))


class _LabelStore(Protocol):
    """Region numbers written block by block, then read back by window (for the split)."""

    def write(self, start: int, numbers: NDArray[np.int64]) -> None: ...

    def read(self, rows: slice, cols: slice) -> NDArray[np.int64]: ...


class _ArrayStore:
    def __init__(self, height: int, width: int) -> None:
        self.numbers = np.zeros((height, width), dtype=np.int64)

    def write(self, start: int, numbers: NDArray[np.int64]) -> None:
        self.numbers[start : start + len(numbers)] = numbers

    def read(self, rows: slice, cols: slice) -> NDArray[np.int64]:
        return self.numbers[rows, cols]


class _RasterStore:
    """Region numbers in a temporary int32 GeoTIFF: written in full, then read."""

    def __init__(self, path: Path, like: rasterio.io.DatasetReader) -> None:
        self.path = path
        self._writer = rasterio.open(path, "w", **_profile(like, "int32", None))
        self._reader: rasterio.io.DatasetReader | None = None

    def write(self, start: int, numbers: NDArray[np.int64]) -> None:
        window = Window(0, start, numbers.shape[1], len(numbers))
        self._writer.write(numbers.astype(np.int32), 1, window=window)

    def read(self, rows: slice, cols: slice) -> NDArray[np.int64]:
        if self._reader is None:
            self._writer.close()
            self._reader = rasterio.open(self.path)
        return self._reader.read(1, window=Window.from_slices(rows, cols)).astype(np.int64)

    def close(self) -> None:
        self._writer.close()
        if self._reader is not None:
            self._reader.close()


class _Regions:
    """The regions of one probability map: found by streamed scans, then written."""

    def __init__(self, source: _Source, recipe: PostProcessing, pixel_size: float,
                 block_rows: int, numbered: bool = True) -> None:
        self.source, self.recipe, self.pixel_size = source, recipe, pixel_size
        height = source.height
        self.blocks = [(start, min(start + block_rows, height))
                       for start in range(0, height, block_rows)]
        self.sigma = recipe.smooth_m / pixel_size
        self.halo = int(GAUSSIAN_TRUNCATE * self.sigma + 0.5) if self.sigma > 0 else 0
        area = pixel_size**2
        self.dropped: Components | None = None
        self.holes: Components | None = None
        if recipe.drops_regions:
            peaks = _peak if recipe.seed_threshold is not None else None
            found = self._scan(self.candidates, 8, peaks)
            keep = found.area * area >= recipe.min_area_m2
            if recipe.seed_threshold is not None and found.maximum is not None:
                keep &= found.maximum >= recipe.seed_threshold
            log.info("%d of %d regions kept (peak and area)", keep.sum(), found.count)
            self.dropped, self._keep = found, np.concatenate([[False], keep])
        if recipe.max_hole_m2 > 0:
            found = self._scan(self._outside, 4, _nodata)
            nodata = found.maximum if found.maximum is not None else np.zeros(found.count)
            fill = (found.area * area <= recipe.max_hole_m2) & ~found.touches_edge & (nodata == 0)
            log.info("%d holes filled", fill.sum())
            self.holes, self._fill = found, np.concatenate([[False], fill])
        self.regions: Components | None = None
        self.count = 0
        if numbered or self.dropped is None or self.holes is not None \
                or recipe.split != "none":
            self.regions = self._scan(self.final, 8, None)
            self.count = self.regions.count
        else:  # the regions kept, unmerged (no hole filled): their number, without a 3rd scan
            self.count = int(np.count_nonzero(self._keep))

    # ---------------------------------------------------------------- a block, step by step
    def candidates(self, block: int) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Step 1-2: thresholded (and smoothed) pixels of a block, and its probabilities."""
        start, stop = self.blocks[block]
        top, bottom = max(0, start - self.halo), min(self.source.height, stop + self.halo)
        prob = self.source.read(slice(top, bottom), slice(0, self.source.width))
        with np.errstate(invalid="ignore"):
            mask = prob >= self.recipe.grow_threshold
        if self.sigma > 0:
            blurred = ndimage.gaussian_filter(mask.astype(np.float32), self.sigma,
                                              mode="nearest", truncate=GAUSSIAN_TRUNCATE)
            mask = (blurred >= 0.5) & ~np.isnan(prob)
        keep = slice(start - top, stop - top)
        return mask[keep], prob[keep]

    def kept(self, block: int) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Step 3: the candidates of the regions kept."""
        mask, prob = self.candidates(block)
        if self.dropped is not None:
            mask = self._keep[self.dropped.label(block, mask)]
        return mask, prob

    def _outside(self, block: int) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        mask, prob = self.kept(block)
        return ~mask, prob

    def final(self, block: int) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Step 4: the regions kept, with their small holes filled."""
        mask, prob = self.kept(block)
        if self.holes is not None:
            mask = mask | self._fill[self.holes.label(block, ~mask)]
        return mask, prob

    def _scan(self, stage: _Stage, connectivity: int, values: _Values | None) -> Components:
        """Components of a stage's mask, with the maximum of ``values`` in each."""
        scan = ComponentScan(self.source.height, self.source.width, connectivity)
        for block in range(len(self.blocks)):
            mask, prob = stage(block)
            scan.add(mask, None if values is None else values(prob))
        return scan.finish()

    # ---------------------------------------------------------------- writing
    def write(self, sink: _Sink, store: Callable[[], _LabelStore]) -> int:
        """Hand each block's labels and validity to ``sink``, top down; the label count."""
        if self.regions is None:  # a class mask only: every region's pixels are 1
            for block, (start, _) in enumerate(self.blocks):
                mask, prob = self.final(block)
                sink(start, mask.astype(np.int64), ~np.isnan(prob))
            return self.count
        regions = self.regions
        if self.recipe.split == "none":
            for block, (start, _) in enumerate(self.blocks):
                mask, prob = self.final(block)
                sink(start, regions.label(block, mask), ~np.isnan(prob))
            return regions.count
        numbers = store()
        for block, (start, _) in enumerate(self.blocks):
            numbers.write(start, regions.label(block, self.final(block)[0]))
        return self._write_split(sink, numbers, regions)

    def _write_split(self, sink: _Sink, numbers: _LabelStore, regions: Components) -> int:
        width = self.source.width
        first = np.zeros(regions.count + 1, dtype=np.int64)  # each region's first label
        next_label = 1
        parts: dict[int, tuple[int, int, NDArray[np.int32]]] = {}
        for start, stop in self.blocks:
            # Regions are numbered by first pixel, so by top row: those starting here.
            for index in range(*np.searchsorted(regions.top, [start, stop])):
                rows = slice(regions.top[index], regions.bottom[index] + 1)
                cols = slice(regions.left[index], regions.right[index] + 1)
                count = 1
                if (rows.stop - rows.start) * (cols.stop - cols.start) > SPLIT_MAX_PIXELS:
                    log.warning("region %d (%d pixels) is too large to split", index + 1,
                                regions.area[index])
                else:
                    inside = numbers.read(rows, cols) == index + 1
                    split, count = split_region(inside, self.source.read(rows, cols),
                                                self.recipe, self.pixel_size)
                    if count > 1:
                        parts[index + 1] = (rows.start, cols.start, split)
                first[index + 1] = next_label
                next_label += count
            labels = first[numbers.read(slice(start, stop), slice(0, width))]
            for region, (top, left, split) in list(parts.items()):
                piece = split[max(start, top) - top : stop - top]
                inner = piece > 0
                view = labels[max(start, top) - start : max(start, top) - start + len(piece),
                              left : left + split.shape[1]]
                view[inner] = first[region] + piece[inner] - 1
                if top + len(split) <= stop:
                    del parts[region]
            sink(start, labels, ~np.isnan(self.source.read(slice(start, stop), slice(0, width))))
        return next_label - 1


# ------------------------------------------------------------------------------ arrays
@dataclass(frozen=True)
class Regions:
    """Landslide regions of a probability array."""

    labels: NDArray[np.int32]
    """0 outside regions, 1..count inside them."""
    mask: NDArray[np.uint8]
    """1 landslide, 0 background, 255 (:data:`~geoseg.raster.mask_format.MASK_NODATA`) no data."""

    @property
    def count(self) -> int:
        """Number of regions."""
        return int(self.labels.max(initial=0))


def _class_mask(labels: NDArray[np.integer], valid: NDArray[np.bool_]) -> NDArray[np.uint8]:
    return np.where(valid, labels > 0, MASK_NODATA).astype(np.uint8)


def _check_block_rows(block_rows: int) -> None:
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise ParameterError(f"{param('block_rows')} must be a whole number >= 1, got "
                             f"{block_rows!r}")


def postprocess_array(
    prob: ArrayLike,
    recipe: PostProcessing | None = None,
    *,
    valid: ArrayLike | None = None,
    pixel_size: float = 1.0,
    block_rows: int = 256,
) -> Regions:
    """Landslide regions of a probability array, by the steps of ``recipe``.

    Parameters
    ----------
    prob : array_like, shape (rows, cols)
        Landslide probabilities in [0, 1]; NaN where there is no data.
    recipe : PostProcessing, optional
        The steps; by default the threshold alone (0.5).
    valid : array_like of bool, optional
        Pixels with data (the others count as NaN).
    pixel_size : float
        Metres per pixel, for the recipe's areas and distances.
    block_rows : int
        Work in blocks of this many rows, as :func:`postprocess_raster` does (the result does
        not depend on it: the array's height works it whole).

    Returns
    -------
    Regions

    Raises
    ------
    ParameterError
        ``prob`` is not 2-D or holds values outside [0, 1], ``valid`` has another shape,
        ``pixel_size`` or ``block_rows`` is not positive.
    """
    values = np.array(prob, dtype=np.float64)
    if values.ndim != 2 or not values.size:
        raise ParameterError(f"{param('prob')} must be a non-empty 2-D array, got shape "
                             f"{values.shape}")
    if valid is not None:
        valid_mask = np.asarray(valid, dtype=bool)
        if valid_mask.shape != values.shape:
            raise ParameterError(f"{param('valid')} has shape {valid_mask.shape}, "
                                 f"{param('prob')} {values.shape}")
        values[~valid_mask] = np.nan
    if np.any((values < 0) | (values > 1)):
        raise ParameterError(f"{param('prob')} must hold probabilities in [0, 1] (NaN for no "
                             "data)")
    height, width = values.shape
    _check_block_rows(block_rows)
    if not (isinstance(pixel_size, (int, float)) and np.isfinite(pixel_size) and pixel_size > 0):
        raise ParameterError(f"{param('pixel_size')} must be a number > 0, got {pixel_size!r}")
    regions = _Regions(_ArraySource(values, height, width), recipe or PostProcessing(),
                       float(pixel_size), block_rows)
    labels = np.zeros(values.shape, dtype=np.int32)

    def keep(start: int, numbers: NDArray[np.int64], _valid: NDArray[np.bool_]) -> None:
        labels[start : start + len(numbers)] = numbers

    regions.write(keep, lambda: _ArrayStore(height, width))
    return Regions(labels, _class_mask(labels, ~np.isnan(values)))


# ------------------------------------------------------------------------------ rasters
def region_pixel_size(dataset: rasterio.io.DatasetReader,
                      without_crs: float | None = None) -> float:
    """Side, in metres, of the raster's pixels for a recipe's areas and distances: its ground
    pixel size (:func:`geoseg.raster.imagery.pixel_size_m`); without a CRS, ``without_crs``
    when given (the pixel size of the imagery a model was trained on, which the model takes
    the raster to be), else map units (1 for a plain image).

    >>> from rasterio.io import MemoryFile
    >>> with MemoryFile() as memory, memory.open(driver="GTiff", width=2, height=2, count=1,
    ...                                         dtype="uint8") as plain:
    ...     region_pixel_size(plain), region_pixel_size(plain, 3.0)
    (1.0, 3.0)
    """
    found = pixel_size_m(dataset)
    if found is not None:
        return found[0]
    if without_crs is not None:
        return without_crs
    return float(np.sqrt(abs(dataset.transform.determinant)))


def _profile(like: rasterio.io.DatasetReader, dtype: str, nodata: float | None
             ) -> dict[str, object]:
    """A one-band GeoTIFF on the grid, and with the tiling and compression, of ``like``."""
    kept = ("width", "height", "crs", "transform", "tiled", "blockxsize", "blockysize",
            "compress")
    return {key: like.profile[key] for key in kept if key in like.profile} | {
        "driver": "GTiff", "count": 1, "dtype": dtype, "nodata": nodata, "BIGTIFF": "IF_SAFER"}


def _mask_class_names(src: rasterio.io.DatasetReader) -> list[str]:
    """The two classes of the mask: the probabilities' own names when they are two."""
    try:
        names = json.loads(src.tags().get(CLASS_NAMES_TAG, "null"))
    except json.JSONDecodeError:
        names = None
    if isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names):
        return names
    return default_class_names(2)


@dataclass(frozen=True)
class PostProcessed:
    """What :func:`postprocess_raster` wrote."""

    mask_path: Path
    labels_path: Path | None
    regions: int
    """Number of regions (labels)."""
    landslide_pixels: int


class _AlignedRows:
    """Rows handed over in blocks of any height, passed on in whole block rows of the outputs,
    so that the files' bytes do not depend on the blocks the regions were computed in."""

    def __init__(self, block: int, height: int, write: _Sink) -> None:
        self.block, self.height, self.write = block, height, write
        self.start = 0
        self.pending: list[tuple[NDArray[np.int64], NDArray[np.bool_]]] = []

    def add(self, start: int, labels: NDArray[np.int64], valid: NDArray[np.bool_]) -> None:
        self.pending.append((labels, valid))
        end = start + len(labels)
        ready = end if end == self.height else end - end % self.block
        if ready > self.start:
            rows = np.concatenate([p[0] for p in self.pending])
            valids = np.concatenate([p[1] for p in self.pending])
            count = ready - self.start
            self.write(self.start, rows[:count], valids[:count])
            self.pending = [(rows[count:], valids[count:])]
            self.start = ready


@contextmanager
def _label_store(path: Path, like: rasterio.io.DatasetReader
                 ) -> Iterator[Callable[[], _RasterStore]]:
    """A factory of one temporary label raster in a hidden folder next to ``path``."""
    folder = temporary_sibling(path, "regions")
    stores: list[_RasterStore] = []

    def make() -> _RasterStore:
        folder.mkdir()
        stores.append(_RasterStore(folder / "regions.tif", like))
        return stores[-1]

    try:
        yield make
    finally:
        for store in stores:
            store.close()
        shutil.rmtree(folder, ignore_errors=True)


def postprocess_raster(
    prob_path: str | os.PathLike[str],
    out_mask_path: str | os.PathLike[str],
    recipe: PostProcessing | None = None,
    *,
    labels_path: str | os.PathLike[str] | None = None,
    band: int | None = None,
    block_rows: int = 256,
    overwrite: bool = False,
    pixel_size_without_crs: float | None = None,
) -> PostProcessed:
    """Landslide regions of a probability GeoTIFF, streamed: a class mask (and labels).

    The result is the one :func:`postprocess_array` gives on the whole raster, read here in
    blocks of ``block_rows`` rows (see the module's notes on exactness and memory).

    Parameters
    ----------
    prob_path : path
        Probabilities as ``geoseg predict --probabilities`` writes them (float32 with NaN, or
        uint8 with a GDAL scale of 1/254 and nodata 255), or any raster of values in [0, 1].
    out_mask_path : path
        The class mask to write: uint8, 1 landslide, 0 background, 255 no data, with the
        grid, CRS, tiling and tags of the probabilities, a colour table, and the recipe in
        the ``GEOSEG_POSTPROCESSING`` tag.
    recipe : PostProcessing, optional
        The steps; by default the threshold alone (0.5).
    labels_path : path, optional
        Also write the regions' labels (int32, 0 = no region, also its nodata value), for
        polygons that keep split regions apart.
    band : int, optional
        The landslide band (1-based); by default the single band, or band 2 (class 1) of
        per-class probabilities.
    block_rows : int
        Rows read at a time (the result does not depend on it).
    overwrite : bool
        Replace existing outputs.
    pixel_size_without_crs : float, optional
        Metres a pixel side when the raster has no CRS (:func:`region_pixel_size`); by
        default its map units.

    Returns
    -------
    PostProcessed

    Raises
    ------
    InputError
        The probabilities are unreadable, or hold values outside [0, 1].
    ParameterError
        A bad ``band`` or ``block_rows``, or ``labels_path`` is the mask's path.
    OutputError
        An output exists (without ``overwrite``), is an input or cannot be written.
    """
    outputs = [Path(out_mask_path)] + ([Path(labels_path)] if labels_path is not None else [])
    if labels_path is not None and is_same_file(out_mask_path, labels_path):
        raise ParameterError(f"{param('labels_path')} names the mask {out_mask_path}; give "
                             "the labels another name")
    for output in outputs:
        check_output_path(output, overwrite, [prob_path])
    recipe = recipe or PostProcessing()
    with ExitStack() as stack:
        src = stack.enter_context(open_scene(prob_path, expect_crs=False))
        if band is not None and (isinstance(band, bool) or band not in src.indexes):
            raise ParameterError(f"{param('band')} must be one of the bands 1..{src.count} of "
                                 f"{src.name}, got {band!r}")
        _check_block_rows(block_rows)
        source = _RasterSource(src, band or probability_band(src, 1), src.height, src.width)
        regions = _Regions(source, recipe, region_pixel_size(src, pixel_size_without_crs),
                           block_rows, numbered=labels_path is not None)
        tags = src.tags() | {POSTPROCESSING_TAG: json.dumps(recipe.to_dict(), sort_keys=True)}
        names = _mask_class_names(src)
        mask_dst = stack.enter_context(rasterio.open(
            stack.enter_context(atomic_output(outputs[0], overwrite, [prob_path])), "w",
            **_profile(src, "uint8", MASK_NODATA)))
        mask_dst.update_tags(**(tags | {CLASS_NAMES_TAG: json.dumps(names)}))
        mask_dst.update_tags(1, **{f"CLASS_{i}": name for i, name in enumerate(names)})
        mask_dst.set_band_description(1, f"class: 0={names[0]}, 1={names[1]}")
        mask_dst.write_colormap(1, class_colours(names))
        labels_dst = None
        if labels_path is not None:
            labels_dst = stack.enter_context(rasterio.open(
                stack.enter_context(atomic_output(outputs[1], overwrite, [prob_path])), "w",
                **_profile(src, "int32", 0)))
            labels_dst.update_tags(**tags)
            labels_dst.set_band_description(1, "landslide region (0: none)")
        landslide = 0

        def write(start: int, labels: NDArray[np.int64], valid: NDArray[np.bool_]) -> None:
            nonlocal landslide
            window = Window(0, start, src.width, len(labels))
            mask_dst.write(_class_mask(labels, valid), 1, window=window)
            if labels_dst is not None:
                labels_dst.write(labels.astype(np.int32), 1, window=window)
            landslide += int(np.count_nonzero(labels))

        store = stack.enter_context(_label_store(outputs[0], src))
        count = regions.write(_AlignedRows(mask_dst.block_shapes[0][0], src.height, write).add,
                              store)
    log.info("%s: %d regions, %d landslide pixels (%s)", outputs[0], count, landslide,
             recipe.describe())
    return PostProcessed(outputs[0], outputs[-1] if labels_path is not None else None, count,
                         landslide)
