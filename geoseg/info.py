"""What geoseg sees in a scene or a model: the facts ``geoseg info`` prints.

Describing a model reads only the settings stored in the ``.keras`` archive, so this module
never imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geoseg.model_file import is_model_file, read_settings
from geoseg.scene import open_scene
from geoseg.tiling import TileGrid

__all__ = ["describe", "describe_scene", "describe_model"]


def describe_scene(
    path: str | os.PathLike[str], tile_size: int = 512, overlap: int = 64
) -> dict[str, Any]:
    """Size, CRS, bands, nodata and the tile grid of a raster at the given settings.

    Raises
    ------
    InputError
        The file is not a readable raster.
    """
    with open_scene(path) as src:
        grid = TileGrid.for_dataset(src, tile_size, overlap)
        crs = src.crs
        return {
            "path": str(path),
            "kind": "scene",
            "driver": src.driver,
            "size": f"{src.width} x {src.height} pixels",
            "bands": src.count,
            "dtypes": sorted(set(src.dtypes)),
            "band descriptions": [d or "-" for d in src.descriptions],
            "colour interpretation": [c.name for c in src.colorinterp],
            "nodata": src.nodata,
            "crs": crs.to_string() if crs else None,
            "pixel size": (abs(src.transform.a), abs(src.transform.e)),
            "bounds": tuple(round(v, 3) for v in src.bounds),
            "tiles": f"{len(grid)} ({grid.shape[0]} rows x {grid.shape[1]} columns) of "
                     f"{tile_size} px with {overlap} px overlap",
        }


def describe_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A geoseg model's stored settings (no TensorFlow needed).

    ``threshold`` is the landslide probability threshold prediction uses by default, or
    ``None (most probable class)``.

    Raises
    ------
    ModelError
        Not a geoseg ``.keras`` model.
    """
    settings = read_settings(path)
    facts: dict[str, Any] = {"path": str(path), "kind": "model"}
    facts.update(settings.to_dict())
    if settings.threshold is None:
        facts["threshold"] = "None (most probable class)"
    return facts


def describe(
    path: str | os.PathLike[str], tile_size: int = 512, overlap: int = 64
) -> dict[str, Any]:
    """:func:`describe_model` for ``.keras`` files, :func:`describe_scene` for anything else."""
    if is_model_file(Path(path)):
        return describe_model(path)
    return describe_scene(path, tile_size, overlap)
