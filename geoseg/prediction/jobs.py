"""One scene and its outputs: predicted, then vectorised, in one place.

A :class:`SceneJob` names a scene and the outputs asked of it; :func:`run_job` checks every
output before any work, predicts the class mask (and probabilities) with
:func:`geoseg.prediction.predict.predict_scene`, and vectorises the mask when polygons are asked
for. ``geoseg predict`` (one scene) and :mod:`geoseg.prediction.distributed` (many scenes, on Dask
workers) both run scenes through it, so a scene's outputs are made the same way whoever asks. A
scene split into bands over several workers goes the same way in two steps: :func:`plan_banded_job`
checks every output and plans the bands, :func:`finish_job` assembles and vectorises the mask.
Whichever way it ran, what became of a scene is one :class:`SceneOutcome`.

The polygons are made from the mask before it is moved into place, and every output of the
job is then moved into place together: a job that fails (a full disk while the polygons are
written) leaves no output, and its journal, holding every row, lets ``resume`` write them
without predicting again.

This module never imports TensorFlow (the predictor does, when it first runs).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from geoseg.model.model_protocol import BatchPredictor
from geoseg.prediction.predict import predict_scene
from geoseg.prediction.predict_options import PredictOptions, RunPlan
from geoseg.prediction.prediction_outputs import PredictionResult
from geoseg.prediction.row_bands import BandedPrediction, BandResult
from geoseg.raster.outputs import atomic_output, check_output_path
from geoseg.raster.scene_paths import scene_stem
from geoseg.raster.styles import check_style_path
from geoseg.settings import ModelSettings

if TYPE_CHECKING:
    from geoseg.errors import GeosegError
    from geoseg.vectors.vectorize import VectorizeSummary

__all__ = [
    "BandOutcome", "SceneJob", "SceneOutcome", "check_outputs", "finish_job", "plan_banded_job",
    "run_job", "this_process",
]


@dataclass(frozen=True)
class SceneJob:
    """One scene and where its outputs go."""

    scene: str
    """A file path, a URL or a GDAL virtual path (``/vsizip/...``)."""
    mask: Path
    probabilities: Path | None = None
    vector: Path | None = None
    uncertainty: Path | None = None
    """The per-pixel uncertainty raster (:mod:`geoseg.prediction.uncertainty`); the polygons then
    get its mean too."""

    @property
    def layer(self) -> str:
        """Name of the polygons' layer (GeoPackage): the scene's file stem."""
        return scene_stem(self.scene)


@dataclass(frozen=True)
class BandOutcome:
    """What became of one band of rows of a scene split over workers."""

    result: BandResult | None
    failure: GeosegError | None
    worker: str
    """Where it ran: ``host:pid``."""


@dataclass(frozen=True)
class SceneOutcome:
    """What became of one job, however it ran (in this process, one task on a Dask worker, or
    in bands of rows over several): what it wrote, or the error that stopped it."""

    job: SceneJob
    result: PredictionResult | None
    """What the prediction did; None when the job failed."""
    worker: str
    """Where it ran (where it was assembled, for a scene split in bands): ``host:pid``."""
    vector: VectorizeSummary | None = None
    """What was written to ``job.vector``, when it was asked for."""
    failure: GeosegError | None = None
    """The error that stopped the job; callers word its parameters their own way
    (:meth:`~geoseg.errors.GeosegError.worded`)."""
    bands: tuple[BandOutcome, ...] = ()
    """The bands of rows the scene was split into over the workers; empty when it was one
    task."""
    assembly_seconds: float | None = None
    """For a scene split into bands: how long writing the outputs from the bands' rows (and
    vectorising) took, the part of the run that one worker does alone."""

    @property
    def error(self) -> str | None:
        """The error that stopped the job, as one line; None when it did not fail."""
        return str(self.failure) if self.failure is not None else None


def this_process() -> str:
    """This process, as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(
    job: SceneJob,
    predictor: BatchPredictor,
    settings: ModelSettings,
    options: PredictOptions | None = None,
    *,
    model_file: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SceneOutcome:
    """Predict a scene into its mask (and probabilities), then vectorise it if asked.

    Parameters
    ----------
    job : SceneJob
        The scene and its outputs.
    predictor, settings :
        The model as a batch function, and its settings.
    options : PredictOptions, optional
        How to predict (see :func:`geoseg.prediction.predict.predict_scene`).
    model_file : path, optional
        The model's file (recorded in the outputs, never written over).
    progress : callable, optional
        Called as ``progress(tiles_just_finished, tiles_total)``.

    Raises
    ------
    GeosegError
        As :func:`geoseg.prediction.predict.predict_scene` and
        :func:`geoseg.vectors.vectorize.vectorize_mask`; the vector output is checked before the
        prediction starts.
    """
    opts = options if options is not None else PredictOptions()
    check_outputs(job, opts.overwrite, model_file, opts.style)
    polygons = _Polygons(job, opts)
    prediction = predict_scene(job.scene, job.mask, predictor, settings, opts,
                               probabilities_path=job.probabilities, model_file=model_file,
                               progress=progress, then=polygons if job.vector else None,
                               uncertainty_path=job.uncertainty, polygons=job.vector is not None)
    return SceneOutcome(job, prediction, this_process(), polygons.summary)


def plan_banded_job(
    job: SceneJob,
    plan: RunPlan,
    *,
    model_file: str | os.PathLike[str] | None = None,
    row_bands: int,
) -> BandedPrediction:
    """Check every output of a job and plan its scene, run as ``plan`` says, in ``row_bands``
    bands of rows (see :meth:`geoseg.prediction.row_bands.BandedPrediction.plan`).

    Raises
    ------
    GeosegError
        As :meth:`geoseg.prediction.row_bands.BandedPrediction.plan`, and a vector output that
        cannot be written.
    """
    check_outputs(job, plan.overwrite, model_file, plan.style)
    return BandedPrediction.plan(job.scene, job.mask, plan, probabilities_path=job.probabilities,
                                 model_file=model_file, row_bands=row_bands,
                                 uncertainty_path=job.uncertainty,
                                 polygons=job.vector is not None)


def finish_job(job: SceneJob, plan: BandedPrediction, results: Sequence[BandResult]
               ) -> SceneOutcome:
    """Assemble a banded job's outputs from its bands' ``results`` and vectorise the mask when
    the job asks for polygons; the outputs are moved into place together.

    Raises
    ------
    GeosegError
        As :meth:`geoseg.prediction.row_bands.BandedPrediction.assemble` and
        :func:`geoseg.vectors.vectorize.vectorize_mask`.
    """
    polygons = _Polygons(job, plan.options.request)
    prediction = plan.assemble(results, then=polygons if job.vector else None)
    return SceneOutcome(job, prediction, this_process(), polygons.summary)


class _Polygons:
    """Vectorises a job's mask, still under its temporary name, into the job's vector output,
    written under a temporary name too and moved into place with everything the vectoriser
    wrote next to it (its style)."""

    def __init__(self, job: SceneJob, options: PredictOptions):
        self.job = job
        self.options = options
        self.summary: VectorizeSummary | None = None

    def __call__(self, prediction: PredictionResult) -> None:
        from geoseg.vectors.vector_formats import output_format
        from geoseg.vectors.vectorize import vectorize_mask

        assert self.job.vector is not None
        final, _ = output_format(self.job.vector)
        with atomic_output(final, self.options.overwrite) as tmp:
            summary = vectorize_mask(prediction.mask_path, tmp,
                                     probabilities_path=prediction.probabilities_path,
                                     uncertainty_path=prediction.uncertainty_path,
                                     layer=self.job.layer, style=self.options.style)
        self.summary = replace(summary, path=final)


def check_outputs(job: SceneJob, overwrite: bool = False,
                  model_file: str | os.PathLike[str] | None = None, style: bool = True) -> None:
    """Check every output of a job before any work: none exists unless ``overwrite``, none
    is an input (the scene, the model file), every folder is writable; with ``style``, the
    QGIS styles too: the mask's ``.qml``, the uncertainty's and the polygons' (none for a
    GeoPackage, which keeps it inside), each an output of its own, never the scene's or
    another output's style.

    :func:`geoseg.prediction.predict.predict_scene` checks the mask, probabilities and uncertainty
    again once the scene is open (against every file of the scene).

    Raises
    ------
    OutputError, OutputExistsError, OutputIsInputError
        As :func:`geoseg.raster.outputs.check_output_path` and
        :func:`geoseg.raster.styles.check_style_path`.
    """
    inputs = [job.scene, *([model_file] if model_file is not None else [])]
    rasters = [path for path in (job.mask, job.probabilities, job.uncertainty)
               if path is not None]
    for path in rasters:
        check_output_path(path, overwrite, inputs)
    if style:
        check_style_path(job.mask, overwrite, inputs, layers=[job.scene, *rasters],
                         advice="give the mask another name")
        if job.uncertainty is not None:
            check_style_path(job.uncertainty, overwrite, inputs, layers=[job.scene, *rasters],
                             advice="give the uncertainty output another name")
    if job.vector is not None:
        from geoseg.vectors.vector_formats import check_vector_output

        check_vector_output(job.vector, overwrite, inputs, layers=[job.scene, *rasters],
                            style=style)
