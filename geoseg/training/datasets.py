"""Training examples: tiles of labelled rasters, read exactly as prediction reads them.

Every example is one window of a :class:`~geoseg.raster.tiling.TileGrid` over an image, read with
:func:`~geoseg.raster.tiling.read_tile` (band-last float32 raw values, reflect-padded to the tile
size, the model's bands) and its labels read on the same window with
:meth:`geoseg.labels.reader.LabelSource.read` (padded the same way). A PNG of another size than the
tile is just another raster: the tiler cuts or pads it like a scene.

Three layouts give the (image, labels) pairs, all as :class:`LabelledScene` lists:

- the reference dataset, ``<root>/{train,valid,test}/{images,masks}/*.png`` or any
  ``images_dir``/``masks_dir`` pair, with RGB-coded masks (:func:`reference_scenes`,
  :func:`reference_split`). As the shared data README says, pure white (255, 255, 255) image
  pixels are no data there;
- a chip folder written by ``geoseg tile`` (``images/``, ``labels/``, ``index.gpkg`` with a
  ``split`` column; :func:`chip_split`);
- whole scenes with their label files (vector or raster), given as pairs directly.

A pixel counts for training (``valid``) when the image has data there (not nodata, not the
padding, not masked by an internal mask or alpha band) and the labels have a class for it;
the loss gives every other pixel weight 0. This module never imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

import numpy as np
import pyogrio
from rasterio.io import DatasetReader

from geoseg.errors import InputError
from geoseg.labels.reader import NO_LABEL, LabelSource, open_labels
from geoseg.raster.scene import open_scene, select_bands
from geoseg.raster.scene_paths import scene_name
from geoseg.raster.tiling import Tile, TileGrid, grid_size, read_tile
from geoseg.settings import ModelSettings

__all__ = [
    "IMAGE_SUFFIXES",
    "WHITE_NODATA",
    "Example",
    "LabelledScene",
    "MemoryTiles",
    "TileDataset",
    "resample_reference_split",
    "TileSource",
    "chip_split",
    "dataset_split",
    "example_bytes",
    "reference_scenes",
    "reference_split",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".jp2", ".vrt"}
)
"""Image files the reference-layout reader picks up (case-insensitive)."""

WHITE_NODATA: Final[float] = 255.0
"""No-data value of reference-dataset images: pixels white in every band hold no data."""

CHIP_INDEX: Final = "index.gpkg"

Example = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(image, mask, valid)``: float32 (size, size, bands) raw values, uint8 (size, size) class
ids (0 where not valid), bool (size, size)."""

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class LabelledScene:
    """An image raster and its labels file (vector layer, label raster or RGB mask)."""

    image: Path | str
    """The image: a file, or a URL or GDAL virtual path as text (a ``Path`` would merge the
    ``//`` of ``/vsicurl/https://``)."""
    labels: Path
    image_nodata: float | None = None
    """No-data value applied on top of the image's own nodata (a pixel equal to it in every
    band holds no data): :data:`WHITE_NODATA` for reference-dataset images, else None."""


def _raster_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 5 else "")


