"""Accuracy of a model on labelled scenes, measured through the pipeline users run.

Every scene is predicted with :func:`geoseg.prediction.predict.predict_scene` exactly as ``geoseg
predict`` would (same tiler, overlap, blending, threshold, post-processing), into a class mask
and a probability GeoTIFF (in the run's probability type) in a work folder. Those are then read
back in blocks of the scene grid with the labels (:func:`geoseg.labels.reader.open_labels`), so
a scene of any size is scored in constant memory and seams between tiles count like any other
error:

- a :class:`~geoseg.evaluation.metrics.ConfusionMatrix` over the pixels that are *evaluated*: the
scene
  has data there (the mask is not nodata) and the labels have a class (not
  :data:`~geoseg.labels.reader.NO_LABEL`);
- a :class:`~geoseg.evaluation.metrics.ThresholdSweep` of the landslide probability over the same
pixels;
- object metrics (:func:`~geoseg.evaluation.object_matching.object_overlaps`, matched one-to-one at
the
  run's IoU threshold and at each of :data:`OBJECT_IOU_THRESHOLDS`): predicted landslides are the
  polygons :func:`geoseg.vectors.vectorize.polygons_from_mask` makes of the evaluated prediction
  (what ``geoseg predict --vector`` writes); true landslides are the label file's own polygons
  (reprojected, repaired, clipped to the evaluated area) for a vector layer, or the polygons of
  the evaluated label raster. Each scene keeps its objects
  (:class:`~geoseg.evaluation.object_report.ObjectLayer`) for the report's GeoPackage and plot.

Several scenes are pooled (micro average: confusion matrices, sweeps and object counts are
summed), and each scene keeps its own report. The reference dataset layout (``images/*.png``
with RGB-coded ``masks/*.png``) is evaluated the same way, each PNG a small scene without
georeference whose pure-white pixels are no data (:data:`geoseg.training.datasets.WHITE_NODATA`).

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.errors import NotGeoreferencedWarning

from geoseg.errors import InputError, OutputError, ParameterError, param
from geoseg.evaluation.evaluation_report import Evaluation, SceneReport
from geoseg.evaluation.metrics import ConfusionMatrix, ThresholdSweep
from geoseg.evaluation.metrics_report import MetricsReport
from geoseg.evaluation.object_matching import ObjectMatch, object_overlaps
from geoseg.evaluation.object_report import ObjectLayer, object_layer
from geoseg.labels.reader import NO_LABEL, LabelSource, VectorLabels, open_labels
from geoseg.model.model_protocol import BatchPredictor
from geoseg.prediction.predict import predict_planned
from geoseg.prediction.predict_options import PredictOptions, RunPlan, plan_run
from geoseg.prediction.prediction_outputs import OUTPUT_BLOCK
from geoseg.raster.mask_format import MASK_NODATA
from geoseg.raster.scene import open_scene, select_bands
from geoseg.raster.scene_paths import gdal_path, scene_name, scene_stem
from geoseg.raster.tiling import block_windows
from geoseg.settings import ModelSettings
from geoseg.training.datasets import LabelledScene, dataset_split, reference_scenes
from geoseg.vectors.geometry import repair_polygons
from geoseg.vectors.vector_blocks import read_probability
from geoseg.vectors.vector_features import Measure
from geoseg.vectors.vectorize import PolygonOptions, polygons_from_mask

__all__ = [
    "OBJECT_IOU_THRESHOLDS",
    "Evaluation",
    "SceneReport",
    "evaluate_dataset",
    "evaluate_scenes",
    "merge_reports",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
RgbMap = Mapping[tuple[int, int, int], int]
Progress = Callable[[int, int], None]

SCORING_BLOCK = 4 * OUTPUT_BLOCK
"""Side of the blocks the predictions and labels are read back in (1024 pixels): whole
blocks of the prediction GeoTIFFs."""

OBJECT_IOU_THRESHOLDS = (0.5, 0.25)
"""IoU thresholds objects are always matched at too, besides the run's own."""

