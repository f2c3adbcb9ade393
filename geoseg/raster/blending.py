"""Blending overlapping tile predictions without seams.

Each tile's class probabilities are multiplied by a weight window and summed into chunks of
the scene; once no later tile can touch a chunk, its probabilities are ``sum / weight``,
where ``weight`` is the sum of the windows of all the tiles covering the pixel. (Raster
Vision's smooth stitching accumulates the same way, with hit counts in place of weights.)

The weight window is flat (1.0) in the tile's interior and falls along a raised cosine
(``sin^2``) over the ``overlap`` pixels at each edge. Where two neighbouring tiles overlap by
exactly ``overlap`` pixels, one's rising ramp and the other's falling ramp sum to one
(``sin^2 + cos^2 = 1``), so the blend is a smooth cross-fade that trusts each tile's centre,
where the model sees the most context, and discounts its borders, where padding and missing
context make predictions worst. The ramp never reaches zero, so pixels on the scene edge that
only one tile covers still get a (small) weight and a defined value.

The window is the outer product of two 1-D ramps, and the tiles form a regular grid, so the
weight sum is separable too: ``weight[r, c] = rows[r] * cols[c]``, two vectors computed once
from the grid instead of a plane accumulated tile by tile. Tiles of the grid that are left out
(those without any scene data) change nothing that is written: every pixel they cover has no
data either, and is written as nodata.

This module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from rasterio.windows import Window

__all__ = ["weight_window", "coverage_weights", "ChunkedAccumulator", "Piece"]

Piece = tuple[int, int, np.ndarray, np.ndarray]
"""A finished chunk: ``(row_off, col_off, probabilities (classes, rows, cols), valid)``."""


def _ramp(length: int, overlap: int) -> np.ndarray:
    """1-D weights: sin^2 ramps over ``overlap`` pixels at both ends, 1 in between."""
    weights = np.ones(length, dtype=np.float64)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        n = min(overlap, length)
        weights[:n] = np.minimum(weights[:n], ramp[:n])
        weights[length - n :] = np.minimum(weights[length - n :], ramp[:n][::-1])
    return weights


def weight_window(tile_size: int, overlap: int) -> np.ndarray:
    """The 2-D blending weights of one tile, float32, shape (tile_size, tile_size).

    Examples
    --------
    >>> w = weight_window(8, 2)
    >>> float(w[4, 4]), bool(w.min() > 0)
    (1.0, True)
    """
    ramp = _ramp(tile_size, overlap)
    return np.outer(ramp, ramp).astype(np.float32)


def coverage_weights(
    extent: int, offsets: Sequence[int], tile_size: int, overlap: int
) -> np.ndarray:
    """Sum along one axis of the 1-D ramps of all the tiles starting at ``offsets``.

    Parameters
    ----------
    extent : int
        Length of the scene along the axis.
    offsets : sequence of int
        Tile start offsets along the axis (:func:`geoseg.raster.tiling.axis_offsets`).
    tile_size, overlap : int
        As for :func:`weight_window`; tiles are ``min(tile_size, extent)`` long.

    Returns
    -------
    ndarray float64 (extent,)
        Positive wherever a tile covers the pixel; ``outer(rows, cols)`` is the weight sum of a
        full grid.

    Examples
    --------
    Where two tiles overlap by ``overlap`` pixels their ramps sum to one:

    >>> coverage_weights(12, [0, 4], 8, 4)[4:8].round(6).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    ramp = _ramp(tile_size, overlap)
    length = min(tile_size, extent)
    total = np.zeros(extent, dtype=np.float64)
    for offset in offsets:
        total[offset : offset + length] += ramp[:length]
    return total


