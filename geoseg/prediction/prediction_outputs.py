"""The outputs of a prediction run: the class mask and probability GeoTIFFs written block row
by block row (:class:`Outputs`), whether the rows come from the model, the resume journal or
a resampled run's probabilities, and the one closing sequence of every run
(:func:`write_outputs`: temporary files, post-processing, Cloud Optimized GeoTIFFs, the QGIS
style, then the move into place). This module never imports TensorFlow."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from geoseg import __version__
from geoseg.errors import OutputError
from geoseg.prediction.predict_options import ProbabilityDtype, RunPlan
from geoseg.prediction.prediction_run import OpenRun, stream_options
from geoseg.prediction.uncertainty import (
    UNCERTAINTY_TAG,
    UncertaintyKind,
    predictive_entropy,
    uncertainty_style,
)
from geoseg.raster.journal import CONTINUE, FinishedRows, PredictionJournal
from geoseg.raster.mask_format import (
    CLASS_NAMES_TAG,
    MASK_NODATA,
    MODEL_TAG,
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    SETTINGS_TAG,
    classify,
)
from geoseg.raster.outputs import atomic_output, output_errors, retried_by
from geoseg.raster.resample import on_scene_grid
from geoseg.raster.scene import read_window
from geoseg.raster.styles import class_colours, raster_style, write_style
from geoseg.raster.tiling import TileGrid, input_cache_bytes
from geoseg.settings import ModelSettings

__all__ = [
    "HIDDEN_PROBABILITIES", "OUTPUT_BLOCK", "Outputs", "PredictionResult", "bound_block_cache",
    "output_bands", "probability_band", "write_outputs",
]


OUTPUT_BLOCK = 256
"""Block size of the output GeoTIFFs; finished rows are written in block rows of it."""
HIDDEN_PROBABILITIES = ".probabilities-for-postprocessing.tif"
"""The probabilities a post-processed run writes beside its mask when none are asked for."""
HIDDEN_SPREAD = ".tta-spread-for-polygons.tif"
"""The spread across TTA a run writes beside its mask for the polygons' ``tta_spread`` when
no uncertainty output is asked for (:attr:`OpenRun.uncertainty_hidden`)."""
RESAMPLED_MASK = ".mask-resampled.tif"
RESAMPLED_PROBABILITIES = ".probabilities-resampled.tif"
"""What the stream of a run at another pixel size than the scene's writes beside its mask."""


@dataclass(frozen=True)
class PredictionResult:
    """What a prediction run did. ``tiles_total`` and ``tiles_predicted`` count the grid's
    windows (the model's tiles with ``window="tile"``): all of them, and those the model ran
    on."""

    mask_path: Path
    probabilities_path: Path | None
    tiles_total: int
    tiles_predicted: int
    seconds: float
    foreground_pixels: int
    uncertainty_path: Path | None = None
    """The uncertainty raster written; under ``then``, also the hidden spread made for the
    polygons only (removed after it)."""


def probability_band(probs: np.ndarray, valid: np.ndarray, dtype: ProbabilityDtype) -> np.ndarray:
    nodata = np.nan if dtype == "float32" else PROBABILITY_NODATA
    if not valid.any():  # a part of the scene without data, as most of a sparse one
        return np.full(probs.shape, nodata, dtype=dtype)
    if dtype == "float32":
        out = probs.astype(np.float32, copy=True)
    else:
        out = np.rint(np.nan_to_num(probs, nan=0.0) * PROBABILITY_SCALE).astype(np.uint8)
    np.copyto(out, nodata, where=~valid)  # each band; many times faster than out[:, ~valid]
    return out


