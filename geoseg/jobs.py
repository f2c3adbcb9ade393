"""One scene and its outputs: predicted, then vectorised, in one place.

A :class:`SceneJob` names a scene and the outputs asked of it; :func:`run_job` checks every
output before any work, predicts the class mask (and probabilities) with
:func:`geoseg.predict.predict_scene`, and vectorises the mask when polygons are asked for.
``geoseg predict`` (one scene) and :mod:`geoseg.distributed` (many scenes, on Dask workers) both
run scenes through it, so a scene's outputs are made the same way whoever asks. A scene split
into bands over several workers goes the same way in two steps: :func:`plan_banded_job`
checks every output and plans the bands, :func:`finish_job` vectorises the assembled mask.

This module never imports TensorFlow (the predictor does, when it first runs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from geoseg.outputs import check_output_path
from geoseg.predict import (
    BandedPrediction,
    BatchPredictor,
    PredictionResult,
    PredictOptions,
    predict_scene,
)
from geoseg.settings import ModelSettings
from geoseg.styles import check_style_path

if TYPE_CHECKING:
    from geoseg.vectorize import VectorizeSummary

__all__ = ["JobResult", "SceneJob", "check_outputs", "finish_job", "plan_banded_job", "run_job"]


@dataclass(frozen=True)
class SceneJob:
    """One scene and where its outputs go."""

    scene: str
    """A file path or a GDAL virtual path (``/vsizip/...``)."""
    mask: Path
    probabilities: Path | None = None
    vector: Path | None = None

    @property
    def layer(self) -> str:
        """Name of the polygons' layer (GeoPackage): the scene's file stem."""
        return PurePosixPath(self.scene).stem


@dataclass(frozen=True)
class JobResult:
    """What a job wrote."""

    prediction: PredictionResult
    vector: VectorizeSummary | None = None
    """What was written to the job's vector output, when it was asked for."""


def run_job(
    job: SceneJob,
    predictor: BatchPredictor,
    settings: ModelSettings,
    options: PredictOptions | None = None,
    *,
    model_file: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> JobResult:
    """Predict a scene into its mask (and probabilities), then vectorise it if asked.

    Parameters
    ----------
    job : SceneJob
        The scene and its outputs.
    predictor, settings :
        The model as a batch function, and its settings.
    options : PredictOptions, optional
        How to predict (see :func:`geoseg.predict.predict_scene`).
    model_file : path, optional
        The model's file (recorded in the outputs, never written over).
    progress : callable, optional
        Called as ``progress(tiles_just_finished, tiles_total)``.

    Raises
    ------
    GeosegError
        As :func:`geoseg.predict.predict_scene` and :func:`geoseg.vectorize.vectorize_mask`;
        the vector output is checked before the prediction starts.
    """
    opts = options if options is not None else PredictOptions()
    check_outputs(job, opts.overwrite, model_file, opts.style)
    prediction = predict_scene(job.scene, job.mask, predictor, settings, opts,
                               probabilities_path=job.probabilities, model_file=model_file,
                               progress=progress)
    return finish_job(job, prediction, opts)


def plan_banded_job(
    job: SceneJob,
    settings: ModelSettings,
    options: PredictOptions,
    *,
    model_file: str | os.PathLike[str] | None = None,
    runtime: str | None = None,
    bands: int,
) -> BandedPrediction:
    """Check every output of a job and plan its scene in ``bands`` bands of rows (``runtime``:
    see :meth:`geoseg.predict.BandedPrediction.plan`).

    Raises
    ------
    GeosegError
        As :meth:`geoseg.predict.BandedPrediction.plan`, and a vector output that cannot be
        written.
    """
    check_outputs(job, options.overwrite, model_file, options.style)
    return BandedPrediction.plan(job.scene, job.mask, settings, options,
                                 probabilities_path=job.probabilities, model_file=model_file,
                                 runtime=runtime, bands=bands)


def finish_job(job: SceneJob, prediction: PredictionResult, options: PredictOptions
               ) -> JobResult:
    """Vectorise a predicted mask when the job asks for polygons.

    Raises
    ------
    GeosegError
        As :func:`geoseg.vectorize.vectorize_mask`.
    """
    if job.vector is None:
        return JobResult(prediction)
    from geoseg.vectorize import vectorize_mask

    summary = vectorize_mask(prediction.mask_path, job.vector,
                             probabilities_path=prediction.probabilities_path, layer=job.layer,
                             style=options.style, overwrite=options.overwrite)
    return JobResult(prediction, summary)


def check_outputs(job: SceneJob, overwrite: bool = False,
                  model_file: str | os.PathLike[str] | None = None, style: bool = True) -> None:
    """Check every output of a job before any work: none exists unless ``overwrite``, none
    is an input (the scene, the model file), every folder is writable; with ``style``, the
    QGIS styles too: the mask's ``.qml`` and the polygons' (none for a GeoPackage, which keeps
    it inside), each an output of its own, never the scene's or another output's style.

    :func:`geoseg.predict.predict_scene` checks the mask and probabilities again once the
    scene is open (against every file of the scene).

    Raises
    ------
    OutputError, OutputExistsError, OutputIsInputError
        As :func:`geoseg.outputs.check_output_path` and :func:`geoseg.styles.check_style_path`.
    """
    inputs = [job.scene, *([model_file] if model_file is not None else [])]
    rasters = [path for path in (job.mask, job.probabilities) if path is not None]
    for path in rasters:
        check_output_path(path, overwrite, inputs)
    if style:
        check_style_path(job.mask, overwrite, inputs, layers=[job.scene, *rasters],
                         advice="give the mask another name")
    if job.vector is not None:
        from geoseg.vector_formats import check_vector_output

        check_vector_output(job.vector, overwrite, inputs, layers=[job.scene, *rasters],
                            style=style)
