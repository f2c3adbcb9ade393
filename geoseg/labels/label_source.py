"""What every kind of labels gives: class ids per window of the scene grid.

:class:`LabelSource` is the window reader that vector layers (:mod:`geoseg.labels.label_vectors`)
and label rasters (:mod:`geoseg.labels.label_rasters`) implement; :data:`NO_LABEL` marks pixels
without a label. The checks and message helpers both kinds share live here too (their
leading underscore: for geoseg's label modules only). Open labels with
:func:`geoseg.labels.reader.open_labels`.

This module never imports TensorFlow.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from types import TracebackType
from typing import Final

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.io import DatasetReader
from rasterio.windows import Window

from geoseg.errors import ConfigError
from geoseg.raster.tiling import pad_to_tile

__all__ = ["NO_LABEL", "LabelSource", "PathLike", "label_fraction"]

NO_LABEL: Final[int] = 255
"""Class id of pixels that have no label; class ids are ``0 .. num_classes - 1 < 255``."""
_MAX_LISTED: Final = 8  # offending values/colours named in an error message
PathLike = str | os.PathLike[str]


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ConfigError(f"num_classes: must be an integer, got {num_classes!r}")
    if not 2 <= num_classes <= NO_LABEL:
        raise ConfigError(
            f"num_classes: must be 2..{NO_LABEL} (background included), got {num_classes}"
        )


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _listing(values: Iterable[object]) -> str:
    items = list(values)
    shown = ", ".join(str(v) for v in items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


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

        Padding is :func:`geoseg.raster.tiling.pad_to_tile`, the reflect padding that
        :func:`geoseg.raster.tiling.read_tile` applies to the image: a padded image pixel mirrors a
        scene pixel, and the padded label mirrors that pixel's label, so image and labels
        agree pixel for pixel and no class is invented. ``read_tile``'s ``valid`` is False on
        the padding; mask the loss and metrics with it to count each scene pixel once.

        Parameters
        ----------
        window : Window
            A window inside the scene, at most ``tile_size`` on each side (a tile's window of a
            :class:`geoseg.raster.tiling.TileGrid` over the scene).
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


def label_fraction(labels: np.ndarray, valid: np.ndarray) -> float:
    """Share of foreground (any class but 0) among the valid, labelled pixels of a tile.

    Parameters
    ----------
    labels : ndarray of uint8, shape (height, width)
        Class ids as returned by :meth:`LabelSource.read`.
    valid : ndarray of bool, shape (height, width)
        Pixels with image data (the ``valid`` of :func:`geoseg.raster.tiling.read_tile`).

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