def output_bands(run: OpenRun, blended: np.ndarray, valid: np.ndarray, num_classes: int,
                 dtype: ProbabilityDtype) -> np.ndarray | None:
    """What the stream hands on for the probability and uncertainty outputs of a finished
    piece (``blended``: its blended channels, the spread across TTA after the class
    probabilities when the run writes it): the probabilities' bands when the run keeps them,
    then the uncertainty's (:mod:`geoseg.prediction.uncertainty`) when asked for, in the
    probabilities' form; None when neither."""
    bands = []
    if run.keeps_probabilities:
        bands.append(probability_band(blended[:num_classes], valid, dtype))
    if run.uncertainty_kind is not None:
        values = blended[num_classes:] if run.spread else predictive_entropy(
            blended[:num_classes])[None]
        bands.append(probability_band(values, valid, dtype))
    if not bands:
        return None
    return bands[0] if len(bands) == 1 else np.concatenate(bands)


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
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        "compress": "deflate",
        "zlevel": 1,  # 8x less CPU than the default level 6, for files about 1/4 larger
        "BIGTIFF": "IF_SAFER",
    }


def _describe_outputs(
    mask_dst: rasterio.io.DatasetWriter,
    prob_dst: rasterio.io.DatasetWriter | None,
    settings: ModelSettings,
    dtype: ProbabilityDtype,
    model_name: str | None,
) -> None:
    """Class names, colours and the model's settings, for GDAL, QGIS and later geoseg runs.

    No timestamp is written: the same inputs and model give the same output bytes.
    """
    mask_names = settings.mask_class_names  # a sigmoid model's masks hold 0 and 1 too
    tags = {CLASS_NAMES_TAG: json.dumps(mask_names),
            MODEL_TAG: model_name or "", SETTINGS_TAG: json.dumps(settings.to_dict()),
            "GEOSEG_VERSION": __version__}
    mask_dst.update_tags(**tags)
    mask_dst.update_tags(1, **{f"CLASS_{i}": name for i, name in enumerate(mask_names)})
    mask_dst.set_band_description(
        1, "class: " + ", ".join(f"{i}={name}" for i, name in enumerate(mask_names))
    )
    mask_dst.write_colormap(1, class_colours(mask_names))
    if prob_dst is not None:
        prob_dst.update_tags(**tags)
        for band, name in enumerate(settings.class_names, start=1):
            prob_dst.set_band_description(band, f"probability {name}")
        if dtype == "uint8":
            prob_dst.scales = [1.0 / PROBABILITY_SCALE] * settings.num_classes
            prob_dst.offsets = [0.0] * settings.num_classes


def _describe_uncertainty(dst: rasterio.io.DatasetWriter, kind: UncertaintyKind,
                          dtype: ProbabilityDtype, model_name: str | None) -> None:
    """The uncertainty raster's measure (its tag, read back by the vectoriser), the model and,
    for uint8, the probabilities' scale."""
    dst.update_tags(**{UNCERTAINTY_TAG: kind, MODEL_TAG: model_name or "",
                       "GEOSEG_VERSION": __version__})
    dst.set_band_description(1, f"uncertainty: {kind}")
    if dtype == "uint8":
        dst.scales, dst.offsets = [1.0 / PROBABILITY_SCALE], [0.0]


