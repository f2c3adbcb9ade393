"""How to predict a scene (:class:`PredictOptions`, the request), and the run it asks for
resolved once for a model (:func:`plan_run` makes a :class:`RunPlan`): the plan of a
prediction run, before any scene is opened, which every part of the run reads. This module
never imports TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import rasterio

from geoseg.errors import ParameterError, param
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.run_parameters import PROBABILITY_DTYPES, run_parameter
from geoseg.prediction.tta import TTA_MODES, TTAMode
from geoseg.raster.resample import Resolution, check_resolution, resampled_view, resampling_scale
from geoseg.raster.tiling import TileGrid, WindowChoice, check_grid_size, grid_size, resolve_window
from geoseg.settings import ModelSettings

__all__ = ["PredictOptions", "ProbabilityDtype", "RunPlan", "plan_run"]


ProbabilityDtype = Literal["uint8", "float32"]


def _default(name: str) -> Any:
    """A run parameter's default, from its one description
    (:data:`geoseg.prediction.run_parameters.RUN_PARAMETERS`)."""
    return run_parameter(name).default


@dataclass(frozen=True)
class PredictOptions:
    """How to predict a scene: everything but the scene, its outputs and the model.

    The request of a prediction run, as ``geoseg predict``, ``geoseg evaluate`` and library
    callers give it; :func:`plan_run` resolves it for a model into the :class:`RunPlan` that
    :func:`~geoseg.prediction.predict.predict_scene`, :mod:`geoseg.evaluation.evaluate` and the
    many-scene runner (:mod:`geoseg.prediction.distributed`) read. Defaults:
    :data:`geoseg.prediction.run_parameters.RUN_PARAMETERS`.

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
    :mod:`geoseg.evaluation.evaluate`'s threshold sweep finds the one with the best landslide F1 on
    labelled data."""
    probability_dtype: ProbabilityDtype = _default("probability_dtype")
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
    finished band of rows (see :mod:`geoseg.raster.journal`); the output is identical to an
    uninterrupted run. Without an interrupted run to continue, start from the top. A scene
    or model file whose content changed since (:func:`geoseg.raster.scene.scene_fingerprint`, the
    model file's digest) is refused."""
    extra_nodata: float | None = None
    """A second nodata value: pixels equal to it in every band hold no data (the white
    wedges of the reference dataset's PNG tiles)."""
    style: bool = True
    """Write a QGIS ``.qml`` style next to the mask (landslides red, background clear), and
    style the polygons a job vectorises (:func:`geoseg.prediction.jobs.finish_job`). A style is an
    output of its own: refused when it exists unless ``overwrite``, never an input's style."""
    tta: TTAMode = _default("tta")
    """Test-time augmentation (:mod:`geoseg.prediction.tta`): each tile's probabilities averaged
    over its flipped (``flips``, 4 model calls) or flipped and rotated (``d4``, 8 calls) copies
    before blending."""
    window: WindowChoice = _default("window")
    """The side of the windows the model predicts, with the model's overlap
    (:meth:`geoseg.raster.tiling.TileGrid.for_model`): ``"auto"`` (as large as the model's width
    allows, when the predictor takes windows: :func:`geoseg.raster.tiling.resolve_window`),
    ``"tile"`` (the model's tile) or a number of pixels. The FlexUNet is fully
    convolutional, and larger windows predict less of the scene twice (on a large scene,
    512-pixel tiles with a 64-pixel overlap compute every pixel 1.31 times, as do 256-pixel
    tiles with 32; 1024-pixel windows 1.14 times, 2048-pixel ones 1.07 times). A model call
    holds as many windows as hold the pixels of ``batch_size`` tiles, at least one.
    Probabilities differ slightly from tile-size windows (the model sees other borders); they
    do not depend on the batch size."""

    postprocessing: PostProcessing | None = None
    """How the landslide probabilities become the mask's landslide regions (hysteresis peak,
    minimum area, hole filling, smoothing, split: :class:`~geoseg.postprocessing.postprocess_recipe.
    PostProcessing`; models of one or two classes). By default the model's own
    (:attr:`ModelSettings.postprocessing <geoseg.settings.ModelSettings.postprocessing>`,
    tuned on its validation scenes), else the threshold alone. The recipe's threshold is the
    run's (``threshold``)."""
    resolution: Resolution = _default("resolution")
    """The pixel size the model predicts the scene at (:mod:`geoseg.raster.resample`): ``"native"``
    (the scene's own pixels), ``"auto"`` (the model's training pixel size,
    :attr:`ModelSettings.pixel_size_m <geoseg.settings.ModelSettings.pixel_size_m>`, when the
    scene's differs from it by more than 1.25x; else, or when either is unknown, the scene's
    own) or a pixel size in metres (at most 16 times more pixels than the scene's). The scene
    is read resampled (averaged when coarser, bilinear when finer), and the probabilities are
    resampled back (bilinear): every output is on the scene's grid, with its validity."""

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
        if self.probability_dtype not in PROBABILITY_DTYPES:
            raise ParameterError(f"{param('probability_dtype')} must be "
                                 f"{' or '.join(PROBABILITY_DTYPES)}, got "
                                 f"{self.probability_dtype!r}")


