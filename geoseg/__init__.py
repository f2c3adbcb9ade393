"""geoseg: find landslides in whole georeferenced scenes.

The public API, for notebooks and other tools (the ``geoseg`` command is a thin layer over it):

- :func:`predict_scene` with :class:`PredictOptions`: a scene to a class mask (and
  probabilities) GeoTIFF aligned with it; :func:`run_job` with a :class:`SceneJob` also
  vectorises it; :func:`predict_scenes` runs one or many (:func:`expand_scenes`,
  :func:`plan_jobs`) in this process or on Dask workers (:class:`Executor`);
- :func:`load_predictor`: a geoseg ``.keras`` model file, or a bundled model's name
  (``"demo"``, ``"hokkaido-iburi"``: :data:`BUNDLED_MODELS`), to a batch predictor
  (TensorFlow loads on its first batch); :func:`load_model` for the Keras model itself;
- :func:`vectorize_mask`: a class mask to landslide polygons (GeoPackage, Shapefile, ...);
- :func:`postprocess_raster` and :func:`postprocess_array` with a :class:`PostProcessing`
  recipe: landslide probabilities to landslide regions (a class mask and region labels),
  streamed over rasters too big for memory;
- :func:`evaluate_scenes` and :func:`evaluate_dataset`: scores through the predict path;
- :func:`train_model`: a FlexUNet from a config and labelled rasters
  (:func:`geoseg.training.train.train`);
- :func:`open_scene`, :class:`TileGrid`: the mask-aware scene reader and the one tiler;
- :class:`GeosegError`: everything geoseg refuses, with subclasses in :mod:`geoseg.errors`.

Names are imported on first use, so ``import geoseg`` stays light: only :func:`load_model`,
:func:`train_model` and a predictor's first batch load TensorFlow. The layers and their import rules
are in ``docs/architecture.md``.

>>> import geoseg
>>> geoseg.PredictOptions(threshold=0.4).threshold
0.4
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, tuple[str, str]] = {  # public name -> (module, name there)
    "PredictOptions": ("geoseg.prediction.predict_options", "PredictOptions"),
    "predict_scene": ("geoseg.prediction.predict", "predict_scene"),
    "SceneJob": ("geoseg.prediction.jobs", "SceneJob"),
    "run_job": ("geoseg.prediction.jobs", "run_job"),
    "predict_scenes": ("geoseg.prediction.distributed", "predict_scenes"),
    "Executor": ("geoseg.prediction.distributed", "Executor"),
    "plan_jobs": ("geoseg.prediction.distributed", "plan_jobs"),
    "expand_scenes": ("geoseg.prediction.distributed", "expand_scenes"),
    "ModelSpec": ("geoseg.model.predictor", "ModelSpec"),
    "load_predictor": ("geoseg.model.predictor", "load_predictor"),
    "load_model": ("geoseg.model.flexunet", "load_model"),
    "BUNDLED_MODELS": ("geoseg.model.bundled", "BUNDLED_MODELS"),
    "vectorize_mask": ("geoseg.vectors.vectorize", "vectorize_mask"),
    "PostProcessing": ("geoseg.postprocessing.postprocess_recipe", "PostProcessing"),
    "postprocess_array": ("geoseg.postprocessing.postprocess", "postprocess_array"),
    "postprocess_raster": ("geoseg.postprocessing.postprocess", "postprocess_raster"),
    "evaluate_scenes": ("geoseg.evaluation.evaluate", "evaluate_scenes"),
    "evaluate_dataset": ("geoseg.evaluation.evaluate", "evaluate_dataset"),
    # geoseg.training.train is the module's own name
    "train_model": ("geoseg.training.train", "train"),
    "open_scene": ("geoseg.raster.scene", "open_scene"),
    "TileGrid": ("geoseg.raster.tiling", "TileGrid"),
    "ModelSettings": ("geoseg.settings", "ModelSettings"),
    "GeosegError": ("geoseg.errors", "GeosegError"),
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted(__all__)