class Outputs:
    """The class mask (and probability) GeoTIFFs of a run on ``src``'s grid, written block row
    by block row, top down: the one way outputs are written, whether rows come from the model,
    a journal or a resampled run's probabilities.

    The datasets close with ``stack``; :attr:`foreground` counts the foreground pixels written.
    """

    def __init__(self, stack: ExitStack, src: rasterio.io.DatasetReader, settings: ModelSettings,
                 opts: RunPlan, mask_tmp: Path, prob_tmp: Path | None,
                 model_file: str | os.PathLike[str] | None,
                 uncertainty: tuple[Path, UncertaintyKind] | None = None):
        self.width = src.width
        self.classes = settings.num_classes
        self.foreground = 0
        self.mask = stack.enter_context(rasterio.open(
            _staging(mask_tmp, opts.cog), "w", **_output_profile(src, 1, "uint8", MASK_NODATA)
        ))
        self.probabilities = None
        if prob_tmp is not None:
            nodata = PROBABILITY_NODATA if opts.probability_dtype == "uint8" else float("nan")
            self.probabilities = stack.enter_context(rasterio.open(
                _staging(prob_tmp, opts.cog), "w",
                **_output_profile(src, settings.num_classes, opts.probability_dtype, nodata),
            ))
        model_name = Path(model_file).name if model_file is not None else None
        _describe_outputs(self.mask, self.probabilities, settings, opts.probability_dtype,
                          model_name)
        self.uncertainty = None
        if uncertainty is not None:
            nodata = PROBABILITY_NODATA if opts.probability_dtype == "uint8" else float("nan")
            self.uncertainty = stack.enter_context(rasterio.open(
                _staging(uncertainty[0], opts.cog), "w",
                **_output_profile(src, 1, opts.probability_dtype, nodata)))
            _describe_uncertainty(self.uncertainty, uncertainty[1], opts.probability_dtype,
                                  model_name)

    def write(self, row_off: int, mask: np.ndarray, band: np.ndarray | None) -> None:
        """Write finished rows from scene row ``row_off`` on (``band``: as
        :func:`output_bands` gives them)."""
        window = Window(0, row_off, self.width, mask.shape[0])
        self.mask.write(mask, 1, window=window)
        if self.probabilities is not None and band is not None:
            self.probabilities.write(band[:self.classes], window=window)
        if self.uncertainty is not None and band is not None:
            self.uncertainty.write(band[-1:], window=window)
        self.foreground += np.count_nonzero(mask) - np.count_nonzero(mask == MASK_NODATA)

    def copy(self, strips: Sequence[FinishedRows]) -> None:
        """Write saved strips, reading one at a time."""
        for strip in strips:
            self.write(strip.row_off, *strip.read())


def write_outputs(
    run: OpenRun,
    settings: ModelSettings,
    opts: RunPlan,
    model_file: str | os.PathLike[str] | None,
    rows: Callable[[Outputs], int],
    *,
    tiles_total: int,
    started: float,
    then: Callable[[PredictionResult], None] | None,
    keep_journal: bool,
) -> PredictionResult:
    """The closing sequence of every prediction run, whole
    (:func:`geoseg.prediction.predict.predict_scene`) or in bands
    (:meth:`geoseg.prediction.row_bands.BandedPrediction.assemble`): the outputs written under
    temporary names (``rows(outputs)`` writes the rows and returns the tiles predicted), then
    finished (:func:`_finish_outputs`: a resampled run put back on the scene's grid,
    post-processing, COG, the QGIS style), handed to ``then``, moved into place; the journal is
    removed last. Returns what the run did, with the outputs' final paths.

    On a failure the journal is kept when ``keep_journal`` (the bands' saved rows), else
    only after an interruption or an output that could not be written (:func:`_end_journal`).
    """
    with ExitStack() as stack:
        mask_tmp, prob_tmp = _temporary_outputs(stack, run, opts)
        unc_tmp = (stack.enter_context(atomic_output(run.uncertainty, opts.overwrite,
                                                     run.inputs))
                   if run.uncertainty is not None else
                   mask_tmp.with_name(HIDDEN_SPREAD) if run.uncertainty_hidden else None)
        stream_opts = stream_options(run, opts)
        bound_block_cache(stack, run, settings, stream_opts, outputs=True)
        try:
            with output_errors(run.mask, CONTINUE):
                with ExitStack() as files:
                    outputs = Outputs(files, run.src, settings, stream_opts,
                                      *_stream_outputs(run, mask_tmp, prob_tmp), model_file,
                                      _with_kind(unc_tmp, run.uncertainty_kind))
                    predicted = rows(outputs)
                foreground, prob_tmp = _finish_outputs(run, mask_tmp, prob_tmp, settings, opts,
                                                       model_file)
                if unc_tmp is not None and run.uncertainty_kind is not None:
                    _finish_uncertainty(unc_tmp, run.uncertainty_kind, opts,
                                        style=not run.uncertainty_hidden)
            made = PredictionResult(
                mask_path=mask_tmp,
                probabilities_path=prob_tmp,
                tiles_total=tiles_total,
                tiles_predicted=predicted,
                seconds=time.perf_counter() - started,
                foreground_pixels=outputs.foreground if foreground is None else foreground,
                uncertainty_path=unc_tmp,
            )
            if then is not None:
                with retried_by(CONTINUE):
                    then(made)
            if run.uncertainty_hidden and unc_tmp is not None:
                unc_tmp.unlink()  # not an output: made for the polygons only
        except BaseException as error:
            if not keep_journal:
                _end_journal(run.journal, error)
            raise
    run.journal.discard()
    return replace(made, mask_path=run.mask, probabilities_path=run.probabilities,
                   uncertainty_path=run.uncertainty)