@dataclass(frozen=True)
class RunPlan:
    """A prediction run resolved once for a model, before any scene is opened: what every
    part of the run reads (the scene pipeline, Dask bands, evaluation, the resume journal,
    ``geoseg info``), made by :func:`plan_run` only.

    >>> from geoseg.settings import ModelSettings
    >>> plan = plan_run(PredictOptions(window=1024), ModelSettings(image_size=256))
    >>> plan.tile_size, plan.overlap, plan.window, plan.threshold, plan.resolution
    (256, 32, 1024, None, 'native')
    """

    request: PredictOptions
    """What was asked; read for what needs no resolving (bands, outputs, resume...)."""
    settings: ModelSettings
    """The model's settings the plan was resolved against."""
    tile_size: int
    """The model's tile."""
    overlap: int
    """Pixels shared by neighbouring windows: the request's, else the model's."""
    window: int | None
    """The side of the windows asked for (:func:`geoseg.raster.tiling.resolve_window`), before
    fitting to a scene (:func:`geoseg.raster.tiling.inference_window`); None: the model's tile."""
    threshold: float | None
    """The run's threshold: the request's, else the post-processing's, else the model's."""
    postprocessing: PostProcessing | None
    """The post-processing with the run's threshold; None: the threshold alone."""
    resolution: Resolution
    """The pixel size asked for (:func:`geoseg.raster.resample.resampling_scale` per scene)."""
    takes_windows: bool
    """Whether the predictor runs windows larger than the tile (keras and openvino
    backends)."""
    runtime: str | None
    """What computes the probabilities (:meth:`geoseg.model.predictor.ModelSpec.runtime`), for the
    resume journal; None when unknown."""

    @property
    def bands(self) -> tuple[int, ...] | None:
        """The scene bands asked for (:attr:`PredictOptions.bands`)."""
        return self.request.bands

    @property
    def probability_dtype(self) -> ProbabilityDtype:
        """How probabilities are written (:attr:`PredictOptions.probability_dtype`)."""
        return self.request.probability_dtype

    @property
    def cog(self) -> bool:
        """Cloud Optimized GeoTIFF outputs (:attr:`PredictOptions.cog`)."""
        return self.request.cog

    @property
    def overwrite(self) -> bool:
        """Replace existing outputs (:attr:`PredictOptions.overwrite`)."""
        return self.request.overwrite

    @property
    def require_crs(self) -> bool:
        """Refuse scenes without a CRS (:attr:`PredictOptions.require_crs`)."""
        return self.request.require_crs

    @property
    def resume(self) -> bool:
        """Continue an interrupted run (:attr:`PredictOptions.resume`)."""
        return self.request.resume

    @property
    def extra_nodata(self) -> float | None:
        """A second nodata value (:attr:`PredictOptions.extra_nodata`)."""
        return self.request.extra_nodata

    @property
    def style(self) -> bool:
        """QGIS styles next to the outputs (:attr:`PredictOptions.style`)."""
        return self.request.style

    @property
    def tta(self) -> TTAMode:
        """Test-time augmentation (:attr:`PredictOptions.tta`)."""
        return self.request.tta

    def streamed(self) -> RunPlan:
        """This plan as the stream of a resampled run writes its stage files: float32
        probabilities, no COG (:func:`geoseg.prediction.prediction_outputs.write_outputs` makes the
        outputs from them)."""
        return replace(self, request=replace(self.request, probability_dtype="float32",
                                             cog=False))

    def grid(self, src: rasterio.io.DatasetReader) -> TileGrid:
        """The grid this run reads ``src`` with, at the run's pixel size (``resolution``).

        Raises :class:`~geoseg.errors.ParameterError` for a resolution ``src`` cannot be
        read at (:func:`geoseg.raster.resample.resampling_scale`)."""
        scale = resampling_scale(self.resolution, src, self.settings.pixel_size_m, say=False)
        if scale is None:
            return self.grid_of(src)
        with resampled_view(src, scale) as view:
            return self.grid_of(view)

    def grid_of(self, dataset: rasterio.io.DatasetReader) -> TileGrid:
        """The grid of ``dataset`` as it is (the scene, or a view of it at the run's pixel
        size)."""
        return TileGrid.for_model(dataset, self.settings, self.overlap, self.window)


