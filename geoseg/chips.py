"""Training chips cut from whole scenes on the prediction grid, with a leak-free spatial split.

A chip is exactly what prediction feeds the model for one window: the windows come from
:class:`geoseg.tiling.TileGrid`, the pixels from :func:`geoseg.tiling.read_tile` (padded the
same way at the scene edges) and the labels from :meth:`geoseg.labels.LabelSource.read`
(padded like the image). So a model trained on chips sees nothing prediction would not.

Output layout of ``out_dir``::

    images/<scene>_r<row>_c<col>.tif   image chips (or .png)
    labels/<scene>_r<row>_c<col>.tif   class ids, uint8 (or RGB-coded .png masks)
    index.gpkg                         one footprint polygon per chip, with its split

``<row>``/``<col>`` are the tile's row and column in the scene's grid. GeoTIFF chips keep
their georeference (the tile's transform, the scene's CRS, dtype and nodata) and carry the
``valid`` mask of :func:`~geoseg.tiling.read_tile` as an internal mask band: False on the
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
:func:`geoseg.outputs.atomic_output`), so a folder without it is incomplete.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.io import DatasetReader

from geoseg.errors import ConfigError, InputError, OutputError, OutputExistsError, param
from geoseg.labels import NO_LABEL, LabelSource, label_fraction, open_labels
from geoseg.outputs import atomic_output, temporary_sibling
from geoseg.scene import data_bands, open_scene, quiet_georeference
from geoseg.settings import ModelSettings
from geoseg.tiling import Tile, TileGrid, check_grid_size, grid_size, read_tile

__all__ = ["CHIP_FORMATS", "PNG_RGB_MAP", "SPLITS", "ChipSummary", "write_chips"]

log = logging.getLogger(__name__)

SPLITS: Final[tuple[str, str, str]] = ("train", "valid", "test")
"""Split names, in the order of the ``split`` proportions."""

CHIP_FORMATS: Final[tuple[str, str]] = ("tif", "png")
"""Chip file formats: GeoTIFF, or PNG laid out like the reference dataset."""

PNG_RGB_MAP: Final[dict[tuple[int, int, int], int]] = {(0, 0, 0): 0, (255, 0, 0): 1}
"""Mask colour of each class in PNG chips, as in the reference dataset."""

INDEX_NAME: Final = "index.gpkg"
_FOLDERS: Final = ("images", "labels")
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


@dataclass
class _Scene:
    """One open scene, its labels and grid."""

    path: Path
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
        return f"{self.path.stem}_r{tile.row:0{self.digits}d}_c{tile.col:0{self.digits}d}"


@dataclass
class _Chip:
    """A window that holds data, with what the index says about it."""

    scene: int
    tile: Tile
    name: str
    landslide_fraction: float
    nodata_fraction: float
    split: str = ""


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
        a label raster, read with :func:`geoseg.labels.open_labels`.
    out_dir : path
        Folder for ``images/``, ``labels/`` and ``index.gpkg`` (see the module docstring);
        created if missing (its parent must exist), refused if not empty unless ``overwrite``.
    tile_size, overlap : int, optional
        The grid, as for prediction: those of ``settings`` when not given, else 512-pixel
        tiles and an eighth of the tile (:func:`geoseg.tiling.grid_size`).
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
        _assign_splits(scenes, chips, split, block, seed)
        chips, skipped_foreground = _filter_foreground(chips, min_foreground, keep_empty, seed)
        crs, footprints = _footprints(scenes, chips)
        chips, footprints, dropped = _separate(chips, footprints)
        if not chips:
            raise InputError(
                f"no chip to write: of {windows} windows, {skipped_nodata} are nodata only and "
                f"{skipped_foreground} were left out by min_foreground/keep_empty"
            )
        if progress is not None:
            progress(windows - len(chips), total_steps)
        _write_all(scenes, chips, out, tile_size, chip_format, overwrite, progress, total_steps)
        _write_index(out / INDEX_NAME, scenes, chips, footprints, crs, overwrite)
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


def _as_list(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _pairs(
    scene_path: PathLike | Sequence[PathLike], labels_path: PathLike | Sequence[PathLike]
) -> list[tuple[Path, Path]]:
    scenes, labels = _as_list(scene_path), _as_list(labels_path)
    if not scenes:
        raise InputError("no scene given; name at least one scene and its labels")
    if len(scenes) != len(labels):
        raise InputError(
            f"{len(scenes)} scene(s) but {len(labels)} labels file(s); give one labels file "
            "per scene, in the same order"
        )
    stems = Counter(path.stem for path in scenes)
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
    scene_path: Path,
    labels_path: Path,
    tile_size: int,
    overlap: int,
    bands: Sequence[int] | None,
    chip_format: str,
) -> _Scene:
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
    return _Scene(scene_path, dataset, labels_path, labels, grid, selected, dtype)


def _check_together(scenes: list[_Scene]) -> None:
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
    scenes: list[_Scene],
    tile_size: int,
    chip_format: str,
    progress: Progress | None,
    total_steps: int,
) -> tuple[list[_Chip], int]:
    """Read every window once: skip nodata-only ones, measure the others."""
    chips: list[_Chip] = []
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
            chips.append(_Chip(index, tile, name, label_fraction(labels, valid), nodata))
    return chips, skipped


def _filter_foreground(
    chips: list[_Chip], min_foreground: float | None, keep_empty: float, seed: int
) -> tuple[list[_Chip], int]:
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


# --------------------------------------------------------------------------------------------
# Spatial split
# --------------------------------------------------------------------------------------------


def _corners(tile: Tile) -> np.ndarray:
    """Map coordinates (4, 2) of the window corners from the top left, anticlockwise when
    north is up (the exterior-ring orientation of the simple-features specification)."""
    width, height = float(tile.window.width), float(tile.window.height)
    pixels = [(0.0, 0.0), (0.0, height), (width, height), (width, 0.0)]
    return np.array([tile.transform * xy for xy in pixels])


def _footprints(scenes: list[_Scene], chips: list[_Chip]) -> tuple[CRS | None, np.ndarray]:
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


def _block_keys(scenes: list[_Scene], chips: list[_Chip], block: int) -> list[tuple[int, int]]:
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


def _assign_splits(
    scenes: list[_Scene], chips: list[_Chip], shares: Sequence[float], block: int, seed: int
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


def _separate(
    chips: list[_Chip], footprints: np.ndarray
) -> tuple[list[_Chip], np.ndarray, int]:
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


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _write_all(
    scenes: list[_Scene],
    chips: list[_Chip],
    out: Path,
    tile_size: int,
    chip_format: str,
    overwrite: bool,
    progress: Progress | None,
    total_steps: int,
) -> None:
    """Write the chips to a staging folder in ``out``, then move its folders into place."""
    created = not out.exists()
    staging = temporary_sibling(out / "chips")
    try:
        for folder in _FOLDERS:
            (staging / folder).mkdir(parents=True)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            for chip in chips:
                scene = scenes[chip.scene]
                image, valid = read_tile(scene.dataset, chip.tile, tile_size, scene.bands)
                labels = scene.labels.read(chip.tile.window, tile_size)
                image = np.moveaxis(image, -1, 0).astype(scene.dtype)
                if chip_format == "tif":
                    _write_tif_chip(staging, chip, scene, image, valid, labels)
                else:
                    _write_png_chip(staging, chip.name, image, labels)
                if progress is not None:
                    progress(1, total_steps)
        if overwrite:
            (out / INDEX_NAME).unlink(missing_ok=True)  # a stale index must not outlive its chips
            for folder in _FOLDERS:
                if (out / folder).is_dir():
                    shutil.rmtree(out / folder)
        for folder in _FOLDERS:
            os.replace(staging / folder, out / folder)
    except OSError as exc:
        raise OutputError(f"{out}: chips could not be written ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no empty folder behind


def _write_tif_chip(
    staging: Path, chip: _Chip, scene: _Scene, image: np.ndarray, valid: np.ndarray,
    labels: np.ndarray,
) -> None:
    source = scene.dataset
    size = image.shape[-1]
    common = {"driver": "GTiff", "width": size, "height": size, "crs": source.crs,
              "transform": chip.tile.transform, "compress": "deflate"}
    with rasterio.open(staging / "images" / f"{chip.name}.tif", "w", count=len(image),
                       dtype=image.dtype, nodata=source.nodata, **common) as dst:
        dst.write(image)
        dst.write_mask(valid)  # internal: GDAL_TIFF_INTERNAL_MASK is set by the caller
        dst.colorinterp = [source.colorinterp[b - 1] for b in scene.bands]
        dst.descriptions = tuple(source.descriptions[b - 1] for b in scene.bands)
    with rasterio.open(staging / "labels" / f"{chip.name}.tif", "w", count=1,
                       dtype="uint8", nodata=NO_LABEL, **common) as dst:
        dst.write(labels, 1)


def _write_png_chip(staging: Path, name: str, image: np.ndarray, labels: np.ndarray) -> None:
    palette = np.zeros((256, 3), dtype=np.uint8)
    for colour, cls in PNG_RGB_MAP.items():
        palette[cls] = colour
    mask = np.moveaxis(palette[labels], -1, 0)
    size = image.shape[-1]
    with quiet_georeference():
        for folder, data in (("images", image), ("labels", mask)):
            with rasterio.open(staging / folder / f"{name}.png", "w", driver="PNG", width=size,
                               height=size, count=3, dtype="uint8") as dst:
                dst.write(data)


def _write_index(
    path: Path,
    scenes: list[_Scene],
    chips: list[_Chip],
    footprints: np.ndarray,
    crs: CRS | None,
    overwrite: bool,
) -> None:
    frame = gpd.GeoDataFrame(
        {
            "chip": [chip.name for chip in chips],
            "scene": [str(scenes[chip.scene].path) for chip in chips],
            "row_off": np.array([int(chip.tile.window.row_off) for chip in chips], dtype=np.int64),
            "col_off": np.array([int(chip.tile.window.col_off) for chip in chips], dtype=np.int64),
            "width": np.array([int(chip.tile.window.width) for chip in chips], dtype=np.int64),
            "height": np.array([int(chip.tile.window.height) for chip in chips], dtype=np.int64),
            "landslide_fraction": np.array([c.landslide_fraction for c in chips], dtype=float),
            "nodata_fraction": np.array([c.nodata_fraction for c in chips], dtype=float),
            "split": [chip.split for chip in chips],
        },
        geometry=gpd.GeoSeries(footprints, crs=crs),
    )
    with atomic_output(path, overwrite) as tmp, quiet_georeference():
        # A scene without CRS was reported when it was opened; pyogrio would repeat it.
        frame.to_file(tmp, driver="GPKG", layer="chips", engine="pyogrio")