def _with_kind(path: Path | None, kind: UncertaintyKind | None
               ) -> tuple[Path, UncertaintyKind] | None:
    return (path, kind) if path is not None and kind is not None else None


def _finish_uncertainty(unc_tmp: Path, kind: UncertaintyKind, opts: RunPlan,
                        style: bool) -> None:
    """The uncertainty raster as a Cloud Optimized GeoTIFF when asked, and its QGIS style
    (moved into place with it) unless not ``style`` (a hidden one)."""
    if opts.cog:
        _to_cog(unc_tmp)
    if opts.style and style:
        write_style(unc_tmp, uncertainty_style(kind), overwrite=True)


def _end_journal(journal: PredictionJournal, error: BaseException) -> None:
    """Remove the journal of a run that failed, unless ``resume`` can continue it: after an
    interruption (Ctrl-C, SIGTERM) or an output that could not be written (a full disk), the
    saved rows stay good."""
    if not isinstance(error, KeyboardInterrupt | OutputError):
        journal.discard()


def _temporary_outputs(stack: ExitStack, run: OpenRun, opts: RunPlan
                       ) -> tuple[Path, Path | None]:
    """Temporary paths of the run's outputs, moved into place when ``stack`` closes cleanly."""
    mask_tmp = stack.enter_context(atomic_output(run.mask, opts.overwrite, run.inputs))
    prob_tmp = (stack.enter_context(atomic_output(run.probabilities, opts.overwrite, run.inputs))
                if run.probabilities is not None else None)
    if prob_tmp is None and run.postprocessed:
        prob_tmp = mask_tmp.with_name(HIDDEN_PROBABILITIES)  # removed by _finish_outputs
    return mask_tmp, prob_tmp


def _stream_outputs(run: OpenRun, mask_tmp: Path, prob_tmp: Path | None
                    ) -> tuple[Path, Path | None]:
    """Where the stream writes the mask and probabilities: the outputs' temporary paths, or a
    resampled run's stage files beside them (on the view's grid, removed by
    :func:`_finish_outputs`)."""
    if run.resampled_from is None:
        return mask_tmp, prob_tmp
    return mask_tmp.with_name(RESAMPLED_MASK), mask_tmp.with_name(RESAMPLED_PROBABILITIES)


def _finish_outputs(run: OpenRun, mask_tmp: Path, prob_tmp: Path | None,
                    settings: ModelSettings, opts: RunPlan,
                    model_file: str | os.PathLike[str] | None) -> tuple[int | None, Path | None]:
    """Write a resampled run's outputs on the scene's grid (:func:`_write_on_scene_grid`),
    remake the mask from the probabilities with the run's post-processing (then remove
    hidden probabilities), turn the written GeoTIFFs into Cloud Optimized GeoTIFFs when asked,
    and write the mask's QGIS style next to it (moved into place with it). Returns the
    mask's landslide pixels (None when the stream's count holds) and the
    probabilities left (None when they were hidden)."""
    foreground = None
    if run.resampled_from is not None:
        foreground = _write_on_scene_grid(run, mask_tmp, prob_tmp, settings, opts, model_file)
    if opts.postprocessing is not None and prob_tmp is not None:
        # scipy: only when post-processing
        from geoseg.postprocessing.postprocess import postprocess_raster

        mask_file, prob_file = _staging(mask_tmp, opts.cog), _staging(prob_tmp, opts.cog)
        regions = mask_file.with_name(mask_file.name + ".regions.tif")
        made = postprocess_raster(prob_file, regions, opts.postprocessing,
                                  band=settings.num_classes, overwrite=True,
                                  pixel_size_without_crs=settings.pixel_size_m)
        os.replace(regions, mask_file)
        foreground = made.landslide_pixels
        if prob_tmp.name == HIDDEN_PROBABILITIES:
            prob_file.unlink()
            prob_tmp = None
    if opts.cog:
        _to_cog(mask_tmp)
        if prob_tmp is not None:
            _to_cog(prob_tmp)
    if opts.style:
        write_style(mask_tmp, raster_style(settings.mask_class_names), overwrite=True)
    return foreground, prob_tmp


