"""Choose a model's post-processing on its validation scenes, and store it in the model.

:func:`tune_postprocessing` predicts each validation scene once, through the same
:func:`~geoseg.prediction.predict.predict_scene` as ``geoseg predict`` (so what is tuned is what
users get), keeps its landslide probabilities, and scores a small grid of
:class:`~geoseg.postprocessing.postprocess_recipe.PostProcessing` recipes on them: the one with the
best object F1 (one-to-one matches of 8-connected regions at IoU >= 0.5) wins, among those whose
pixel IoU is no more than ``iou_tolerance`` below the plain threshold's. Ties go to the simpler
recipe. :func:`store_postprocessing` writes the winner into the model's settings, where ``predict``,
``vectorize`` and ``evaluate`` take it by default.

Validation scenes only: a recipe chosen on the training tiles would favour what the model
learnt by heart. Each scene is held in memory while its recipes are scored (validation tiles
and small scenes; at most :data:`MAX_TUNING_PIXELS` pixels are scored in all).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from scipy import ndimage

from geoseg.errors import InputError, ParameterError
from geoseg.evaluation.object_matching import label_overlaps
from geoseg.labels.reader import NO_LABEL, RgbMap, open_labels
from geoseg.model.model_archive import read_settings, replace_settings
from geoseg.model.model_protocol import BatchPredictor
from geoseg.model.predictor import load_predictor
from geoseg.postprocessing.postprocess import postprocess_array, region_pixel_size
from geoseg.postprocessing.postprocess_recipe import DEFAULT_THRESHOLD, PostProcessing
from geoseg.prediction.predict import predict_scene
from geoseg.prediction.predict_options import PredictOptions
from geoseg.raster.scene import open_scene
from geoseg.raster.scene_paths import scene_name, scene_stem
from geoseg.settings import ModelSettings
from geoseg.training.datasets import LabelledScene
from geoseg.vectors.vector_blocks import read_probability

__all__ = ["MAX_TUNING_PIXELS", "TunedPostProcessing", "candidate_recipes",
           "store_postprocessing", "tune_model_postprocessing", "tune_postprocessing"]

MAX_TUNING_PIXELS = 64 * 2**20
"""Pixels of validation scenes scored at most; scenes past it are left out (and said so)."""
SEED_THRESHOLDS = (None, 0.6, 0.7, 0.8, 0.9)
"""Hysteresis peaks tried: a region is kept when its peak reaches it (None: every region)."""
MIN_AREA_PIXELS = (0, 25, 50, 100, 200)
"""Smallest regions kept, in pixels of the validation scenes (stored in m²)."""
MAX_HOLE_PIXELS = (0, 25)
"""Largest holes filled, in pixels (stored in m²)."""
OBJECT_IOU = 0.5
"""A predicted region and a true landslide match one to one at this IoU or above."""

LANDSLIDE = 1
"""The landslide class of the masks of the models tuned here (one or two classes)."""
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class _Scene:
    """One validation scene's landslide probabilities and truth, in memory."""

    name: str
    prob: NDArray[np.float64]
    """Landslide probability; NaN where the scene or its labels hold no data."""
    truth: NDArray[np.int32]
    """8-connected true landslides numbered 1..n, 0 elsewhere."""
    pixel_size: float | None
    """Metres per pixel: the scene's, else (no CRS: PNG tiles) the model's training pixels';
    None when neither is known."""


@dataclass(frozen=True)
class Score:
    """Object and pixel figures of one recipe over the validation scenes."""

    object_f1: float
    object_precision: float
    object_recall: float
    pixel_iou: float
    regions: int
    landslides: int


@dataclass(frozen=True)
class TunedPostProcessing:
    """The recipe chosen, its score, and the plain threshold's score beside it."""

    recipe: PostProcessing
    score: Score
    baseline: Score
    scenes: int
    recipes_tried: int

    def describe(self) -> str:
        """One line for logs: the recipe and what it changes on the validation scenes."""
        return (f"post-processing {self.recipe.describe()}: object F1 (IoU >= {OBJECT_IOU}) "
                f"{self.baseline.object_f1:.3f} -> {self.score.object_f1:.3f}, pixel IoU "
                f"{self.baseline.pixel_iou:.4f} -> {self.score.pixel_iou:.4f}, "
                f"{self.baseline.regions} -> {self.score.regions} regions for "
                f"{self.score.landslides} true landslides on {self.scenes} validation "
                f"scene{'s' if self.scenes != 1 else ''}")


