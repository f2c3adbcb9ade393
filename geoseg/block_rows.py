"""Finished scene rows, gathered into the output's block rows.

Prediction finishes rows as soon as no later tile touches them, a few at a time, so that the
band of weighted sums it keeps (:class:`geoseg.blending.RowBandAccumulator`) spans no more
than one tile row and its temporaries stay small. The outputs and the resume journal take
whole block rows, aligned on the output GeoTIFF's blocks: :class:`BlockRows` copies the
finished rows' class mask (1 byte a pixel) and probabilities into the block row under way,
and hands each block row out once it is complete.

This module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["BlockRows", "RowsFinished"]

RowsFinished = Callable[[int, np.ndarray, "np.ndarray | None"], None]
"""Called with each finished block row: ``(row_off, mask, probabilities or None)``."""


class BlockRows:
    """Rows ``[start, stop)`` arriving top down in any slices, handed to ``finished`` in block
    rows of ``block`` rows aligned on multiples of ``block`` (the last one ends at ``stop``).

    Parameters
    ----------
    start, stop : int
        The scene rows to gather; ``start`` is a multiple of ``block`` (or ``stop``: nothing
        to gather, as when a resumed run finds every row journaled).
    width : int
        Pixels per row.
    block : int
        Rows per block row.
    finished : RowsFinished
        Takes each complete block row; the arrays are its own.
    """

    def __init__(self, start: int, stop: int, width: int, block: int, finished: RowsFinished):
        if start % block and start != stop:
            raise ValueError(f"start row {start} is not a multiple of {block}")
        self.next_row = start
        """The first row not added yet."""
        self._stop, self._width, self._block, self._finished = stop, width, block, finished
        self._mask: np.ndarray | None = None
        self._probabilities: np.ndarray | None = None

    def add(self, row_off: int, mask: np.ndarray, probabilities: np.ndarray | None) -> None:
        """Add rows from ``row_off`` on (which must be :attr:`next_row`): a class mask
        ``(rows, width)`` and, for outputs with probabilities, ``(classes, rows, width)``."""
        if row_off != self.next_row or row_off + mask.shape[0] > self._stop:
            raise ValueError(f"rows {row_off}+{mask.shape[0]} do not follow row "
                             f"{self.next_row} within {self._stop}")
        done = 0
        while done < mask.shape[0]:
            block_start = self.next_row - self.next_row % self._block
            block_rows = min(self._block, self._stop - block_start)
            if self._mask is None:
                self._mask = np.empty((block_rows, self._width), dtype=mask.dtype)
                if probabilities is not None:
                    self._probabilities = np.empty(
                        (probabilities.shape[0], block_rows, self._width),
                        dtype=probabilities.dtype)
            at = self.next_row - block_start
            count = min(mask.shape[0] - done, block_rows - at)
            self._mask[at : at + count] = mask[done : done + count]
            if self._probabilities is not None and probabilities is not None:
                self._probabilities[:, at : at + count] = probabilities[:, done : done + count]
            done += count
            self.next_row += count
            if at + count == block_rows:
                complete, self._mask = self._mask, None
                band, self._probabilities = self._probabilities, None
                self._finished(block_start, complete, band)