def reference_scenes(
    images_dir: PathLike, masks_dir: PathLike, mask_suffix: str = ".png"
) -> list[LabelledScene]:
    """Pair the images of a folder with the masks of the same name in another.

    Parameters
    ----------
    images_dir : path
        Folder of images (PNG, GeoTIFF, ...).
    masks_dir : path
        Folder of masks named like the images, with ``mask_suffix`` (``[mask]
        mask_file_format`` of a config).
    mask_suffix : str
        Extension of the masks, with its dot.

    Returns
    -------
    list of LabelledScene
        Sorted by image name, with ``image_nodata`` :data:`WHITE_NODATA`.

    Raises
    ------
    InputError
        A folder is missing or holds no image, or an image has no mask.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for name, folder in (("images", images_dir), ("masks", masks_dir)):
        if not folder.is_dir():
            raise InputError(f"{folder}: {name} folder not found; check the path")
    images = _raster_files(images_dir)
    if not images:
        raise InputError(f"{images_dir}: holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    pairs = [LabelledScene(image, masks_dir / f"{image.stem}{mask_suffix}", WHITE_NODATA)
             for image in images]
    missing = [pair.labels.name for pair in pairs if not pair.labels.is_file()]
    if missing:
        raise InputError(f"{masks_dir}: no mask for {len(missing)} of {len(pairs)} images "
                         f"(missing {_listing(missing)}); masks must share the image names")
    return pairs


def reference_split(root: PathLike, split: str, mask_suffix: str = ".png") -> list[LabelledScene]:
    """The pairs of ``<root>/<split>/images`` and ``<root>/<split>/masks``.

    Returns
    -------
    list of LabelledScene

    Raises
    ------
    InputError
        See :func:`reference_scenes`.
    """
    base = Path(root) / split
    return reference_scenes(base / "images", base / "masks", mask_suffix)


def resample_reference_split(root: PathLike, split: str, out_root: PathLike, size: int,
                             rgb_map: Mapping[tuple[int, int, int], int]) -> list[LabelledScene]:
    """Write ``<root>/<split>`` resampled to ``size`` x ``size`` pixels into
    ``<out_root>/<split>``: images by area average, RGB masks by the majority class of each
    output pixel (colours of ``rgb_map``; ties go to the higher class).

    For reference tiles whose landslides are larger than a model's tile at their own
    resolution (the Sichuan aerial tiles: 1024 pixels of ~0.5 m to 256 of ~2 m).

    Returns
    -------
    list of LabelledScene
        The written pairs, as :func:`reference_split` reads them.
    """
    import rasterio
    from rasterio.enums import Resampling

    colours = {cls: colour for colour, cls in reversed(list(rgb_map.items()))}
    out = Path(out_root) / split
    for kind in ("images", "masks"):
        (out / kind).mkdir(parents=True, exist_ok=True)
    for scene in reference_split(root, split):
        with open_scene(scene.image, expect_crs=False) as src:
            image = src.read([1, 2, 3], out_shape=(3, size, size), resampling=Resampling.average)
        with open_scene(scene.labels, expect_crs=False) as src:
            rgb = src.read([1, 2, 3])
        classes = np.zeros(rgb.shape[1:], dtype=np.int64)
        for colour, cls in rgb_map.items():
            classes[np.all(rgb == np.array(colour)[:, None, None], axis=0)] = cls
        step = rgb.shape[1] // size, rgb.shape[2] // size
        blocks = classes[: size * step[0], : size * step[1]].reshape(size, step[0], size, step[1])
        order = sorted(colours, reverse=True)  # ties go to the higher class
        counts = np.stack([(blocks == cls).sum(axis=(1, 3)) for cls in order])
        majority = np.array(order)[np.argmax(counts, axis=0)]
        palette = np.zeros((max(colours) + 1, 3), dtype=np.uint8)
        for cls, colour in colours.items():
            palette[cls] = colour
        mask = np.moveaxis(palette[majority], -1, 0)
        for array, kind, name in ((image, "images", scene_name(scene.image)),
                                  (mask, "masks", scene.labels.name)):
            with rasterio.open(out / kind / name, "w", driver="PNG", width=size, height=size,
                               count=3, dtype="uint8") as dst:
                dst.write(array)
    return reference_split(out_root, split)


def chip_split(chips_dir: PathLike, split: str) -> list[LabelledScene]:
    """The chips of one split of a folder written by ``geoseg tile``.

    Parameters
    ----------
    chips_dir : path
        Folder with ``images/<chip>.tif|png``, ``labels/<chip>.tif|png`` and ``index.gpkg``
        (columns ``chip`` and ``split``).
    split : str
        ``train``, ``valid`` or ``test``.

    Returns
    -------
    list of LabelledScene
        In index order; PNG chips get ``image_nodata`` :data:`WHITE_NODATA` like the
        reference dataset they imitate. Empty when the split has no chip.

    Raises
    ------
    InputError
        The index is missing or unreadable, lacks the columns, or names a chip whose files
        are missing.
    """
    folder = Path(chips_dir)
    index = folder / CHIP_INDEX
    if not index.is_file():
        raise InputError(f"{folder}: no {CHIP_INDEX}; give a folder written by 'geoseg tile'")
    try:
        table = pyogrio.read_dataframe(index, columns=["chip", "split"], read_geometry=False)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        raise InputError(f"{index}: cannot be read as a chip index ({exc})") from None
    if not {"chip", "split"} <= set(table.columns):
        raise InputError(f"{index}: lacks the 'chip' and 'split' columns of a geoseg chip index")
    scenes: list[LabelledScene] = []
    missing: list[str] = []
    for chip in table.loc[table["split"] == split, "chip"].astype(str):
        found = [(folder / "images" / f"{chip}{ext}", folder / "labels" / f"{chip}{ext}")
                 for ext in (".tif", ".png")]
        pair = next(((i, lab) for i, lab in found if i.is_file() and lab.is_file()), None)
        if pair is None:
            missing.append(chip)
            continue
        nodata = WHITE_NODATA if pair[0].suffix == ".png" else None
        scenes.append(LabelledScene(pair[0], pair[1], nodata))
    if missing:
        raise InputError(f"{folder}: {len(missing)} chip(s) of the index have no image/label "
                         f"files ({_listing(missing)}); write the chips again with geoseg tile")
    return scenes


def dataset_split(root: PathLike, split: str, mask_suffix: str = ".png") -> list[LabelledScene]:
    """One split of a dataset folder: a chip folder if it has ``index.gpkg``, else the
    reference layout (empty if ``<root>/<split>`` does not exist).

    Returns
    -------
    list of LabelledScene

    Raises
    ------
    InputError
        ``root`` is not a folder, or the split's files are unusable.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise InputError(f"{folder}: dataset folder not found; check the path")
    if (folder / CHIP_INDEX).is_file():
        return chip_split(folder, split)
    if not (folder / split).is_dir():
        return []
    return reference_split(folder, split, mask_suffix)


