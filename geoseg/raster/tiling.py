"""The one tiler of geoseg: a regular grid of square windows over a scene, and windowed reads.

Prediction, training chips and evaluation all take their tiles from here, so that a model sees
the same pixels, padded the same way, whichever command runs it.

Grid arithmetic (per axis, as in TorchGeo's ``tile_to_chips``): with ``stride = tile_size -
overlap`` there are ``ceil((extent - tile_size) / stride) + 1`` tiles, the last one pulled back
so that it ends on the scene edge and every window lies inside the scene. An axis shorter than
one tile gets a single window of the scene's own length; :func:`read_tile` pads it (reflect)
to the full tile size.

This module never imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geoseg.errors import InputError, ParameterError, param
from geoseg.raster.scene import data_bands, read_window
from geoseg.settings import (
    AUTO_WINDOW,
    AUTO_WINDOW_FILTERS,
    DEFAULT_TILE_SIZE,
    ModelSettings,
    default_overlap,
    overlap_fits,
)

__all__ = [
    "AUTO_WINDOW", "AUTO_WINDOW_FILTERS", "Tile", "TileGrid", "WindowChoice", "axis_offsets",
    "block_windows", "check_grid_size", "grid_size", "inference_window", "input_cache_bytes",
    "pad_to_tile", "read_tile", "resolve_window", "tile_input",
]

WindowChoice = int | Literal["auto", "tile"]
"""How a run chooses its inference windows: a side in pixels, ``"tile"`` (the model's tile) or
``"auto"`` (:func:`resolve_window`)."""


def axis_offsets(extent: int, tile_size: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis.

    Parameters
    ----------
    extent : int
        Length of the scene along the axis, in pixels (>= 1).
    tile_size : int
        Tile length in pixels (>= 1).
    overlap : int
        Pixels shared by neighbouring tiles, ``0 <= overlap < tile_size``.

    Returns
    -------
    list of int
        Sorted offsets; every ``offset + min(tile_size, extent)`` is ``<= extent`` and the
        union of the tiles covers ``[0, extent)``.

    Examples
    --------
    >>> axis_offsets(1000, 512, 64)
    [0, 448, 488]
    >>> axis_offsets(300, 512, 64)
    [0]
    """
    if extent < 1:
        raise ValueError(f"extent must be >= 1, got {extent}")
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    if not overlap_fits(overlap, tile_size):
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap} for tile {tile_size}")
    if extent <= tile_size:
        return [0]
    stride = tile_size - overlap
    count = math.ceil((extent - tile_size) / stride) + 1
    offsets = [i * stride for i in range(count - 1)]
    offsets.append(extent - tile_size)
    return offsets


@dataclass(frozen=True)
class Tile:
    """One window of the grid: where it is in the scene and in the grid."""

    row: int
    """Index of the tile row in the grid (0 at the top)."""
    col: int
    """Index of the tile column in the grid (0 at the left)."""
    window: Window
    """The window inside the scene (never beyond its edges)."""
    transform: Affine
    """Georeferencing of the window's top-left pixel (the scene transform, shifted)."""


