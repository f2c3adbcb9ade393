"""Tiled prediction of a whole scene, streamed: read tiles, infer, blend, write blocks.

The scene is never read whole. Tiles come from :mod:`geoseg.tiling` in row order, a reader
thread prefetches them, the model runs on fixed-size batches (which may span tile rows), the
class probabilities are blended in a :class:`~geoseg.blending.RowBandAccumulator`, and every
band of rows that no later tile can touch is finished and handed to a writer thread. Memory is
set by the tiles in flight and one band of rows, not by the scene height.

The model is any callable mapping a float32 batch ``(n, size, size, bands)`` to probabilities
``(n, size, size, classes)``: :class:`geoseg.inference.KerasPredictor` in practice, a plain numpy
function in tests. This module never imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from geoseg.blending import RowBandAccumulator, weight_window
from geoseg.errors import InputError
from geoseg.outputs import atomic_output, check_output_path
from geoseg.scene import open_scene, select_bands
from geoseg.settings import ModelSettings
from geoseg.tiling import Tile, TileGrid, read_tile

__all__ = [
    "BatchPredictor",
    "PredictionResult",
    "predict_scene",
    "MASK_NODATA",
    "PROBABILITY_NODATA",
    "CLASS_NAMES_TAG",
]

log = logging.getLogger(__name__)

MASK_NODATA = 255
"""Class-mask value for pixels without scene data."""
PROBABILITY_NODATA = 255
"""uint8 probability value for pixels without scene data (probabilities use 0..254)."""
PROBABILITY_SCALE = 254
"""uint8 probabilities store ``round(p * 254)``; the GeoTIFF's scale factor undoes it."""
CLASS_NAMES_TAG = "GEOSEG_CLASS_NAMES"
"""Dataset tag holding the JSON list of class names, read back by the vectoriser."""
BLOCK = 256
"""Block size of the output GeoTIFFs; bands of rows are flushed in multiples of it."""

ProbabilityDtype = Literal["uint8", "float32"]


