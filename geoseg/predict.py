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

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from pathlib import Path
from queue import Full, Queue
from typing import Literal, Protocol, TypeVar

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from geoseg import __version__
from geoseg.batching import windows_per_batch
from geoseg.blending import ChunkedAccumulator, Piece
from geoseg.block_rows import BlockRows, RowsFinished
from geoseg.errors import InputError, OutputError, ParameterError, param
from geoseg.imagery import warn_if_unfit
from geoseg.journal import CONTINUE, FinishedRows, PredictionJournal, window_digest
from geoseg.mask_format import (
    CLASS_NAMES_TAG,
    MASK_NODATA,
    MODEL_TAG,
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    SETTINGS_TAG,
    classify,
)
from geoseg.outputs import (
    atomic_output,
    check_output_path,
    is_same_file,
    output_errors,
    retried_by,
)
from geoseg.postprocess_recipe import PostProcessing
from geoseg.predictor import file_digest
from geoseg.resample import (
    Resolution,
    check_resolution,
    on_scene_grid,
    resampled_view,
    resampling_scale,
)
from geoseg.scene import (
    describe_validity,
    open_scene,
    read_window,
    scene_fingerprint,
    select_bands,
)
from geoseg.settings import ModelSettings
from geoseg.styles import check_style_path, class_colours, raster_style, write_style
from geoseg.tiling import (
    Tile,
    TileGrid,
    WindowChoice,
    input_cache_bytes,
    resolve_window,
    tile_input,
)
from geoseg.tta import TTA_MODES, TTAMode, with_tta

__all__ = [
    "BandResult",
    "BandedPrediction",
    "BatchPredictor",
    "PredictOptions",
    "PredictionResult",
    "options_for_model",
    "predict_scene",
    "MASK_NODATA",
    "PROBABILITY_NODATA",
    "CLASS_NAMES_TAG",
]  # the mask format's constants are defined in geoseg.mask_format, re-exported here

log = logging.getLogger(__name__)

OUTPUT_BLOCK = 256
"""Block size of the output GeoTIFFs; finished rows are written in block rows of it."""
HIDDEN_PROBABILITIES = ".probabilities-for-postprocessing.tif"
"""The probabilities a post-processed run writes beside its mask when none are asked for."""
RESAMPLED_MASK = ".mask-resampled.tif"
RESAMPLED_PROBABILITIES = ".probabilities-resampled.tif"
"""What the stream of a run at another pixel size than the scene's writes beside its mask."""

ProbabilityDtype = Literal["uint8", "float32"]
_T = TypeVar("_T")


