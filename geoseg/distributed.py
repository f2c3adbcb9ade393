"""Predicting many scenes: one after another in this process, or spread over a Dask cluster.

A run is a list of :class:`~geoseg.jobs.SceneJob` (a scene and the paths of its outputs), one
:class:`~geoseg.predictor.ModelSpec` (the model) and one
:class:`~geoseg.predict.PredictOptions` (how to predict). :func:`predict_scenes` runs the jobs

- serially in this process when no cluster is asked for;
- on a new local cluster of ``workers`` processes (``dask.distributed.LocalCluster`` with one
  thread each, TensorFlow's threads shared out among them), or
- on an existing Dask distributed cluster at ``scheduler`` (every worker must see the scene,
  model and output paths, e.g. on a shared file system).

Each scene is one task: :func:`predict_job`, which runs :func:`geoseg.jobs.run_job` exactly
as a single-process run does, so outputs are byte-identical whichever way they are
made. Each worker process loads the model once, on its first task, and keeps it (a cache in
this module, keyed by the model file and the predictor settings). A scene that fails with a
user-facing error (:class:`~geoseg.errors.GeosegError`) is reported in its
:class:`SceneOutcome` and the other scenes go on.

Dask is optional: it is imported only when a cluster is asked for (``pip install
geoseg[dask]``). This module never imports click, and imports TensorFlow only to run a job.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from geoseg.errors import GeosegError, InputError, OutputError, ParameterError, param
from geoseg.jobs import SceneJob, run_job
from geoseg.outputs import check_output_path
from geoseg.predict import PredictOptions
from geoseg.predictor import ModelPredictor, ModelSpec

if TYPE_CHECKING:
    from geoseg.predict import PredictionResult
    from geoseg.vectorize import VectorizeSummary

__all__ = [
    "SceneJob",
    "SceneOutcome",
    "expand_scenes",
    "plan_jobs",
    "predict_job",
    "predict_scenes",
]

MASK_SUFFIX = "_mask.tif"
PROBABILITIES_SUFFIX = "_probabilities.tif"
VECTOR_SUFFIX = "_landslides.gpkg"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class SceneOutcome:
    """What became of one job: its result, or the one-line error that stopped it."""

    job: SceneJob
    result: PredictionResult | None
    error: str | None
    worker: str
    """Where it ran: ``host:pid``."""
    vector: VectorizeSummary | None = None
    """What was written to ``job.vector``, when it was asked for."""
    failure: GeosegError | None = None
    """The error behind ``error``, for callers that word its parameters their own way."""


def expand_scenes(items: Iterable[str]) -> list[str]:
    """The scenes named by paths, glob patterns and ``@list.txt`` files, in order.

    GDAL virtual paths (``/vsizip/...``, ``/vsicurl/...``) pass unchecked. A ``@file`` names
    a text file with one path or pattern per line (blank lines and lines starting with ``#``
    are skipped; relative entries are relative to the list file's folder). Patterns accept
    ``**``. A scene named twice is kept once.

    Raises
    ------
    InputError
        A missing file or list, or a pattern that matches nothing.
    """
    scenes: dict[str, None] = {}
    for item in items:
        if item.startswith("@"):
            listing = Path(item[1:])
            try:
                lines = listing.read_text().splitlines()
            except OSError as exc:
                raise InputError(f"{listing}: scene list cannot be read ({exc.strerror})") \
                    from exc
            entries = [line.strip() for line in lines]
            names = [
                os.path.join(listing.parent, entry) if not os.path.isabs(entry) else entry
                for entry in entries if entry and not entry.startswith("#")
            ]
        else:
            names = [item]
        for name in names:
            for path in _expand_one(name):
                scenes.setdefault(path, None)
    return list(scenes)


def _expand_one(name: str) -> list[str]:
    if name.startswith("/vsi"):
        return [name]
    if _GLOB_CHARS & set(name):
        matches = sorted(p for p in glob.glob(name, recursive=True) if Path(p).is_file())
        if not matches:
            raise InputError(f"{name}: matches no file")
        return matches
    path = Path(name)
    if not path.is_file():
        raise InputError(f"{path}: {'is a directory' if path.is_dir() else 'does not exist'}; "
                         "give scene files, glob patterns or @list.txt")
    return [name]


def plan_jobs(
    scenes: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    probabilities: bool = False,
    vector: bool = False,
    overwrite: bool = False,
) -> list[SceneJob]:
    """One job per scene, with outputs ``<stem>_mask.tif`` (and ``<stem>_probabilities.tif``,
    ``<stem>_landslides.gpkg``) in ``out_dir``, created if missing; every output is checked
    before any work.

    Raises
    ------
    InputError
        Two scenes share a file stem (their outputs would collide).
    OutputError, OutputExistsError
        ``out_dir`` cannot be created or written, or an output exists without ``overwrite``.
    """
    folder = Path(out_dir)
    seen: dict[str, str] = {}
    jobs = []
    for scene in scenes:
        stem = PurePosixPath(scene).stem
        if stem in seen:
            raise InputError(f"{seen[stem]} and {scene} would both write {stem}{MASK_SUFFIX}; "
                             f"rename one or run them into different {param('out_dir')} folders")
        seen[stem] = scene
        jobs.append(SceneJob(
            scene=scene,
            mask=folder / f"{stem}{MASK_SUFFIX}",
            probabilities=folder / f"{stem}{PROBABILITIES_SUFFIX}" if probabilities else None,
            vector=folder / f"{stem}{VECTOR_SUFFIX}" if vector else None,
        ))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: output folder cannot be created ({exc.strerror})") \
            from exc
    for job in jobs:
        for path in (job.mask, job.probabilities, job.vector):
            if path is not None:
                check_output_path(path, overwrite, inputs=[job.scene])
    return jobs


_PREDICTORS: dict[tuple[object, ...], ModelPredictor] = {}
"""This process's model, so that a worker loads each model once for all its tasks."""


def _predictor(model: ModelSpec) -> ModelPredictor:
    path = model.path.resolve()
    try:
        stat = path.stat()
    except OSError:
        stat = None  # reading the model says what is wrong
    key = (model, stat and stat.st_mtime_ns, stat and stat.st_size)
    if key not in _PREDICTORS:
        predictor = ModelPredictor(model)
        _PREDICTORS.clear()  # one model per process: a new model file replaces the old one
        _PREDICTORS[key] = predictor
    return _PREDICTORS[key]


def predict_job(job: SceneJob, model: ModelSpec, options: PredictOptions) -> SceneOutcome:
    """Predict one scene (the task run on a worker); the model is loaded once per process.

    Returns
    -------
    SceneOutcome
        With the :class:`~geoseg.predict.PredictionResult`, or the error message if a
        :class:`~geoseg.errors.GeosegError` stopped the scene. Other exceptions propagate.
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        predictor = _predictor(model)
        done = run_job(job, predictor, predictor.settings, options, model_file=model.path)
    except GeosegError as exc:
        return SceneOutcome(job, None, str(exc), worker, failure=exc)
    return SceneOutcome(job, done.prediction, None, worker, done.vector)


def predict_scenes(
    jobs: Sequence[SceneJob],
    model: ModelSpec,
    options: PredictOptions,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[SceneOutcome], None] | None = None,
) -> list[SceneOutcome]:
    """Predict every job: in this process, or over a Dask distributed cluster.

    Parameters
    ----------
    jobs : sequence of SceneJob
        From :func:`plan_jobs`, or built by hand.
    model : ModelSpec
        The model, loaded once by each process that runs jobs.
    options : PredictOptions
        How every job is predicted.
    workers : int, optional
        Start a local cluster of this many worker processes (one thread each) for the run.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to submit the jobs to.
    progress : callable, optional
        Called with each :class:`SceneOutcome` as it finishes (in completion order).

    Returns
    -------
    list of SceneOutcome
        In the order of ``jobs``.

    Raises
    ------
    InputError
        Both ``workers`` and ``scheduler``, ``workers`` below 1, or Dask is not installed.
    GeosegError
        Cannot reach the scheduler.
    """
    if workers is not None and scheduler is not None:
        raise ParameterError(f"give either {param('workers')} or {param('scheduler')}, not both")
    if workers is not None and workers < 1:
        raise ParameterError(f"{param('workers')} must be >= 1, got {workers}")
    model = replace(model, path=model.path.absolute())
    jobs = [_absolute_job(job) for job in jobs]
    if workers is None and scheduler is None:
        outcomes = []
        for job in jobs:
            outcomes.append(predict_job(job, model, options))
            if progress is not None:
                progress(outcomes[-1])
        return outcomes
    with _dask_client(workers, scheduler) as client:
        from distributed import as_completed

        futures = client.map(predict_job, jobs, model=model, options=options, pure=False)
        order = {future.key: index for index, future in enumerate(futures)}
        done: list[SceneOutcome | None] = [None] * len(jobs)
        for future in as_completed(futures):
            outcome = future.result()
            done[order[future.key]] = outcome
            if progress is not None:
                progress(outcome)
    return [outcome for outcome in done if outcome is not None]


def _absolute_job(job: SceneJob) -> SceneJob:
    """The job with absolute paths, as workers may run in other folders."""
    scene = job.scene if job.scene.startswith("/vsi") else str(Path(job.scene).absolute())
    return replace(
        job, scene=scene, mask=job.mask.absolute(),
        probabilities=job.probabilities.absolute() if job.probabilities else None,
        vector=job.vector.absolute() if job.vector else None,
    )


@contextlib.contextmanager
def _dask_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the run, closed (with its local cluster) at the end.

    Dask's own log messages are shown only at the level the application logs at, and its
    warnings while closing the cluster not at all.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InputError(f"{param('workers')} and {param('scheduler')} need Dask: "
                         "pip install 'geoseg[dask]'") from exc
    dask_log = logging.getLogger("distributed")
    previous = dask_log.level
    dask_log.setLevel(max(previous, logging.getLogger().getEffectiveLevel()))
    try:
        with contextlib.ExitStack() as stack:
            if workers is None:
                try:
                    client = Client(scheduler, timeout="20s")
                except (OSError, TimeoutError, ValueError) as exc:
                    raise InputError(f"{param('scheduler')} {scheduler}: cannot connect ({exc})") \
                        from exc
            else:
                threads = str(max(1, (os.cpu_count() or 1) // workers))
                # TensorFlow sizes its thread pools by the machine: share the cores out.
                env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1",
                       "OMP_NUM_THREADS": threads}
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, env=env,
                ))
                client = Client(cluster)
            try:
                yield stack.enter_context(client)
            finally:  # TensorFlow workers may exit slowly: closing is not news to report
                dask_log.setLevel(max(logging.ERROR, dask_log.level))
    finally:
        dask_log.setLevel(previous)
