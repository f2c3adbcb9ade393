"""How many tiles or windows one model call holds, and calling a model in such batches.

A batch size counts the model's own tiles. Windows larger than the tile
(:meth:`geoseg.raster.tiling.TileGrid.for_model`) run as many at a time as hold no more pixels than
a batch of tiles, and at least one: with batch 4, the windows a model predicts by default
(:func:`geoseg.raster.tiling.resolve_window`, 1024 to 2048 pixels) run one at a time.

This module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["in_batches", "windows_per_batch"]


def windows_per_batch(batch_size: int, tile_size: int, window: int) -> int:
    """Windows of ``window`` pixels a side that one model call holds: as many as hold no more
    pixels than ``batch_size`` tiles of ``tile_size``, at least one.

    >>> windows_per_batch(4, 512, 512), windows_per_batch(4, 512, 1024)
    (4, 1)
    >>> windows_per_batch(4, 512, 880)
    1
    >>> windows_per_batch(16, 512, 1024), windows_per_batch(1, 512, 2048)
    (4, 1)
    """
    return max(1, batch_size * tile_size**2 // window**2)


def in_batches(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray,
               size: int) -> np.ndarray:
    """Call ``run`` on chunks of exactly ``size`` tiles of ``batch`` (the last one padded with
    zeros, so a compiled model sees one shape and every tile the same arithmetic), and join
    the outputs without the padding."""
    outputs = []
    for start in range(0, batch.shape[0], size):
        chunk = np.ascontiguousarray(batch[start : start + size], dtype=np.float32)
        short = size - chunk.shape[0]
        if short:
            chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), np.float32)])
        outputs.append(run(chunk)[: size - short])
    return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