def candidate_recipes(threshold: float, pixel_area_m2: float | None
                      ) -> Iterator[PostProcessing]:
    """The recipes tried, simplest first: the plain ``threshold``, then every combination of
    a hysteresis peak, a minimum area and a hole size (:data:`SEED_THRESHOLDS`,
    :data:`MIN_AREA_PIXELS`, :data:`MAX_HOLE_PIXELS`; areas of ``pixel_area_m2`` a pixel;
    peaks alone when the pixel size is unknown, since no area can be stored in m²).

    >>> [r.describe() for r in candidate_recipes(0.5, 1.0)][:2]
    ['threshold 0.5', 'threshold 0.5, holes <= 25 m² filled']
    """
    areas, holes = (MIN_AREA_PIXELS, MAX_HOLE_PIXELS) if pixel_area_m2 else ((0,), (0,))
    for seed, area, hole in itertools.product(SEED_THRESHOLDS, areas, holes):
        if seed is not None and seed <= threshold:
            continue
        yield PostProcessing(threshold=threshold, seed_threshold=seed,
                             min_area_m2=area * (pixel_area_m2 or 0.0),
                             max_hole_m2=hole * (pixel_area_m2 or 0.0))


def _read_scene(scene: LabelledScene, predictor: BatchPredictor, settings: ModelSettings,
                options: PredictOptions, rgb_map: RgbMap | None, work: Path) -> _Scene:
    """Predict ``scene`` and read its landslide probabilities and true landslides."""
    stem = scene_stem(scene.image)
    probabilities = work / f"{stem}.probabilities.tif"
    # In the run's own probability type (bytes by default), as the run's post-processing
    # reads them: the recipe is scored on the very values it will be applied to.
    predict_scene(scene.image, work / f"{stem}.mask.tif", predictor, settings,
                  replace(options, style=False, overwrite=True, extra_nodata=scene.image_nodata),
                  probabilities_path=probabilities)
    with open_scene(scene.image) as src, rasterio.open(probabilities) as prob_src:
        whole = rasterio.windows.Window(0, 0, prob_src.width, prob_src.height)
        prob = read_probability(prob_src, prob_src.count, whole)  # the landslide class's
        with open_labels(scene.labels, src, num_classes=len(settings.mask_class_names),
                         rgb_map=rgb_map) as labels:
            truth_classes = labels.read(rasterio.windows.Window(0, 0, src.width, src.height),
                                        max(src.width, src.height))[: src.height, : src.width]
        size = region_pixel_size(src) if src.crs is not None else settings.pixel_size_m
    prob[truth_classes == NO_LABEL] = np.nan
    truth, _ = ndimage.label((truth_classes == LANDSLIDE) & ~np.isnan(prob),
                             structure=EIGHT_CONNECTED)
    return _Scene(scene_name(scene.image), np.clip(prob, 0.0, 1.0), truth.astype(np.int32), size)


def _score(scenes: Sequence[_Scene], recipe: PostProcessing) -> Score:
    """``recipe``'s object and pixel figures pooled over ``scenes``."""
    matched = truths = regions = 0
    intersection = union = 0
    for scene in scenes:
        found = postprocess_array(scene.prob, recipe, pixel_size=scene.pixel_size or 1.0,
                                  block_rows=scene.prob.shape[0])
        match = label_overlaps(scene.truth, found.labels).match(OBJECT_IOU)
        matched += match.true_positives
        truths += int(scene.truth.max(initial=0))
        regions += found.count
        predicted, true = found.labels > 0, scene.truth > 0
        intersection += int(np.count_nonzero(predicted & true))
        union += int(np.count_nonzero(predicted | true))
    precision = matched / regions if regions else 0.0
    recall = matched / truths if truths else 0.0
    f1 = 2 * matched / (truths + regions) if truths + regions else 0.0
    return Score(f1, precision, recall, intersection / union if union else 0.0, regions, truths)