def _write_on_scene_grid(run: OpenRun, mask_tmp: Path, prob_tmp: Path | None,
                         settings: ModelSettings, opts: RunPlan,
                         model_file: str | os.PathLike[str] | None) -> int:
    """The outputs of a run that predicted a resampled view of the scene, on the scene's grid:
    the stream's probabilities resampled back (:func:`geoseg.raster.resample.on_scene_grid`) block
    row by block row, classified with the run's threshold where the scene holds data
    (:func:`geoseg.raster.scene.read_window`); the stream's files are removed. Returns the landslide
    pixels."""
    scene = run.scene
    stream_mask, stream_prob = _stream_outputs(run, mask_tmp, prob_tmp)
    assert stream_prob is not None
    with ExitStack() as files:
        outputs = Outputs(files, scene, settings, opts, mask_tmp, prob_tmp, model_file)
        back = files.enter_context(on_scene_grid(
            files.enter_context(rasterio.open(stream_prob)), scene))
        for row_off in range(0, scene.height, OUTPUT_BLOCK):
            window = Window(0, row_off, scene.width, min(OUTPUT_BLOCK, scene.height - row_off))
            probs = back.read(window=window)
            _, valid = read_window(scene, window, run.bands, opts.extra_nodata)
            valid &= ~np.isnan(probs).any(axis=0)
            outputs.write(row_off, classify(probs, valid, opts.threshold),
                          probability_band(probs, valid, opts.probability_dtype)
                          if prob_tmp is not None else None)
    stream_mask.unlink()
    stream_prob.unlink()
    return outputs.foreground


def _staging(final_tmp: Path, cog: bool) -> Path:
    """Where the plain GeoTIFF is written: the output itself, or a stage file before COG."""
    return final_tmp.with_name(final_tmp.name + ".stage.tif") if cog else final_tmp


def _to_cog(final_tmp: Path) -> None:
    stage = _staging(final_tmp, True)
    rasterio.shutil.copy(stage, final_tmp, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER",
                         OVERVIEW_RESAMPLING="NEAREST")
    stage.unlink()


def _cache_bytes(src: rasterio.io.DatasetReader, grid: TileGrid, out_bytes: int) -> int:
    """GDAL block cache for one run: the input blocks reading the grid needs
    (:func:`geoseg.raster.tiling.input_cache_bytes`) and two block rows of output; at least 32 MiB.

    Without a bound GDAL caches up to 5% of the machine's memory, so the memory of a run would
    grow with the scene until that much is used.
    """
    needed = input_cache_bytes(src, grid) + out_bytes * grid.width * 2 * OUTPUT_BLOCK
    return max(32 * 2**20, needed)


def bound_block_cache(stack: ExitStack, run: OpenRun, settings: ModelSettings,
                       opts: RunPlan, outputs: bool) -> None:
    """Bound GDAL's block cache for the run (a user's own ``GDAL_CACHEMAX`` wins)."""
    if "GDAL_CACHEMAX" in os.environ:
        return
    out_bytes = 0
    if outputs:
        out_bytes = 1 + (settings.num_classes * np.dtype(opts.probability_dtype).itemsize
                         if run.keeps_probabilities else 0)
    stack.enter_context(rasterio.Env(GDAL_CACHEMAX=_cache_bytes(run.src, run.grid, out_bytes)))
