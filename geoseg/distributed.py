"""Predicting many scenes: one after another in this process, or spread over a Dask cluster.

A run is a list of :class:`SceneJob` (a scene and the paths of its outputs) and one
:class:`PredictOptions` (the model and how to predict). :func:`predict_scenes` runs the jobs

- serially in this process when no cluster is asked for;
- on a new local cluster of ``workers`` processes (``dask.distributed.LocalCluster`` with one
  thread each, TensorFlow's threads shared out among them), or
- on an existing Dask distributed cluster at ``scheduler`` (every worker must see the scene,
  model and output paths, e.g. on a shared file system).

Each scene is one task: :func:`predict_job`, which runs :func:`geoseg.predict.predict_scene`
exactly as a single-process run does, so outputs are byte-identical whichever way they are
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

from geoseg.errors import GeosegError, InputError, OutputError
from geoseg.outputs import check_output_path

if TYPE_CHECKING:
    from geoseg.inference import Device, KerasPredictor, Precision
    from geoseg.predict import PredictionResult, ProbabilityDtype
    from geoseg.settings import ModelSettings
    from geoseg.vectorize import VectorizeSummary

__all__ = [
    "PredictOptions",
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
class PredictOptions:
    """How to predict every scene of a run (see :func:`geoseg.predict.predict_scene`)."""

    model_path: Path
    batch_size: int = 4
    device: Device = "auto"
    precision: Precision = "float32"
    overlap: int | None = None
    bands: tuple[int, ...] | None = None
    threshold: float | None = None
    """None: the model's own threshold (:attr:`ModelSettings.threshold`), else argmax."""
    probability_dtype: ProbabilityDtype = "uint8"
    cog: bool = False
    overwrite: bool = False
    require_crs: bool = False
    resume: bool = False
    tta: str = "none"
    """Test-time augmentation (:data:`geoseg.tta.TTA_MODES`)."""


@dataclass(frozen=True)
class SceneJob:
    """One scene and where its outputs go."""

    scene: str
    """A file path or a GDAL virtual path (``/vsizip/...``)."""
    mask: Path
    probabilities: Path | None = None
    vector: Path | None = None


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
                             "rename one or run them into different --out-dir folders")
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
                check_output_path(path, overwrite)
    return jobs


_PREDICTORS: dict[tuple[object, ...], tuple[KerasPredictor, ModelSettings]] = {}
"""This process's loaded models, so that a worker loads each model once for all its tasks."""


def _predictor(options: PredictOptions) -> tuple[KerasPredictor, ModelSettings]:
    from geoseg.inference import KerasPredictor
    from geoseg.model import load_model

    path = Path(options.model_path).resolve()
    try:
        stat = path.stat()
    except OSError:
        stat = None  # load_model says what is wrong
    key = (str(path), stat and stat.st_mtime_ns, stat and stat.st_size, options.batch_size,
           options.device, options.precision)
    if key not in _PREDICTORS:
        model, settings = load_model(path)
        predictor = KerasPredictor(model, options.batch_size, options.device,
                                   precision=options.precision)
        _PREDICTORS.clear()  # one model per process: a new model file replaces the old one
        _PREDICTORS[key] = (predictor, settings)
    return _PREDICTORS[key]


def predict_job(job: SceneJob, options: PredictOptions) -> SceneOutcome:
    """Predict one scene (the task run on a worker); the model is loaded once per process.

    Returns
    -------
    SceneOutcome
        With the :class:`~geoseg.predict.PredictionResult`, or the error message if a
        :class:`~geoseg.errors.GeosegError` stopped the scene. Other exceptions propagate.
    """
    from geoseg.predict import predict_scene
    from geoseg.tta import with_tta

    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        predictor, settings = _predictor(options)
        threshold = settings.threshold if options.threshold is None else options.threshold
        result = predict_scene(
            job.scene, job.mask, with_tta(predictor, options.tta), settings,
            overlap=options.overlap, bands=options.bands, threshold=threshold,
            probabilities_path=job.probabilities, probability_dtype=options.probability_dtype,
            cog=options.cog, overwrite=options.overwrite, require_crs=options.require_crs,
            model_name=options.model_path.name, resume=options.resume,
        )
        summary = None
        if job.vector is not None:
            from geoseg.vectorize import vectorize_mask

            summary = vectorize_mask(result.mask_path, job.vector,
                                     probabilities_path=result.probabilities_path,
                                     layer=Path(job.scene).stem, overwrite=options.overwrite)
    except GeosegError as exc:
        return SceneOutcome(job, None, str(exc), worker)
    return SceneOutcome(job, result, None, worker, summary)


def predict_scenes(
    jobs: Sequence[SceneJob],
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
    options : PredictOptions
        The model and prediction settings shared by all jobs.
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
        raise InputError("give either --workers or --dask-scheduler, not both")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    options = _absolute(options)
    jobs = [_absolute_job(job) for job in jobs]
    if workers is None and scheduler is None:
        outcomes = []
        for job in jobs:
            outcomes.append(predict_job(job, options))
            if progress is not None:
                progress(outcomes[-1])
        return outcomes
    with _dask_client(workers, scheduler) as client:
        from distributed import as_completed

        futures = client.map(predict_job, jobs, options=options, pure=False)
        order = {future.key: index for index, future in enumerate(futures)}
        done: list[SceneOutcome | None] = [None] * len(jobs)
        for future in as_completed(futures):
            outcome = future.result()
            done[order[future.key]] = outcome
            if progress is not None:
                progress(outcome)
    return [outcome for outcome in done if outcome is not None]


def _absolute(options: PredictOptions) -> PredictOptions:
    return replace(options, model_path=Path(options.model_path).absolute())


def _absolute_job(job: SceneJob) -> SceneJob:
    """The job with absolute paths, as workers may run in other folders."""
    scene = job.scene if job.scene.startswith("/vsi") else str(Path(job.scene).absolute())
    return SceneJob(scene, *(Path(p).absolute() if p is not None else None
                             for p in (job.mask, job.probabilities, job.vector)))


@contextlib.contextmanager
def _dask_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the run, closed (with its local cluster) at the end.

    Dask's own log messages are shown only at the level the application logs at, and its
    warnings while closing the cluster not at all.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InputError("--workers and --dask-scheduler need Dask: "
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
                    raise InputError(f"--dask-scheduler {scheduler}: cannot connect ({exc})") \
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
