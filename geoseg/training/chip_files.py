"""Writing training chips and their index: GeoTIFF or reference-style PNG chips, index.gpkg.

Chips are written to a hidden staging folder inside the chip folder and moved into place
when every chip is written; the index is written last, atomically, so a folder without it is
incomplete.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import CRS

from geoseg.errors import OutputError
from geoseg.labels.reader import NO_LABEL
from geoseg.raster.outputs import atomic_output, temporary_sibling
from geoseg.raster.scene import quiet_georeference
from geoseg.raster.tiling import read_tile
from geoseg.training.chip_plan import Chip, ChipScene
from geoseg.vectors.vector_formats import steady_geopackage

__all__ = ["CHIP_FOLDERS", "INDEX_NAME", "PNG_RGB_MAP", "write_chip_files", "write_index"]

PNG_RGB_MAP: Final[dict[tuple[int, int, int], int]] = {(0, 0, 0): 0, (255, 0, 0): 1}
"""Mask colour of each class in PNG chips, as in the reference dataset."""

INDEX_NAME: Final = "index.gpkg"
"""The chip index, in the chip folder."""
CHIP_FOLDERS: Final = ("images", "labels")
"""The folders of image and label chips, in the chip folder."""

Progress = Callable[[int, int], None]


def write_chip_files(
    scenes: list[ChipScene],
    chips: list[Chip],
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
        for folder in CHIP_FOLDERS:
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
            for folder in CHIP_FOLDERS:
                if (out / folder).is_dir():
                    shutil.rmtree(out / folder)
        for folder in CHIP_FOLDERS:
            os.replace(staging / folder, out / folder)
    except OSError as exc:
        raise OutputError(f"{out}: chips could not be written ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no empty folder behind


def _write_tif_chip(
    staging: Path, chip: Chip, scene: ChipScene, image: np.ndarray, valid: np.ndarray,
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


def write_index(
    path: Path,
    scenes: list[ChipScene],
    chips: list[Chip],
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
        steady_geopackage(tmp)