class BatchPredictor(Protocol):
    """What :func:`predict_scene` needs from a model."""

    batch_size: int

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Map ``(n, size, size, bands)`` float32 to ``(n, size, size, classes)`` float32."""
        ...


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


def _probability_band(probs: np.ndarray, valid: np.ndarray, dtype: ProbabilityDtype) -> np.ndarray:
    nodata = np.nan if dtype == "float32" else PROBABILITY_NODATA
    if not valid.any():  # a part of the scene without data, as most of a sparse one
        return np.full(probs.shape, nodata, dtype=dtype)
    if dtype == "float32":
        out = probs.astype(np.float32, copy=True)
    else:
        out = np.rint(np.nan_to_num(probs, nan=0.0) * PROBABILITY_SCALE).astype(np.uint8)
    np.copyto(out, nodata, where=~valid)  # each band; many times faster than out[:, ~valid]
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


@dataclass(frozen=True)
class PredictOptions:
    """How to predict a scene: everything but the scene, its outputs and the model.

    One description of a prediction run, shared by :func:`predict_scene`, ``geoseg predict``,
    :mod:`geoseg.evaluate` and the many-scene runner (:mod:`geoseg.distributed`).

    Raises :class:`~geoseg.errors.ParameterError` for a threshold outside 0..1, an unknown
    probability dtype or resolution.

    >>> PredictOptions(threshold=0.4, overwrite=True).threshold
    0.4
    """

    overlap: int | None = None
    """Tile overlap in pixels; the model's recommended overlap by default."""
    bands: tuple[int, ...] | None = None
    """1-based scene bands in model order; the model's bands (alpha left out) by default."""
    threshold: float | None = None
    """Foreground probability threshold (models with 1 or 2 classes): foreground where
    ``p >= threshold``; by default the model's own (:attr:`ModelSettings.threshold
    <geoseg.settings.ModelSettings.threshold>`, tuned on its training tiles), else argmax.
    :mod:`geoseg.evaluate`'s threshold sweep finds the one with the best landslide F1 on
    labelled data."""
    probability_dtype: ProbabilityDtype = "uint8"
    """uint8 stores ``round(p * 254)`` with a GDAL scale of 1/254 and nodata 255; float32
    stores p with nodata NaN."""
    cog: bool = False
    """Write Cloud Optimized GeoTIFFs (with overviews) instead of plain tiled GeoTIFFs."""
    overwrite: bool = False
    """Replace existing outputs (never an input of the run)."""
    require_crs: bool = False
    """Refuse scenes without a CRS instead of warning."""
    resume: bool = False
    """Continue an interrupted run of the same scene, model and options from its last
    finished band of rows (see :mod:`geoseg.journal`); the output is identical to an
    uninterrupted run. Without an interrupted run to continue, start from the top. A scene
    or model file whose content changed since (:func:`geoseg.scene.scene_fingerprint`, the
    model file's digest) is refused."""
    extra_nodata: float | None = None
    """A second nodata value: pixels equal to it in every band hold no data (the white
    wedges of the reference dataset's PNG tiles)."""
    style: bool = True
    """Write a QGIS ``.qml`` style next to the mask (landslides red, background clear), and
    style the polygons a job vectorises (:func:`geoseg.jobs.finish_job`). A style is an output
    of its own: refused when it exists unless ``overwrite``, never an input's style."""
    tta: TTAMode = "none"
    """Test-time augmentation (:mod:`geoseg.tta`): each tile's probabilities averaged over its
    flipped (``flips``, 4 model calls) or flipped and rotated (``d4``, 8 calls) copies before
    blending."""
    window: WindowChoice = "auto"
    """The side of the windows the model predicts, with the model's overlap
    (:meth:`geoseg.tiling.TileGrid.for_model`): ``"auto"`` (as large as the model's width
    allows: 2048 pixels for 8 base filters, 1024 for 32, or the tile if larger, when the
    predictor takes windows: :func:`geoseg.tiling.resolve_window`),
    ``"tile"`` (the model's tile) or a number of pixels. The FlexUNet is fully
    convolutional, and larger windows predict less of the scene twice (on a large scene,
    512-pixel tiles with a 64-pixel overlap compute every pixel 1.31 times, as do 256-pixel
    tiles with 32; 1024-pixel windows 1.14 times, 2048-pixel ones 1.07 times). A model call
    holds as many windows as hold the pixels of ``batch_size`` tiles, at least one.
    Probabilities differ slightly from tile-size windows (the model sees other borders); they
    do not depend on the batch size."""

    postprocessing: PostProcessing | None = None
    """How the landslide probabilities become the mask's landslide regions (hysteresis peak,
    minimum area, hole filling, smoothing, split: :class:`~geoseg.postprocess_recipe.
    PostProcessing`; models of one or two classes). By default the model's own
    (:attr:`ModelSettings.postprocessing <geoseg.settings.ModelSettings.postprocessing>`,
    tuned on its validation scenes), else the threshold alone. The recipe's threshold is the
    run's (``threshold``)."""
    resolution: Resolution = "native"
    """The pixel size the model predicts the scene at (:mod:`geoseg.resample`): ``"native"``
    (the scene's own pixels), ``"auto"`` (the model's training pixel size,
    :attr:`ModelSettings.pixel_size_m <geoseg.settings.ModelSettings.pixel_size_m>`, when the
    scene's differs from it by more than 1.25x; else, or when either is unknown, the scene's
    own) or a pixel size in metres (at most 16 times more pixels than the scene's). The scene
    is read resampled (averaged when coarser, bilinear when finer), and the probabilities are
    resampled back (bilinear): every output is on the scene's grid, with its validity."""

    def grid(self, src: rasterio.io.DatasetReader, settings: ModelSettings) -> TileGrid:
        """The grid a run with these options reads ``src`` with, at the run's pixel size
        (``resolution``); an ``"auto"`` window not resolved for a predictor
        (:func:`options_for_model`) is the model's tile.

        Raises :class:`~geoseg.errors.ParameterError` for a resolution ``src`` cannot be
        read at (:func:`geoseg.resample.resampling_scale`)."""
        scale = resampling_scale(self.resolution, src, settings.pixel_size_m, say=False)
        if scale is None:
            return self._grid_of(src, settings)
        with resampled_view(src, scale) as view:
            return self._grid_of(view, settings)

    def _grid_of(self, dataset: rasterio.io.DatasetReader, settings: ModelSettings) -> TileGrid:
        """The grid of ``dataset`` as it is (the scene, or a view of it at the run's pixel
        size)."""
        return TileGrid.for_model(dataset, settings, self.overlap,
                                  resolve_window(self.window, settings, False))

    def __post_init__(self) -> None:
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ParameterError(f"{param('threshold')} must be between 0 and 1, got "
                                 f"{self.threshold}")
        if self.tta not in TTA_MODES:
            raise ParameterError(f"{param('tta')} must be one of {', '.join(TTA_MODES)}, got "
                                 f"{self.tta!r}")
        object.__setattr__(self, "resolution", check_resolution(self.resolution))
        if self.probability_dtype not in ("uint8", "float32"):
            raise ParameterError(f"{param('probability_dtype')} must be uint8 or float32, got "
                                 f"{self.probability_dtype!r}")


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
        run = _open_run(stack, scene_path, out_path, settings, opts, probabilities_path,
                        model_file, getattr(predictor, "runtime", None))
        _warn_if_unfit(run, settings, model_file, opts)
        journal = run.journal
        finished = _checked_rows(run, opts, journal.load()) if opts.resume else []
        if finished:
            log.info("%s: resuming below row %d", run.mask, _end_row(finished))
        mask_tmp, prob_tmp = _temporary_outputs(stack, run, opts)
        stream_opts = _stream_options(run, opts)
        _bound_block_cache(stack, run, settings, stream_opts, outputs=True)
        try:
            with output_errors(run.mask, CONTINUE):
                journal.start(keep=bool(finished))
                with ExitStack() as files:
                    outputs = _Outputs(files, run.src, settings, stream_opts,
                                       *_stream_outputs(run, mask_tmp, prob_tmp), model_file)
                    outputs.copy(finished)  # written by the interrupted run: not predicted again

                    def write(row_off: int, mask: np.ndarray, band: np.ndarray | None) -> None:
                        outputs.write(row_off, mask, band)
                        journal.save(row_off, mask, band)

                    predicted = _predict_rows(run, predictor, settings, stream_opts,
                                              _end_row(finished), run.grid.height, write,
                                              progress)
                if predicted == 0 and not finished:
                    raise _nothing_to_predict(run.scene)
                foreground, prob_tmp = _finish_outputs(run, mask_tmp, prob_tmp, settings, opts,
                                                       model_file)
            made = PredictionResult(
                mask_path=mask_tmp,
                probabilities_path=prob_tmp,
                tiles_total=len(run.grid),
                tiles_predicted=predicted,
                seconds=time.perf_counter() - started,
                foreground_pixels=outputs.foreground if foreground is None else foreground,
            )
            if then is not None:
                with retried_by(CONTINUE):
                    then(made)
        except BaseException as error:
            _end_journal(journal, error)
            raise
    journal.discard()
    return replace(made, mask_path=run.mask, probabilities_path=run.probabilities)


def _end_journal(journal: PredictionJournal, error: BaseException) -> None:
    """Remove the journal of a run that failed, unless ``resume`` can continue it: after an
    interruption (Ctrl-C, SIGTERM) or an output that could not be written (a full disk), the
    saved rows stay good."""
    if not isinstance(error, KeyboardInterrupt | OutputError):
        journal.discard()