class ChunkedAccumulator:
    """Weighted sums of tile probabilities in chunks of scene rows and columns, each finished
    as soon as no later tile can touch it.

    Tiles arrive in the grid's row order. Before tile ``(r, c)``, every pixel above the tile
    row's first row, and every pixel left of the tile's first column above the next tile row's
    first row, has all its tiles: :meth:`finish_before` hands out the chunks inside that region
    and frees them. So the sums held are those of the tiles' overlaps with the next tile row
    (a strip of ``overlap`` rows across the scene) and of the few tiles around the one being
    added, not a whole tile row across the scene. Sums are stored class-last, like the model's
    output, so adding a tile is a few contiguous multiply-adds; a chunk of ``rows x cols``
    pixels takes ``(4 * num_classes + 1) * rows * cols`` bytes.

    Parameters
    ----------
    height, width : int
        The scene's size.
    row_offsets, col_offsets : sequence of int
        The grid's tile offsets (:func:`geoseg.raster.tiling.axis_offsets`), increasing.
    num_classes : int
        Probability channels per pixel.
    tile_size, overlap : int
        The grid's tiles; every added tile must be one of them.
    top, bottom : int
        The scene rows to finish, ``[top, bottom)``; ``top`` is a multiple of ``chunk_rows``
        (or ``bottom``). Rows of a tile outside them are left out: a resumed run starts below
        rows finished earlier, and a band of a scene shared between workers stops above the
        next band.
    chunk_rows, chunk_cols : int
        The chunks' size: what is finished at a time.
    """

    def __init__(
        self,
        height: int,
        width: int,
        row_offsets: Sequence[int],
        col_offsets: Sequence[int],
        num_classes: int,
        tile_size: int,
        overlap: int,
        top: int = 0,
        bottom: int | None = None,
        chunk_rows: int = 32,
        chunk_cols: int = 512,
    ):
        bottom = height if bottom is None else bottom
        if top % chunk_rows and top != bottom:
            raise ValueError(f"top row {top} is not a multiple of {chunk_rows}")
        self.width, self.top, self.bottom = width, top, bottom
        self._row_offsets, self._col_offsets = list(row_offsets), list(col_offsets)
        self._chunk_rows, self._chunk_cols = chunk_rows, chunk_cols
        self._num_classes = num_classes
        # The window repeated along the class axis: multiplying contiguous arrays of the same
        # shape is many times faster than broadcasting over a short last axis.
        self._weights = np.repeat(weight_window(tile_size, overlap)[..., None], num_classes, 2)
        self._inverse_rows = (1.0 / coverage_weights(height, row_offsets, tile_size, overlap)
                              ).astype(np.float32)
        self._inverse_cols = (1.0 / coverage_weights(width, col_offsets, tile_size, overlap)
                              ).astype(np.float32)
        self._scratch = np.empty((tile_size, tile_size, num_classes), dtype=np.float32)
        self._chunks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._columns_done: dict[int, int] = {}  # row chunk -> its column chunks finished
        self._column_chunks = -(-width // chunk_cols)

    @property
    def chunks_held(self) -> int:
        """Chunks holding sums now."""
        return len(self._chunks)

    def _chunk(self, row_chunk: int, col_chunk: int) -> tuple[np.ndarray, np.ndarray]:
        key = (row_chunk, col_chunk)
        if key not in self._chunks:
            cr, cc = self._chunk_rows, self._chunk_cols
            rows = min(self.bottom, (row_chunk + 1) * cr) - row_chunk * cr
            cols = min(self.width, (col_chunk + 1) * cc) - col_chunk * cc
            self._chunks[key] = (np.zeros((rows, cols, self._num_classes), dtype=np.float32),
                                 np.zeros((rows, cols), dtype=bool))
        return self._chunks[key]

    def add(self, window: Window, probabilities: np.ndarray, valid: np.ndarray) -> None:
        """Accumulate one tile of the grid.

        Parameters
        ----------
        window : Window
            The tile's window in the scene (may be smaller than the tile for small scenes).
        probabilities : ndarray (tile_size, tile_size, num_classes)
        valid : ndarray of bool (tile_size, tile_size)
            Scene pixels with data (padding is False).

        Raises
        ------
        ValueError
            The tile has no row in ``[top, bottom)``.
        """
        rows, cols = int(window.height), int(window.width)
        row_off, col_off = int(window.row_off), int(window.col_off)
        first, stop = max(self.top, row_off), min(self.bottom, row_off + rows)
        if first >= stop:
            raise ValueError(f"tile rows {row_off}+{rows} outside rows {self.top}-{self.bottom}")
        weighted = self._scratch[:rows, :cols]
        np.multiply(probabilities[:rows, :cols], self._weights[:rows, :cols], out=weighted)
        cr, cc = self._chunk_rows, self._chunk_cols
        for row_chunk in range(first // cr, -(-stop // cr)):
            y0, y1 = max(first, row_chunk * cr), min(stop, (row_chunk + 1) * cr)
            chunk_top = row_chunk * cr
            for col_chunk in range(col_off // cc, -(-(col_off + cols) // cc)):
                x0, x1 = max(col_off, col_chunk * cc), min(col_off + cols, (col_chunk + 1) * cc)
                sums, seen = self._chunk(row_chunk, col_chunk)
                inside = (slice(y0 - chunk_top, y1 - chunk_top),
                          slice(x0 - col_chunk * cc, x1 - col_chunk * cc))
                part = (slice(y0 - row_off, y1 - row_off), slice(x0 - col_off, x1 - col_off))
                np.add(sums[inside], weighted[part], out=sums[inside])
                seen[inside] |= valid[part]

    def finish_before(self, row: int, col: int) -> Iterator[Piece]:
        """Finish the chunks that no tile from the grid's tile ``(row, col)`` on touches.

        Yields
        ------
        row_off, col_off : int
            The chunk's first scene row and column.
        probabilities : ndarray float32 (num_classes, rows, cols)
            Blended probabilities (meaningful where ``valid``).
        valid : ndarray of bool (rows, cols)
            Pixels with scene data that some tile covered.
        """
        above = self._row_offsets[row]
        left_of = self._col_offsets[col]
        below_row = (self._row_offsets[row + 1] if row + 1 < len(self._row_offsets)
                     else self.bottom)
        return self._finish(lambda y1: self.width if y1 <= above else
                            left_of if y1 <= below_row else -1)

    def finish_all(self) -> Iterator[Piece]:
        """Finish every chunk left, as :meth:`finish_before`, once the last tile is added."""
        return self._finish(lambda y1: self.width)

    def _finish(self, columns_final: Callable[[int], int]) -> Iterator[Piece]:
        """Finish, top down, the chunks of each row chunk ending at row ``y1`` that lie left of
        column ``columns_final(y1)`` (-1: no pixel of it, nor of any row chunk below, is final).
        That column never grows downwards, so the row chunks are completed in order."""
        cr, cc = self._chunk_rows, self._chunk_cols
        row_chunk = self.top // cr
        while row_chunk * cr < self.bottom:
            y0, y1 = max(self.top, row_chunk * cr), min(self.bottom, (row_chunk + 1) * cr)
            limit = columns_final(y1)
            if limit < 0:
                return
            done = self._columns_done.pop(row_chunk, 0)
            while done < self._column_chunks and min(self.width, (done + 1) * cc) <= limit:
                yield self._finish_chunk(row_chunk, done, y0, y1)
                done += 1
            if done < self._column_chunks:
                self._columns_done[row_chunk] = done
            elif y0 == self.top:
                self.top = y1
            row_chunk += 1

    def _finish_chunk(self, row_chunk: int, col_chunk: int, y0: int, y1: int) -> Piece:
        x0 = col_chunk * self._chunk_cols
        x1 = min(self.width, x0 + self._chunk_cols)
        held = self._chunks.pop((row_chunk, col_chunk), None)
        if held is None:  # no tile touched it: no data (most of a sparse scene), nothing to blend
            return (y0, x0, np.zeros((self._num_classes, y1 - y0, x1 - x0), dtype=np.float32),
                    np.zeros((y1 - y0, x1 - x0), dtype=bool))
        sums, valid = held
        probs = np.empty((self._num_classes, y1 - y0, x1 - x0), dtype=np.float32)
        rows = self._inverse_rows[y0:y1, None]
        for k in range(self._num_classes):
            np.multiply(sums[:, :, k], self._inverse_cols[x0:x1], out=probs[k])
            np.multiply(probs[k], rows, out=probs[k])
        return y0, x0, probs, valid
