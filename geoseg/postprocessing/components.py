"""Connected components of a mask too big for memory, found block row by block row.

Each block of rows is labelled on its own (:func:`scipy.ndimage.label`, provisional labels
numbered on from the blocks before); the pieces of a component that continues across the
boundary between two blocks are joined (a union-find, solved once at the end as the connected
components of a sparse graph); the pieces' figures (pixel count, bounding box, maximum of a
value) are combined per component. Components are numbered in the raster order of their
first pixel: the numbers :func:`scipy.ndimage.label` gives on the whole mask, whatever the
blocks.

Memory: the block being labelled, and a few numbers per provisional label (per component
piece in a block).

>>> mask = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], bool)
>>> scan = ComponentScan(3, 3, connectivity=8)
>>> for row in mask:
...     scan.add(row[None])
>>> found = scan.finish()
>>> found.count, found.area.tolist()
(1, [4])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

__all__ = ["STRUCTURES", "ComponentScan", "Components"]

STRUCTURES = {4: ndimage.generate_binary_structure(2, 1),
              8: ndimage.generate_binary_structure(2, 2)}
"""Neighbourhoods of pixel connectivity 4 (edges) and 8 (edges and corners)."""


@dataclass(frozen=True)
class Components:
    """The components of a mask scanned in blocks of rows, numbered ``1..count``.

    Per-component arrays are indexed by ``number - 1``; bounding boxes are inclusive pixel
    rows and columns of the raster.
    """

    connectivity: int
    block_offsets: tuple[int, ...]
    """The provisional label each block's own labels were numbered on from."""
    number: NDArray[np.int64]
    """Component number of each provisional label (index 0, no component: 0)."""
    area: NDArray[np.int64]
    """Pixels of each component."""
    top: NDArray[np.int64]
    bottom: NDArray[np.int64]
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    maximum: NDArray[np.float64] | None
    """Largest value of each component (when values were given to the scan)."""
    height: int
    width: int

    @property
    def count(self) -> int:
        """Number of components."""
        return int(self.area.size)

    @property
    def touches_edge(self) -> NDArray[np.bool_]:
        """Whether each component has a pixel on the raster's first or last row or column."""
        return ((self.top == 0) | (self.left == 0) | (self.bottom == self.height - 1)
                | (self.right == self.width - 1))

    def label(self, block: int, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Component numbers of the pixels of block ``block`` (0 outside the mask).

        ``mask`` must be the block's mask exactly as it was scanned.
        """
        labels, count = ndimage.label(mask, STRUCTURES[self.connectivity])
        offset = self.block_offsets[block]
        numbers = self.number[offset : offset + count + 1].copy()  # of labels 0..count
        numbers[0] = 0
        return numbers[labels]


class ComponentScan:
    """Collects the blocks of a mask, top down, and finds its components.

    Parameters
    ----------
    height, width : int
        Size of the whole mask.
    connectivity : {4, 8}
        Pixel connectivity of the components.
    """

    def __init__(self, height: int, width: int, connectivity: int = 8) -> None:
        self.height, self.width = height, width
        self.connectivity = connectivity
        self._row = 0
        self._count = 0
        self._offsets: list[int] = []
        self._last_row: NDArray[np.int64] | None = None
        self._edges: list[NDArray[np.int64]] = []
        self._figures: list[NDArray[np.int64]] = []  # area, top, bottom, left, right
        self._maxima: list[NDArray[np.float64]] = []

    def add(self, mask: NDArray[np.bool_], values: NDArray[np.floating] | None = None) -> None:
        """Add the next block of rows; ``values`` (same shape) give each component's maximum.

        Give values for every block or for none.
        """
        if mask.ndim != 2 or mask.shape[1] != self.width or self._row + len(mask) > self.height:
            raise ValueError(f"block of shape {mask.shape} does not continue a "
                             f"{self.height} x {self.width} mask at row {self._row}")
        labels, count = ndimage.label(mask, STRUCTURES[self.connectivity])
        offset = self._count
        self._offsets.append(offset)

        def provisional(row: NDArray[np.int32]) -> NDArray[np.int64]:
            return np.where(row > 0, row.astype(np.int64) + offset, 0)

        if self._last_row is not None and len(mask):
            self._join(self._last_row, provisional(labels[0]))
        if len(mask):
            self._last_row = provisional(labels[-1])
        if count:
            boxes = ndimage.find_objects(labels)
            figures = np.array(
                [(rows.start, rows.stop - 1, cols.start, cols.stop - 1) for rows, cols in boxes],
                dtype=np.int64,
            )
            figures[:, :2] += self._row
            area = np.bincount(labels.ravel(), minlength=count + 1)[1:]
            self._figures.append(np.column_stack([area, figures]))
            if values is not None:
                inside = labels > 0
                maxima = np.full(count, -np.inf)
                np.maximum.at(maxima, labels[inside] - 1, values[inside])
                self._maxima.append(maxima)
        self._row += len(mask)
        self._count += count

    def _join(self, above: NDArray[np.int64], below: NDArray[np.int64]) -> None:
        """Record the pieces that touch across a block boundary."""
        pairs = [(above, below)]
        if self.connectivity == 8:
            pairs += [(above[:-1], below[1:]), (above[1:], below[:-1])]
        first = np.concatenate([a for a, _ in pairs])
        second = np.concatenate([b for _, b in pairs])
        touching = (first > 0) & (second > 0)
        if touching.any():
            self._edges.append(np.unique(np.column_stack([first[touching],
                                                          second[touching]]), axis=0))

    def finish(self) -> Components:
        """The components, once every row was added.

        Raises
        ------
        ValueError
            Rows are missing.
        """
        if self._row != self.height:
            raise ValueError(f"{self._row} of {self.height} rows were scanned")
        total = self._count
        if self._edges:
            edges = np.concatenate(self._edges) - 1
            graph = coo_array((np.ones(len(edges), bool), (edges[:, 0], edges[:, 1])),
                              shape=(total, total))
            count, root = connected_components(graph, directed=False)
        else:
            count, root = total, np.arange(total)
        # Number the components by their first provisional label: the first piece in raster
        # order (blocks are labelled top down, and ndimage.label numbers in raster order).
        first = np.full(count, total, dtype=np.int64)
        np.minimum.at(first, root, np.arange(total))
        rank = np.empty(count, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(count)
        index = rank[root]
        figures = np.concatenate(self._figures) if self._figures else np.zeros((0, 5), np.int64)
        area = np.bincount(index, weights=figures[:, 0], minlength=count).astype(np.int64)
        bounds: list[NDArray[np.int64]] = []
        for column, reduce, start in ((1, np.minimum, self.height), (2, np.maximum, -1),
                                      (3, np.minimum, self.width), (4, np.maximum, -1)):
            bound = np.full(count, start, dtype=np.int64)
            reduce.at(bound, index, figures[:, column])
            bounds.append(bound)
        maximum = None
        if self._maxima:
            maximum = np.full(count, -np.inf)
            np.maximum.at(maximum, index, np.concatenate(self._maxima))
        top, bottom, left, right = bounds
        return Components(self.connectivity, tuple(self._offsets),
                          np.concatenate([[0], index + 1]), area, top, bottom, left, right,
                          maximum, self.height, self.width)