class BatchPredictor(Protocol):
    """What :func:`predict_scene` needs from a model."""

    batch_size: int

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Map ``(n, size, size, bands)`` float32 to ``(n, size, size, classes)`` float32."""
        ...


@dataclass(frozen=True)
class PredictionResult:
    """What a prediction run did."""

    mask_path: Path
    probabilities_path: Path | None
    tiles_total: int
    tiles_predicted: int
    seconds: float
    foreground_pixels: int


def _prefetched(
    executor: ThreadPoolExecutor, jobs: Iterator[Callable[[], object]], depth: int
) -> Iterator[object]:
    """Run ``jobs`` on ``executor`` keeping up to ``depth`` ahead; yield results in order."""
    pending: deque[Future[object]] = deque()
    for job in jobs:
        pending.append(executor.submit(job))
        if len(pending) > depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _classify(
    probs: np.ndarray, valid: np.ndarray, threshold: float | None
) -> np.ndarray:
    """Class ids from probabilities (K, h, w): argmax, or foreground >= threshold."""
    probs = np.nan_to_num(probs, nan=0.0)
    if probs.shape[0] == 1:
        classes = probs[0] >= (0.5 if threshold is None else threshold)
    elif threshold is not None:
        classes = probs[1] >= threshold
    else:
        classes = np.argmax(probs, axis=0)
    mask = classes.astype(np.uint8)
    mask[~valid] = MASK_NODATA
    return mask


def _probability_band(probs: np.ndarray, valid: np.ndarray, dtype: ProbabilityDtype) -> np.ndarray:
    if dtype == "float32":
        out = probs.astype(np.float32, copy=True)
        out[:, ~valid] = np.nan
        return out
    out = np.rint(np.nan_to_num(probs, nan=0.0) * PROBABILITY_SCALE).astype(np.uint8)
    out[:, ~valid] = PROBABILITY_NODATA
    return out


def _output_profile(src: rasterio.io.DatasetReader, count: int, dtype: str, nodata: float
                    ) -> dict[str, object]:
    return {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": count,
        "dtype": dtype,
        "crs": src.crs,
        "transform": src.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }


def _describe_outputs(
    mask_dst: rasterio.io.DatasetWriter,
    prob_dst: rasterio.io.DatasetWriter | None,
    settings: ModelSettings,
    dtype: ProbabilityDtype,
) -> None:
    names = json.dumps(settings.class_names)
    mask_dst.update_tags(**{CLASS_NAMES_TAG: names})
    mask_dst.set_band_description(1, "class")
    if prob_dst is not None:
        prob_dst.update_tags(**{CLASS_NAMES_TAG: names})
        for band, name in enumerate(settings.class_names, start=1):
            prob_dst.set_band_description(band, f"probability {name}")
        if dtype == "uint8":
            prob_dst.scales = [1.0 / PROBABILITY_SCALE] * settings.num_classes
            prob_dst.offsets = [0.0] * settings.num_classes


def _band_height(grid: TileGrid, batch_size: int) -> int:
    """Rows the accumulator must hold: unflushed block remainder plus all tiles in flight."""
    rows_in_flight = math.ceil(batch_size / grid.shape[1]) + 1
    stride = grid.tile_size - grid.overlap
    needed = BLOCK + grid.tile_size + stride * rows_in_flight
    return min(needed, grid.height + BLOCK)


def predict_scene(
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    predictor: BatchPredictor,
    settings: ModelSettings,
    *,
    overlap: int | None = None,
    bands: Sequence[int] | None = None,
    threshold: float | None = None,
    probabilities_path: str | os.PathLike[str] | None = None,
    probability_dtype: ProbabilityDtype = "uint8",
    cog: bool = False,
    overwrite: bool = False,
    require_crs: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PredictionResult:
    """Predict a whole scene tile by tile and write a class mask GeoTIFF aligned with it.

    Parameters
    ----------
    scene_path : path
        Input raster (any GDAL format; GeoTIFF in practice).
    out_path : path
        Class mask GeoTIFF to write: uint8 class ids, nodata 255 where the scene has none; same
        CRS, transform and size as the scene; tiled 256x256, deflate.
    predictor : BatchPredictor
        The model as a batch function (see module docstring).
    settings : ModelSettings
        The model's settings: tile size, bands, classes, recommended overlap.
    overlap : int, optional
        Tile overlap in pixels; the model's recommended overlap by default.
    bands : sequence of int, optional
        1-based scene bands in model order; the model's bands by default.
    threshold : float, optional
        Foreground probability threshold (models with 1 or 2 classes); argmax by default.
    probabilities_path : path, optional
        Also write per-class probabilities: one band per class.
    probability_dtype : {"uint8", "float32"}
        uint8 stores ``round(p * 254)`` with a GDAL scale of 1/254 and nodata 255; float32
        stores p with nodata NaN.
    cog : bool
        Write Cloud Optimized GeoTIFFs (with overviews) instead of plain tiled GeoTIFFs.
    overwrite : bool
        Replace existing outputs.
    require_crs : bool
        Refuse scenes without a CRS instead of warning.
    progress : callable, optional
        Called as ``progress(tiles_just_finished, tiles_total)`` while tiles finish.

    Returns
    -------
    PredictionResult

    Raises
    ------
    InputError
        Unreadable scene, band mismatch, bad threshold.
    OutputError, OutputExistsError
        Outputs cannot be written, or exist without ``overwrite``.
    """
    started = time.perf_counter()
    if threshold is not None:
        if settings.num_classes > 2:
            raise InputError("--threshold applies to models with one or two classes; "
                             f"this model has {settings.num_classes}")
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"--threshold must be between 0 and 1, got {threshold}")
    if probability_dtype not in ("uint8", "float32"):
        raise InputError(f"probability dtype must be uint8 or float32, got {probability_dtype!r}")
    mask_final = check_output_path(out_path, overwrite)
    prob_final = (
        check_output_path(probabilities_path, overwrite) if probabilities_path else None
    )
    if prob_final is not None and prob_final.resolve() == mask_final.resolve():
        raise InputError("the probabilities output must differ from the mask output")
    overlap = settings.overlap if overlap is None else overlap
    tile_size = settings.image_size

    with ExitStack() as stack:
        src = stack.enter_context(open_scene(scene_path, require_crs=require_crs))
        band_list = select_bands(src, settings.bands, bands)
        try:
            grid = TileGrid.for_dataset(src, tile_size, overlap)
        except ValueError as exc:
            raise InputError(f"--overlap: {exc}") from exc
        mask_tmp = stack.enter_context(atomic_output(mask_final, overwrite))
        prob_tmp = (
            stack.enter_context(atomic_output(prob_final, overwrite)) if prob_final else None
        )
        stats = _run(src, grid, band_list, predictor, settings, threshold, probability_dtype,
                     _staging(mask_tmp, cog), _staging(prob_tmp, cog) if prob_tmp else None,
                     progress)
        if cog:
            _to_cog(mask_tmp)
            if prob_tmp is not None:
                _to_cog(prob_tmp)
    return PredictionResult(
        mask_path=mask_final,
        probabilities_path=prob_final,
        tiles_total=len(grid),
        tiles_predicted=stats[0],
        seconds=time.perf_counter() - started,
        foreground_pixels=stats[1],
    )


def _staging(final_tmp: Path, cog: bool) -> Path:
    """Where the plain GeoTIFF is written: the output itself, or a stage file before COG."""
    return final_tmp.with_name(final_tmp.name + ".stage.tif") if cog else final_tmp


def _to_cog(final_tmp: Path) -> None:
    stage = _staging(final_tmp, True)
    rasterio.shutil.copy(stage, final_tmp, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER",
                         OVERVIEW_RESAMPLING="NEAREST")
    stage.unlink()


def _run(
    src: rasterio.io.DatasetReader,
    grid: TileGrid,
    bands: list[int],
    predictor: BatchPredictor,
    settings: ModelSettings,
    threshold: float | None,
    probability_dtype: ProbabilityDtype,
    mask_path: Path,
    prob_path: Path | None,
    progress: Callable[[int, int], None] | None,
) -> tuple[int, int]:
    """The streaming loop; returns (tiles predicted, foreground pixels)."""
    tile_size = grid.tile_size
    batch_size = max(1, int(predictor.batch_size))
    accumulator = RowBandAccumulator(
        grid.width, settings.num_classes, _band_height(grid, batch_size),
        weight_window(tile_size, grid.overlap),
    )
    row_offsets = grid.row_offsets
    foreground = 0
    predicted = 0

    with ExitStack() as stack:
        mask_dst = stack.enter_context(
            rasterio.open(mask_path, "w", **_output_profile(src, 1, "uint8", MASK_NODATA))
        )
        prob_dst = None
        if prob_path is not None:
            nodata = PROBABILITY_NODATA if probability_dtype == "uint8" else float("nan")
            prob_dst = stack.enter_context(rasterio.open(
                prob_path, "w",
                **_output_profile(src, settings.num_classes, probability_dtype, nodata),
            ))
        _describe_outputs(mask_dst, prob_dst, settings, probability_dtype)
        reader = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="geoseg-read"))
        writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="geoseg-write"))
        writes: deque[Future[int]] = deque()

        def write_rows(until: int) -> None:
            nonlocal foreground
            row_off, probs, valid = accumulator.flush(until)
            if probs.shape[1] == 0:
                return

            def job() -> int:
                mask = _classify(probs, valid, threshold)
                window = Window(0, row_off, grid.width, mask.shape[0])
                mask_dst.write(mask, 1, window=window)
                if prob_dst is not None:
                    prob_dst.write(_probability_band(probs, valid, probability_dtype),
                                   window=window)
                return int(np.count_nonzero((mask != 0) & (mask != MASK_NODATA)))

            writes.append(writer.submit(job))
            while len(writes) > 2:
                foreground += writes.popleft().result()

        def reads() -> Iterator[Callable[[], object]]:
            for tile in grid:
                yield lambda tile=tile: (tile, *read_tile(src, tile, tile_size, bands))

        batch: list[tuple[Tile, np.ndarray, np.ndarray]] = []

        def run_batch() -> None:
            nonlocal predicted
            images = np.stack([image for _, image, _ in batch])
            probs = predictor(images)
            for (tile, _, valid), tile_probs in zip(batch, probs, strict=True):
                accumulator.add(tile.window, tile_probs, valid)
            predicted += len(batch)
            if progress is not None:
                progress(len(batch), len(grid))
            batch.clear()

        def flush_before(row: int) -> None:
            """Finish the rows above grid row ``row``: no tile still to come touches them."""
            ready = row_offsets[row]
            aligned = ready - ready % BLOCK
            if aligned > accumulator.top:
                write_rows(aligned)

        for item in _prefetched(reader, reads(), depth=2 * batch_size):
            tile, image, valid = item  # type: ignore[misc]
            if not valid.any():  # nodata only: nothing to predict
                if progress is not None:
                    progress(1, len(grid))
                continue
            bottom = int(tile.window.row_off + tile.window.height)
            if batch and bottom > accumulator.top + accumulator.band_height:
                run_batch()
            if not batch:
                flush_before(tile.row)
            batch.append((tile, image, valid))
            if len(batch) == batch_size:
                run_batch()
        if batch:
            run_batch()
        write_rows(grid.height)
        while writes:
            foreground += writes.popleft().result()
    return predicted, foreground