@dataclass(frozen=True)
class BandResult:
    """What the task of one band of a :class:`BandedPrediction` did."""

    index: int
    """The band's index in :attr:`BandedPrediction.bands`."""
    rows: tuple[int, int]
    """Its scene rows ``[start, stop)``."""
    tiles_predicted: int
    """Tiles the band's task ran the model on; the tiles of a shared tile row it blended from
    the other band's saved output are not counted."""
    rows_resumed: int
    """Rows at the band's top found saved already (by an earlier attempt or run)."""
    seconds: float


@dataclass(frozen=True)
class BandedPrediction:
    """One scene predicted in horizontal bands of rows by independent tasks, then assembled.

    :meth:`plan` checks the run like :func:`predict_scene` does and splits the scene's rows
    into bands at 256-row block boundaries; :meth:`predict_band` predicts one band (any process
    that sees the scene, the model and the output folder can run it, in any order, again after
    a failure); :meth:`assemble` writes the outputs from what the bands saved. The outputs are
    byte-identical to :func:`predict_scene`'s with the same options:

    - a band blends the tiles that touch its rows, including the tile row it shares with each
      neighbour, with the whole grid's weights in the grid's order, so its pixels are the
      serial run's to the bit;
    - a shared tile row is predicted once, half by each band: the band above predicts the
      row's right half first thing, the band below predicts the left half as it starts its
      rows, and each saves the model's raw output for its half in the work folder, where the
      other band finds it when it gets there (a tile not saved yet is predicted again, to the
      same bits);
    - each finished block row is saved to the run's journal (:mod:`geoseg.journal`), the work
      folder next to the output; rows saved already (a retried task, ``resume``) are not
      predicted again;
    - one writer copies the saved rows, top to bottom and one block row at a time, through the
      code that writes a serial run's outputs.

    The plan is small and picklable: it travels to the tasks (:mod:`geoseg.distributed`).
    """

    scene: str
    mask: Path
    probabilities: Path | None
    settings: ModelSettings
    options: PredictOptions
    model_file: Path | None
    runtime: str | None
    bands: tuple[tuple[int, int], ...]
    """Scene rows ``[start, stop)`` of each band, top to bottom."""
    tiles_total: int

    @classmethod
    def plan(
        cls,
        scene_path: str | os.PathLike[str],
        out_path: str | os.PathLike[str],
        settings: ModelSettings,
        options: PredictOptions | None = None,
        *,
        probabilities_path: str | os.PathLike[str] | None = None,
        model_file: str | os.PathLike[str] | None = None,
        runtime: str | None = None,
        bands: int = 2,
    ) -> BandedPrediction:
        """Check the run and split the scene into at most ``bands`` bands of rows.

        Parameters are those of :func:`predict_scene`, ``runtime``: what the bands' predictors
        compute with (:meth:`geoseg.predictor.ModelSpec.runtime`), and ``bands``: the bands
        wanted. An ``"auto"`` window is the model's tile here: to predict the windows
        :func:`predict_scene` would, resolve the options for the bands' model first
        (:func:`options_for_model` with their :class:`~geoseg.predictor.ModelSpec`, as
        :func:`geoseg.distributed.predict_scenes` does). Each band holds about as many tile
        rows; the boundaries are block boundaries crossed by as few tile rows as possible (each
        one crossing is blended by both its bands).

        Starts the run's journal (kept with ``resume``, whose saved rows are not predicted
        again).

        Raises
        ------
        GeosegError
            As :func:`predict_scene`, for every mistake knowable before predicting.
        """
        opts = options_for_model(options, settings)
        if bands < 1:
            raise ParameterError(f"{param('bands')} must be at least 1, got {bands}")
        with ExitStack() as stack:
            run = _open_run(stack, scene_path, out_path, settings, opts, probabilities_path,
                            model_file, runtime)
            _warn_if_unfit(run, settings, model_file, opts)
            if opts.resume:
                run.journal.load()  # refuses the journal of another run
                _checked_rows(run, opts, run.journal.saved())
                run.journal.drop_tiles()
            run.journal.start(keep=opts.resume)
            return cls(os.fspath(scene_path), run.mask, run.probabilities, settings, opts,
                       Path(model_file) if model_file is not None else None, runtime,
                       _row_bands(run.grid, bands), len(run.grid))

    def _open(self, stack: ExitStack) -> _OpenRun:
        return _open_run(stack, self.scene, self.mask, self.settings, self.options,
                         self.probabilities, self.model_file, self.runtime)

    def predict_band(self, index: int, predictor: BatchPredictor) -> BandResult:
        """Predict band ``index`` and save its rows to the run's journal.

        Rows of the band saved already are kept; the band continues below them.

        Raises
        ------
        GeosegError
            The scene or the journal cannot be read (the journal missing or another run's).
        """
        started = time.perf_counter()
        start, stop = self.bands[index]
        with ExitStack() as stack:
            run = self._open(stack)
            top = _end_row(run.journal.load(start, stop, required=True), start)
            predicted = 0
            if top < stop:
                _bound_block_cache(stack, run, self.settings, self.options, outputs=False)
                shared = frozenset(tile_row for band_start, _ in self.bands[1:]
                                   for tile_row in _tile_rows_across(run.grid, band_start))
                if index + 1 < len(self.bands):
                    predicted += _predict_ahead(run, predictor, self.settings, self.options, [
                        tile for tile_row in _tile_rows_across(run.grid, stop)
                        for tile in _right_half(run.grid.row_tiles(tile_row))])
                predicted += _predict_rows(run, predictor, self.settings,
                                           _stream_options(run, self.options), top, stop,
                                           run.journal.save, None, shared)
        return BandResult(index, (start, stop), predicted, top - start,
                          time.perf_counter() - started)

    def assemble(self, results: Sequence[BandResult],
                 then: Callable[[PredictionResult], None] | None = None) -> PredictionResult:
        """Write the outputs from the saved rows of every band, then remove the journal.

        Parameters
        ----------
        results : sequence of BandResult
            What each band's task returned.
        then : callable, optional
            As :func:`predict_scene`'s: called with the outputs complete, before they are
            moved into place.

        Raises
        ------
        InputError
            Rows of the scene were not saved (a band did not finish), or the scene is nodata
            everywhere. The journal is kept, except in the latter case, so that ``resume``
            continues the run.
        OutputError
            An output cannot be written (the journal is kept).
        """
        started = time.perf_counter()
        with ExitStack() as stack:
            run = self._open(stack)
            saved = run.journal.load(required=True)
            if _end_row(saved) < run.grid.height:
                raise InputError(f"{run.mask}: rows from {_end_row(saved)} on were not "
                                 f"predicted; run again with {param('resume')} to finish them")
            if not any(r.tiles_predicted or r.rows_resumed for r in results):
                run.journal.discard()
                raise _nothing_to_predict(run.scene)
            mask_tmp, prob_tmp = _temporary_outputs(stack, run, self.options)
            stream_opts = _stream_options(run, self.options)
            _bound_block_cache(stack, run, self.settings, stream_opts, outputs=True)
            with output_errors(run.mask, CONTINUE):
                with ExitStack() as files:
                    outputs = _Outputs(files, run.src, self.settings, stream_opts,
                                       *_stream_outputs(run, mask_tmp, prob_tmp),
                                       self.model_file)
                    outputs.copy(saved)
                foreground, prob_tmp = _finish_outputs(run, mask_tmp, prob_tmp, self.settings,
                                                       self.options, self.model_file)
            made = PredictionResult(
                mask_path=mask_tmp,
                probabilities_path=prob_tmp,
                tiles_total=self.tiles_total,
                tiles_predicted=sum(r.tiles_predicted for r in results),
                seconds=time.perf_counter() - started,
                foreground_pixels=outputs.foreground if foreground is None else foreground,
            )
            if then is not None:
                with retried_by(CONTINUE):
                    then(made)
        run.journal.discard()
        return replace(made, mask_path=run.mask, probabilities_path=run.probabilities)


