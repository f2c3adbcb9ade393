"""One scene and its outputs: predicted, then vectorised, in one place.

A :class:`SceneJob` names a scene and the outputs asked of it; :func:`run_job` checks every
output before any work, predicts the class mask (and probabilities) with
:func:`geoseg.predict.predict_scene`, and vectorises the mask when polygons are asked for.
``geoseg predict`` (one scene) and :mod:`geoseg.distributed` (many scenes, on Dask workers) both
run scenes through it, so a scene's outputs are made the same way whoever asks. A scene split
into bands over several workers goes the same way in two steps: :func:`plan_banded_job`
checks every output and plans the bands, :func:`finish_job` assembles and vectorises the mask.

The polygons are made from the mask before it is moved into place, and every output of the
job is then moved into place together: a job that fails (a full disk while the polygons are
written) leaves no output, and its journal, holding every row, lets ``resume`` write them
without predicting again.

This module never imports TensorFlow (the predictor does, when it first runs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from geoseg.model_protocol import BatchPredictor
from geoseg.outputs import atomic_output, check_output_path
from geoseg.predict import predict_scene
from geoseg.predict_options import PredictOptions
from geoseg.prediction_outputs import PredictionResult
from geoseg.row_bands import BandedPrediction, BandResult
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
    polygons = _Polygons(job, opts)
    prediction = predict_scene(job.scene, job.mask, predictor, settings, opts,
                               probabilities_path=job.probabilities, model_file=model_file,
                               progress=progress, then=polygons if job.vector else None)
    return JobResult(prediction, polygons.summary)


def plan_banded_job(
    job: SceneJob,
    settings: ModelSettings,
    options: PredictOptions,
    *,
    model_file: str | os.PathLike[str] | None = None,
    runtime: str | None = None,
    row_bands: int,
) -> BandedPrediction:
    """Check every output of a job and plan its scene in ``row_bands`` bands of rows (``runtime``:
    see :meth:`geoseg.row_bands.BandedPrediction.plan`).

    Raises
    ------
    GeosegError
        As :meth:`geoseg.row_bands.BandedPrediction.plan`, and a vector output that cannot be
        written.
    """
    check_outputs(job, options.overwrite, model_file, options.style)
    return BandedPrediction.plan(job.scene, job.mask, settings, options,
                                 probabilities_path=job.probabilities, model_file=model_file,
                                 runtime=runtime, row_bands=row_bands)


def finish_job(job: SceneJob, plan: BandedPrediction, results: Sequence[BandResult]
               ) -> JobResult:
    """Assemble a banded job's outputs from its bands' ``results`` and vectorise the mask when
    the job asks for polygons; the outputs are moved into place together.

    Raises
    ------
    GeosegError
        As :meth:`geoseg.row_bands.BandedPrediction.assemble` and
        :func:`geoseg.vectorize.vectorize_mask`.
    """
    polygons = _Polygons(job, plan.options)
    prediction = plan.assemble(results, then=polygons if job.vector else None)
    return JobResult(prediction, polygons.summary)


class _Polygons:
    """Vectorises a job's mask, still under its temporary name, into the job's vector output,
    written under a temporary name too and moved into place with everything the vectoriser
    wrote next to it (its style)."""

    def __init__(self, job: SceneJob, options: PredictOptions):
        self.job = job
        self.options = options
        self.summary: VectorizeSummary | None = None

    def __call__(self, prediction: PredictionResult) -> None:
        from geoseg.vector_formats import output_format
        from geoseg.vectorize import vectorize_mask

        assert self.job.vector is not None
        final, _ = output_format(self.job.vector)
        with atomic_output(final, self.options.overwrite) as tmp:
            summary = vectorize_mask(prediction.mask_path, tmp,
                                     probabilities_path=prediction.probabilities_path,
                                     layer=self.job.layer, style=self.options.style)
        self.summary = replace(summary, path=final)


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