# ------------------------------------------------------------------------------ quiet PNGs
class _NoCrsFilter(logging.Filter):
    """Drops the "has no CRS" warnings that plain images (PNG tiles) would raise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "no CRS" not in record.getMessage()


@contextmanager
def _georeference_not_expected(quiet: bool) -> Iterator[None]:
    """Silence missing-georeference warnings (rasterio's and geoseg's) while ``quiet``."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("geoseg.raster.scene",
                                                    "geoseg.vectors.vectorize")]
    no_crs = _NoCrsFilter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        for logger in loggers:
            logger.addFilter(no_crs)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(no_crs)


# ------------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class _Run:
    """What every scene of one evaluation is predicted and scored with."""

    predictor: BatchPredictor
    plan: RunPlan
    rgb_map: RgbMap | None
    iou_threshold: float
    objects: bool

    @property
    def class_names(self) -> list[str]:
        """Classes of the masks (:attr:`ModelSettings.mask_class_names`)."""
        return self.plan.settings.mask_class_names


def _uint8_raster(path: Path, like: rasterio.io.DatasetReader, nodata: int
                  ) -> rasterio.io.DatasetWriter:
    """A one-band uint8 GeoTIFF on the grid of ``like``, open for writing."""
    return rasterio.open(
        path, "w", driver="GTiff", width=like.width, height=like.height, count=1, dtype="uint8",
        crs=like.crs, transform=like.transform, nodata=nodata, tiled=True,
        blockxsize=OUTPUT_BLOCK, blockysize=OUTPUT_BLOCK, compress="deflate",
    )


def _vector_truth(path: Path, crs: object, footprint: shapely.Geometry, pixel_area: float
                  ) -> np.ndarray:
    """The label layer's polygons in the scene CRS, repaired and clipped to ``footprint``."""
    frame = gpd.read_file(path, engine="pyogrio").to_crs(crs)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    geoms = repair_polygons(shapely.intersection(repair_polygons(geoms), footprint))
    geoms = geoms[~shapely.is_empty(geoms)]
    # Pieces under half a pixel cannot be delineated by a pixel mask: not objects here.
    return geoms[shapely.area(geoms) >= 0.5 * pixel_area]


def _mask_polygons(path: Path, class_id: int) -> np.ndarray:
    """Polygons of one class of a mask, as ``geoseg predict --vector`` makes them."""
    frame = polygons_from_mask(path, PolygonOptions(classes=(class_id,)))
    return np.asarray(frame.geometry.array, dtype=object)


# ------------------------------------------------------------------------------ merging
def _more_iou_thresholds(iou_threshold: float) -> tuple[float, ...]:
    """The IoU thresholds of :data:`OBJECT_IOU_THRESHOLDS` other than the run's own."""
    return tuple(t for t in OBJECT_IOU_THRESHOLDS if t != iou_threshold)


def _merge_objects(first: ObjectMatch | None, second: ObjectMatch | None) -> ObjectMatch | None:
    """Both matchings as one, over the concatenated truth and prediction lists."""
    if first is None or second is None:
        return first or second
    pairs = first.pairs + [(t + first.n_truth, p + first.n_pred, iou)
                           for t, p, iou in second.pairs]
    pairs.sort(key=lambda pair: -pair[2])
    return ObjectMatch(pairs, first.n_truth + second.n_truth, first.n_pred + second.n_pred,
                       first.iou_threshold)


def merge_reports(reports: Sequence[MetricsReport]) -> MetricsReport:
    """Pool several reports (micro average): counts of pixels, thresholds and objects add up.

    Parameters
    ----------
    reports : sequence of MetricsReport
        Reports with the same classes and thresholds (from one model).

    Returns
    -------
    MetricsReport

    Raises
    ------
    ValueError
        ``reports`` is empty.
    ConfigError
        The reports have different classes or thresholds.
    """
    if not reports:
        raise ValueError("no report to merge")
    confusion = reports[0].confusion
    sweep = reports[0].sweep
    objects = reports[0].objects
    more: dict[float, ObjectMatch | None] = {m.iou_threshold: m for m in reports[0].more_objects}
    for report in reports[1:]:
        confusion = confusion.merge(report.confusion)
        if sweep is not None and report.sweep is not None:
            sweep = sweep.merge(report.sweep)
        objects = _merge_objects(objects, report.objects)
        for match in report.more_objects:
            more[match.iou_threshold] = _merge_objects(more.get(match.iou_threshold), match)
    return MetricsReport(confusion, objects=objects, sweep=sweep,
                         more_objects=tuple(m for m in more.values() if m is not None))


