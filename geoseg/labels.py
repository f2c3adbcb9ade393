"""Training labels on the scene grid: vector polygons, label rasters and RGB-coded masks.

Training must see tiles exactly as prediction sees them, so labels are read per window of the
scene grid (the windows of :class:`geoseg.tiling.TileGrid`) and padded to the tile size with
:func:`geoseg.tiling.pad_to_tile`, the padding :func:`geoseg.tiling.read_tile` applies to the
image. A whole-scene label array is never built.

Three kinds of labels are read:

- a **vector layer** (GeoPackage, shapefile, GeoJSON, ...): polygons reprojected to the scene
  CRS and rasterised per window (:class:`VectorLabels`);
- a **label raster** of class ids on the scene grid, or on another grid with nearest-neighbour
  resampling (:class:`RasterLabels`);
- an **RGB-coded mask** (the reference dataset's PNG masks) decoded with an ``rgb_map`` of
  colour -> class id, by nearest colour with a tolerance (:func:`decode_rgb_mask`,
  :func:`read_mask_png`; :class:`RasterLabels` decodes an RGB label raster the same way).

Class ids are ``uint8``; pixels with no label (label-raster nodata, transparent mask pixels,
scene pixels outside a resampled label raster) hold :data:`NO_LABEL` (255), to be left out of
losses and metrics.

This module never imports TensorFlow.
"""

from __future__ import annotations

import math
import os
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.features import rasterize
from rasterio.io import DatasetReader
from rasterio.transform import array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from geoseg.errors import ConfigError, InputError
from geoseg.geometry import polygonal_parts, repair_polygons
from geoseg.scene import open_scene
from geoseg.tiling import TileGrid, pad_to_tile

__all__ = [
    "NO_LABEL",
    "DEFAULT_TOLERANCE",
    "VECTOR_SUFFIXES",
    "LabelSource",
    "VectorLabels",
    "RasterLabels",
    "open_labels",
    "validate_rgb_map",
    "decode_rgb_mask",
    "decode_index_mask",
    "read_mask_png",
    "label_fraction",
]

NO_LABEL: Final[int] = 255
"""Class id of pixels that have no label; class ids are ``0 .. num_classes - 1 < 255``."""

DEFAULT_TOLERANCE: Final[float] = 60.0
"""Largest Euclidean RGB distance between a mask pixel and its nearest ``rgb_map`` colour."""

VECTOR_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite", ".gdb"}
)
"""File suffixes opened as vector layers (other files are rasters unless only OGR opens them)."""

_RASTER_SUFFIXES: Final = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".vrt", ".jp2"})
_SCAN_TILE: Final = 1024  # window side used to check a whole label raster block by block
_MAX_LISTED: Final = 8  # offending values/colours named in an error message
_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7  # shapely.get_type_id codes

RgbMap = Mapping[tuple[int, int, int], int]
PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ConfigError(f"num_classes: must be an integer, got {num_classes!r}")
    if not 2 <= num_classes <= NO_LABEL:
        raise ConfigError(
            f"num_classes: must be 2..{NO_LABEL} (background included), got {num_classes}"
        )


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def validate_rgb_map(
    rgb_map: RgbMap, num_classes: int | None = None
) -> dict[tuple[int, int, int], int]:
    """Check a mask colour table and return it with plain ``int`` colours and classes.

    Parameters
    ----------
    rgb_map : mapping of (R, G, B) -> int
        Mask colour to class id, e.g. ``{(0, 0, 0): 0, (255, 0, 0): 1}``. Several colours may
        map to the same class.
    num_classes : int, optional
        Number of classes; class ids must be ``0 .. num_classes - 1``. Without it, any id
        below :data:`NO_LABEL` is accepted.

    Returns
    -------
    dict of (int, int, int) -> int

    Raises
    ------
    ConfigError
        The map is empty or not a mapping, a key is not three integers 0..255, or a class id
        is out of range.

    Examples
    --------
    >>> validate_rgb_map({(0, 0, 0): 0, (255, 0, 0): 1}, 2)
    {(0, 0, 0): 0, (255, 0, 0): 1}
    """
    if num_classes is not None:
        _check_num_classes(num_classes)
    top = NO_LABEL if num_classes is None else num_classes
    if not isinstance(rgb_map, Mapping) or not rgb_map:
        raise ConfigError(
            "rgb_map: must map (R, G, B) colours to class ids, e.g. {(0, 0, 0): 0, (255, 0, 0): 1}"
        )
    table: dict[tuple[int, int, int], int] = {}
    for colour, cls in rgb_map.items():
        if (
            not isinstance(colour, tuple | list)
            or len(colour) != 3
            or not all(_is_integer(c) and 0 <= c <= 255 for c in colour)
        ):
            raise ConfigError(
                f"rgb_map: key {colour!r} is not an (R, G, B) triple of integers 0..255"
            )
        if not _is_integer(cls) or not 0 <= cls < top:
            raise ConfigError(
                f"rgb_map: class {cls!r} of colour {tuple(colour)} is not a class id 0..{top - 1}"
            )
        table[(int(colour[0]), int(colour[1]), int(colour[2]))] = int(cls)
    return table