def plan_run(options: PredictOptions | None, settings: ModelSettings,
             predictor: object | None = None, runtime: str | None = None) -> RunPlan:
    """The run ``options`` ask for, resolved once for a model: its tile and overlap
    (:func:`geoseg.raster.tiling.grid_size`), its threshold and post-processing (a recipe that only
    thresholds becomes None: the plain path), and an ``"auto"`` window resolved for
    ``predictor`` (whether it ``takes_windows``: :func:`geoseg.raster.tiling.resolve_window`;
    without one, the model's tile). Anything with that attribute will do, such as a
    :class:`geoseg.model.predictor.ModelSpec` that Dask workers will load. ``runtime``: what
    computes the probabilities, else the ``predictor``'s ``runtime`` when it says.

    Raises
    ------
    ParameterError
        An overlap the model's tile cannot take, a window that is neither ``auto``, ``tile``
        nor a number of pixels, post-processing or a threshold for a model of more than two
        classes.
    """
    request = options if options is not None else PredictOptions()
    tile_size, overlap = grid_size(None, request.overlap, settings)
    check_grid_size(tile_size, overlap)
    recipe = request.postprocessing or settings.postprocessing_recipe()
    threshold = request.threshold
    if threshold is None:
        stored = recipe.threshold if recipe is not None else None
        threshold = stored if stored is not None else settings.threshold
    if recipe is not None:
        if settings.num_classes > 2:
            raise ParameterError(f"{param('postprocessing')} applies to models with one or two "
                                 f"classes; this model has {settings.num_classes}")
        recipe = replace(recipe, threshold=threshold)
        if recipe == PostProcessing(threshold=recipe.threshold):
            recipe = None
    if threshold is not None and settings.num_classes > 2:
        raise ParameterError(f"{param('threshold')} applies to models with one or two "
                             f"classes; this model has {settings.num_classes}")
    takes_windows = bool(getattr(predictor, "takes_windows", False))
    if runtime is None and isinstance(getattr(predictor, "runtime", None), str):
        runtime = predictor.runtime  # type: ignore[union-attr]
    return RunPlan(request, settings, tile_size, overlap,
                   resolve_window(request.window, settings, takes_windows), threshold, recipe,
                   request.resolution, takes_windows, runtime)