# ------------------------------------------------------------------------------ one scene
def _score(
    run: _Run,
    mask_path: Path,
    prob_path: Path,
    scene: rasterio.io.DatasetReader,
    labels: LabelSource,
    labels_path: Path,
    work: Path,
) -> tuple[MetricsReport, ObjectLayer | None]:
    """Read prediction and labels back block by block and score them; the scene's objects."""
    names = run.class_names
    confusion = ConfusionMatrix(len(names), names)
    sweep = ThresholdSweep()
    foreground = MetricsReport(confusion).foreground
    prob_band = 1 if run.plan.settings.num_classes == 1 else foreground + 1
    vector_truth = isinstance(labels, VectorLabels)
    pred_path = work / "predicted.evaluated.tif"
    # Objects need the evaluated area: the truth classes there, or just the area itself
    # (1, nodata 0) to clip the polygons of a vector layer with.
    truth_path = work / ("evaluated.tif" if vector_truth else "truth.evaluated.tif")
    with ExitStack() as stack:
        mask_src = stack.enter_context(rasterio.open(mask_path))
        prob_src = stack.enter_context(rasterio.open(prob_path))
        if run.objects:
            pred_dst = stack.enter_context(_uint8_raster(pred_path, mask_src, MASK_NODATA))
            truth_dst = stack.enter_context(
                _uint8_raster(truth_path, mask_src, 0 if vector_truth else MASK_NODATA)
            )
        for window in block_windows(mask_src.height, mask_src.width, SCORING_BLOCK):
            pred = mask_src.read(1, window=window)
            prob = np.clip(read_probability(prob_src, prob_band, window), 0.0, 1.0)
            truth = labels.read(window, SCORING_BLOCK)[: pred.shape[0], : pred.shape[1]]
            valid = (pred != MASK_NODATA) & (truth != NO_LABEL)
            confusion.update(truth, pred, valid)
            sweep.update(prob, truth == foreground, valid)
            if run.objects:
                pred_dst.write(np.where(valid, pred, MASK_NODATA), 1, window=window)
                evaluated = valid.astype(np.uint8) if vector_truth else np.where(
                    valid, truth, MASK_NODATA)
                truth_dst.write(evaluated, 1, window=window)
    if not run.objects:
        return MetricsReport(confusion, sweep=sweep), None
    predicted = _mask_polygons(pred_path, foreground)
    if vector_truth:
        footprint = shapely.union_all(_mask_polygons(truth_path, 1))
        truth = _vector_truth(labels_path, scene.crs, footprint, abs(scene.transform.determinant))
    else:
        truth = _mask_polygons(truth_path, foreground)
    overlaps = object_overlaps(truth, predicted)
    objects = overlaps.match(run.iou_threshold)
    more = tuple(overlaps.match(t) for t in _more_iou_thresholds(run.iou_threshold))
    layer = object_layer(Path(scene.name).name, truth, predicted, overlaps, objects,
                         Measure.for_raster(scene), scene.crs)
    return MetricsReport(confusion, objects=objects, sweep=sweep, more_objects=more), layer