def _row_bands(grid: TileGrid, count: int) -> tuple[tuple[int, int], ...]:
    """Split the scene's rows into at most ``count`` bands at block boundaries.

    Band ``j`` should start near scene row ``j * height / count``, so that the bands hold as
    many rows; of the block boundaries within a tile (at least a block) of it, the one fewest
    tile rows cross wins (a tile row crossing a boundary is read and blended by the bands on
    both sides, and predicted half by each), then the nearest. (Aiming at the top of a tile row
    instead put a whole 976-pixel window row more in one of two bands of a 9-row scene.)

    >>> _row_bands(TileGrid(6144, 600, 512, 64), 2)
    ((0, 3072), (3072, 6144))
    >>> _row_bands(TileGrid(8192, 600, 976, 64), 2)  # 9 rows of windows: 4.5 on each side
    ((0, 4096), (4096, 8192))
    """
    offsets = grid.row_offsets
    reach = max(min(grid.tile_size, grid.height), OUTPUT_BLOCK)

    def crossing(row: int) -> int:
        return len(_tile_rows_across(grid, row))

    bounds = [0]
    for band in range(1, min(count, len(offsets))):
        target = round(band * grid.height / count)
        candidates = [row for row in range(_aligned(target - reach) + OUTPUT_BLOCK,
                                           min(target + reach, grid.height - 1) + 1, OUTPUT_BLOCK)
                      if row > bounds[-1]]
        if candidates:
            bounds.append(min(candidates, key=lambda row: (crossing(row), abs(row - target))))
    bounds.append(grid.height)
    return tuple(zip(bounds[:-1], bounds[1:], strict=True))


def _tile_rows_across(grid: TileGrid, row: int) -> list[int]:
    """Indices of the tile rows with scene rows on both sides of scene row ``row``.

    >>> grid = TileGrid(1000, 600, 512, 64)
    >>> grid.row_offsets, _tile_rows_across(grid, 256), _tile_rows_across(grid, 512)
    ([0, 448, 488], [0], [1, 2])
    """
    size = min(grid.tile_size, grid.height)
    return [index for index, offset in enumerate(grid.row_offsets)
            if offset < row < offset + size]


