"""The chunked accumulator against a dense, whole-scene blend of the same tiles."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.raster.blending import ChunkedAccumulator, weight_window
from geoseg.raster.tiling import TileGrid


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


def blend_in_chunks(grid: TileGrid, probs: dict, valid: dict, classes: int, top: int = 0,
                    bottom: int | None = None, chunk_rows: int = 8, chunk_cols: int = 16):
    """The accumulator's output over rows [top, bottom), every piece checked to arrive once,
    and the most pixels it held sums for at a time."""
    bottom = grid.height if bottom is None else bottom
    accumulator = ChunkedAccumulator(
        grid.height, grid.width, grid.row_offsets, grid.col_offsets, classes, grid.tile_size,
        grid.overlap, top=top, bottom=bottom, chunk_rows=chunk_rows, chunk_cols=chunk_cols)
    out = np.full((classes, grid.height, grid.width), np.nan, dtype=np.float32)
    out_valid = np.zeros((grid.height, grid.width), dtype=bool)
    arrived = np.zeros((grid.height, grid.width), dtype=int)
    most_held = 0

    def take(pieces) -> None:
        for row_off, col_off, p, v in pieces:
            rows = slice(row_off, row_off + p.shape[1])
            cols = slice(col_off, col_off + p.shape[2])
            out[:, rows, cols], out_valid[rows, cols] = p, v
            arrived[rows, cols] += 1

    for t in grid:
        if t.window.row_off + t.window.height <= top or t.window.row_off >= bottom:
            continue
        take(accumulator.finish_before(t.row, t.col))
        if (t.row, t.col) in probs:
            accumulator.add(t.window, probs[t.row, t.col], valid[t.row, t.col])
            most_held = max(most_held, accumulator.chunks_held)
    take(accumulator.finish_all())
    assert (arrived[top:bottom] == 1).all() and not arrived[:top].any()
    assert not arrived[bottom:].any() and accumulator.chunks_held == 0
    return out, out_valid, most_held * chunk_rows * chunk_cols


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [
    (300, 170, 64, 16),
    (257, 100, 64, 0),
    (40, 30, 64, 16),  # scene smaller than a tile
    (500, 64, 64, 63),
    (130, 141, 64, 20),  # the last tiles overlap their neighbours by more
])
def test_chunks_equal_the_dense_blend(height, width, tile, overlap):
    rng = np.random.default_rng(height)
    grid = TileGrid(height, width, tile, overlap)
    classes = 3
    probs = {(t.row, t.col): rng.random((tile, tile, classes), dtype=np.float32) for t in grid}
    valid = {key: rng.random((tile, tile)) > 0.1 for key in probs}
    del probs[0, 0], valid[0, 0]  # a tile left out, as a nodata-only tile would be
    out, out_valid, _ = blend_in_chunks(grid, probs, valid, classes)
    expected, expected_valid = dense_blend(grid, probs, valid, classes)
    np.testing.assert_array_equal(out_valid, expected_valid)
    np.testing.assert_allclose(out[:, out_valid], expected[:, expected_valid], rtol=1e-5)


def test_sums_are_held_for_the_overlap_not_for_a_tile_row():
    """On a wide scene the chunks held at once span far less than a tile row across it."""
    grid = TileGrid(400, 2000, 64, 8)
    probs = {(t.row, t.col): np.full((64, 64, 2), 0.5, np.float32) for t in grid}
    valid = dict.fromkeys(probs, np.ones((64, 64), bool))
    *_, most_pixels = blend_in_chunks(grid, probs, valid, 2)
    assert most_pixels < 0.5 * 64 * 2000


def test_tiles_outside_the_rows_and_unaligned_tops_are_refused():
    grid = TileGrid(200, 64, 64, 16)

    def accumulator(top: int, bottom: int) -> ChunkedAccumulator:
        return ChunkedAccumulator(200, 64, grid.row_offsets, grid.col_offsets, 2, 64, 16,
                                  top=top, bottom=bottom)

    with pytest.raises(ValueError, match="not a multiple of 32"):
        accumulator(40, 200)
    rows_64_to_96 = accumulator(64, 96)
    for row in (0, 2):  # rows 0..64 and 96..160
        with pytest.raises(ValueError, match="outside rows 64-96"):
            rows_64_to_96.add(grid.tile(row, 0).window, np.zeros((64, 64, 2), np.float32),
                              np.ones((64, 64), bool))


@pytest.mark.parametrize(("top", "bottom"), [(96, 300), (0, 96), (128, 224), (288, 300)])
def test_a_band_of_rows_blends_as_the_whole_scene(top, bottom):
    """Rows [top, bottom) from only the tiles reaching into them come out bit for bit as in
    the whole scene: a resumed run and a worker's band of rows."""
    grid = TileGrid(300, 90, 64, 16)
    rng = np.random.default_rng(4)
    probs = {(t.row, t.col): rng.random((64, 64, 2), dtype=np.float32) for t in grid}
    valid = dict.fromkeys(probs, np.ones((64, 64), bool))
    whole, _, _ = blend_in_chunks(grid, probs, valid, 2)
    band, _, _ = blend_in_chunks(grid, probs, valid, 2, top, bottom, chunk_rows=32)
    np.testing.assert_array_equal(band[:, top:bottom], whole[:, top:bottom])