def _evaluate_one(
    run: _Run, scene: LabelledScene, work_root: Path, progress: Progress | None
) -> SceneReport:
    """Predict one scene into a work folder, score it, and remove the work folder."""
    work = Path(tempfile.mkdtemp(prefix=f"{scene_stem(scene.image)}-", dir=work_root))
    try:
        image = scene.image
        with ExitStack() as stack:
            with _georeference_not_expected(True):  # predict_scene says it once, below
                src = stack.enter_context(open_scene(image))
            # Labels first: their mistakes surface before the prediction, not after it.
            labels = stack.enter_context(open_labels(
                scene.labels, src, num_classes=len(run.class_names), rgb_map=run.rgb_map
            ))
            # The run's own probability type (bytes by default): its post-processing, if any,
            # reads them, so the mask scored is the one `geoseg predict` makes.
            request = replace(run.plan.request, style=False, extra_nodata=scene.image_nodata)
            result = predict_planned(image, work / "mask.tif", run.predictor,
                                     replace(run.plan, request=request),
                                     probabilities_path=work / "probabilities.tif",
                                     progress=progress)
            log.info("%s: %d windows predicted in %.1f s", scene_name(image),
                     result.tiles_predicted, result.seconds)
            with _georeference_not_expected(True):
                report, objects = _score(run, result.mask_path, work / "probabilities.tif", src,
                                         labels, scene.labels, work)
            return SceneReport(scene_name(image), report, objects)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # free the disk before the next scene


def _count_tiles(scenes: Sequence[LabelledScene], plan: RunPlan) -> int:
    """The tiles of every scene, checking each scene, its bands and the grid on the way, so
    that a mistake in any scene is reported before the first one is predicted."""
    total = 0
    for scene in scenes:
        with open_scene(scene.image) as src:
            select_bands(src, plan.settings.bands, plan.bands)
            total += len(plan.grid(src))
    return total


def evaluate_scenes(
    scenes: Sequence[LabelledScene | tuple[PathLike, PathLike]],
    predictor: BatchPredictor,
    settings: ModelSettings,
    *,
    work_dir: PathLike | None = None,
    options: PredictOptions | None = None,
    iou_threshold: float = 0.5,
    rgb_map: RgbMap | None = None,
    objects: bool = True,
    expect_georeference: bool = True,
    progress: Progress | None = None,
) -> Evaluation:
    """Predict and score several labelled scenes; pool their figures.

    Parameters
    ----------
    scenes : sequence of LabelledScene or (scene, labels) pairs
        Scenes (any raster GDAL reads) with their labels: a vector layer (every polygon a
        landslide), a label raster of class ids, or an RGB-coded mask (with ``rgb_map``), on
        the scene grid (see :func:`geoseg.labels.reader.open_labels`). A
        :class:`~geoseg.training.datasets.LabelledScene`'s ``image_nodata`` marks more no data.
    predictor : BatchPredictor
        The model (:class:`geoseg.model.inference.KerasPredictor`, or any batch function).
    settings : ModelSettings
        The model's settings.
    work_dir : path, optional
        Folder for the temporary predictions (one scene at a time, removed after scoring);
        a new temporary folder (under ``TMPDIR``) by default.
    options : PredictOptions, optional
        How scenes are predicted (overlap, bands, threshold), as by ``geoseg predict``; the
        model's overlap and bands and argmax by default.
    iou_threshold : float
        IoU for a predicted landslide polygon to match a true one, in (0, 1]; objects are
        matched at :data:`OBJECT_IOU_THRESHOLDS` (0.5 and 0.25) too.
    rgb_map : mapping of (R, G, B) -> int, optional
        Colours of RGB-coded label rasters.
    objects : bool
        Also match landslide polygons (vectorising can be slow on very large scenes).
    expect_georeference : bool
        False for plain images (PNG tiles): their missing CRS is not warned about.
    progress : callable, optional
        ``progress(tiles_just_predicted, tiles_total)`` over all scenes.

    Returns
    -------
    Evaluation

    Raises
    ------
    InputError
        No scene, a bad ``iou_threshold``, or a scene, its labels or a setting is unusable
        (see :func:`geoseg.prediction.predict.predict_scene` and
        :func:`geoseg.labels.reader.open_labels`).
    ConfigError
        ``rgb_map`` is invalid, or missing for RGB-coded labels.
    OutputError
        ``work_dir`` does not exist.
    """
    started = time.perf_counter()
    pairs = [s if isinstance(s, LabelledScene) else LabelledScene(gdal_path(s[0]), Path(s[1]))
             for s in scenes]
    if not pairs:
        raise InputError("no scene to evaluate")
    if not 0 < iou_threshold <= 1:
        raise ParameterError(f"{param('iou_threshold')} must be in (0, 1], got {iou_threshold}")
    plan = plan_run(options, settings, predictor)
    run = _Run(predictor, plan, rgb_map, iou_threshold, objects)
    with ExitStack() as stack:
        stack.enter_context(_georeference_not_expected(not expect_georeference))
        if work_dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="geoseg-eval-")))
        else:
            root = Path(work_dir)
            if not root.is_dir():
                raise OutputError(f"{root}: work folder does not exist; create it first")
        with _georeference_not_expected(True):
            total = _count_tiles(pairs, plan)
        tiles = None
        if progress is not None:

            def tiles(done: int, _scene_total: int) -> None:
                progress(done, total)

        results = [_evaluate_one(run, scene, root, tiles) for scene in pairs]
    return Evaluation(merge_reports([r.report for r in results]), results,
                      time.perf_counter() - started)


