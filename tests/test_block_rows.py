"""Finished pieces gathered into the outputs' block rows, whatever order they come in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoseg.raster.block_rows import BlockRows


@given(row_cuts=st.lists(st.integers(1, 300), max_size=6),
       col_cuts=st.lists(st.integers(1, 4), max_size=3), order=st.randoms(),
       probabilities=st.booleans())
def test_pieces_in_any_order_come_out_in_aligned_block_rows_top_down(
        row_cuts, col_cuts, order, probabilities):
    start, stop, width, block = 256, 1000, 5, 256
    rows = np.arange((stop - start) * width).reshape(stop - start, width) % 251
    probs = np.stack([rows, 2 * rows]).astype(np.float32)
    handed: list[tuple[int, np.ndarray, np.ndarray | None]] = []
    gather = BlockRows(start, stop, width, block, lambda *row: handed.append(row))
    row_edges = sorted({0, stop - start, *(c for c in np.cumsum(row_cuts) if c < stop - start)})
    col_edges = sorted({0, width, *(c for c in np.cumsum(col_cuts) if c < width)})
    pieces = [(a, b, c, d) for a, b in zip(row_edges[:-1], row_edges[1:], strict=True)
              for c, d in zip(col_edges[:-1], col_edges[1:], strict=True)]
    order.shuffle(pieces)
    for a, b, c, d in pieces:
        gather.add(start + a, c, rows[a:b, c:d].astype(np.uint8),
                   probs[:, a:b, c:d] if probabilities else None)
    assert [row_off for row_off, _, _ in handed] == [256, 512, 768]
    assert [mask.shape for _, mask, _ in handed] == [(256, 5), (256, 5), (232, 5)]
    np.testing.assert_array_equal(np.concatenate([mask for _, mask, _ in handed]), rows)
    if probabilities:
        np.testing.assert_array_equal(np.concatenate([p for _, _, p in handed], axis=1), probs)
    else:
        assert all(p is None for _, _, p in handed)


def test_a_block_row_waits_for_its_last_pixel_and_those_above_it():
    handed: list[int] = []
    gather = BlockRows(0, 600, 4, 256, lambda row_off, *_: handed.append(row_off))
    gather.add(256, 0, np.zeros((256, 4), np.uint8), None)
    assert handed == []  # block row 256 is complete, but block row 0 is not
    gather.add(0, 0, np.zeros((256, 3), np.uint8), None)
    assert handed == []  # one column missing
    gather.add(0, 3, np.zeros((256, 1), np.uint8), None)
    assert handed == [0, 256]


def test_pieces_must_lie_in_the_rows_still_to_gather_from_an_aligned_start():
    with pytest.raises(ValueError, match="not a multiple of 256"):
        BlockRows(100, 1000, 5, 256, print)
    BlockRows(1000, 1000, 5, 256, print)  # nothing left: a resumed run with every row saved
    gather = BlockRows(256, 600, 5, 256, print)
    for row_off, col_off, shape in ((0, 0, (5, 5)), (590, 0, (11, 5)), (256, 2, (5, 4))):
        with pytest.raises(ValueError, match="outside rows 256-600 and width 5"):
            gather.add(row_off, col_off, np.zeros(shape, np.uint8), None)
