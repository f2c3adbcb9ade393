"""Blending overlapping tile predictions without seams.

Each tile's class probabilities are multiplied by a weight window and summed into a band of
scene rows; once no later tile can touch a row, the row's probabilities are ``sum / weight``,
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

from collections.abc import Iterator, Sequence

import numpy as np
from rasterio.windows import Window

__all__ = ["weight_window", "coverage_weights", "RowBandAccumulator"]


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
        Tile start offsets along the axis (:func:`geoseg.tiling.axis_offsets`).
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


class RowBandAccumulator:
    """Weighted sums of tile probabilities over a band of scene rows, flushed top to bottom.

    The band is a ring of ``band_height`` rows: flushing hands rows out and clears them for
    reuse, nothing is shifted. Sums are stored class-last, like the model's output, so adding
    a tile is one contiguous multiply-add. Memory is ``(4 * num_classes + 1) * band_height *
    width`` bytes plus two weight vectors, independent of the scene height.

    Parameters
    ----------
    row_weights : ndarray (scene height,)
        :func:`coverage_weights` of the grid's row offsets.
    col_weights : ndarray (scene width,)
        :func:`coverage_weights` of the grid's column offsets.
    num_classes : int
        Probability channels per pixel.
    band_height : int
        Rows kept at once; must cover every tile still being accumulated plus unflushed rows.
    tile_size, overlap : int
        The grid's tiles; every added tile must be one of them.
    top : int
        First scene row still to finish (> 0 when a run resumes below rows finished earlier).
    """

    def __init__(
        self,
        row_weights: np.ndarray,
        col_weights: np.ndarray,
        num_classes: int,
        band_height: int,
        tile_size: int,
        overlap: int,
        top: int = 0,
    ):
        self.width = col_weights.shape[0]
        self.top = top
        # The window repeated along the class axis: multiplying contiguous arrays of the same
        # shape is many times faster than broadcasting over a short last axis.
        self._weights = np.repeat(weight_window(tile_size, overlap)[..., None], num_classes, 2)
        self._inverse_rows = (1.0 / row_weights).astype(np.float32)
        self._inverse_cols = (1.0 / col_weights).astype(np.float32)
        self._sums = np.zeros((band_height, self.width, num_classes), dtype=np.float32)
        self._valid = np.zeros((band_height, self.width), dtype=bool)
        self._scratch = np.empty((tile_size, tile_size, num_classes), dtype=np.float32)

    @property
    def band_height(self) -> int:
        """Rows the band holds."""
        return self._valid.shape[0]

    def _segments(self, start: int, stop: int) -> Iterator[tuple[slice, slice]]:
        """Ring rows holding scene rows ``[start, stop)``: (ring slice, slice of the range)."""
        height = self.band_height
        first = start % height
        count = stop - start
        head = min(count, height - first)
        yield slice(first, first + head), slice(0, head)
        if head < count:
            yield slice(0, count - head), slice(head, count)

    def add(self, window: Window, probabilities: np.ndarray, valid: np.ndarray) -> None:
        """Accumulate one tile of the grid.

        Parameters
        ----------
        window : Window
            The tile's window in the scene (may be smaller than the tile for small scenes).
        probabilities : ndarray (tile_size, tile_size, num_classes)
        valid : ndarray of bool (tile_size, tile_size)
            Scene pixels with data (padding is False).

        Rows of the tile above :attr:`top` are finished already and left out (a resumed run
        re-predicts the tiles that straddle its first unfinished row).

        Raises
        ------
        ValueError
            The tile does not reach below :attr:`top`, or ends below the band.
        """
        rows, cols = int(window.height), int(window.width)
        row_off, c0 = int(window.row_off), int(window.col_off)
        done = max(0, self.top - row_off)
        if done >= rows or row_off + rows > self.top + self.band_height:
            raise ValueError(f"tile rows {row_off}+{rows} outside the band at {self.top}")
        weighted = self._scratch[:rows, :cols]
        np.multiply(probabilities[:rows, :cols], self._weights[:rows, :cols], out=weighted)
        weighted, tile_valid = weighted[done:], valid[done:rows, :cols]
        for ring, part in self._segments(row_off + done, row_off + rows):
            sums = self._sums[ring, c0 : c0 + cols]
            np.add(sums, weighted[part], out=sums)
            self._valid[ring, c0 : c0 + cols] |= tile_valid[part]

    def flush(self, until: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Finish scene rows ``[top, until)`` and drop them from the band.

        Returns
        -------
        row_off : int
            Scene row of the first returned row.
        probabilities : ndarray float32 (num_classes, until - row_off, width)
            Blended probabilities (meaningful where ``valid``).
        valid : ndarray of bool (until - row_off, width)
            Pixels with scene data that some tile covered.

        Raises
        ------
        ValueError
            ``until`` is above the band's top or beyond its bottom.
        """
        count = until - self.top
        if count < 0 or count > self.band_height:
            raise ValueError(f"cannot flush to row {until} from {self.top}")
        classes = self._sums.shape[2]
        probs = np.empty((classes, count, self.width), dtype=np.float32)
        valid = np.empty((count, self.width), dtype=bool)
        for ring, part in self._segments(self.top, until):
            rows = self._inverse_rows[self.top + part.start : self.top + part.stop, None]
            for k in range(classes):
                out = probs[k, part]
                np.multiply(self._sums[ring, :, k], self._inverse_cols, out=out)
                np.multiply(out, rows, out=out)
            valid[part] = self._valid[ring]
            self._sums[ring] = 0
            self._valid[ring] = False
        row_off = self.top
        self.top = until
        return row_off, probs, valid