def _dataset_scenes(
    source: PathLike | tuple[PathLike, PathLike], split: str | None, mask_suffix: str
) -> list[LabelledScene]:
    if isinstance(source, tuple):
        return reference_scenes(source[0], source[1], mask_suffix)
    root = Path(source)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found; check the path")
    if split is None and (root / "images").is_dir():
        return reference_scenes(root / "images", root / "masks", mask_suffix)
    splits = [split] if split is not None else ["test", "valid"]
    for name in splits:
        scenes = dataset_split(root, name, mask_suffix)
        if scenes:
            return scenes
    wanted = " or ".join(f"{name}/" for name in splits)
    raise InputError(
        f"{root}: has no images/ and masks/ folders, nor a {wanted} split holding them"
    )


def evaluate_dataset(
    source: PathLike | tuple[PathLike, PathLike],
    predictor: BatchPredictor,
    settings: ModelSettings,
    *,
    rgb_map: RgbMap | None = None,
    split: str | None = None,
    mask_suffix: str = ".png",
    work_dir: PathLike | None = None,
    options: PredictOptions | None = None,
    iou_threshold: float = 0.5,
    objects: bool = True,
    progress: Progress | None = None,
) -> Evaluation:
    """Predict and score a dataset in the reference layout, each image as a small scene.

    Images are read by rasterio (PNG, GeoTIFF, ...) and go through the same tiler and
    :func:`~geoseg.prediction.predict.predict_scene` as scenes; pure-white pixels of the reference
    PNGs are no data and are not scored. Images without georeference are expected here: their
    missing CRS is not warned about, and object areas are in pixels.

    Parameters
    ----------
    source : path or (images_dir, masks_dir)
        A folder holding ``images/`` and ``masks/``; a dataset root holding a split folder
        (``<split>/images``, ``<split>/masks``; ``test/``, else ``valid/`` without ``split``);
        a chip folder written by ``geoseg tile`` (its ``split`` chips); or the two folders.
    predictor, settings :
        The model and its settings.
    rgb_map : mapping of (R, G, B) -> int, optional
        Mask colour of each class (``[mask] rgb_map``); needed for RGB-coded masks.
    split : str, optional
        Split folder or chip split to evaluate.
    mask_suffix : str
        Extension of the masks (``[mask] mask_file_format``).
    work_dir, options, iou_threshold, objects, progress :
        As :func:`evaluate_scenes`.

    Returns
    -------
    Evaluation

    Raises
    ------
    InputError
        The layout is not found, an image has no mask, or a file is unusable.
    ConfigError
        ``rgb_map`` is missing for RGB masks or invalid.
    """
    return evaluate_scenes(
        _dataset_scenes(source, split, mask_suffix), predictor, settings, work_dir=work_dir,
        options=options, iou_threshold=iou_threshold,
        rgb_map=rgb_map, objects=objects, expect_georeference=False, progress=progress,
    )
