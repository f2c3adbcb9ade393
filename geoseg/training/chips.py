"""Training chips cut from whole scenes on the prediction grid, with a leak-free spatial split.

A chip is exactly what prediction feeds the model for one window: the windows come from
:class:`geoseg.raster.tiling.TileGrid`, the pixels from :func:`geoseg.raster.tiling.read_tile`
(padded the same way at the scene edges) and the labels from
:meth:`geoseg.labels.reader.LabelSource.read` (padded like the image). So a model trained on chips
sees nothing prediction would not.

Output layout of ``out_dir``::

    images/<scene>_r<row>_c<col>.tif   image chips (or .png)
    labels/<scene>_r<row>_c<col>.tif   class ids, uint8 (or RGB-coded .png masks)
    index.gpkg                         one footprint polygon per chip, with its split

``<row>``/``<col>`` are the tile's row and column in the scene's grid. GeoTIFF chips keep
their georeference (the tile's transform, the scene's CRS, dtype and nodata) and carry the
``valid`` mask of :func:`~geoseg.raster.tiling.read_tile` as an internal mask band: False on the
padding beyond the scene edge and on nodata pixels (``dataset_mask()`` reads it). PNG chips
follow the reference dataset (8-bit RGB images, masks black = background, red = landslide)
and lose their georeference, which ``index.gpkg`` keeps.

The split is spatial. The scene is cut into square blocks of ``split_block`` pixels, the
blocks holding data (the centre of a window that is not all nodata) are shuffled with the
seed and dealt to train/valid/test in the given proportions, and each chip takes the split
of the block holding its window centre. Windows overlap and blocks share edges, so a chip
near a block edge would still share pixels with chips of another split: every chip whose
footprint intersects (overlaps or touches) a kept chip of a larger split is dropped, and the
number dropped is reported. No two chips of different splits therefore share a pixel, or
even an edge. (The reference workflow augments chips and *then*
splits them at random, which puts copies of one image in train and test alike; nothing of
that kind happens here: augmentation belongs to training, after the split.)

With several scenes the blocks are laid on the first scene's pixel grid (extended beyond
it, through the first scene's CRS), so scenes that overlap on the ground share their blocks,
and the leakage check compares footprints across all scenes.

Files are written to a hidden staging folder inside ``out_dir`` and moved into place when
every chip is written; ``index.gpkg`` is written last (through
:func:`geoseg.raster.outputs.atomic_output`), so a folder without it is incomplete.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from geoseg.errors import ConfigError, InputError, OutputError, OutputExistsError, param
from geoseg.labels.reader import NO_LABEL, label_fraction, open_labels
from geoseg.raster.scene import data_bands, open_scene
from geoseg.raster.scene_paths import gdal_path, is_local, scene_stem
from geoseg.raster.tiling import TileGrid, check_grid_size, grid_size, read_tile
from geoseg.settings import ModelSettings
from geoseg.training.chip_files import INDEX_NAME, PNG_RGB_MAP, write_chip_files, write_index
from geoseg.training.chip_plan import (
    SPLITS,
    Chip,
    ChipScene,
    assign_splits,
    chip_footprints,
    separate_splits,
)

__all__ = ["CHIP_FORMATS", "PNG_RGB_MAP", "SPLITS", "ChipSummary", "write_chips"]

log = logging.getLogger(__name__)

CHIP_FORMATS: Final[tuple[str, str]] = ("tif", "png")
"""Chip file formats: GeoTIFF, or PNG laid out like the reference dataset."""

_BLOCK_TILES: Final = 4  # default split block, in tiles

PathLike = str | os.PathLike[str]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ChipSummary:
    """What :func:`write_chips` wrote and left out."""

    out_dir: Path
    """The chip folder."""
    index_path: Path
    """The chip index (GeoPackage)."""
    chips: dict[str, int]
    """Chips written per split (``train``, ``valid``, ``test``)."""
    windows: int
    """Windows of the scene grids that were considered."""
    skipped_nodata: int
    """Windows skipped because every pixel is nodata."""
    skipped_foreground: int
    """Windows left out by ``min_foreground`` / ``keep_empty``."""
    dropped_leakage: int
    """Chips dropped because they touched a chip of another split."""

    @property
    def total(self) -> int:
        """Chips written in all splits."""
        return sum(self.chips.values())

    def describe(self) -> str:
        """One line for the user."""
        per_split = ", ".join(f"{name} {self.chips[name]}" for name in SPLITS)
        return (
            f"{self.out_dir}: {self.total} chips ({per_split}) from {self.windows} windows; "
            f"{self.dropped_leakage} dropped to keep the splits apart, "
            f"{self.skipped_nodata} nodata-only skipped, "
            f"{self.skipped_foreground} left out by the foreground filter"
        )


def write_chips(
    scene_path: PathLike | Sequence[PathLike],
    labels_path: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    settings: ModelSettings | None = None,
    bands: Sequence[int] | None = None,
    chip_format: str = "tif",
    split: Sequence[float] = (0.8, 0.1, 0.1),
    split_block: int | None = None,
    seed: int = 0,
    min_foreground: float | None = None,
    keep_empty: float = 1.0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ChipSummary:
    """Cut image and label chips from scenes on the prediction grid, split spatially.

    Parameters
    ----------
    scene_path : path or sequence of paths
        The scene(s); chip names start with each scene's file stem, which must be distinct.
    labels_path : path or sequence of paths
        The labels of each scene, in the same order: a vector layer (polygons = landslide) or
        a label raster, read with :func:`geoseg.labels.reader.open_labels`.
    out_dir : path
        Folder for ``images/``, ``labels/`` and ``index.gpkg`` (see the module docstring);
        created if missing (its parent must exist), refused if not empty unless ``overwrite``.
    tile_size, overlap : int, optional
        The grid, as for prediction: those of ``settings`` when not given, else 512-pixel
        tiles and an eighth of the tile (:func:`geoseg.raster.tiling.grid_size`).
    settings : ModelSettings, optional
        The model the chips are for: its tile size and overlap are the defaults.
    bands : sequence of int, optional
        1-based bands to keep, in this order; every band but alpha by default.
    chip_format : {"tif", "png"}
        GeoTIFF chips, or reference-style PNG (8-bit, 3-band images only).
    split : sequence of three floats
        Shares of train, valid and test blocks, summing to 1.
    split_block : int, optional
        Side of the split blocks in pixels [default: 4 tiles]; at least ``tile_size``.
    seed : int
        Seed of the block shuffle and of the ``keep_empty`` draw (>= 0).
    min_foreground : float, optional
        Leave out chips whose landslide fraction is below this, except the ``keep_empty``
        share of chips without any landslide.
    keep_empty : float
        Share (0..1) of chips without landslide pixels to keep, drawn with the seed.
    overwrite : bool
        Write into a non-empty ``out_dir``, replacing its ``images/``, ``labels/`` and
        ``index.gpkg``.
    progress : callable, optional
        Called as ``progress(steps_just_done, steps_total)``; every window counts two steps
        (survey, then write), and windows that are not written complete at once.

    Returns
    -------
    ChipSummary

    Raises
    ------
    InputError
        A scene or labels file is missing or unsuitable, the scene and labels counts differ,
        scenes disagree in band count or dtype, or PNG chips are asked for scenes that are not
        8-bit RGB or labels with unlabelled pixels.
    ConfigError, ParameterError
        A setting is out of range.
    OutputExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    OutputError
        ``out_dir`` cannot be created or written.
    """
    pairs = _pairs(scene_path, labels_path)
    tile_size, overlap = grid_size(tile_size, overlap, settings)
    block = _check_settings(tile_size, overlap, chip_format, split, split_block, seed,
                            min_foreground, keep_empty)
    out = _check_out_dir(Path(out_dir), overwrite)
    with ExitStack() as stack:
        scenes = [_open(stack, scene, labels, tile_size, overlap, bands, chip_format)
                  for scene, labels in pairs]
        _check_together(scenes)
        windows = sum(len(s.grid) for s in scenes)
        total_steps = 2 * windows
        chips, skipped_nodata = _survey(scenes, tile_size, chip_format, progress, total_steps)
        # Blocks are dealt before the foreground filter, so the filter never moves a block.
        assign_splits(scenes, chips, split, block, seed)
        chips, skipped_foreground = _filter_foreground(chips, min_foreground, keep_empty, seed)
        crs, footprints = chip_footprints(scenes, chips)
        chips, footprints, dropped = separate_splits(chips, footprints)
        if not chips:
            raise InputError(
                f"no chip to write: of {windows} windows, {skipped_nodata} are nodata only and "
                f"{skipped_foreground} were left out by min_foreground/keep_empty"
            )
        if progress is not None:
            progress(windows - len(chips), total_steps)
        write_chip_files(scenes, chips, out, tile_size, chip_format, overwrite, progress,
                         total_steps)
        write_index(out / INDEX_NAME, scenes, chips, footprints, crs, overwrite)
    counts = Counter(chip.split for chip in chips)
    return ChipSummary(
        out_dir=out,
        index_path=out / INDEX_NAME,
        chips={name: counts.get(name, 0) for name in SPLITS},
        windows=windows,
        skipped_nodata=skipped_nodata,
        skipped_foreground=skipped_foreground,
        dropped_leakage=dropped,
    )


# --------------------------------------------------------------------------------------------
# Checks and opening
# --------------------------------------------------------------------------------------------


def _as_list(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)


def _pairs(
    scene_path: PathLike | Sequence[PathLike], labels_path: PathLike | Sequence[PathLike]
) -> list[tuple[Path | str, Path]]:
    """Scenes (files as paths; URLs and GDAL virtual paths as text, which a ``Path`` would
    spoil) with their labels, checked to pair up and to give distinct chip names."""
    scenes = [Path(p) if is_local(p) else gdal_path(p) for p in _as_list(scene_path)]
    labels = [Path(p) for p in _as_list(labels_path)]
    if not scenes:
        raise InputError("no scene given; name at least one scene and its labels")
    if len(scenes) != len(labels):
        raise InputError(
            f"{len(scenes)} scene(s) but {len(labels)} labels file(s); give one labels file "
            "per scene, in the same order"
        )
    stems = Counter(scene_stem(path) for path in scenes)
    repeated = [stem for stem, n in stems.items() if n > 1]
    if repeated:
        raise InputError(
            f"several scenes are named {repeated[0]!r}; chip names start with the scene's file "
            "name, so rename (or link) them to distinct names"
        )
    return list(zip(scenes, labels, strict=True))


def _check_settings(
    tile_size: int,
    overlap: int,
    chip_format: str,
    split: Sequence[float],
    split_block: int | None,
    seed: int,
    min_foreground: float | None,
    keep_empty: float,
) -> int:
    """Check the settings; return the split block side in pixels."""
    check_grid_size(tile_size, overlap)
    if chip_format not in CHIP_FORMATS:
        raise ConfigError(f"chip format: must be one of {', '.join(CHIP_FORMATS)}, "
                          f"got {chip_format!r}")
    shares = list(split)
    if (len(shares) != 3 or not all(math.isfinite(s) and s >= 0 for s in shares)
            or not math.isclose(sum(shares), 1.0, abs_tol=1e-6)):
        raise ConfigError(f"split: needs three shares >= 0 for train, valid and test summing to "
                          f"1, such as 0.8,0.1,0.1; got {','.join(map(str, shares))}")
    block = _BLOCK_TILES * tile_size if split_block is None else split_block
    if block < tile_size:
        raise ConfigError(f"split block: must be at least the tile size ({tile_size} pixels), "
                          f"got {block}; small blocks leave almost no chip apart from the others")
    if seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {seed}")
    if min_foreground is not None and not 0.0 <= min_foreground <= 1.0:
        raise ConfigError(f"min foreground: must be a fraction 0..1, got {min_foreground}")
    if not 0.0 <= keep_empty <= 1.0:
        raise ConfigError(f"keep empty: must be a share 0..1, got {keep_empty}")
    return block


def _check_out_dir(out: Path, overwrite: bool) -> Path:
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: is a file; give a folder for the chips")
        if any(out.iterdir()) and not overwrite:
            raise OutputExistsError(
                f"{out}: is not empty; choose a new folder or pass {param('overwrite')} to "
                "replace its chips"
            )
        if not os.access(out, os.W_OK):
            raise OutputError(f"{out}: folder is not writable; choose another output")
        return out
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable; choose another output")
    return out


def _open(
    stack: ExitStack,
    scene_path: Path | str,
    labels_path: Path,
    tile_size: int,
    overlap: int,
    bands: Sequence[int] | None,
    chip_format: str,
) -> ChipScene:
    dataset = stack.enter_context(open_scene(scene_path))
    selected = list(bands) if bands is not None else data_bands(dataset)
    beyond = [b for b in selected if not 1 <= b <= dataset.count]
    if beyond:
        raise InputError(f"{scene_path}: has {dataset.count} bands; band {beyond[0]} does not "
                         "exist")
    dtype = np.result_type(*(dataset.dtypes[b - 1] for b in selected))
    if chip_format == "png" and (len(selected) != 3 or dtype != np.uint8):
        raise InputError(
            f"{scene_path}: PNG chips are 8-bit RGB like the reference dataset, but the chosen "
            f"bands are {len(selected)} of {dtype}; use {param('chip_format')} tif (or "
            f"{param('bands')} for 3 of uint8)"
        )
    labels = stack.enter_context(open_labels(labels_path, dataset))
    grid = TileGrid.for_dataset(dataset, tile_size, overlap)
    return ChipScene(scene_path, dataset, labels_path, labels, grid, selected, dtype)


def _check_together(scenes: list[ChipScene]) -> None:
    first = scenes[0]
    for scene in scenes[1:]:
        if len(scene.bands) != len(first.bands) or scene.dtype != first.dtype:
            raise InputError(
                f"{scene.path}: gives {len(scene.bands)} bands of {scene.dtype} but "
                f"{first.path} gives {len(first.bands)} of {first.dtype}; chips of one set must "
                f"match (choose {param('bands')}, or tile the scenes into separate folders)"
            )
        if first.dataset.crs is None or scene.dataset.crs is None:
            unreferenced = first if first.dataset.crs is None else scene
            raise InputError(
                f"{unreferenced.path}: has no CRS, so its chips cannot be kept apart from other "
                "scenes'; assign one (gdal_edit.py -a_srs) or tile it alone"
            )


# --------------------------------------------------------------------------------------------
# Survey and selection
# --------------------------------------------------------------------------------------------


def _survey(
    scenes: list[ChipScene],
    tile_size: int,
    chip_format: str,
    progress: Progress | None,
    total_steps: int,
) -> tuple[list[Chip], int]:
    """Read every window once: skip nodata-only ones, measure the others."""
    chips: list[Chip] = []
    skipped = 0
    for index, scene in enumerate(scenes):
        for tile in scene.grid:
            _, valid = read_tile(scene.dataset, tile, tile_size, scene.bands)
            if progress is not None:
                progress(1, total_steps)
            if not valid.any():
                skipped += 1
                continue
            labels = scene.labels.read(tile.window, tile_size)
            name = scene.name(tile)
            if chip_format == "png" and (labels == NO_LABEL).any():
                raise InputError(
                    f"{scene.labels_path}: window {name} has unlabelled pixels, which PNG masks "
                    f"cannot hold; use {param('chip_format')} tif"
                )
            height, width = int(tile.window.height), int(tile.window.width)
            nodata = 1.0 - np.count_nonzero(valid[:height, :width]) / (height * width)
            chips.append(Chip(index, tile, name, label_fraction(labels, valid), nodata))
    return chips, skipped


def _filter_foreground(
    chips: list[Chip], min_foreground: float | None, keep_empty: float, seed: int
) -> tuple[list[Chip], int]:
    """Keep chips with enough landslide pixels and a seeded share of the empty ones."""
    empty = [i for i, chip in enumerate(chips) if chip.landslide_fraction == 0.0]
    rng = np.random.default_rng([seed, 1])
    kept_empty = set(rng.choice(empty, size=round(keep_empty * len(empty)), replace=False)
                     .tolist()) if empty else set()
    kept = [
        chip for i, chip in enumerate(chips)
        if i in kept_empty
        or (chip.landslide_fraction > 0.0
            and (min_foreground is None or chip.landslide_fraction >= min_foreground))
    ]
    return kept, len(chips) - len(kept)