def _right_half(tiles: list[Tile]) -> list[Tile]:
    """The tiles of a shared tile row that the band above predicts before its own rows: the
    right half, no more than the left half that the band below predicts (in grid order)
    before it needs them."""
    return tiles[(len(tiles) + 1) // 2:]


def _predict_ahead(run: _OpenRun, predictor: BatchPredictor, settings: ModelSettings,
                   opts: PredictOptions, tiles: list[Tile]) -> int:
    """Predict the ``tiles`` with data that no band saved yet and save the model's raw output
    for each in the run's journal; returns how many were predicted."""
    predictor = with_tta(predictor, opts.tta)
    todo = [tile for tile in tiles if not run.journal.has_tile(tile.row, tile.col)]
    predicted = 0
    batch_size = _batch_windows(predictor, run.grid, settings)
    for batch in _batches(run.src, run.grid, run.bands, batch_size,
                          extra_nodata=opts.extra_nodata, tiles=todo):
        if batch.tiles:
            for tile, probs in zip(batch.tiles, predictor(batch.images), strict=True):
                run.journal.save_tile(tile.row, tile.col, probs)
            predicted += len(batch.tiles)
    return predicted


@dataclass(frozen=True)
class _OpenRun:
    """A scene opened and checked for one prediction run, with its outputs and journal."""

    src: rasterio.io.DatasetReader
    bands: list[int]
    grid: TileGrid
    mask: Path
    probabilities: Path | None
    inputs: list[str | os.PathLike[str]]
    journal: PredictionJournal
    postprocessed: bool = False
    """The mask is made from the probabilities after the stream (``postprocessing``): they
    are computed, and kept in a hidden file when not asked for."""
    resampled_from: rasterio.io.DatasetReader | None = None
    """The scene, when ``src`` (and ``grid``) is a view of it at another pixel size
    (``resolution``: :func:`geoseg.resample.resampled_view`): the stream writes the view's
    probabilities, which :func:`_finish_outputs` puts back on the scene's grid."""

    @property
    def scene(self) -> rasterio.io.DatasetReader:
        """The scene as the user gave it: the grid of the outputs."""
        return self.resampled_from if self.resampled_from is not None else self.src

    @property
    def keeps_probabilities(self) -> bool:
        """Whether the stream computes and writes the probabilities."""
        return (self.probabilities is not None or self.postprocessed
                or self.resampled_from is not None)


def _open_run(
    stack: ExitStack,
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    settings: ModelSettings,
    opts: PredictOptions,
    probabilities_path: str | os.PathLike[str] | None,
    model_file: str | os.PathLike[str] | None,
    runtime: str | None,
) -> _OpenRun:
    """Open the scene (closed with ``stack``) and check everything a run needs before it starts:
    the threshold, the bands, the grid, the outputs against the inputs; describe the run in its
    journal's fingerprint."""
    if opts.threshold is not None and settings.num_classes > 2:
        raise ParameterError(f"{param('threshold')} applies to models with one or two "
                             f"classes; this model has {settings.num_classes}")
    scene = stack.enter_context(open_scene(scene_path, require_crs=opts.require_crs))
    band_list = select_bands(scene, settings.bands, opts.bands)
    scale = resampling_scale(opts.resolution, scene, settings.pixel_size_m)
    src = stack.enter_context(resampled_view(scene, scale)) if scale is not None else scene
    grid = opts._grid_of(src, settings)
    inputs = [*scene.files, *([model_file] if model_file is not None else [])]
    mask_final = check_output_path(out_path, opts.overwrite, inputs)
    prob_final = (check_output_path(probabilities_path, opts.overwrite, inputs)
                  if probabilities_path else None)
    if prob_final is not None and is_same_file(prob_final, mask_final):
        raise ParameterError(f"{param('probabilities_path')} must differ from the mask "
                             f"output ({mask_final})")
    if opts.style:
        check_style_path(mask_final, opts.overwrite, inputs,
                         layers=[*scene.files, *([prob_final] if prob_final else [])],
                         advice="give the mask another name")
    journal = PredictionJournal(mask_final, {
        "scene": _absolute(scene_path), "content": scene_fingerprint(scene),
        "model": file_digest(model_file) if model_file is not None else None,
        "runtime": runtime,
        "size": [src.height, src.width],
        "transform": list(src.transform)[:6], "crs": str(src.crs), "bands": band_list,
        "settings": settings.to_dict(), "overlap": grid.overlap, "window": grid.tile_size,
        "threshold": opts.threshold,
        "probabilities": prob_final is not None, "probability_dtype": opts.probability_dtype,
        "postprocessing": (opts.postprocessing.to_dict() if opts.postprocessing is not None
                           else None),
        "extra_nodata": opts.extra_nodata, "tta": opts.tta,
        **({"resampled": scale} if scale is not None else {}),
    })
    return _OpenRun(src, band_list, grid, mask_final, prob_final, inputs, journal,
                    postprocessed=opts.postprocessing is not None,
                    resampled_from=scene if scale is not None else None)


def _warn_if_unfit(run: _OpenRun, settings: ModelSettings,
                   model_file: str | os.PathLike[str] | None, opts: PredictOptions) -> None:
    """Warn when the scene is not the imagery the model was trained on
    (:func:`geoseg.imagery.warn_if_unfit`); not of its pixel size when the run reads it at
    another one."""
    if run.resampled_from is not None:
        settings = replace(settings, pixel_size_m=None)
    warn_if_unfit(run.scene, run.bands, settings, model_file, opts.extra_nodata)


def _stream_options(run: _OpenRun, opts: PredictOptions) -> PredictOptions:
    """The options the stream writes with: a resampled run's probabilities, the stage
    of its outputs, are float32 plain GeoTIFFs."""
    if run.resampled_from is None:
        return opts
    return replace(opts, probability_dtype="float32", cog=False)


def _stream_outputs(run: _OpenRun, mask_tmp: Path, prob_tmp: Path | None
                    ) -> tuple[Path, Path | None]:
    """Where the stream writes the mask and probabilities: the outputs' temporary paths, or a
    resampled run's stage files beside them (on the view's grid, removed by
    :func:`_finish_outputs`)."""
    if run.resampled_from is None:
        return mask_tmp, prob_tmp
    return mask_tmp.with_name(RESAMPLED_MASK), mask_tmp.with_name(RESAMPLED_PROBABILITIES)


def _absolute(scene_path: str | os.PathLike[str]) -> str:
    """A scene's path wherever the run starts from (GDAL virtual paths as they are), so that a
    run continues whether it was given ``scene.tif`` or the path a Dask worker gets."""
    path = os.fspath(scene_path)
    return path if path.startswith("/vsi") else os.path.abspath(path)


def _temporary_outputs(stack: ExitStack, run: _OpenRun, opts: PredictOptions
                       ) -> tuple[Path, Path | None]:
    """Temporary paths of the run's outputs, moved into place when ``stack`` closes cleanly."""
    mask_tmp = stack.enter_context(atomic_output(run.mask, opts.overwrite, run.inputs))
    prob_tmp = (stack.enter_context(atomic_output(run.probabilities, opts.overwrite, run.inputs))
                if run.probabilities is not None else None)
    if prob_tmp is None and run.postprocessed:
        prob_tmp = mask_tmp.with_name(HIDDEN_PROBABILITIES)  # removed by _finish_outputs
    return mask_tmp, prob_tmp


def _bound_block_cache(stack: ExitStack, run: _OpenRun, settings: ModelSettings,
                       opts: PredictOptions, outputs: bool) -> None:
    """Bound GDAL's block cache for the run (a user's own ``GDAL_CACHEMAX`` wins)."""
    if "GDAL_CACHEMAX" in os.environ:
        return
    out_bytes = 0
    if outputs:
        out_bytes = 1 + (settings.num_classes * np.dtype(opts.probability_dtype).itemsize
                         if run.keeps_probabilities else 0)
    stack.enter_context(rasterio.Env(GDAL_CACHEMAX=_cache_bytes(run.src, run.grid, out_bytes)))


def _finish_outputs(run: _OpenRun, mask_tmp: Path, prob_tmp: Path | None,
                    settings: ModelSettings, opts: PredictOptions,
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
        from geoseg.postprocess import postprocess_raster  # scipy: only when post-processing

        mask_file, prob_file = _staging(mask_tmp, opts.cog), _staging(prob_tmp, opts.cog)
        regions = mask_file.with_name(mask_file.name + ".regions.tif")
        made = postprocess_raster(prob_file, regions, opts.postprocessing,
                                  band=settings.num_classes, overwrite=True)
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


def _write_on_scene_grid(run: _OpenRun, mask_tmp: Path, prob_tmp: Path | None,
                         settings: ModelSettings, opts: PredictOptions,
                         model_file: str | os.PathLike[str] | None) -> int:
    """The outputs of a run that predicted a resampled view of the scene, on the scene's grid:
    the stream's probabilities resampled back (:func:`geoseg.resample.on_scene_grid`) block
    row by block row, classified with the run's threshold where the scene holds data
    (:func:`geoseg.scene.read_window`); the stream's files are removed. Returns the landslide
    pixels."""
    scene = run.scene
    stream_mask, stream_prob = _stream_outputs(run, mask_tmp, prob_tmp)
    assert stream_prob is not None
    with ExitStack() as files:
        outputs = _Outputs(files, scene, settings, opts, mask_tmp, prob_tmp, model_file)
        back = files.enter_context(on_scene_grid(
            files.enter_context(rasterio.open(stream_prob)), scene))
        for row_off in range(0, scene.height, OUTPUT_BLOCK):
            window = Window(0, row_off, scene.width, min(OUTPUT_BLOCK, scene.height - row_off))
            probs = back.read(window=window)
            _, valid = read_window(scene, window, run.bands, opts.extra_nodata)
            valid &= ~np.isnan(probs).any(axis=0)
            outputs.write(row_off, classify(probs, valid, opts.threshold),
                          _probability_band(probs, valid, opts.probability_dtype)
                          if prob_tmp is not None else None)
    stream_mask.unlink()
    stream_prob.unlink()
    return outputs.foreground


def _nothing_to_predict(src: rasterio.io.DatasetReader) -> InputError:
    return InputError(
        f"{src.name}: every pixel is nodata (validity from {_validity_words(src)}); nothing "
        "to predict: check the scene, its nodata value (gdal_edit.py -a_nodata) or its mask"
    )


def _validity_words(src: rasterio.io.DatasetReader) -> str:
    source = describe_validity(src)
    return f"nodata value {src.nodata}" if source == "nodata value" else source


def _checked_rows(run: _OpenRun, opts: PredictOptions, strips: list[FinishedRows]
                  ) -> list[FinishedRows]:
    """The saved ``strips`` that a run may reuse: those whose windows' input reads as it did
    when they were saved (:func:`geoseg.journal.window_digest`).

    Every window touching their rows is read again; the strips any window changed in (or whose
    windows cannot be checked) are dropped from the journal, to be predicted again, so that
    the outputs are those of a run over the scene as it is now. Returns the strips above the
    first one dropped.
    """
    if not strips:
        return strips
    saved = np.zeros(run.grid.height, dtype=bool)
    for strip in strips:
        saved[strip.row_off:strip.end] = True
    digests = run.journal.window_digests(strips)
    changed = np.zeros(run.grid.height, dtype=bool)
    windows = 0
    for tile in run.grid:
        rows = slice(tile.window.row_off, tile.window.row_off + tile.window.height)
        if saved[rows].any():
            data, valid = read_window(run.src, tile.window, run.bands, opts.extra_nodata)
            if digests.get((tile.row, tile.col)) != window_digest(data, valid):
                changed[rows] = True
                windows += 1
    stale = [strip for strip in strips if changed[strip.row_off:strip.end].any()]
    if not stale:
        return strips
    log.warning("%s: %d window(s) read otherwise than when the interrupted run saved their "
                "rows (was the scene changed?); predicting their rows again, from row %d",
                run.scene.name, windows, stale[0].row_off)
    run.journal.drop(stale)
    return strips[:strips.index(stale[0])]


def _end_row(finished: Sequence[FinishedRows], start: int = 0) -> int:
    """The first scene row after the strips finished from row ``start`` on."""
    return finished[-1].end if finished else start


def _staging(final_tmp: Path, cog: bool) -> Path:
    """Where the plain GeoTIFF is written: the output itself, or a stage file before COG."""
    return final_tmp.with_name(final_tmp.name + ".stage.tif") if cog else final_tmp


def _to_cog(final_tmp: Path) -> None:
    stage = _staging(final_tmp, True)
    rasterio.shutil.copy(stage, final_tmp, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER",
                         OVERVIEW_RESAMPLING="NEAREST")
    stage.unlink()


@dataclass
class _Batch:
    """Tiles read ahead for one model call, and the nodata-only tiles passed over before them."""

    tiles: list[Tile]
    valid: list[np.ndarray]
    images: np.ndarray
    skipped: int
    upto: tuple[int, int] | None = None
    """Without tiles: the grid position of the next tile to read. Every tile before it was
    read, and those not in an earlier batch hold no data: the scene's chunks that no tile from
    there on touches can be finished (written as nodata) now, not when the next tile with data
    comes, which on a sparse scene may be the end of the run."""


class _Failure:
    """An exception raised in the read-ahead thread, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _read_ahead(items: Iterator[_T], depth: int) -> Generator[_T, None, None]:
    """Produce ``items`` in a background thread, up to ``depth`` ahead; yield them in order.

    Exceptions of the producer re-raise here. Closing the generator stops the thread (after
    the item it is producing) and waits for it, so the producer's resources can close next.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001  (re-raised in the consumer)
            put(_Failure(error))

    thread = threading.Thread(target=produce, name="geoseg-read", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _recorded_in(journal: PredictionJournal) -> Callable[[Tile, np.ndarray, np.ndarray], None]:
    """Record the digest of each window read in ``journal``, saved with the rows it makes."""

    def record(tile: Tile, data: np.ndarray, valid: np.ndarray) -> None:
        journal.record_window(tile.row, tile.col, window_digest(data, valid))

    return record


def _aligned(row: int) -> int:
    """The block boundary at or above scene row ``row``."""
    return row - row % OUTPUT_BLOCK


def _warn_if_out_of_range(name: str, image: np.ndarray, valid: np.ndarray) -> None:
    """Warn when a model trained on 8-bit imagery is fed values far beyond 0-255."""
    values = image[valid]
    low, high = float(values.min()), float(values.max())
    if low < -1.0 or high > 1.5 * 255:
        log.warning("%s: pixel values %.4g to %.4g, but the model divides by 255 and was "
                    "trained on 0-255 imagery: rescale the scene to 8 bits (gdal_translate "
                    "-ot Byte -scale) or predictions will be meaningless", name, low, high)


def _batches(
    src: rasterio.io.DatasetReader,
    grid: TileGrid,
    bands: list[int],
    batch_size: int,
    check_range: bool = False,
    start_row: int = 0,
    stop_row: int | None = None,
    extra_nodata: float | None = None,
    tiles: Iterable[Tile] | None = None,
    on_read: Callable[[Tile, np.ndarray, np.ndarray], None] | None = None,
) -> Iterator[_Batch]:
    """Read the grid's tiles (or ``tiles`` of it) in row order and group those with data into
    model batches.

    A batch holds ``batch_size`` tiles (fewer at the end) of one or several tile rows; its
    images are one contiguous float32 array. The last item may hold no tiles: it reports the
    nodata-only tiles after the last batch. Tiles ending above ``start_row`` (finished by an
    interrupted run, or above a band) are passed over like nodata-only ones; reading stops
    before the first tile starting at or below ``stop_row``. ``on_read(tile, data, valid)``
    is called for every tile read, with or without data, with its raw pixels
    (:func:`geoseg.scene.read_window`).
    """
    size = grid.tile_size
    shape = (batch_size, size, size, len(bands))
    images = np.empty(shape, dtype=np.float32)
    batch_tiles: list[Tile] = []
    valid: list[np.ndarray] = []
    skipped = 0
    for tile in grid if tiles is None else tiles:
        if stop_row is not None and tile.window.row_off >= stop_row:
            break
        if tile.window.row_off + tile.window.height <= start_row:
            skipped += 1
            continue
        data, tile_valid = read_window(src, tile.window, bands, extra_nodata)
        if on_read is not None:
            on_read(tile, data, tile_valid)
        if not tile_valid.any():  # nodata only: nothing to predict
            skipped += 1
            upto = _next_position(grid, tile)
            if not batch_tiles and upto is not None and (skipped >= batch_size
                                                         or upto[1] == 0):
                yield _Batch([], [], images[:0], skipped, upto)  # the rows above can be written
                skipped = 0
            continue
        image, tile_valid = tile_input(data, tile_valid, size)
        if check_range:  # once, on the first tile with data
            _warn_if_out_of_range(src.name, image, tile_valid)
            check_range = False
        images[len(batch_tiles)] = image
        batch_tiles.append(tile)
        valid.append(tile_valid)
        if len(batch_tiles) == batch_size:
            yield _Batch(batch_tiles, valid, images, skipped)
            images = np.empty(shape, dtype=np.float32)
            batch_tiles, valid, skipped = [], [], 0
    if batch_tiles or skipped:
        yield _Batch(batch_tiles, valid, images[: len(batch_tiles)], skipped)


def _next_position(grid: TileGrid, tile: Tile) -> tuple[int, int] | None:
    """The grid position after ``tile``'s in the grid's row order; None after the last tile."""
    rows, columns = grid.shape
    if tile.col + 1 < columns:
        return tile.row, tile.col + 1
    return (tile.row + 1, 0) if tile.row + 1 < rows else None


def _cache_bytes(src: rasterio.io.DatasetReader, grid: TileGrid, out_bytes: int) -> int:
    """GDAL block cache for one run: the input blocks reading the grid needs
    (:func:`geoseg.tiling.input_cache_bytes`) and two block rows of output; at least 32 MiB.

    Without a bound GDAL caches up to 5% of the machine's memory, so the memory of a run would
    grow with the scene until that much is used.
    """
    needed = input_cache_bytes(src, grid) + out_bytes * grid.width * 2 * OUTPUT_BLOCK
    return max(32 * 2**20, needed)


class _Outputs:
    """The class mask (and probability) GeoTIFFs of a run on ``src``'s grid, written block row
    by block row, top down: the one way outputs are written, whether rows come from the model,
    a journal or a resampled run's probabilities.

    The datasets close with ``stack``; :attr:`foreground` counts the foreground pixels written.
    """

    def __init__(self, stack: ExitStack, src: rasterio.io.DatasetReader, settings: ModelSettings,
                 opts: PredictOptions, mask_tmp: Path, prob_tmp: Path | None,
                 model_file: str | os.PathLike[str] | None):
        self.width = src.width
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
        _describe_outputs(self.mask, self.probabilities, settings, opts.probability_dtype,
                          Path(model_file).name if model_file is not None else None)

    def write(self, row_off: int, mask: np.ndarray, band: np.ndarray | None) -> None:
        """Write finished rows from scene row ``row_off`` on."""
        window = Window(0, row_off, self.width, mask.shape[0])
        self.mask.write(mask, 1, window=window)
        if self.probabilities is not None and band is not None:
            self.probabilities.write(band, window=window)
        self.foreground += np.count_nonzero(mask) - np.count_nonzero(mask == MASK_NODATA)

    def copy(self, strips: Sequence[FinishedRows]) -> None:
        """Write saved strips, reading one at a time."""
        for strip in strips:
            self.write(strip.row_off, *strip.read())


def _batch_windows(predictor: BatchPredictor, grid: TileGrid, settings: ModelSettings) -> int:
    """Windows per model call: as many as the predictor runs at a time
    (:func:`geoseg.batching.windows_per_batch`)."""
    return windows_per_batch(max(1, int(predictor.batch_size)), settings.image_size,
                             grid.tile_size)


def options_for_model(options: PredictOptions | None, settings: ModelSettings,
                      predictor: object | None = None) -> PredictOptions:
    """The options of a run with the model's own defaults filled in: its threshold and
    post-processing (a recipe that only thresholds becomes None: the plain path), and an
    ``"auto"`` window resolved for ``predictor`` (whether it ``takes_windows``:
    :func:`geoseg.tiling.resolve_window`; without one, the model's tile). Anything with that
    attribute will do, such as a :class:`geoseg.predictor.ModelSpec` that Dask workers will
    load.

    Raises
    ------
    ParameterError
        A window that is neither ``auto``, ``tile`` nor a number of pixels.
    """
    opts = options if options is not None else PredictOptions()
    recipe = opts.postprocessing or settings.postprocessing_recipe()
    if opts.threshold is None:
        stored = recipe.threshold if recipe is not None else None
        opts = replace(opts, threshold=stored if stored is not None else settings.threshold)
    if recipe is not None:
        if settings.num_classes > 2:
            raise ParameterError(f"{param('postprocessing')} applies to models with one or two "
                                 f"classes; this model has {settings.num_classes}")
        recipe = replace(recipe, threshold=opts.threshold)
        plain = recipe == PostProcessing(threshold=recipe.threshold)
        opts = replace(opts, postprocessing=None if plain else recipe)
    window = resolve_window(opts.window, settings, getattr(predictor, "takes_windows", False))
    return replace(opts, window="tile" if window is None else window)


def _predict_rows(
    run: _OpenRun,
    predictor: BatchPredictor,
    settings: ModelSettings,
    opts: PredictOptions,
    start: int,
    stop: int,
    finished: RowsFinished,
    progress: Callable[[int, int], None] | None,
    shared: frozenset[int] = frozenset(),
) -> int:
    """The streaming loop: predict scene rows ``[start, stop)``, both block-aligned (or the
    scene's height), and hand each finished block row to ``finished`` (in the blender thread).

    The model's output for a tile of the tile rows ``shared`` (indices) is taken from the
    run's journal when another band saved it there, and saved there when predicted here
    (:meth:`~geoseg.journal.PredictionJournal.save_tile`).

    Only the tiles touching those rows are read and predicted, and they are blended with the
    whole grid's weights in the grid's order, so every row comes out exactly as in a run over
    the whole scene. Three threads: the reader reads tiles and stacks batches, this thread only
    runs the model, and the blender adds each batch's probabilities to the accumulator and
    finishes and classifies every chunk that no later tile touches. The model is never
    idle waiting for reading, blending or writing, which overlap with the next batch.

    Returns the number of tiles the model ran on.
    """
    predictor = with_tta(predictor, opts.tta)
    grid = run.grid
    batch_size = _batch_windows(predictor, grid, settings)
    # Tiles are added in row order; before each, the chunks that no later tile touches are
    # finished: the sums held are the overlap with the next tile row and the tiles around.
    accumulator = ChunkedAccumulator(
        grid.height, grid.width, grid.row_offsets, grid.col_offsets, settings.num_classes,
        grid.tile_size, grid.overlap, top=start, bottom=stop)
    block_rows = BlockRows(start, stop, grid.width, OUTPUT_BLOCK, finished)
    total = len(grid)
    predicted = 0

    def hand_out(pieces: Iterable[Piece]) -> None:
        """Classify finished pieces and gather them into block rows."""
        for row_off, col_off, probs, valid in pieces:
            band = (_probability_band(probs, valid, opts.probability_dtype)
                    if run.keeps_probabilities else None)
            block_rows.add(row_off, col_off, classify(probs, valid, opts.threshold), band)

    def predict(batch: _Batch) -> tuple[list[np.ndarray], list[Tile]]:
        """The batch's probabilities, tile by tile, and the tiles the model ran on."""
        taken = {index: tile_probs for index, tile in enumerate(batch.tiles)
                 if tile.row in shared
                 and (tile_probs := run.journal.load_tile(tile.row, tile.col)) is not None}
        todo = [index for index in range(len(batch.tiles)) if index not in taken]
        computed = iter(predictor(batch.images[todo] if taken else batch.images) if todo else ())
        probs = [taken[index] if index in taken else next(computed)
                 for index in range(len(batch.tiles))]
        return probs, [batch.tiles[index] for index in todo]

    def blend(batch: _Batch, probs: list[np.ndarray], fresh: list[Tile]) -> None:
        for tile, valid, tile_probs in zip(batch.tiles, batch.valid, probs, strict=True):
            hand_out(accumulator.finish_before(tile.row, tile.col))
            accumulator.add(tile.window, tile_probs, valid)
            if tile.row in shared and tile in fresh:
                run.journal.save_tile(tile.row, tile.col, tile_probs)

    def finish_before(position: tuple[int, int] | None) -> None:
        if position is not None:
            hand_out(accumulator.finish_before(*position))

    def report(windows: int) -> None:
        if progress is not None and windows:
            progress(windows, total)

    with ExitStack() as stack:
        blender = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="geoseg-blend"))
        # The blender's work, with the windows (read, skipped or predicted) it completes: they
        # are reported once it is done, so that progress counts the rows written too.
        pending: deque[tuple[Future[None], int]] = deque()
        batches = stack.enter_context(closing(_read_ahead(
            _batches(run.src, grid, run.bands, batch_size, settings.input_normalize, start,
                     stop, opts.extra_nodata, on_read=_recorded_in(run.journal)), depth=2
        )))
        for batch in batches:
            if batch.tiles:
                probs, fresh = predict(batch)
                predicted += len(fresh)
                work = blender.submit(blend, batch, probs, fresh)
            else:
                work = blender.submit(finish_before, batch.upto)
            pending.append((work, batch.skipped + len(batch.tiles)))
            while len(pending) > 1:
                done, windows = pending.popleft()
                done.result()
                report(windows)
        withheld = 0  # the last windows count once every row is written
        while pending:
            done, windows = pending.popleft()
            done.result()
            withheld += windows
        blender.submit(lambda: hand_out(accumulator.finish_all())).result()
        report(withheld)
    return predicted
