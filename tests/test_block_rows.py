"""Finished rows gathered into the outputs' block rows, whatever slices they come in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoseg.block_rows import BlockRows


@given(cuts=st.lists(st.integers(1, 300), max_size=8), probabilities=st.booleans())
def test_rows_in_any_slices_come_out_in_aligned_block_rows(cuts, probabilities):
    start, stop, width, block = 256, 1000, 5, 256
    rows = np.arange((stop - start) * width).reshape(stop - start, width) % 251
    probs = np.stack([rows, 2 * rows]).astype(np.float32)
    handed: list[tuple[int, np.ndarray, np.ndarray | None]] = []
    gather = BlockRows(start, stop, width, block, lambda *row: handed.append(row))
    edges = sorted({0, stop - start, *(c for c in np.cumsum(cuts) if c < stop - start)})
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        gather.add(start + a, rows[a:b].astype(np.uint8), probs[:, a:b] if probabilities else None)
    assert [row_off for row_off, _, _ in handed] == [256, 512, 768]
    assert [mask.shape for _, mask, _ in handed] == [(256, 5), (256, 5), (232, 5)]
    np.testing.assert_array_equal(np.concatenate([mask for _, mask, _ in handed]), rows)
    if probabilities:
        np.testing.assert_array_equal(np.concatenate([p for _, _, p in handed], axis=1), probs)
    else:
        assert all(p is None for _, _, p in handed)


def test_rows_must_follow_each_other_from_an_aligned_start():
    with pytest.raises(ValueError, match="not a multiple of 256"):
        BlockRows(100, 1000, 5, 256, print)
    BlockRows(1000, 1000, 5, 256, print)  # nothing left: a resumed run with every row saved
    gather = BlockRows(0, 300, 5, 256, print)
    with pytest.raises(ValueError, match="do not follow row 0"):
        gather.add(10, np.zeros((5, 5), np.uint8), None)
    with pytest.raises(ValueError, match="within 300"):
        gather.add(0, np.zeros((301, 5), np.uint8), None)
