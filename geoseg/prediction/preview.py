"""Side-by-side previews: image | truth | prediction | polygons, for a window of a scene.

Rasters are read decimated (``out_shape``) so a preview of a whole large scene costs a few
megabytes, never the scene. Panels share map coordinates, so polygons from a vector file are
drawn where they belong. matplotlib (Agg backend) is imported only when a preview is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from geoseg.errors import InputError
from geoseg.raster.display import display_image
from geoseg.raster.outputs import atomic_output
from geoseg.raster.scene import open_scene
from geoseg.vectors.vector_formats import data_layer

__all__ = ["render_preview"]

LANDSLIDE_RGBA = (1.0, 0.1, 0.05, 0.55)
"""Overlay colour of landslide pixels: red, semi-transparent."""


@dataclass(frozen=True)
class _View:
    window: Window
    shape: tuple[int, int]
    extent: tuple[float, float, float, float]  # left, right, bottom, top (matplotlib order)


def _view(src: rasterio.io.DatasetReader, window: Window | None, max_size: int) -> _View:
    window = window or Window(0, 0, src.width, src.height)
    full = Window(0, 0, src.width, src.height)
    try:
        window = window.intersection(full)
    except rasterio.errors.WindowError as exc:
        raise InputError(f"{src.name}: the preview window lies outside the scene") from exc
    scale = min(1.0, max_size / max(window.width, window.height))
    shape = (max(1, round(window.height * scale)), max(1, round(window.width * scale)))
    left, bottom, right, top = window_bounds(window, src.transform)
    return _View(window, shape, (left, right, bottom, top))


def _display_rgb(src: rasterio.io.DatasetReader, view: _View, bands: Sequence[int] | None
                 ) -> np.ndarray:
    """The window as 0-1 RGB, pixels without data white."""
    indexes = list(bands) if bands else list(src.indexes[:3])
    data = src.read(indexes, window=view.window, out_shape=(len(indexes), *view.shape),
                    resampling=Resampling.average, masked=True)
    valid = np.asarray(~np.ma.getmaskarray(data).any(axis=0), dtype=bool)
    rgb = display_image(np.moveaxis(data.data, 0, -1), valid,
                        eight_bit=src.dtypes[0] == "uint8")
    rgb[~valid] = 1.0
    return rgb


def _read_classes(path: str | os.PathLike[str], view: _View, grid: rasterio.io.DatasetReader
                  ) -> np.ndarray:
    with open_scene(path) as src:
        if (src.width, src.height, src.transform) != (grid.width, grid.height, grid.transform):
            raise InputError(f"{path}: not on the scene's grid; predict or rasterise it on the "
                             "scene first")
        return src.read(1, window=view.window, out_shape=view.shape,
                        resampling=Resampling.nearest)


def _overlay(ax: object, classes: np.ndarray, view: _View) -> None:
    rgba = np.zeros((*classes.shape, 4), dtype=np.float32)
    rgba[(classes >= 1) & (classes != 255)] = LANDSLIDE_RGBA
    ax.imshow(rgba, extent=view.extent, interpolation="nearest")  # type: ignore[attr-defined]


def render_preview(
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    truth_path: str | os.PathLike[str] | None = None,
    mask_path: str | os.PathLike[str] | None = None,
    polygons_path: str | os.PathLike[str] | None = None,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    max_size: int = 1024,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Draw a PNG with the scene and whatever of truth, prediction and polygons is given.

    Parameters
    ----------
    scene_path : path
        The scene; its first three bands (or ``bands``) are shown as RGB.
    out_path : path
        PNG to write.
    truth_path : path, optional
        Reference labels: a class raster on the scene grid, or a vector file (outlines).
    mask_path : path, optional
        Predicted class mask on the scene grid (``geoseg predict`` output).
    polygons_path : path, optional
        Predicted polygons (``geoseg vectorize`` output), drawn as outlines.
    window : Window, optional
        Part of the scene to show; the whole scene by default.
    bands : sequence of int, optional
        1-based bands to show as RGB.
    max_size : int
        Longest side of each panel in pixels (the scene is read decimated to fit).
    title : str, optional
        Figure title.
    overwrite : bool
        Replace an existing PNG.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    InputError
        Unreadable inputs, rasters off the scene grid, or a window outside the scene.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with open_scene(scene_path) as src:
        view = _view(src, window, max_size)
        rgb = _display_rgb(src, view, bands)
        truth_is_raster = truth_path is not None and Path(truth_path).suffix.lower() in (
            ".tif", ".tiff", ".vrt", ".png", ".img")
        truth = _read_classes(truth_path, view, src) if truth_is_raster else None  # type: ignore[arg-type]
        predicted = _read_classes(mask_path, view, src) if mask_path else None
        crs = src.crs
    left, right, bottom, top = view.extent
    bbox = (left, bottom, right, top)
    panels: list[tuple[str, np.ndarray | None, gpd.GeoDataFrame | None]] = [("image", None, None)]
    if truth_path is not None:
        vectors = None if truth_is_raster else _read_vectors(truth_path, bbox, crs)
        panels.append(("truth", truth, vectors))
    if mask_path is not None:
        panels.append(("prediction", predicted, None))
    if polygons_path is not None:
        panels.append(("polygons", None, _read_vectors(polygons_path, bbox, crs)))

    figure = Figure(figsize=(4.2 * len(panels), 4.6), dpi=120)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, classes, vectors) in zip(axes, panels, strict=True):
        ax.imshow(rgb, extent=view.extent, interpolation="nearest")
        if classes is not None:
            _overlay(ax, classes, view)
        if vectors is not None and len(vectors):
            vectors.boundary.plot(ax=ax, color="yellow" if name == "polygons" else "red",
                                  linewidth=0.8)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    inputs = [p for p in (scene_path, truth_path, mask_path, polygons_path) if p is not None]
    with atomic_output(out_path, overwrite, inputs) as tmp:
        figure.savefig(tmp, format="png")
    return Path(out_path)


def _read_vectors(path: str | os.PathLike[str], bbox: tuple[float, float, float, float],
                  crs: rasterio.crs.CRS | None) -> gpd.GeoDataFrame:
    if not Path(path).exists():
        raise InputError(f"{path}: file not found")
    try:
        frame = gpd.read_file(path, layer=data_layer(path))
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"{path}: not a vector file GDAL can read ({exc})") from exc
    if crs is not None and frame.crs is not None and frame.crs != crs:
        frame = frame.to_crs(crs)
    return frame.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
