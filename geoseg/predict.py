"""Tiled prediction of a whole scene, streamed: read tiles, infer, blend, write blocks.

The scene is never read whole. Three threads form a pipeline, so that the model is never idle
waiting for input or output work:

- a reader reads the grid's windows (:func:`geoseg.scene.read_window`) in row order, passes
  over those without data (telling the blender that the rows before them can be written) and
  stacks the others (:func:`geoseg.tiling.tile_input`) in fixed-size batches (which may span
  tile rows), up to two batches ahead;
- the calling thread only runs the model on each batch;
- a blender adds each tile's class probabilities to a
  :class:`~geoseg.blending.ChunkedAccumulator`, which finishes every chunk of the scene that no
  later tile touches; the blender classifies the chunks and gathers them into the outputs'
  256-row block rows (:class:`~geoseg.block_rows.BlockRows`), and writes each complete one.

Memory is set by the batches in flight, the blended sums of the tiles' overlap with the next
tile row, and the block rows being gathered (one byte a pixel for the mask), not by the scene's
height; the GDAL block cache is bounded for the run (unless ``GDAL_CACHEMAX`` is set), so it
does not grow with the scene either. Outputs are written to temporary files and moved into
place only when complete (:func:`geoseg.outputs.atomic_output`).

The model is any callable mapping a float32 batch ``(n, size, size, bands)`` to probabilities
``(n, size, size, classes)``: :class:`geoseg.inference.KerasPredictor` in practice, a plain numpy
function in tests. This module never imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np

from geoseg.mask_format import (
    CLASS_NAMES_TAG,
    MASK_NODATA,
    MODEL_TAG,
    PROBABILITY_NODATA,
    SETTINGS_TAG,
)
from geoseg.model_protocol import BatchPredictor
from geoseg.predict_options import PredictOptions, ProbabilityDtype, options_for_model
from geoseg.prediction_outputs import Outputs, PredictionResult, write_outputs
from geoseg.prediction_run import (
    checked_rows,
    end_row,
    nothing_to_predict,
    open_run,
    stream_options,
    warn_if_run_unfit,
)
from geoseg.row_bands import BandedPrediction, BandResult
from geoseg.row_stream import predict_rows
from geoseg.settings import ModelSettings

__all__ = [
    "BandResult",
    "BandedPrediction",
    "BatchPredictor",
    "PredictOptions",
    "PredictionResult",
    "ProbabilityDtype",
    "options_for_model",
    "predict_scene",
    "CLASS_NAMES_TAG",
    "MASK_NODATA",
    "MODEL_TAG",
    "PROBABILITY_NODATA",
    "SETTINGS_TAG",
]  # defined in their owners (the options, the outputs, row bands, the mask format), re-exported

log = logging.getLogger(__name__)


def predict_scene(
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    predictor: BatchPredictor,
    settings: ModelSettings,
    options: PredictOptions | None = None,
    *,
    probabilities_path: str | os.PathLike[str] | None = None,
    model_file: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    then: Callable[[PredictionResult], None] | None = None,
) -> PredictionResult:
    """Predict a whole scene tile by tile and write a class mask GeoTIFF aligned with it.

    Parameters
    ----------
    scene_path : path
        Input raster (any GDAL format; GeoTIFF in practice). Pixels are valid or not by GDAL's
        mask rules (nodata, NaN, internal or ``.msk`` masks, alpha: :mod:`geoseg.scene`);
        invalid pixels are nodata in every output.
    out_path : path
        Class mask GeoTIFF to write: uint8 class ids, nodata 255 where the scene has none; same
        CRS, transform and size as the scene; tiled 256x256, deflate.
    predictor : BatchPredictor
        The model as a batch function (see module docstring).
    settings : ModelSettings
        The model's settings: tile size, bands, classes, recommended overlap.
    options : PredictOptions, optional
        How to predict (overlap, bands, threshold, outputs' form, overwrite, resume, ...);
        the defaults of :class:`PredictOptions` without it.
    probabilities_path : path, optional
        Also write per-class probabilities: one band per class.
    model_file : path, optional
        The model's file: its name is recorded in the outputs' tags with its settings, its
        bytes in the resume journal, and it is never written over.
    progress : callable, optional
        Called as ``progress(tiles_just_finished, tiles_total)`` while tiles finish: a window
        counts once the rows before it are written (predicted or passed over for want of
        data), the last ones once every row is.
    then : callable, optional
        Called with the :class:`PredictionResult` once the outputs are complete but still
        under their temporary names (its paths), before they are moved into place: the
        polygons of the mask (:func:`geoseg.jobs.run_job`), so that every output of the run
        is in place or none. When it fails, no output is moved; when it fails for an output
        (a full disk), the journal holding every row is kept, and ``resume`` writes the
        outputs again from it without predicting.

    Before any tile is read, the scene is compared with the imagery the model was trained on
    (:func:`geoseg.imagery.warn_if_unfit`: pixel size, pixel values): a warning line for
    each misfit, never a refusal.

    A predictor's ``runtime`` attribute (what computes its probabilities, e.g. ``"openvino
    float32 auto"``: :attr:`geoseg.predictor.ModelPredictor.runtime`) is recorded in the
    resume journal, so a run is resumed only by the same runtime.

    Returns
    -------
    PredictionResult

    Raises
    ------
    InputError
        Unreadable scene, band mismatch, or a scene that is nodata everywhere.
    ParameterError
        An impossible overlap, or a threshold for a model of more than two classes.
    OutputError, OutputExistsError, OutputIsInputError
        Outputs cannot be written, exist without ``overwrite``, or are an input of the run.
    DiskFullError
        The disk filled up: no output was moved into place and the journal is kept, so that
        ``resume`` continues the run once there is space.
    """
    started = time.perf_counter()
    opts = options_for_model(options, settings, predictor)
    with ExitStack() as stack:
        run = open_run(stack, scene_path, out_path, settings, opts, probabilities_path,
                        model_file, getattr(predictor, "runtime", None))
        warn_if_run_unfit(run, settings, model_file, opts)
        journal = run.journal
        finished = checked_rows(run, opts, journal.load()) if opts.resume else []
        if finished:
            log.info("%s: resuming below row %d", run.mask, end_row(finished))
        def rows(outputs: Outputs) -> int:
            journal.start(keep=bool(finished))
            outputs.copy(finished)  # written by the interrupted run: not predicted again

            def write(row_off: int, mask: np.ndarray, band: np.ndarray | None) -> None:
                outputs.write(row_off, mask, band)
                journal.save(row_off, mask, band)

            predicted = predict_rows(run, predictor, settings, stream_options(run, opts),
                                     end_row(finished), run.grid.height, write, progress)
            if predicted == 0 and not finished:
                raise nothing_to_predict(run.scene)
            return predicted

        return write_outputs(run, settings, opts, model_file, rows, tiles_total=len(run.grid),
                             started=started, then=then, keep_journal=False)