def _open_image(path: Path | str) -> DatasetReader:
    """Open an image for training; rasters without georeference (PNG tiles) are fine here."""
    return open_scene(path, expect_crs=False)


class _Opened:
    """An open image and its labels."""

    def __init__(self, scene: LabelledScene, num_classes: int,
                 rgb_map: Mapping[tuple[int, int, int], int] | None,
                 class_names: Sequence[str] | None) -> None:
        self.image = _open_image(scene.image)
        try:
            self.labels: LabelSource = open_labels(
                scene.labels, self.image, num_classes=num_classes,
                rgb_map=rgb_map,
                class_names=class_names,
            )
        except BaseException:
            self.image.close()
            raise

    def close(self) -> None:
        self.labels.close()
        self.image.close()


class TileDataset:
    """The tiles of labelled rasters as training examples, read on demand.

    Every pair is opened once when the dataset is made, so unreadable files, band mismatches
    and label values that are not classes fail before training starts. Reads are thread-safe
    (tf.data may call :meth:`read` from several threads); a few pairs are kept open.

    Parameters
    ----------
    scenes : sequence of LabelledScene
    settings : ModelSettings
        Tile size (``image_size``), bands, class count and names of the model to train.
    overlap : int, optional
        Overlap of the tiles of rasters larger than a tile [default: ``settings.overlap``,
        the grid prediction uses].
    rgb_map : mapping of (R, G, B) -> int, optional
        Colour of each class in RGB-coded masks.
    keep_open : int
        Pairs kept open between reads.

    Raises
    ------
    InputError
        No scene, or a file is missing, unreadable, lacks the model's bands, or its labels
        are unusable (see :func:`geoseg.labels.reader.open_labels`).
    """

    def __init__(
        self,
        scenes: Sequence[LabelledScene],
        settings: ModelSettings,
        *,
        overlap: int | None = None,
        rgb_map: Mapping[tuple[int, int, int], int] | None = None,
        keep_open: int = 8,
    ) -> None:
        if not scenes:
            raise InputError("no labelled images to read tiles from")
        self.scenes = list(scenes)
        self.settings = settings
        self.overlap = grid_size(None, overlap, settings)[1]
        self._rgb_map = rgb_map
        self._label_classes = max(2, settings.num_classes)  # a sigmoid model has 0/1 labels
        self._keep_open = max(1, keep_open)
        self._open: OrderedDict[int, _Opened] = OrderedDict()
        self._lock = threading.Lock()
        self._bands: list[list[int]] = []
        self._cut: list[bool] = []
        self.tiles: list[tuple[int, Tile]] = []
        try:
            for number in range(len(self.scenes)):
                opened = self._opened(number)
                self._bands.append(select_bands(opened.image, settings.bands, settings.bands))
                grid = TileGrid.for_model(opened.image, settings, overlap)
                self._cut.append(len(grid) > 1)
                self.tiles.extend((number, tile) for tile in grid)
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.tiles)

    def _opened(self, number: int) -> _Opened:
        """The open pair of scene ``number`` (callers hold the lock or are single-threaded)."""
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number]
        opened = _Opened(self.scenes[number], self._label_classes, self._rgb_map,
                         self.settings.class_names if self.settings.num_classes > 1 else None)
        self._open[number] = opened
        while len(self._open) > self._keep_open:
            self._open.popitem(last=False)[1].close()
        return opened

    def describe(self, index: int) -> str:
        """A short name of example ``index``: the image file and, if cut, the tile position."""
        number, tile = self.tiles[index]
        name = scene_name(self.scenes[number].image)
        return f"{name} r{tile.row} c{tile.col}" if self._cut[number] else name

    def read(self, index: int) -> Example:
        """Example ``index``: the tile's image, class ids and the pixels that count.

        Returns
        -------
        image : ndarray of float32, shape (size, size, bands)
            Raw pixel values, as :func:`geoseg.raster.tiling.read_tile` gives them to the model.
        mask : ndarray of uint8, shape (size, size)
            Class ids; 0 where ``valid`` is False.
        valid : ndarray of bool, shape (size, size)
            Image data present (not nodata, not padding, not masked) and a label present.
        """
        number, tile = self.tiles[int(index)]
        size = self.settings.image_size
        with self._lock:
            opened = self._opened(number)
            image, valid = read_tile(opened.image, tile, size, self._bands[number],
                                     self.scenes[number].image_nodata)
            labels = opened.labels.read(tile.window, size)
        valid &= labels != NO_LABEL
        mask = np.where(valid, labels, 0).astype(np.uint8)
        return image, mask, valid

    def read_many(self, indexes: Sequence[int]) -> Example:
        """Several examples stacked: images (n, size, size, bands), masks and valid (n, size, size).
        """
        images, masks, valid = zip(*(self.read(i) for i in indexes), strict=True)
        return np.stack(images), np.stack(masks), np.stack(valid)

    def close(self) -> None:
        """Close the files held open."""
        with self._lock:
            while self._open:
                self._open.popitem()[1].close()

    def __enter__(self) -> TileDataset:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()



