"""Tiled prediction of a whole scene, streamed: read tiles, infer, blend, write blocks.

The scene is never read whole. Three threads form a pipeline, so that the model is never idle
waiting for input or output work:

- a reader reads the grid's windows (:func:`geoseg.raster.scene.read_window`) in row order, passes
  over those without data (telling the blender that the rows before them can be written) and
  stacks the others (:func:`geoseg.raster.tiling.tile_input`) in fixed-size batches (which may span
  tile rows), up to two batches ahead;
- the calling thread only runs the model on each batch;
- a blender adds each tile's class probabilities to a
  :class:`~geoseg.raster.blending.ChunkedAccumulator`, which finishes every chunk of the scene that
  no later tile touches; the blender classifies the chunks and gathers them into the outputs'
  256-row block rows (:class:`~geoseg.raster.block_rows.BlockRows`), and writes each complete one.

Memory is set by the batches in flight, the blended sums of the tiles' overlap with the next
tile row, and the block rows being gathered (one byte a pixel for the mask), not by the scene's
height; the GDAL block cache is bounded for the run (unless ``GDAL_CACHEMAX`` is set), so it
does not grow with the scene either. Outputs are written to temporary files and moved into
place only when complete (:func:`geoseg.raster.outputs.atomic_output`).

The model is any callable mapping a float32 batch ``(n, size, size, bands)`` to probabilities
``(n, size, size, classes)`` (:class:`geoseg.model.model_protocol.BatchPredictor`):
:class:`geoseg.model.inference.KerasPredictor` in practice, a plain numpy function in tests. This
module never imports TensorFlow.

:func:`predict_scene` runs the parts, each in a module of its own: the options
(:mod:`geoseg.prediction.predict_options`), the scene opened and checked
(:mod:`geoseg.prediction.prediction_run`), the streaming loop (:mod:`geoseg.prediction.row_stream`)
and the outputs, written and moved into place (:mod:`geoseg.prediction.prediction_outputs`); a scene
predicted in bands of rows by several processes goes through the same parts
(:mod:`geoseg.prediction.row_bands`). The names users import from here (:class:`PredictOptions`,
:class:`BandedPrediction`, ...) are re-exported from their modules.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np

from geoseg.model.model_protocol import BatchPredictor
from geoseg.prediction.predict_options import PredictOptions, ProbabilityDtype, RunPlan, plan_run
from geoseg.prediction.prediction_outputs import Outputs, PredictionResult, write_outputs
from geoseg.prediction.prediction_run import (
    checked_rows,
    end_row,
    nothing_to_predict,
    open_run,
    stream_options,
)
from geoseg.prediction.row_bands import BandedPrediction, BandResult
from geoseg.prediction.row_stream import predict_rows
from geoseg.raster.mask_format import (
    CLASS_NAMES_TAG,
    MASK_NODATA,
    MODEL_TAG,
    PROBABILITY_NODATA,
    SETTINGS_TAG,
)
from geoseg.settings import ModelSettings

__all__ = [
    "BandResult",
    "BandedPrediction",
    "BatchPredictor",
    "PredictOptions",
    "PredictionResult",
    "ProbabilityDtype",
    "RunPlan",
    "plan_run",
    "predict_planned",
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
    uncertainty_path: str | os.PathLike[str] | None = None,
    polygons: bool = False,
) -> PredictionResult:
    """Predict a whole scene tile by tile and write a class mask GeoTIFF aligned with it.

    Parameters
    ----------
    scene_path : path
        Input raster (any GDAL format; GeoTIFF in practice). Pixels are valid or not by GDAL's
        mask rules (nodata, NaN, internal or ``.msk`` masks, alpha: :mod:`geoseg.raster.scene`);
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
    uncertainty_path : path, optional
        Also write the per-pixel uncertainty (:mod:`geoseg.prediction.uncertainty`): the spread of
        the landslide probability across test-time augmentation (``tta``), else the predictive
        entropy; one band, in the probabilities' form, with a QGIS style (``style``). Not with
        another ``resolution`` than the scene's, for now.
    polygons : bool
        ``then`` vectorises the mask: with ``tta``, the spread across it is computed for the
        polygons (:attr:`PredictionResult.uncertainty_path`, a hidden file removed after
        ``then``) even without ``uncertainty_path``.
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
        polygons of the mask (:func:`geoseg.prediction.jobs.run_job`), so that every output of the
        run is in place or none. When it fails, no output is moved; when it fails for an output
        (a full disk), the journal holding every row is kept, and ``resume`` writes the
        outputs again from it without predicting.

    Before any tile is read, the scene is compared with the imagery the model was trained on
    (:func:`geoseg.raster.imagery.warn_if_unfit`: pixel size, pixel values): a warning line for
    each misfit, never a refusal.

    A predictor's ``runtime`` attribute (what computes its probabilities, e.g. ``"openvino
    float32 auto"``: :attr:`geoseg.model.predictor.ModelPredictor.runtime`) is recorded in the
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
    return predict_planned(scene_path, out_path, predictor,
                           plan_run(options, settings, predictor),
                           probabilities_path=probabilities_path, model_file=model_file,
                           progress=progress, then=then, uncertainty_path=uncertainty_path,
                           polygons=polygons)


def predict_planned(
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    predictor: BatchPredictor,
    plan: RunPlan,
    *,
    probabilities_path: str | os.PathLike[str] | None = None,
    model_file: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    then: Callable[[PredictionResult], None] | None = None,
    uncertainty_path: str | os.PathLike[str] | None = None,
    polygons: bool = False,
) -> PredictionResult:
    """:func:`predict_scene` with the run planned already (:func:`plan_run`), as a caller
    predicting many scenes with one plan does (:mod:`geoseg.evaluation.evaluate`).

    Raises
    ------
    GeosegError
        As :func:`predict_scene`.
    """
    started = time.perf_counter()
    settings = plan.settings
    with ExitStack() as stack:
        run = open_run(stack, scene_path, out_path, plan, probabilities_path, model_file,
                       uncertainty_path, polygons)
        journal = run.journal
        finished = checked_rows(run, plan, journal.load()) if plan.resume else []
        if finished:
            log.info("%s: resuming below row %d", run.mask, end_row(finished))

        def rows(outputs: Outputs) -> int:
            journal.start(keep=bool(finished))
            outputs.copy(finished)  # written by the interrupted run: not predicted again

            def write(row_off: int, mask: np.ndarray, band: np.ndarray | None) -> None:
                outputs.write(row_off, mask, band)
                journal.save(row_off, mask, band)

            predicted = predict_rows(run, predictor, settings, stream_options(run, plan),
                                     end_row(finished), run.grid.height, write, progress)
            if predicted == 0 and not finished:
                raise nothing_to_predict(run.scene)
            return predicted

        return write_outputs(run, settings, plan, model_file, rows, tiles_total=len(run.grid),
                             started=started, then=then, keep_journal=False)