def _check_tolerance(tolerance: float) -> None:
    if not tolerance >= 0:  # also refuses NaN
        raise ConfigError(f"tolerance: must be a colour distance >= 0, got {tolerance!r}")


def _check_class_names(class_names: Sequence[str], num_classes: int) -> dict[str, int]:
    names = list(class_names)
    if len(names) != num_classes or len(set(names)) != len(names):
        raise ConfigError(
            f"class_names: need {num_classes} distinct names (one per class id, background "
            f"first), got {names}"
        )
    return {name: cls for cls, name in enumerate(names)}


# --------------------------------------------------------------------------------------------
# Decoding masks
# --------------------------------------------------------------------------------------------


def _listing(values: Iterable[object]) -> str:
    items = list(values)
    shown = ", ".join(str(v) for v in items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def _known_mask(shape: tuple[int, ...], known: np.ndarray | None) -> np.ndarray:
    if known is None:
        return np.ones(shape, dtype=bool)
    known = np.asarray(known, dtype=bool)
    if known.shape != shape:
        raise ValueError(f"known has shape {known.shape}, expected {shape}")
    return known


def _index_is_binary(values: np.ndarray, num_classes: int, source: str) -> bool:
    """Whether ``values`` (the distinct labelled values) are a 0/255 mask; raise if unusable."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.floating):
        whole = np.isfinite(values) & (values == np.round(values))
    else:
        whole = np.ones(values.shape, dtype=bool)
    usable = whole & (values >= 0) & (values < num_classes)
    if usable.all():
        return False
    if num_classes == 2 and np.isin(values, (0, 255)).all():
        return True
    bad = [f"{v:g}" if isinstance(v, float) else str(v) for v in values[~usable].tolist()]
    binary = " nor a 0/255 binary mask" if num_classes == 2 else ""
    raise InputError(
        f"{source}: values {_listing(bad)} are not class ids 0..{num_classes - 1}{binary}; "
        "fix the labels, num_classes, or set the raster's nodata if a value marks unlabelled pixels"
    )


def _apply_index(values: np.ndarray, known: np.ndarray, binary: bool) -> np.ndarray:
    classes = np.full(values.shape, NO_LABEL, dtype=np.uint8)
    if binary:
        classes[known] = values[known] == 255
    else:
        classes[known] = values[known].astype(np.uint8)
    return classes


def decode_index_mask(
    values: np.ndarray,
    num_classes: int = 2,
    *,
    known: np.ndarray | None = None,
    source: str = "mask",
) -> np.ndarray:
    """Class ids from a single-band mask (grayscale, palette index or label raster values).

    Values are class ids when all of them are ``0 .. num_classes - 1``; with two classes a
    0/255 binary mask is also accepted (255 -> 1). Anything else is refused rather than guessed.

    Parameters
    ----------
    values : ndarray, shape (height, width)
        Mask values, any integer or float dtype.
    num_classes : int
        Number of classes, background (0) included.
    known : ndarray of bool, optional
        False where the mask has no label (nodata, transparent); those pixels are not checked
        and get :data:`NO_LABEL`.
    source : str
        Name of the mask in error messages (usually its path).

    Returns
    -------
    ndarray of uint8, shape (height, width)

    Raises
    ------
    InputError
        Some labelled values are not class ids (the message lists them).
    ConfigError
        ``num_classes`` is not 2..255.
    """
    _check_num_classes(num_classes)
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (height, width), got shape {values.shape}")
    known = _known_mask(values.shape, known)
    binary = _index_is_binary(np.unique(values[known]), num_classes, source)
    return _apply_index(values, known, binary)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours as one uint32 per pixel, 0xRRGGBB."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(packed: np.ndarray) -> np.ndarray:
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)


def _nearest_classes(
    packed: np.ndarray, table: dict[tuple[int, int, int], int]
) -> tuple[np.ndarray, np.ndarray]:
    """Class of the nearest table colour, and the distance to it, for each packed colour."""
    colours = np.array(list(table), dtype=np.int32)
    classes = np.array(list(table.values()), dtype=np.uint8)
    diff = _unpack(packed).astype(np.int32)[:, None, :] - colours[None, :, :]
    squared = np.einsum("nkc,nkc->nk", diff, diff)
    nearest = squared.argmin(axis=1)
    distance = np.sqrt(squared[np.arange(len(packed)), nearest])
    return classes[nearest], distance


def _check_colours(
    packed: np.ndarray,
    counts: np.ndarray,
    table: dict[tuple[int, int, int], int],
    tolerance: float,
    source: str,
) -> np.ndarray:
    """Classes of the distinct colours ``packed``; raise if some are too far from the table."""
    classes, distance = _nearest_classes(packed, table)
    far = distance > tolerance
    if far.any():
        order = np.argsort(-counts[far], kind="stable")
        seen = [
            f"{tuple(int(c) for c in colour)} x{int(n)}"
            for colour, n in zip(_unpack(packed[far][order]), counts[far][order], strict=True)
        ]
        raise InputError(
            f"{source}: {int(counts[far].sum())} of {int(counts.sum())} pixels are farther than "
            f"{tolerance:g} from every rgb_map colour {sorted(table)}; colours seen there: "
            f"{_listing(seen)}; add them to rgb_map or fix the mask"
        )
    return classes


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"rgb must be uint8 of shape (height, width, 3), got {rgb.dtype} {rgb.shape}"
        )


def decode_rgb_mask(
    rgb: np.ndarray,
    rgb_map: RgbMap,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    known: np.ndarray | None = None,
    source: str = "mask",
) -> np.ndarray:
    """Class ids from an RGB-coded mask, by nearest ``rgb_map`` colour.

    Every pixel takes the class of the closest ``rgb_map`` colour (Euclidean distance in RGB,
    ties to the first colour of the map), which absorbs the small colour noise of resized or
    JPEG-compressed masks. A pixel farther than ``tolerance`` from every colour means the map
    does not describe the mask, and the whole mask is refused.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (height, width, 3)
    rgb_map : mapping of (R, G, B) -> int
        Mask colour to class id, see :func:`validate_rgb_map`.
    tolerance : float
        Largest accepted distance to the nearest colour (default 60, about a quarter of the
        way from black to pure red).
    known : ndarray of bool, optional
        False where the mask has no label (e.g. transparent); those pixels are not checked and
        get :data:`NO_LABEL`.
    source : str
        Name of the mask in error messages (usually its path).

    Returns
    -------
    ndarray of uint8, shape (height, width)

    Raises
    ------
    InputError
        Pixels are farther than ``tolerance`` from every colour (the message gives their number
        and the most frequent colours among them).
    ConfigError
        ``rgb_map`` or ``tolerance`` is invalid.
    """
    table = validate_rgb_map(rgb_map)
    _check_tolerance(tolerance)
    rgb = np.asarray(rgb)
    _check_rgb(rgb)
    known = _known_mask(rgb.shape[:2], known)
    packed, inverse, counts = np.unique(_pack(rgb[known]), return_inverse=True, return_counts=True)
    classes = np.full(rgb.shape[:2], NO_LABEL, dtype=np.uint8)
    if packed.size:
        classes[known] = _check_colours(packed, counts, table, tolerance, source)[inverse]
    return classes


def _open_raster(path: Path) -> DatasetReader:
    # PNG masks carry no georeference; that is expected, not worth a warning.
    return open_scene(path, expect_crs=False)


def _label_bands(dataset: DatasetReader, source: str, has_rgb_map: bool) -> list[int]:
    """The bands holding labels: one band of class ids, or three RGB bands (alpha left out)."""
    bands = [
        index
        for index, interp in zip(dataset.indexes, dataset.colorinterp, strict=True)
        if interp != ColorInterp.alpha
    ]
    if len(bands) not in (1, 3):
        raise InputError(
            f"{source}: has {len(bands)} bands; labels need one band of class ids or three "
            "RGB bands decoded with rgb_map"
        )
    if len(bands) == 3 and not has_rgb_map:
        raise ConfigError(
            f"{source}: is an RGB mask; give rgb_map (colour -> class id), "
            "e.g. {(0, 0, 0): 0, (255, 0, 0): 1}"
        )
    return bands


def read_mask_png(
    path: PathLike,
    rgb_map: RgbMap | None = None,
    *,
    num_classes: int = 2,
    tolerance: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """Read a whole mask image (PNG or any raster rasterio reads) as class ids.

    A three-band mask is decoded with ``rgb_map`` (:func:`decode_rgb_mask`); a single-band
    (grayscale or palette) mask with :func:`decode_index_mask`. An alpha band, or the file's
    nodata, marks pixels without label (:data:`NO_LABEL`).

    Parameters
    ----------
    path : path-like
    rgb_map : mapping of (R, G, B) -> int, optional
        Required for RGB masks.
    num_classes : int
        Number of classes, background included.
    tolerance : float
        See :func:`decode_rgb_mask`.

    Returns
    -------
    ndarray of uint8, shape (height, width)

    Raises
    ------
    InputError
        The file cannot be read, has an unsuitable number of bands, or holds values/colours
        that are not classes.
    ConfigError
        The mask is RGB and ``rgb_map`` is missing, or an option is invalid.
    """
    _check_num_classes(num_classes)
    if rgb_map is not None:
        validate_rgb_map(rgb_map, num_classes)
    path = Path(path)
    with _open_raster(path) as dataset:
        bands = _label_bands(dataset, str(path), rgb_map is not None)
        data = dataset.read(bands)
        known = dataset.dataset_mask() > 0
    if len(bands) == 3:
        assert rgb_map is not None  # _label_bands refuses RGB without a map
        rgb = np.ascontiguousarray(np.moveaxis(data, 0, -1))
        return decode_rgb_mask(rgb, rgb_map, tolerance=tolerance, known=known, source=str(path))
    return decode_index_mask(data[0], num_classes, known=known, source=str(path))


def label_fraction(labels: np.ndarray, valid: np.ndarray) -> float:
    """Share of foreground (any class but 0) among the valid, labelled pixels of a tile.

    Parameters
    ----------
    labels : ndarray of uint8, shape (height, width)
        Class ids as returned by :meth:`LabelSource.read`.
    valid : ndarray of bool, shape (height, width)
        Pixels with image data (the ``valid`` of :func:`geoseg.tiling.read_tile`).

    Returns
    -------
    float
        In [0, 1]; 0.0 when no pixel is both valid and labelled (:data:`NO_LABEL` pixels and
        invalid pixels are left out of numerator and denominator).
    """
    labels = np.asarray(labels)
    valid = np.asarray(valid, dtype=bool)
    if labels.shape != valid.shape:
        raise ValueError(f"labels {labels.shape} and valid {valid.shape} differ in shape")
    counted = valid & (labels != NO_LABEL)
    total = np.count_nonzero(counted)
    if total == 0:
        return 0.0
    return np.count_nonzero(counted & (labels != 0)) / total


# --------------------------------------------------------------------------------------------
# Label sources on the scene grid
# --------------------------------------------------------------------------------------------


def _dataset_name(dataset: DatasetReader) -> str:
    return str(getattr(dataset, "name", "") or "scene")


def _crs_text(crs: object | None) -> str:
    if crs is None:
        return "no CRS"
    return CRS.from_user_input(crs).to_string()


class LabelSource(ABC):
    """Class ids of a scene, read window by window on the scene grid.

    Use as a context manager, or call :meth:`close`. Subclasses read one window unpadded;
    :meth:`read` checks the window and pads it to the tile size.

    Attributes
    ----------
    num_classes : int
        Number of classes, background (0) included.
    height, width : int
        Size of the scene grid in pixels.
    transform : Affine
        The scene's geotransform.
    scene_name : str
        The scene's path, for messages.
    """

    def __init__(self, scene: DatasetReader, num_classes: int) -> None:
        _check_num_classes(num_classes)
        self.num_classes = int(num_classes)
        self.height: int = scene.height
        self.width: int = scene.width
        self.transform: Affine = scene.transform
        self.scene_name = _dataset_name(scene)

    def read(self, window: Window, tile_size: int) -> np.ndarray:
        """Class ids of one window of the scene grid, padded to ``tile_size`` x ``tile_size``.

        Padding is :func:`geoseg.tiling.pad_to_tile`, the reflect padding that
        :func:`geoseg.tiling.read_tile` applies to the image: a padded image pixel mirrors a
        scene pixel, and the padded label mirrors that pixel's label, so image and labels
        agree pixel for pixel and no class is invented. ``read_tile``'s ``valid`` is False on
        the padding; mask the loss and metrics with it to count each scene pixel once.

        Parameters
        ----------
        window : Window
            A window inside the scene, at most ``tile_size`` on each side (a tile's window of a
            :class:`geoseg.tiling.TileGrid` over the scene).
        tile_size : int
            Side of the returned array.

        Returns
        -------
        ndarray of uint8, shape (tile_size, tile_size)
            Class ids ``0 .. num_classes - 1``, :data:`NO_LABEL` where there is no label.

        Raises
        ------
        ValueError
            The window is not inside the scene or is larger than the tile.
        """
        return pad_to_tile(self._read_window(self._check_window(window, tile_size)), tile_size)

    def _check_window(self, window: Window, tile_size: int) -> Window:
        parts = (window.col_off, window.row_off, window.width, window.height)
        if not all(float(v).is_integer() for v in parts):
            raise ValueError(f"window {window} is not on whole pixels")
        col, row, width, height = (int(v) for v in parts)
        if width < 1 or height < 1 or col < 0 or row < 0:
            raise ValueError(f"window {window} is empty or starts outside the scene")
        if col + width > self.width or row + height > self.height:
            raise ValueError(
                f"window {window} reaches beyond the {self.width}x{self.height} scene grid"
            )
        if width > tile_size or height > tile_size:
            raise ValueError(f"window {window} is larger than the tile size {tile_size}")
        return Window(col, row, width, height)

    @abstractmethod
    def _read_window(self, window: Window) -> np.ndarray:
        """Class ids (uint8, window height x width) of a window checked to lie in the scene."""

    @abstractmethod
    def close(self) -> None:
        """Release the files held open."""

    def __enter__(self) -> LabelSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _read_vector(path: Path) -> gpd.GeoDataFrame:
    try:
        return gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: cannot be read as a vector layer ({reason})") from None


def _class_id(value: Hashable, names: Mapping[str, int]) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        if text in names:
            return names[text]
        return int(text) if text.isdecimal() else None
    if isinstance(value, bool | np.bool_) or pd.isna(value):
        return None
    if _is_integer(value):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return None


def _feature_classes(
    values: pd.Series,
    column: str,
    class_names: Sequence[str] | None,
    num_classes: int,
    source: str,
) -> np.ndarray:
    """Class id of each feature from its ``column`` value (a class name or an integer id)."""
    names = _check_class_names(class_names, num_classes) if class_names is not None else {}
    lookup: dict[Hashable, int] = {}
    bad: list[str] = []
    named = False  # some refused value is text
    for value in pd.unique(values):
        cls = _class_id(value, names)
        if cls is not None and 0 <= cls < num_classes:
            lookup[value] = cls
        elif isinstance(value, str):
            bad.append(repr(value))
            named = True
        else:
            bad.append("empty" if pd.isna(value) else str(value))
    if bad:
        if names:
            hint = f" or names {list(names)}"
        else:
            hint = "; give class_names to use names" if named else ""
        raise InputError(
            f"{source}: column {column!r} has values {_listing(bad)} that are not class ids "
            f"0..{num_classes - 1}{hint}"
        )
    return values.map(lookup).to_numpy(dtype=np.uint8)


def _polygonal_features(geoms: np.ndarray) -> tuple[np.ndarray, Counter[str]]:
    """Which features may hold polygons, and a count of the others by geometry type."""
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    keep = ~missing & np.isin(shapely.get_type_id(geoms), (_POLYGON, _MULTIPOLYGON, _COLLECTION))
    ignored = Counter(
        "empty" if gone else geom.geom_type
        for geom, gone in zip(geoms[~keep], missing[~keep], strict=True)
    )
    return keep, ignored


def _polygon_parts(
    geoms: np.ndarray, crs: CRS, scene_crs: object
) -> tuple[np.ndarray, np.ndarray, int]:
    """Single polygons in the scene CRS, the feature each came from, and how many were repaired.

    Geometries are reprojected, then repaired (lines and points left by the repair dropped),
    then split into single polygons.
    """
    series = gpd.GeoSeries(shapely.force_2d(geoms), crs=crs)
    target = CRS.from_user_input(scene_crs)
    if not series.crs.equals(target):
        series = series.to_crs(target)
    shapes = np.asarray(series.array, dtype=object)
    repaired = int(np.count_nonzero(~shapely.is_valid(shapes)))
    parts, owner = polygonal_parts(repair_polygons(shapes))
    return parts, owner, repaired


class VectorLabels(LabelSource):
    """Polygons of a vector layer, rasterised per window onto the scene grid.

    The layer is read once (GeoPandas with pyogrio), reprojected to the scene CRS, repaired and
    indexed (STR tree); each :meth:`read` burns only the polygons meeting the window, with the
    window's own transform, so a huge scene never needs a whole-scene label array. A window
    read is identical to the same slice of a whole-scene rasterisation.

    - Rasterisation uses ``all_touched=False``: a pixel gets a polygon's class when its centre
      is inside the polygon (GDAL's rule), so labels neither grow by a pixel all round nor
      depend on the window. Pixels outside every polygon are background (0).
    - Without ``class_column`` every polygon is class 1 (landslide). With it, each value is a
      name of ``class_names`` or an integer class id (text digits accepted).
    - Where polygons of different classes overlap, the higher class id wins.
    - Invalid polygons are repaired with :func:`shapely.make_valid` (after reprojection);
      features without polygonal parts (points, lines, empty) are ignored with a warning.

    Parameters
    ----------
    path : path-like
        A vector layer GDAL/OGR reads (its first layer is used).
    scene : rasterio dataset
        The open scene; its CRS, transform and size define the grid.
    class_column : str, optional
        Column holding each polygon's class.
    class_names : sequence of str, optional
        Name of each class id, background first (``len == num_classes``).
    num_classes : int
        Number of classes, background included.

    Raises
    ------
    InputError
        The layer cannot be read, has no CRS, the scene has no CRS, the column is missing or
        holds unknown classes, no polygon is left, or the polygons miss the scene.
    ConfigError
        ``num_classes`` or ``class_names`` is invalid.
    """

    def __init__(
        self,
        path: PathLike,
        scene: DatasetReader,
        *,
        class_column: str | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int = 2,
    ) -> None:
        super().__init__(scene, num_classes)
        self.path = Path(path)
        source = str(self.path)
        frame = _read_vector(self.path)
        if frame.crs is None:
            raise InputError(
                f"{source}: has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:...) so its "
                f"polygons can be placed on {self.scene_name}"
            )
        if scene.crs is None:
            raise InputError(
                f"{self.scene_name}: has no CRS, so the polygons of {source} cannot be placed on "
                "it; assign the scene a CRS (e.g. gdal_edit.py -a_srs EPSG:...)"
            )
        if class_column is not None and class_column not in frame.columns:
            columns = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
            raise InputError(f"{source}: has no column {class_column!r}; columns: {columns}")
        if class_names is not None:
            _check_class_names(class_names, num_classes)

        geoms = np.asarray(frame.geometry.array, dtype=object)
        keep, ignored = _polygonal_features(geoms)
        if class_column is None:
            feature_classes = np.ones(int(keep.sum()), dtype=np.uint8)
        else:
            feature_classes = _feature_classes(
                frame.loc[keep, class_column], class_column, class_names, num_classes, source
            )
        parts, owner, repaired = _polygon_parts(geoms[keep], frame.crs, scene.crs)
        if repaired:
            warnings.warn(
                f"{source}: repaired {repaired} invalid polygon(s) with make_valid",
                UserWarning,
                stacklevel=2,
            )
        degenerate = int(keep.sum()) - len(np.unique(owner))
        if degenerate:
            ignored["without area"] += degenerate
        if ignored:
            detail = ", ".join(f"{n} {kind}" for kind, n in sorted(ignored.items()))
            warnings.warn(
                f"{source}: ignored {sum(ignored.values())} feature(s) that are not polygons "
                f"({detail})",
                UserWarning,
                stacklevel=2,
            )
        if not len(parts):
            raise InputError(f"{source}: has no polygons to burn; labels need polygon features")

        part_classes = feature_classes[owner]
        order = np.argsort(part_classes, kind="stable")  # burnt last = wins: higher class ids
        self._polygons: np.ndarray = parts[order]
        self._classes: np.ndarray = part_classes[order]
        self._tree = shapely.STRtree(self._polygons)
        scene_box = shapely.box(*array_bounds(self.height, self.width, self.transform))
        if not len(self._tree.query(scene_box, predicate="intersects")):
            raise InputError(
                f"{source} does not overlap {self.scene_name}: check the CRS "
                f"(labels {_crs_text(frame.crs)}, scene {_crs_text(scene.crs)})"
            )

    def _read_window(self, window: Window) -> np.ndarray:
        shape = (int(window.height), int(window.width))
        hits = np.sort(
            self._tree.query(
                shapely.box(*window_bounds(window, self.transform)), predicate="intersects"
            )
        )
        if not len(hits):
            return np.zeros(shape, dtype=np.uint8)
        return rasterize(
            zip(self._polygons[hits], self._classes[hits].tolist(), strict=True),
            out_shape=shape,
            transform=window_transform(window, self.transform),
            fill=0,
            all_touched=False,
            dtype=np.uint8,
        )

    def close(self) -> None:
        """Drop the polygons and their index (nothing is held open)."""
        self._polygons = self._polygons[:0]
        self._classes = self._classes[:0]
        self._tree = shapely.STRtree(self._polygons)


def _pixel_size(transform: Affine) -> float:
    return math.sqrt(abs(transform.determinant))


def _grid_differences(labels: DatasetReader, scene: DatasetReader) -> list[str]:
    differences = []
    if labels.crs != scene.crs:
        differences.append(f"CRS {_crs_text(labels.crs)} vs {_crs_text(scene.crs)}")
    if (labels.width, labels.height) != (scene.width, scene.height):
        differences.append(
            f"size {labels.width}x{labels.height} vs {scene.width}x{scene.height} pixels"
        )
    precision = 1e-3 * _pixel_size(scene.transform)
    if not labels.transform.almost_equals(scene.transform, precision=precision):
        differences.append("different transform (origin or pixel size)")
    return differences


class RasterLabels(LabelSource):
    """Class ids from a label raster, read per window of the scene grid.

    The raster is either on the scene grid (same CRS, transform, width and height: windows
    are read directly) or, with ``resample=True``, reprojected onto it by nearest neighbour
    through a :class:`rasterio.vrt.WarpedVRT` (nearest neighbour never mixes classes; scene
    pixels it does not cover get :data:`NO_LABEL`).

    One band holds class ids (:func:`decode_index_mask` rules: ``0 .. num_classes - 1``, or
    0/255 with two classes); three bands are an RGB-coded mask decoded with ``rgb_map``
    (:func:`decode_rgb_mask`). Nodata and alpha mark unlabelled pixels (:data:`NO_LABEL`).

    The whole raster is checked when it is opened, block by block over the scene grid, so
    bad values fail before training starts rather than hours into it.

    Parameters
    ----------
    path : path-like
    scene : rasterio dataset
        The open scene defining the grid.
    num_classes : int
        Number of classes, background included.
    rgb_map : mapping of (R, G, B) -> int, optional
        Required for RGB label rasters.
    resample : bool
        Reproject a raster on another grid instead of refusing it.
    tolerance : float
        See :func:`decode_rgb_mask`.

    Raises
    ------
    InputError
        The raster cannot be read, is on another grid without ``resample``, cannot be
        resampled (no CRS, no overlap), has no labelled pixel over the scene, or holds values
        or colours that are not classes.
    ConfigError
        ``num_classes``, ``rgb_map`` or ``tolerance`` is invalid, or ``rgb_map`` is missing
        for RGB labels.
    """

    def __init__(
        self,
        path: PathLike,
        scene: DatasetReader,
        *,
        num_classes: int = 2,
        rgb_map: RgbMap | None = None,
        resample: bool = False,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        super().__init__(scene, num_classes)
        self.path = Path(path)
        self._source = str(self.path)
        self._table = validate_rgb_map(rgb_map, num_classes) if rgb_map is not None else None
        _check_tolerance(tolerance)
        self._tolerance = tolerance
        self._dataset = _open_raster(self.path)
        self._reader: DatasetReader | WarpedVRT = self._dataset
        try:
            self._bands = _label_bands(self._dataset, self._source, rgb_map is not None)
            if len(self._bands) == 1:  # class ids: an rgb_map only applies to RGB masks
                self._table = None
            differences = _grid_differences(self._dataset, scene)
            if differences:
                self._reader = self._resampled(scene, differences, resample)
            self._binary = self._check_all()
        except BaseException:
            self.close()
            raise

    def _resampled(self, scene: DatasetReader, differences: list[str], resample: bool) -> WarpedVRT:
        source, labels = self._source, self._dataset
        if not resample:
            raise InputError(
                f"{source}: is not on the grid of {self.scene_name} ({'; '.join(differences)}); "
                "align it (e.g. gdalwarp) or allow nearest-neighbour resampling (resample=True)"
            )
        for name, crs in ((source, labels.crs), (self.scene_name, scene.crs)):
            if crs is None:
                raise InputError(f"{name}: has no CRS, so the labels cannot be resampled")
        west, south, east, north = transform_bounds(labels.crs, scene.crs, *labels.bounds)
        s_west, s_south, s_east, s_north = array_bounds(self.height, self.width, self.transform)
        if west >= s_east or east <= s_west or south >= s_north or north <= s_south:
            raise InputError(
                f"{source} does not overlap {self.scene_name}: check the CRS "
                f"(labels {_crs_text(labels.crs)}, scene {_crs_text(scene.crs)})"
            )
        has_mask = labels.nodata is not None or ColorInterp.alpha in labels.colorinterp
        return WarpedVRT(
            labels,
            crs=scene.crs,
            transform=self.transform,
            width=self.width,
            height=self.height,
            resampling=Resampling.nearest,
            # Near-exact transformer: a pixel's source pixel must not depend on the window
            # (GDAL's default 1/8-pixel approximation could; 0 fails in rasterio 1.4).
            tolerance=1e-6,
            add_alpha=not has_mask,
        )

    def _read_raw(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        data = self._reader.read(self._bands, window=window)
        known = self._reader.dataset_mask(window=window) > 0
        return data, known

    def _check_all(self) -> bool:
        """Check every labelled value over the scene; return whether it is a 0/255 mask."""
        distinct: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        labelled = 0
        for tile in TileGrid(self.height, self.width, _SCAN_TILE, 0):
            data, known = self._read_raw(tile.window)
            labelled += int(known.sum())
            if self._table is None:
                distinct.append(np.unique(data[0][known]))
            else:
                packed, n = np.unique(_pack(np.moveaxis(data, 0, -1)[known]), return_counts=True)
                distinct.append(packed)
                counts.append(n)
        if labelled == 0:
            raise InputError(
                f"{self._source}: has no labelled pixel over {self.scene_name} "
                "(all nodata or outside the scene)"
            )
        values = np.concatenate(distinct)
        if self._table is None:
            return _index_is_binary(np.unique(values), self.num_classes, self._source)
        packed, inverse = np.unique(values, return_inverse=True)
        totals = np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)
        _check_colours(packed, totals, self._table, self._tolerance, self._source)
        return False

    def _read_window(self, window: Window) -> np.ndarray:
        data, known = self._read_raw(window)
        if self._table is None:
            return _apply_index(data[0], known, self._binary)
        rgb = np.ascontiguousarray(np.moveaxis(data, 0, -1))
        return decode_rgb_mask(
            rgb, self._table, tolerance=self._tolerance, known=known, source=self._source
        )

    def close(self) -> None:
        """Close the label raster (and its warped view)."""
        if self._reader is not self._dataset:
            self._reader.close()
        self._dataset.close()


def _is_vector(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in VECTOR_SUFFIXES or path.is_dir():
        return True
    if suffix in _RASTER_SUFFIXES:
        return False
    try:
        pyogrio.read_info(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        return False
    return True


def open_labels(
    path: PathLike,
    scene: DatasetReader,
    *,
    class_column: str | None = None,
    class_names: Sequence[str] | None = None,
    num_classes: int = 2,
    rgb_map: RgbMap | None = None,
    resample: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> LabelSource:
    """Open the labels of a scene, vector or raster, as a per-window :class:`LabelSource`.

    Files with a suffix in :data:`VECTOR_SUFFIXES` (or folders, e.g. a FileGDB) are vector
    layers (:class:`VectorLabels`); others are rasters (:class:`RasterLabels`), unless only
    OGR can open them. Options of the other kind are ignored (``class_column`` and
    ``class_names`` for rasters; ``rgb_map``, ``resample`` and ``tolerance`` for vectors), so
    one configuration serves both.

    Parameters
    ----------
    path : path-like
        Labels file.
    scene : rasterio dataset
        The open scene whose grid the labels are read on.
    class_column, class_names :
        Vector labels: see :class:`VectorLabels`.
    num_classes : int
        Number of classes, background included.
    rgb_map, resample, tolerance :
        Raster labels: see :class:`RasterLabels`.

    Returns
    -------
    LabelSource
        To be closed (use ``with``).

    Raises
    ------
    InputError
        The file does not exist or is unsuitable (see the two classes).
    ConfigError
        An option is invalid.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    if _is_vector(path):
        return VectorLabels(
            path, scene, class_column=class_column, class_names=class_names, num_classes=num_classes
        )
    return RasterLabels(
        path,
        scene,
        num_classes=num_classes,
        rgb_map=rgb_map,
        resample=resample,
        tolerance=tolerance,
    )
