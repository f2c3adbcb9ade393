"""Which windows of the scenes become training chips, and in which split.

The split is spatial (see :mod:`geoseg.training.chips`): blocks of ``split_block`` pixels on the
first scene's grid are dealt to train/valid/test with a seed, each chip takes the split of the block
holding its window centre, and chips touching a chip of a larger split are dropped
(:func:`separate_splits`), so no two chips of different splits share a pixel or an edge.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from rasterio.io import DatasetReader

from geoseg.labels.reader import LabelSource
from geoseg.raster.scene_paths import scene_stem
from geoseg.raster.tiling import Tile, TileGrid

__all__ = ["SPLITS", "Chip", "ChipScene", "assign_splits", "chip_footprints", "separate_splits"]

log = logging.getLogger("geoseg.training.chips")

SPLITS: Final[tuple[str, str, str]] = ("train", "valid", "test")
"""Split names, in the order of the ``split`` proportions."""


@dataclass
class ChipScene:
    """One open scene, its labels and grid."""

    path: Path | str
    """The scene: a file, or a URL's GDAL path (:func:`geoseg.raster.scene_paths.gdal_path`)."""
    dataset: DatasetReader
    labels_path: Path
    labels: LabelSource
    grid: TileGrid
    bands: list[int]
    dtype: np.dtype
    digits: int = field(init=False)

    def __post_init__(self) -> None:
        self.digits = max(3, len(str(max(self.grid.shape) - 1)))

    def name(self, tile: Tile) -> str:
        """The chip name of a tile: ``<scene stem>_r<row>_c<col>``, zero-padded."""
        stem = scene_stem(self.path)
        return f"{stem}_r{tile.row:0{self.digits}d}_c{tile.col:0{self.digits}d}"


@dataclass
class Chip:
    """A window that holds data, with what the index says about it."""

    scene: int
    tile: Tile
    name: str
    landslide_fraction: float
    nodata_fraction: float
    split: str = ""


def _corners(tile: Tile) -> np.ndarray:
    """Map coordinates (4, 2) of the window corners from the top left, anticlockwise when
    north is up (the exterior-ring orientation of the simple-features specification)."""
    width, height = float(tile.window.width), float(tile.window.height)
    pixels = [(0.0, 0.0), (0.0, height), (width, height), (width, 0.0)]
    return np.array([tile.transform * xy for xy in pixels])


def chip_footprints(scenes: list[ChipScene], chips: list[Chip]) -> tuple[CRS | None, np.ndarray]:
    """The common CRS (the first scene's) and each chip's window polygon in it."""
    crs = CRS.from_user_input(scenes[0].dataset.crs) if scenes[0].dataset.crs else None
    corners = np.array([_corners(chip.tile) for chip in chips]).reshape(-1, 4, 2)
    polygons = np.asarray(shapely.polygons(corners), dtype=object)
    for index, scene in enumerate(scenes[1:], start=1):
        own = CRS.from_user_input(scene.dataset.crs)
        mine = np.array([chip.scene == index for chip in chips], dtype=bool)
        if mine.any() and not own.equals(crs):
            moved = gpd.GeoSeries(polygons[mine], crs=own).to_crs(crs)
            polygons[mine] = np.asarray(moved.array, dtype=object)
    return crs, polygons


def _block_keys(scenes: list[ChipScene], chips: list[Chip], block: int) -> list[tuple[int, int]]:
    """Block (row, col), on the first scene's pixel grid, holding each chip's window centre."""
    first = scenes[0].dataset
    centres = np.array([
        chip.tile.transform * (chip.tile.window.width / 2, chip.tile.window.height / 2)
        for chip in chips
    ]).reshape(-1, 2)
    owners = np.array([chip.scene for chip in chips], dtype=int)
    for index, scene in enumerate(scenes[1:], start=1):
        mine = owners == index
        if mine.any() and not CRS.from_user_input(scene.dataset.crs).equals(first.crs):
            transformer = Transformer.from_crs(scene.dataset.crs, first.crs, always_xy=True)
            centres[mine] = np.column_stack(transformer.transform(*centres[mine].T))
    a, b, c, d, e, f = (~first.transform)[:6]
    cols = a * centres[:, 0] + b * centres[:, 1] + c
    rows = d * centres[:, 0] + e * centres[:, 1] + f
    # Rounding first keeps a centre that lies on a block edge on the same side everywhere.
    block_rows = np.floor(np.round(rows, 6) / block).astype(int).tolist()
    block_cols = np.floor(np.round(cols, 6) / block).astype(int).tolist()
    return list(zip(block_rows, block_cols, strict=True))


def _split_counts(n_blocks: int, shares: Sequence[float]) -> list[int]:
    """Blocks per split: largest remainders, and one for every split with a share if possible."""
    exact = [n_blocks * share for share in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n_blocks - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, share in enumerate(shares) if share > 0]
    if n_blocks >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


def assign_splits(
    scenes: list[ChipScene], chips: list[Chip], shares: Sequence[float], block: int, seed: int
) -> None:
    """Deal the blocks holding chips to the splits; give each chip its block's split."""
    if not chips:
        return
    keys = _block_keys(scenes, chips, block)
    blocks = sorted(set(keys))
    counts = _split_counts(len(blocks), shares)
    order = np.random.default_rng([seed, 0]).permutation(len(blocks))
    names = np.repeat(np.array(SPLITS), counts)
    split_of = {blocks[i]: str(names[rank]) for rank, i in enumerate(order.tolist())}
    empty = [name for name, n, share in zip(SPLITS, counts, shares, strict=True)
             if n == 0 and share > 0]
    if empty:
        log.warning("only %d split block(s) of %d pixels: no block for %s; use a smaller "
                    "split block", len(blocks), block, ", ".join(empty))
    for chip, key in zip(chips, keys, strict=True):
        chip.split = split_of[key]


def separate_splits(
    chips: list[Chip], footprints: np.ndarray
) -> tuple[list[Chip], np.ndarray, int]:
    """Drop chips touching a kept chip of a larger split; return the rest and the count dropped.

    Splits are taken from the largest to the smallest (ties in train, valid, test order); a
    split keeps the chips that intersect no chip kept so far, so no two kept chips of
    different splits intersect.
    """
    sizes = Counter(chip.split for chip in chips)
    order = sorted(SPLITS, key=lambda name: (-sizes.get(name, 0), SPLITS.index(name)))
    keep = np.zeros(len(chips), dtype=bool)
    splits = np.array([chip.split for chip in chips])
    for name in order:
        members = np.flatnonzero(splits == name)
        if keep.any() and len(members):
            tree = shapely.STRtree(footprints[keep])
            hits = tree.query(footprints[members], predicate="intersects")
            members = np.setdiff1d(members, members[hits[0]])
        keep[members] = True
    kept = [chip for chip, k in zip(chips, keep, strict=True) if k]
    return kept, footprints[keep], len(chips) - len(kept)
