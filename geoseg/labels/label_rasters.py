"""Label rasters: class ids or RGB-coded colours decoded into classes.

A single band holds class ids (:func:`decode_index_mask`: ``0 .. num_classes - 1``, or a
0/255 binary mask); three bands are an RGB-coded mask, the reference dataset's PNG masks,
decoded with an ``rgb_map`` of colour -> class id by nearest colour with a tolerance
(:func:`decode_rgb_mask`). :func:`read_mask_png` decodes a whole mask file;
:class:`RasterLabels` decodes a label raster per window of the scene grid, resampled onto it
if asked. Nodata, alpha and transparent pixels get :data:`~geoseg.labels.label_source.NO_LABEL`.

This module never imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.io import DatasetReader
from rasterio.transform import array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geoseg.errors import ConfigError, InputError
from geoseg.labels.label_source import (
    NO_LABEL,
    LabelSource,
    PathLike,
    _check_num_classes,
    _crs_text,
    _is_integer,
    _listing,
)
from geoseg.raster.scene import open_scene
from geoseg.raster.tiling import TileGrid

__all__ = [
    "DEFAULT_TOLERANCE",
    "RgbMap",
    "RasterLabels",
    "validate_rgb_map",
    "decode_rgb_mask",
    "decode_index_mask",
    "read_mask_png",
]

DEFAULT_TOLERANCE: Final[float] = 60.0
"""Largest Euclidean RGB distance between a mask pixel and its nearest ``rgb_map`` colour."""
_SCAN_TILE: Final = 1024  # window side used to check a whole label raster block by block
RgbMap = Mapping[tuple[int, int, int], int]


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