class TileSource(Protocol):
    """What the training pipeline reads examples from: a :class:`TileDataset` or
    :class:`MemoryTiles`."""

    settings: ModelSettings

    def __len__(self) -> int: ...

    def read(self, index: int) -> Example: ...

    def read_many(self, indexes: Sequence[int]) -> Example: ...

    def describe(self, index: int) -> str: ...


def example_bytes(settings: ModelSettings) -> int:
    """Memory one example takes in :class:`MemoryTiles`: float32 image, uint8 mask, bool valid.

    >>> example_bytes(ModelSettings(image_size=256, image_channels=3))
    917504
    """
    size = settings.image_size
    return size * size * (4 * settings.image_channels + 2)


class MemoryTiles:
    """Every example of a :class:`TileDataset`, read (decoded) once and kept in memory.

    Training visits every tile once per epoch; reading it from the arrays here instead of
    decoding the files again saves the decoding and its allocations. Examples are exactly
    those of the dataset.

    Parameters
    ----------
    tiles : TileDataset or TileSource
        Read completely here, once.
    """

    def __init__(self, tiles: TileSource) -> None:
        self.settings = tiles.settings
        count, size, bands = len(tiles), tiles.settings.image_size, tiles.settings.image_channels
        self.images = np.empty((count, size, size, bands), np.float32)
        self.masks = np.empty((count, size, size), np.uint8)
        self.valid = np.empty((count, size, size), bool)
        self._names = [tiles.describe(i) for i in range(count)]
        for index in range(count):
            self.images[index], self.masks[index], self.valid[index] = tiles.read(index)
        for array in (self.images, self.masks, self.valid):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self._names)

    def read(self, index: int) -> Example:
        """Example ``index`` (read-only views into the arrays): see :meth:`TileDataset.read`."""
        i = int(index)
        return self.images[i], self.masks[i], self.valid[i]

    def read_many(self, indexes: Sequence[int]) -> Example:
        """Several examples stacked (copies)."""
        picks = np.asarray(indexes, dtype=np.intp)
        return self.images[picks], self.masks[picks], self.valid[picks]

    def describe(self, index: int) -> str:
        """The name :meth:`TileDataset.describe` gives example ``index``."""
        return self._names[index]
