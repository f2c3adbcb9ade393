"""Opening input scenes with checks that turn GDAL's complaints into one-line errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.errors import RasterioIOError

from geoseg.errors import InputError

__all__ = ["open_scene", "select_bands"]

log = logging.getLogger(__name__)


def open_scene(
    path: str | os.PathLike[str], require_crs: bool = False
) -> rasterio.io.DatasetReader:
    """Open a raster for reading, checking it is one GDAL can read and that it has a size.

    GDAL virtual paths (``/vsizip/...``, ``/vsicurl/...``) are passed through unchecked.

    Raises
    ------
    InputError
        Missing file, a folder, not a raster, empty, or no CRS while ``require_crs``.
    """
    text = os.fspath(path)
    if not text.startswith("/vsi"):
        source = Path(text)
        if not source.exists():
            raise InputError(f"{source}: file not found")
        if source.is_dir():
            raise InputError(f"{source}: is a folder; give a raster file such as scene.tif")
    try:
        dataset = rasterio.open(text)
    except RasterioIOError as exc:
        raise InputError(
            f"{text}: not a raster GDAL can read ({str(exc).splitlines()[0]}); "
            "check the file is a complete GeoTIFF"
        ) from exc
    if dataset.crs is None:
        if require_crs:
            dataset.close()
            raise InputError(f"{text}: has no CRS; assign one (gdal_edit.py -a_srs) or drop "
                             "--require-crs")
        log.warning("%s has no CRS: outputs will be in pixel coordinates", text)
    return dataset


def select_bands(
    dataset: rasterio.io.DatasetReader,
    model_bands: Sequence[int],
    user_bands: Sequence[int] | None = None,
) -> list[int]:
    """The 1-based bands to read for a model, checked against the scene.

    Without ``user_bands`` the scene must have exactly as many bands as the model takes (then
    the model's own band list is used); with them, their count must match the model's.

    Raises
    ------
    InputError
        Band count mismatch or a band number beyond the scene's.
    """
    name = dataset.name
    wanted = len(model_bands)
    if user_bands is None:
        if dataset.count != wanted:
            raise InputError(
                f"{name}: has {dataset.count} bands but the model takes {wanted} "
                f"(bands {','.join(map(str, model_bands))}); choose them with --bands"
            )
        bands = list(model_bands)
    else:
        bands = list(user_bands)
        if len(bands) != wanted:
            raise InputError(
                f"--bands lists {len(bands)} bands but the model takes {wanted}"
            )
    beyond = [b for b in bands if not 1 <= b <= dataset.count]
    if beyond:
        raise InputError(f"{name}: has {dataset.count} bands; band {beyond[0]} does not exist")
    return bands