@dataclass(frozen=True)
class TileGrid:
    """A regular grid of ``tile_size`` windows with ``overlap`` over a ``height x width`` scene.

    Raises :class:`~geoseg.errors.ParameterError` for an impossible tile size or overlap.

    Parameters
    ----------
    height, width : int
        Scene size in pixels.
    tile_size : int
        Side of the square tiles fed to the model.
    overlap : int
        Pixels shared by neighbouring tiles (``0 <= overlap < tile_size``).
    transform : Affine
        The scene's geotransform; each tile's transform is derived from it.
    """

    height: int
    width: int
    tile_size: int
    overlap: int
    transform: Affine = Affine.identity()

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise InputError(f"a scene of {self.width} x {self.height} pixels has no tiles")
        check_grid_size(self.tile_size, self.overlap)

    @classmethod
    def for_dataset(
        cls, dataset: rasterio.io.DatasetReader, tile_size: int, overlap: int
    ) -> TileGrid:
        """The grid over an open raster, carrying its transform."""
        return cls(dataset.height, dataset.width, tile_size, overlap, dataset.transform)

    @classmethod
    def for_model(
        cls, dataset: rasterio.io.DatasetReader, settings: ModelSettings,
        overlap: int | None = None, window: int | None = None,
    ) -> TileGrid:
        """The grid a model reads an open raster with: its tile size, and ``overlap`` or the
        model's recommended one.

        ``window``: predict windows of this side instead of the model's tile (the FlexUNet is
        fully convolutional), with the same overlap, so less of the scene is predicted twice.
        It must be a multiple of the model's size step (``2**(num_layers-1)``) and at least
        the model's tile, and the overlap less than the tile in any case; the windows are
        then fitted to the scene (:func:`inference_window`).

        Raises
        ------
        ParameterError
            A bad overlap or window.
        """
        tile_size, model_overlap = grid_size(None, overlap, settings)
        check_grid_size(tile_size, model_overlap)  # the overlap fits the model's tile
        if window is not None:
            tile_size = inference_window(window, settings, dataset.height, dataset.width,
                                         model_overlap)
        return cls.for_dataset(dataset, tile_size, model_overlap)

    @cached_property
    def row_offsets(self) -> list[int]:
        """Row offsets of the tile rows, top to bottom."""
        return axis_offsets(self.height, self.tile_size, self.overlap)

    @cached_property
    def col_offsets(self) -> list[int]:
        """Column offsets of the tile columns, left to right."""
        return axis_offsets(self.width, self.tile_size, self.overlap)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tile rows and tile columns."""
        return len(self.row_offsets), len(self.col_offsets)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def tile(self, row: int, col: int) -> Tile:
        """The tile at grid position (row, col)."""
        row_off = self.row_offsets[row]
        col_off = self.col_offsets[col]
        window = Window(
            col_off, row_off, min(self.tile_size, self.width), min(self.tile_size, self.height)
        )
        return Tile(row, col, window, window_transform(window, self.transform))

    def row_tiles(self, row: int) -> list[Tile]:
        """The tiles of one grid row, left to right."""
        return [self.tile(row, col) for col in range(len(self.col_offsets))]

    def __iter__(self) -> Iterator[Tile]:
        """All tiles, row by row (the order prediction streams them in)."""
        for row in range(len(self.row_offsets)):
            yield from self.row_tiles(row)


def inference_window(window: int, settings: ModelSettings, height: int, width: int,
                     overlap: int) -> int:
    """The side of the windows a model predicts a ``height`` x ``width`` scene in, for a
    requested ``window`` (see :meth:`TileGrid.for_model`).

    The windows a side of ``window`` pixels needs along each axis are kept, and made as small
    as still covers the scene with them (a multiple of the model's size step), so the last
    window is not pulled back over its neighbour: a 6144-pixel scene in 2048-pixel windows
    sharing 64 pixels needs 4 a side, and 1584 pixels cover it with 4. A scene more than two
    tiles long gets at least two windows along its longer side, so that reading and writing
    overlap with the model and the first windows come early: a 2048-pixel scene gets four of
    1056. Windows are square, so a scene narrower than ``window`` would pad each one across
    its short side: when windows as wide as the scene (at least the tile) predict fewer
    pixels, they are taken instead.

    >>> settings = ModelSettings(image_size=512, num_layers=5)
    >>> inference_window(2048, settings, 6144, 6144, 64), inference_window(2048, settings,
    ...                                                               2048, 2048, 64)
    (1584, 1056)
    >>> inference_window(1024, settings, 600, 650, 64)  # one window beats two of 608
    656
    >>> inference_window(1024, settings, 9000, 600, 64)  # 17 windows of 608, not 10 of 960
    608
    >>> inference_window(1000, settings, 9000, 9000, 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    geoseg.errors.ParameterError: window must be a multiple of 16 pixels ..., got 1000
    """
    step = settings.size_step
    if isinstance(window, bool) or not isinstance(window, int) or window % step \
            or window < settings.image_size:
        raise ParameterError(f"{param('window')} must be a multiple of {step} pixels (this "
                             f"model's size step) and at least its tile "
                             f"({settings.image_size}), got {window!r}")

    def fitted(side: int) -> int:
        needed = 0
        for extent in (height, width):
            count = max(1, math.ceil((extent - overlap) / (side - overlap)))
            needed = max(needed, math.ceil((extent - overlap) / count) + overlap)
        return max(settings.image_size, min(side, math.ceil(needed / step) * step))

    def pixels_predicted(side: int) -> int:
        return (len(axis_offsets(height, side, overlap)) * len(axis_offsets(width, side, overlap))
                * side * side)

    scene_wide = max(settings.image_size, math.ceil(min(height, width) / step) * step)
    longest = max(height, width)
    split = longest > 2 * settings.image_size  # at least two windows along the longer side
    two_along = math.ceil((math.ceil((longest - overlap) / 2) + overlap) / step) * step
    choices = {fitted(min(window, two_along) if split else window)}
    narrow = fitted(min(window, scene_wide))
    if not split or len(axis_offsets(longest, narrow, overlap)) >= 2:
        choices.add(narrow)
    return min(choices, key=lambda side: (pixels_predicted(side), -side))


def resolve_window(window: WindowChoice, settings: ModelSettings,
                   takes_windows: bool) -> int | None:
    """The window side a run asks for (``None``: the model's tile), before fitting it to the
    scene (:func:`inference_window`).

    ``"auto"`` is :data:`AUTO_WINDOW` pixels a side for a model of up to
    :data:`AUTO_WINDOW_FILTERS` base filters, and for a wider one the largest multiple of its
    size step holding as many pixels times filters (the tile when that is as large), when the
    predictor ``takes_windows`` (the keras and openvino backends), else the tile. It depends on
    the model's width only, neither on the batch size nor on the machine, so neither do the
    outputs. A model call holds at least one window
    (:func:`geoseg.raster.batching.windows_per_batch`). On a large scene, 512-pixel tiles sharing 64
    pixels compute each pixel 1.31 times; 2048-pixel windows 1.07 times
    (``bench/scene_throughput.py``).

    >>> settings = ModelSettings(image_size=256, num_layers=6, base_filters=8)
    >>> resolve_window("auto", settings, True), resolve_window("auto", settings, False)
    (2048, None)
    >>> [resolve_window("auto", ModelSettings(base_filters=f), True) for f in (4, 16, 32, 64)]
    [2048, 1440, 1024, 704]
    >>> resolve_window("auto", ModelSettings(image_size=1024, base_filters=64), True) is None
    True
    >>> resolve_window("tile", settings, True), resolve_window(2048, settings, False)
    (None, 2048)
    >>> resolve_window("big", settings, True)
    Traceback (most recent call last):
    geoseg.errors.ParameterError: window must be auto, tile or a number of pixels, got 'big'
    """
    if isinstance(window, int) and not isinstance(window, bool):
        return window
    if window == "tile":
        return None
    if window != "auto":
        raise ParameterError(f"{param('window')} must be auto, tile or a number of pixels, "
                             f"got {window!r}")
    step = settings.size_step
    filters = max(AUTO_WINDOW_FILTERS, settings.base_filters)
    side = math.isqrt(AUTO_WINDOW**2 * AUTO_WINDOW_FILTERS // filters) // step * step
    return side if takes_windows and side > settings.image_size else None


def check_grid_size(tile_size: int, overlap: int) -> None:
    """Refuse a tile size below 1 or an overlap outside ``[0, tile_size)``.

    Raises
    ------
    ParameterError
    """
    if tile_size < 1:
        raise ParameterError(f"{param('tile_size')} must be at least 1 pixel, got {tile_size}")
    if not overlap_fits(overlap, tile_size):
        raise ParameterError(
            f"{param('overlap')} must be at least 0 and less than the tile size "
            f"({tile_size} pixels), got {overlap}"
        )


def grid_size(
    tile_size: int | None = None,
    overlap: int | None = None,
    settings: ModelSettings | None = None,
) -> tuple[int, int]:
    """The tile size and overlap of a grid: as given, else the model's, else the defaults.

    The one place where a missing tile size or overlap is decided, whatever path builds a grid
    (prediction, training, chips, ``geoseg info``). Without a model: 512-pixel tiles
    (:data:`~geoseg.settings.DEFAULT_TILE_SIZE`) and :func:`~geoseg.settings.default_overlap`
    of the tile; a model gives its tile size and its recommended overlap (for a tile size of
    its own, that tile's default overlap).

    >>> grid_size(), grid_size(256), grid_size(256, 10)
    ((512, 64), (256, 32), (256, 10))
    >>> grid_size(settings=ModelSettings(image_size=128, num_layers=3, overlap=20))
    (128, 20)
    """
    if tile_size is None:
        tile_size = settings.image_size if settings is not None else DEFAULT_TILE_SIZE
    if overlap is None and settings is not None and settings.image_size == tile_size:
        overlap = settings.overlap
    if overlap is None:
        overlap = default_overlap(tile_size)
    return tile_size, overlap


def input_cache_bytes(dataset: rasterio.io.DatasetReader, grid: TileGrid) -> int:
    """Bytes of GDAL block cache that reading ``dataset`` window by window along ``grid`` (row
    by row, as prediction does) needs so as not to decode a block many times.

    A file stored in tiles needs the blocks of one window and of its neighbours' overlap with
    it, whatever the scene's width: the blocks a window row shares with the next are decoded
    once more, one block row per window row, rather than kept across the scene. A file stored
    in strips as wide as the scene needs the strips of a window row and its overlap, since
    every window of the row reads across all of them.
    """
    pixel = sum(np.dtype(dtype).itemsize for dtype in dataset.dtypes)
    block_rows, block_cols = dataset.block_shapes[0]
    rows = min(grid.height, grid.tile_size + 2 * min(block_rows, grid.tile_size))
    cols = grid.width if block_cols >= grid.width else min(
        grid.width, grid.tile_size + 2 * min(block_cols, grid.tile_size))
    return pixel * rows * cols


def block_windows(height: int, width: int, block_size: int) -> Iterator[Window]:
    """Non-overlapping windows of at most ``block_size`` pixels partitioning a scene.

    For streaming passes that must visit every pixel exactly once (vectorising, scoring),
    unlike the model's overlapping tiles. Row by row, top-left first.

    >>> [tuple(w.flatten()) for w in block_windows(3, 5, 4)]
    [(0, 0, 4, 3), (4, 0, 1, 3)]
    """
    for row in range(0, height, block_size):
        for col in range(0, width, block_size):
            yield Window(col, row, min(block_size, width - col), min(block_size, height - row))


def _pad_mode(length: int) -> Literal["reflect", "edge"]:
    # reflect needs at least two pixels to mirror about; a 1-pixel axis can only be repeated.
    return "reflect" if length > 1 else "edge"


def pad_to_tile(array: np.ndarray, tile_size: int) -> np.ndarray:
    """Pad the last two axes of ``array`` up to ``tile_size`` (bottom/right), mirroring."""
    height, width = array.shape[-2:]
    pad_h, pad_w = tile_size - height, tile_size - width
    if pad_h == 0 and pad_w == 0:
        return array
    lead: list[tuple[int, int]] = [(0, 0)] * (array.ndim - 2)
    if pad_h:
        array = np.pad(array, [*lead, (0, pad_h), (0, 0)], mode=_pad_mode(height))
    if pad_w:
        array = np.pad(array, [*lead, (0, 0), (0, pad_w)], mode=_pad_mode(width))
    return array


def read_tile(
    dataset: rasterio.io.DatasetReader,
    tile: Tile,
    tile_size: int,
    bands: Sequence[int] | None = None,
    extra_nodata: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one tile of a scene, padded to ``tile_size`` x ``tile_size``.

    Parameters
    ----------
    dataset : rasterio dataset
        The open scene; only the tile's window is read.
    tile : Tile
        A tile of a :class:`TileGrid` built for this dataset.
    tile_size : int
        Side of the returned arrays.
    bands : sequence of int, optional
        1-based band indexes in the order the model expects; every band but alpha by default.
    extra_nodata : float, optional
        A second nodata value (see :func:`geoseg.raster.scene.read_window`).

    Returns
    -------
    image : ndarray, shape (tile_size, tile_size, bands), float32
        Band-last, as Keras expects; padded parts mirror the scene.
    valid : ndarray of bool, shape (tile_size, tile_size)
        True where the scene has data (:func:`geoseg.raster.scene.read_window`: nodata, NaN, masks
        and alpha say where it has none); False for padding.

    Raises
    ------
    InputError
        The window's pixels cannot be read (truncated or corrupted file).
    """
    indexes = list(bands) if bands is not None else data_bands(dataset)
    return tile_input(*read_window(dataset, tile.window, indexes, extra_nodata), tile_size)


def tile_input(data: np.ndarray, valid: np.ndarray, tile_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """A window's pixels and validity (:func:`geoseg.raster.scene.read_window`) as :func:`read_tile`
    gives them: band-last float32, NaN as 0, padded to ``tile_size`` x ``tile_size``.

    For a reader that passes over windows without data before paying for their conversion.
    """
    if np.issubdtype(data.dtype, np.floating):
        data = np.nan_to_num(data, nan=0.0)
    image = pad_to_tile(data.astype(np.float32, copy=False), tile_size)
    padded_valid = np.zeros((tile_size, tile_size), dtype=bool)
    padded_valid[: valid.shape[0], : valid.shape[1]] = valid
    return np.moveaxis(image, 0, -1), padded_valid
