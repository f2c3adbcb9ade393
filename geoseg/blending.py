"""Blending overlapping tile predictions without seams.

Each tile's class probabilities are multiplied by a weight window and summed into a band of
scene rows together with the weights; once no later tile can touch a row, the row's
probabilities are ``sum / weight``. (Raster Vision's smooth stitching accumulates the same way,
with hit counts in place of weights.)

The weight window is flat (1.0) in the tile's interior and falls along a raised cosine
(``sin^2``) over the ``overlap`` pixels at each edge. Where two neighbouring tiles overlap by
exactly ``overlap`` pixels, one's rising ramp and the other's falling ramp sum to one
(``sin^2 + cos^2 = 1``), so the blend is a smooth cross-fade that trusts each tile's centre,
where the model sees the most context, and discounts its borders, where padding and missing
context make predictions worst. The ramp never reaches zero, so pixels on the scene edge that
only one tile covers still get a (small) weight and a defined value.

This module never imports TensorFlow.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

__all__ = ["weight_window", "RowBandAccumulator"]


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


class RowBandAccumulator:
    """Weighted sums of tile probabilities over a band of scene rows, flushed top to bottom.

    Memory is ``(num_classes + 2) * band_height * width`` values, independent of the scene
    height.

    Parameters
    ----------
    width : int
        Scene width in pixels.
    num_classes : int
        Probability channels per pixel.
    band_height : int
        Rows kept at once; must cover every tile still being accumulated plus unflushed rows.
    weights : ndarray (tile_size, tile_size)
        The weight window from :func:`weight_window`.
    """

    def __init__(self, width: int, num_classes: int, band_height: int, weights: np.ndarray):
        self.width = width
        self.top = 0
        self.weights = weights
        self._sums = np.zeros((num_classes, band_height, width), dtype=np.float32)
        self._weight = np.zeros((band_height, width), dtype=np.float32)
        self._valid = np.zeros((band_height, width), dtype=bool)

    @property
    def band_height(self) -> int:
        """Rows the band holds."""
        return self._weight.shape[0]

    def add(self, window: Window, probabilities: np.ndarray, valid: np.ndarray) -> None:
        """Accumulate one tile.

        Parameters
        ----------
        window : Window
            The tile's window in the scene (may be smaller than the tile for small scenes).
        probabilities : ndarray (tile_size, tile_size, num_classes)
        valid : ndarray of bool (tile_size, tile_size)
            Scene pixels with data (padding is False).
        """
        rows, cols = int(window.height), int(window.width)
        r0 = int(window.row_off) - self.top
        c0 = int(window.col_off)
        if r0 < 0 or r0 + rows > self._weight.shape[0]:
            raise ValueError(f"tile rows {window.row_off}+{rows} outside the band at {self.top}")
        w = self.weights[:rows, :cols]
        region = (slice(r0, r0 + rows), slice(c0, c0 + cols))
        probs = np.moveaxis(probabilities[:rows, :cols], -1, 0)
        self._sums[(slice(None), *region)] += probs * w
        self._weight[region] += w
        self._valid[region] |= valid[:rows, :cols]

    def flush(self, until: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Finish scene rows ``[top, until)`` and drop them from the band.

        Returns
        -------
        row_off : int
            Scene row of the first returned row.
        probabilities : ndarray float32 (num_classes, until - row_off, width)
            Blended probabilities; NaN where no tile contributed.
        valid : ndarray of bool (until - row_off, width)
            Pixels with scene data that some tile covered.
        """
        count = until - self.top
        if count < 0 or count > self._weight.shape[0]:
            raise ValueError(f"cannot flush to row {until} from {self.top}")
        weight = self._weight[:count]
        covered = weight > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            probs = np.where(covered, self._sums[:, :count] / weight, np.nan).astype(np.float32)
        valid = self._valid[:count] & covered
        row_off = self.top
        self._shift(count)
        return row_off, probs, valid

    def _shift(self, count: int) -> None:
        """Move the band down by ``count`` rows, zeroing the freed rows at the bottom."""
        if count == 0:
            return
        for array in (self._sums[:], self._weight, self._valid):
            rows_axis = array.ndim - 2
            kept = array.shape[rows_axis] - count
            src = [slice(None)] * array.ndim
            dst = [slice(None)] * array.ndim
            src[rows_axis], dst[rows_axis] = slice(count, None), slice(0, kept)
            array[tuple(dst)] = array[tuple(src)]
            dst[rows_axis] = slice(kept, None)
            array[tuple(dst)] = 0
        self.top += count
