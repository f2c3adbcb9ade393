"""How to predict a scene (:class:`PredictOptions`), and those options with a model's own
defaults filled in (:func:`options_for_model`): the plan of a prediction run, before any
scene is opened. This module never imports TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import rasterio

from geoseg.errors import ParameterError, param
from geoseg.postprocess_recipe import PostProcessing
from geoseg.resample import Resolution, check_resolution, resampled_view, resampling_scale
from geoseg.settings import ModelSettings
from geoseg.tiling import TileGrid, WindowChoice, resolve_window
from geoseg.tta import TTA_MODES, TTAMode

__all__ = ["PredictOptions", "ProbabilityDtype", "options_for_model"]


ProbabilityDtype = Literal["uint8", "float32"]


@dataclass(frozen=True)
class PredictOptions:
    """How to predict a scene: everything but the scene, its outputs and the model.

    One description of a prediction run, shared by :func:`~geoseg.predict.predict_scene`, ``geoseg predict``,
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