def tune_postprocessing(
    scenes: Sequence[LabelledScene],
    predictor: BatchPredictor,
    settings: ModelSettings,
    *,
    rgb_map: RgbMap | None = None,
    options: PredictOptions | None = None,
    iou_tolerance: float = 0.005,
    report: Callable[[str], None] | None = None,
) -> TunedPostProcessing:
    """Choose the post-processing with the best object F1 on labelled validation scenes.

    Parameters
    ----------
    scenes : sequence of LabelledScene
        Validation scenes and their labels (never the training tiles).
    predictor, settings :
        The model, as :func:`~geoseg.prediction.predict.predict_scene` takes it.
    rgb_map : mapping of (R, G, B) -> int, optional
        Mask colours, for RGB-coded masks.
    options : PredictOptions, optional
        How the scenes are predicted (the defaults of ``geoseg predict`` without it).
    iou_tolerance : float
        How far below the plain threshold's pixel IoU a recipe may fall.
    report : callable, optional
        Told which scenes are left out.

    Returns
    -------
    TunedPostProcessing
        The plain threshold when no recipe beats it.

    Raises
    ------
    InputError
        No validation scene, or none with a true landslide.
    ParameterError
        A model of more than two classes.
    """
    if not scenes:
        raise InputError("tuning the post-processing needs validation scenes with labels")
    if settings.num_classes > 2:
        raise ParameterError(f"post-processing is for models of one or two classes; this one "
                             f"has {settings.num_classes}")
    options = options or PredictOptions()
    threshold = (options.threshold if options.threshold is not None
                 else settings.threshold if settings.threshold is not None
                 else DEFAULT_THRESHOLD)
    read: list[_Scene] = []
    pixels = 0
    with tempfile.TemporaryDirectory(prefix="geoseg-tuning-") as tmp:
        for scene in scenes:
            with open_scene(scene.image) as src:
                size = src.width * src.height
            if pixels + size > MAX_TUNING_PIXELS:
                if report is not None:
                    report(f"{scene_name(scene.image)}: left out of the post-processing tuning "
                           f"(over {MAX_TUNING_PIXELS // 2**20} Mpx scored already)")
                continue
            pixels += size
            read.append(_read_scene(scene, predictor, settings, options, rgb_map, Path(tmp)))
            for leftover in Path(tmp).iterdir():
                os.remove(leftover)
    if not any(scene.truth.max(initial=0) for scene in read):
        raise InputError("the validation scenes hold no landslide: the post-processing "
                         "cannot be tuned on them")
    sizes = [scene.pixel_size for scene in read]
    pixel_area = None
    if all(size is not None for size in sizes):
        pixel_area = float(np.median([size for size in sizes if size is not None])) ** 2
    elif report is not None:
        report("the validation scenes' pixel size is unknown (no CRS, and no [train] "
               "pixel_size): only hysteresis peaks are tuned, no areas")
    recipes = list(candidate_recipes(threshold, pixel_area))
    baseline = _score(read, recipes[0])
    best, best_score = recipes[0], baseline
    for recipe in recipes[1:]:
        score = _score(read, recipe)
        if score.pixel_iou >= baseline.pixel_iou - iou_tolerance and (
                score.object_f1 > best_score.object_f1):
            best, best_score = recipe, score
    return TunedPostProcessing(best, best_score, baseline, len(read), len(recipes))


def store_postprocessing(model_path: str | os.PathLike[str], recipe: PostProcessing) -> None:
    """Write ``recipe`` into a ``.keras`` model's settings (replacing any stored one)."""
    settings = read_settings(model_path)
    replace_settings(model_path, replace(settings, postprocessing=recipe.to_dict()))


def tune_model_postprocessing(
    model_path: str | os.PathLike[str],
    scenes: Sequence[LabelledScene],
    *,
    rgb_map: RgbMap | None = None,
    report: Callable[[str], None] | None = None,
) -> TunedPostProcessing:
    """Tune a trained model's post-processing on ``scenes`` and store it in the model: what
    ``geoseg train`` does after training (``[train] tune_postprocessing``).

    The model runs on Keras (TensorFlow is loaded by training anyway; no conversion is cached
    beside the new model: OpenVINO's masks are the same); see :func:`tune_postprocessing` for
    the rest.
    """
    settings = read_settings(model_path)
    tuned = tune_postprocessing(scenes, load_predictor(model_path, backend="keras"), settings,
                                rgb_map=rgb_map, report=report)
    store_postprocessing(model_path, tuned.recipe)
    return tuned
