"""The row-band accumulator against a dense, whole-scene blend of the same tiles."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.blending import RowBandAccumulator, coverage_weights, weight_window
from geoseg.tiling import TileGrid


def dense_blend(grid: TileGrid, probs: dict, valid: dict, classes: int):
    """Reference: every tile's weighted probabilities summed over the whole scene at once."""
    sums = np.zeros((classes, grid.height, grid.width))
    weight = np.zeros((grid.height, grid.width))
    covered = np.zeros((grid.height, grid.width), dtype=bool)
    window = weight_window(grid.tile_size, grid.overlap).astype(np.float64)
    for tile in grid:  # the full grid's weights, skipped tiles included
        w = tile.window
        rows, cols = slice(w.row_off, w.row_off + w.height), slice(w.col_off, w.col_off + w.width)
        weight[rows, cols] += window[: w.height, : w.width]
        if (tile.row, tile.col) in probs:
            p = probs[tile.row, tile.col][: w.height, : w.width]
            sums[:, rows, cols] += np.moveaxis(p, -1, 0) * window[: w.height, : w.width]
            covered[rows, cols] |= valid[tile.row, tile.col][: w.height, : w.width]
    return sums / weight, covered


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "band", "step"), [
    (300, 170, 64, 16, 64 + 48, 48),  # a small ring: every flush wraps around it
    (257, 100, 64, 0, 70, 7),
    (40, 30, 64, 16, 40, 13),  # scene smaller than a tile
    (500, 64, 64, 63, 127, 1),
])
def test_ring_band_equals_the_dense_blend(height, width, tile, overlap, band, step):
    rng = np.random.default_rng(height)
    grid = TileGrid(height, width, tile, overlap)
    classes = 3
    probs = {(t.row, t.col): rng.random((tile, tile, classes), dtype=np.float32) for t in grid}
    valid = {key: rng.random((tile, tile)) > 0.1 for key in probs}
    del probs[0, 0], valid[0, 0]  # a tile left out, as a nodata-only tile would be
    accumulator = RowBandAccumulator(
        coverage_weights(height, grid.row_offsets, tile, overlap),
        coverage_weights(width, grid.col_offsets, tile, overlap), classes, band, tile, overlap,
    )
    out = np.full((classes, height, width), np.nan, dtype=np.float32)
    out_valid = np.zeros((height, width), dtype=bool)

    def flush(until: int) -> None:
        while accumulator.top < until:  # in uneven steps, to cross the ring's end anywhere
            row_off, p, v = accumulator.flush(min(until, accumulator.top + step))
            out[:, row_off : row_off + p.shape[1]] = p
            out_valid[row_off : row_off + p.shape[1]] = v

    for t in grid:
        flush(grid.row_offsets[t.row])
        if (t.row, t.col) in probs:
            accumulator.add(t.window, probs[t.row, t.col], valid[t.row, t.col])
    flush(height)
    expected, expected_valid = dense_blend(grid, probs, valid, classes)
    np.testing.assert_array_equal(out_valid, expected_valid)
    np.testing.assert_allclose(out[:, out_valid], expected[:, expected_valid], rtol=1e-5)
    assert accumulator.top == height


def test_tiles_outside_the_band_and_bad_flushes_are_refused():
    grid = TileGrid(200, 64, 64, 16)
    accumulator = RowBandAccumulator(
        coverage_weights(200, grid.row_offsets, 64, 16), coverage_weights(64, [0], 64, 16),
        2, 100, 64, 16,
    )
    tile = grid.tile(2, 0)  # rows 96..160: beyond a 100-row band at the top
    with pytest.raises(ValueError, match="outside the band"):
        accumulator.add(tile.window, np.zeros((64, 64, 2), np.float32), np.ones((64, 64), bool))
    with pytest.raises(ValueError, match="cannot flush"):
        accumulator.flush(101)
    accumulator.flush(64)  # tile (0, 0) covers rows 0..64: all finished now
    with pytest.raises(ValueError, match="outside the band"):
        accumulator.add(grid.tile(0, 0).window, np.zeros((64, 64, 2), np.float32),
                        np.ones((64, 64), bool))


def test_a_band_resumed_below_finished_rows_blends_the_same():
    """Starting at row `top`, with only the tiles reaching below it, gives the same rows."""
    grid = TileGrid(300, 90, 64, 16)
    rows_w = coverage_weights(300, grid.row_offsets, 64, 16)
    cols_w = coverage_weights(90, grid.col_offsets, 64, 16)
    rng = np.random.default_rng(4)
    probs = {(t.row, t.col): rng.random((64, 64, 2), dtype=np.float32) for t in grid}
    valid = np.ones((64, 64), bool)

    def blend(top: int) -> np.ndarray:
        acc = RowBandAccumulator(rows_w, cols_w, 2, 300, 64, 16, top=top)
        for t in grid:
            if t.window.row_off + t.window.height > top:
                acc.add(t.window, probs[(t.row, t.col)], valid)
        return acc.flush(300)[1]

    whole, resumed = blend(0), blend(100)
    np.testing.assert_array_equal(resumed, whole[:, 100:])
