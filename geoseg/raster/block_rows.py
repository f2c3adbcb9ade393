"""Finished pieces of a scene, gathered into the output's block rows.

Prediction finishes chunks of the scene as soon as no later tile touches them
(:class:`geoseg.raster.blending.ChunkedAccumulator`), so that the weighted sums it keeps span the
tiles' overlap with the next tile row, not a whole tile row across the scene. The outputs and
the resume journal take whole block rows, aligned on the output GeoTIFF's blocks:
:class:`BlockRows` copies each finished piece's class mask (1 byte a pixel) and probabilities
into its block rows, and hands each block row out, top down, once it is complete.

This module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["BlockRows", "RowsFinished"]

RowsFinished = Callable[[int, np.ndarray, "np.ndarray | None"], None]
"""Called with each finished block row: ``(row_off, mask, probabilities or None)``."""


class BlockRows:
    """Pieces of rows ``[start, stop)``, arriving in any order, handed to ``finished`` in
    block rows of ``block`` rows aligned on multiples of ``block`` (the last one ends at
    ``stop``), top down, each once all its pixels have arrived.

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
        """The first row not handed out yet."""
        self._stop, self._width, self._block, self._finished = stop, width, block, finished
        self._open: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        """Block rows being gathered, by first row: (mask, probabilities or None)."""
        self._missing: dict[int, int] = {}
        """Pixels each open block row still waits for."""

    def add(self, row_off: int, col_off: int, mask: np.ndarray,
            probabilities: np.ndarray | None) -> None:
        """Add a piece at ``(row_off, col_off)``: a class mask ``(rows, cols)`` and, for outputs
        with probabilities, ``(classes, rows, cols)``. Every pixel must arrive once.

        Raises
        ------
        ValueError
            The piece is outside the rows still to gather or the width.
        """
        rows, cols = mask.shape
        if (row_off < self.next_row or row_off + rows > self._stop or col_off < 0
                or col_off + cols > self._width):
            raise ValueError(f"piece {row_off}+{rows}, {col_off}+{cols} is outside rows "
                             f"{self.next_row}-{self._stop} and width {self._width}")
        row = row_off
        while row < row_off + rows:
            block_start = row - row % self._block
            count = min(row_off + rows, block_start + self._block) - row
            block_mask, block_probs = self._block_row(block_start, mask, probabilities)
            at = slice(row - block_start, row - block_start + count)
            part = slice(row - row_off, row - row_off + count)
            block_mask[at, col_off : col_off + cols] = mask[part]
            if block_probs is not None and probabilities is not None:
                block_probs[:, at, col_off : col_off + cols] = probabilities[:, part]
            self._missing[block_start] -= count * cols
            row += count
        self._hand_out()

    def _block_row(self, block_start: int, mask: np.ndarray, probabilities: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        if block_start not in self._open:
            rows = min(self._block, self._stop - block_start)
            self._open[block_start] = (
                np.empty((rows, self._width), dtype=mask.dtype),
                None if probabilities is None else np.empty(
                    (probabilities.shape[0], rows, self._width), dtype=probabilities.dtype))
            self._missing[block_start] = rows * self._width
        return self._open[block_start]

    def _hand_out(self) -> None:
        while self._missing.get(self.next_row, -1) == 0:
            del self._missing[self.next_row]
            mask, probabilities = self._open.pop(self.next_row)
            row_off = self.next_row
            self.next_row += mask.shape[0]
            self._finished(row_off, mask, probabilities)
