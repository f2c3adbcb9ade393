"""What geoseg sees in a scene or a model: the facts ``geoseg info`` prints.

Describing a model reads only the settings stored in the ``.keras`` archive, so this module
never imports TensorFlow.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.model.bundled import bundled_name, card_facts, model_card, resolve_model
from geoseg.model.model_archive import is_model_file, read_settings
from geoseg.model.predictor import ModelSpec, file_digest
from geoseg.model.runtimes import INT8, cached_conversion
from geoseg.prediction.predict_options import PredictOptions, RunPlan, plan_run
from geoseg.raster.scene import data_bands, describe_validity, open_scene, read_window
from geoseg.raster.tiling import TileGrid, grid_size
from geoseg.settings import ModelSettings

__all__ = ["describe", "describe_scene", "describe_model"]


def describe_scene(
    path: str | os.PathLike[str], tile_size: int | None = None, overlap: int | None = None,
    prediction: RunPlan | None = None,
) -> dict[str, Any]:
    """Size, CRS, bands (with their colour interpretation), where validity comes from, how much
    of the scene holds data, and the tile grid of a raster at the given settings (else those
    of the model of ``prediction``); with the ``prediction`` of a run planned for its model
    (:func:`geoseg.prediction.predict_options.plan_run`), the windows that run would predict it in
    too.

    Raises
    ------
    InputError
        The file is not a readable raster.
    """
    tile_size, overlap = grid_size(tile_size, overlap,
                                   prediction.settings if prediction is not None else None)
    with open_scene(path) as src:
        grid = TileGrid.for_dataset(src, tile_size, overlap)
        crs = src.crs
        facts = {
            "path": str(path),
            "kind": "scene",
            "driver": src.driver,
            "size": f"{src.width} x {src.height} pixels",
            "bands": [f"{band} {colour.name}" + (f" ({description})" if description else "")
                      for band, colour, description
                      in zip(src.indexes, src.colorinterp, src.descriptions, strict=True)],
            "data bands": data_bands(src),
            "dtypes": sorted(set(src.dtypes)),
            "nodata": src.nodata,
            "validity from": describe_validity(src),
            "valid fraction": _valid_words(*valid_fraction(src)),
            "crs": crs.to_string() if crs else None,
            "pixel size": (abs(src.transform.a), abs(src.transform.e)),
            "bounds": tuple(round(v, 3) for v in src.bounds),
            "tiles": _grid_words(grid),
        }
        if prediction is not None:
            facts["prediction windows"] = _grid_words(prediction.grid(src))
        return facts


def _grid_words(grid: TileGrid) -> str:
    return (f"{len(grid)} ({grid.shape[0]} rows x {grid.shape[1]} columns) of "
            f"{grid.tile_size} px with {grid.overlap} px overlap")


def valid_fraction(dataset: rasterio.io.DatasetReader, view: int = 2048) -> tuple[float, int]:
    """The share of a scene's pixels that hold data, and the decimation it was measured at.

    A scene no larger than ``view`` pixels on each side is read whole (factor 1); a larger one
    through one decimated view of at most ``view`` pixels a side (nearest neighbour, from
    overviews where it has them), so ``geoseg info`` stays quick on a regional mosaic.
    """
    bands = data_bands(dataset) or list(dataset.indexes)
    factor = max(1, math.ceil(max(dataset.height, dataset.width) / view))
    shape = (math.ceil(dataset.height / factor), math.ceil(dataset.width / factor))
    window = Window(0, 0, dataset.width, dataset.height)
    valid = read_window(dataset, window, bands, out_shape=shape if factor > 1 else None)[1]
    return float(np.count_nonzero(valid)) / valid.size, factor


def _valid_words(fraction: float, factor: int) -> float | str:
    """The valid fraction as ``info`` shows it: exact, or saying the view it comes from."""
    rounded = round(fraction, 4)
    return rounded if factor == 1 else f"{rounded} (from a 1:{factor} view)"


def describe_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A geoseg model's stored settings (no TensorFlow needed), its int8 version if one was made
    (:mod:`geoseg.model.quantize`), and for a bundled model its name, its model card's facts
    (training data, terms, expected imagery, ...) and the card.

    ``threshold`` is the landslide probability threshold prediction uses by default, or
    ``None (most probable class)``; ``pixel_size_m``, ``band_stats`` (per model band, in
    words) and ``parent`` describe its training imagery and the model it was fine-tuned from
    (an ``imagery check`` note says when it knows nothing of its imagery). ``path`` may name
    a bundled model.

    Raises
    ------
    ModelError
        Not a geoseg ``.keras`` model.
    """
    path = resolve_model(path)
    settings = read_settings(path)
    facts: dict[str, Any] = {"path": str(path), "kind": "model"}
    name = bundled_name(path)
    if name is not None:
        facts["bundled as"] = name
    facts.update(settings.to_dict())
    if settings.threshold is None:
        facts["threshold"] = "None (most probable class)"
    facts.update(_imagery_words(settings))
    int8 = cached_conversion(path, file_digest(path), INT8)
    facts["int8 version"] = str(int8) if int8 else "none (geoseg quantize makes one)"
    card = model_card(path)
    if card is not None:
        facts.update(card_facts(card))
        facts["model card"] = str(card)
    return facts


def _imagery_words(settings: ModelSettings) -> dict[str, Any]:
    """The imagery facts and parent of a model's settings, in words."""
    words: dict[str, Any] = {
        "pixel_size_m": settings.pixel_size_m,
        "band_stats": "; ".join(
            f"{band}: 1-99% {stats.p1:g}-{stats.p99:g}, median {stats.p50:g}, mean "
            f"{stats.mean:.4g} +- {stats.std:.4g}"
            for band, stats in zip(settings.bands, settings.band_stats, strict=True))
        if settings.band_stats else None,
        "parent": f"{settings.parent.name} (sha256 {settings.parent.digest[:12]}...)"
        if settings.parent else "None (trained from scratch)",
    }
    if settings.pixel_size_m is None and settings.band_stats is None:
        words["imagery check"] = ("none: the model does not know its training imagery (saved "
                                  "before geoseg recorded it), so predict cannot warn about "
                                  "scenes unlike it")
    return words


def describe(
    path: str | os.PathLike[str], tile_size: int | None = None, overlap: int | None = None,
    model: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """:func:`describe_model` for ``.keras`` files and bundled models' names,
    :func:`describe_scene` for anything else.

    A scene's tiles are counted with ``tile_size`` and ``overlap``, else those of ``model``,
    else the defaults (:func:`geoseg.raster.tiling.grid_size`). With a ``model``, the windows its
    default backend predicts the scene in are counted too (``--window auto``).
    """
    if is_model_file(resolve_model(path)):
        return describe_model(path)
    if model is None:
        return describe_scene(path, tile_size, overlap)
    spec = ModelSpec(Path(model))
    prediction = plan_run(PredictOptions(overlap=overlap), read_settings(spec.path), spec)
    return describe_scene(path, tile_size, overlap, prediction)
