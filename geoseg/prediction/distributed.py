"""Predicting many scenes: one after another in this process, or spread over a Dask cluster.

A run is a list of :class:`~geoseg.prediction.jobs.SceneJob` (a scene and the paths of its outputs),
one :class:`~geoseg.model.predictor.ModelSpec` (the model) and one
:class:`~geoseg.prediction.predict_options.PredictOptions` (how to predict). :func:`predict_scenes`
runs the jobs

- serially in this process when no cluster is asked for;
- on a new local cluster of ``workers`` processes (``dask.distributed.LocalCluster`` with one
  thread each, TensorFlow's threads shared out among them), or
- on an existing Dask distributed cluster at ``scheduler`` (every worker must see the scene,
  model and output paths, e.g. on a shared file system).

On a cluster, a scene is one task, :func:`predict_job`, which runs
:func:`geoseg.prediction.jobs.run_job` exactly as a single-process run does; a scene bigger than its
share of the cluster's workers is split into horizontal bands of rows instead
(:class:`~geoseg.prediction.row_bands.BandedPrediction`): one task per band (:func:`predict_band`)
saves its rows to a work folder next to the output, and one task (:func:`assemble_job`) writes the
outputs from them and vectorises the mask. The outputs are byte-identical whichever way they are
made. Band and assembly tasks are retried (``retries=``) on errors other than geoseg's own, and Dask
runs again the tasks of a worker that is lost; a band run again keeps the rows its earlier attempt
saved.

Each worker process loads the model once, on its first task, and keeps it (a cache in
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
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg.errors import GeosegError, InputError, OutputError, ParameterError, param
from geoseg.model.model_archive import read_settings
from geoseg.model.predictor import ModelPredictor, ModelSpec
from geoseg.prediction.jobs import (
    BandOutcome,
    SceneJob,
    SceneOutcome,
    check_outputs,
    finish_job,
    plan_banded_job,
    run_job,
    this_process,
)
from geoseg.prediction.predict_options import PredictOptions, RunPlan, plan_run
from geoseg.prediction.row_bands import BandedPrediction
from geoseg.raster.scene import open_scene
from geoseg.raster.scene_paths import gdal_path, is_local, scene_stem

if TYPE_CHECKING:
    from distributed import LocalCluster


__all__ = [
    "BandOutcome",
    "Executor",
    "SceneJob",
    "SceneOutcome",
    "assemble_job",
    "band_counts",
    "expand_scenes",
    "local_cluster",
    "plan_jobs",
    "predict_band",
    "predict_job",
    "predict_scenes",
    "process_predictor",
]

MASK_SUFFIX = "_mask.tif"
PROBABILITIES_SUFFIX = "_probabilities.tif"
VECTOR_SUFFIX = "_landslides.gpkg"
_GLOB_CHARS = frozenset("*?[")
MIN_BAND_TILE_ROWS = 2
"""Fewest tile (or window) rows in a band when geoseg decides the split: a band reads and
blends the row it shares with each neighbour (which they predict once, half each), so small
bands balance better but read and blend more rows twice. Two, so that a scene of five rows of
the default windows (an 8192-pixel-square one) is still shared by two workers."""
RETRIES = 2
"""Dask retries of a band or assembly task that fails with an error that is not geoseg's (an
unreachable shared file system, say). A lost worker's tasks are run again by Dask anyway."""


@dataclass(frozen=True)
class Executor:
    """Where a run's jobs run: in this process (the default), on a local Dask cluster of
    ``workers`` processes started for the run, or on the Dask cluster whose scheduler is at
    ``scheduler`` (``tcp://host:8786``; every worker must see the scene, model and output
    paths). On a cluster, ``band_tile_rows`` splits every scene taller than that many tile rows
    into bands of about that many; by default :func:`band_counts` decides.

    Raises :class:`~geoseg.errors.ParameterError` for both ``workers`` and ``scheduler``, or
    ``workers`` or ``band_tile_rows`` below 1.

    >>> Executor(workers=4).describe(), Executor().describe()
    ('4 local workers', 'this process')
    """

    workers: int | None = None
    scheduler: str | None = None
    band_tile_rows: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.scheduler is not None:
            raise ParameterError(f"give either {param('workers')} or {param('scheduler')}, "
                                 "not both")
        if self.workers is not None and self.workers < 1:
            raise ParameterError(f"{param('workers')} must be >= 1, got {self.workers}")
        if self.band_tile_rows is not None and self.band_tile_rows < 1:
            raise ParameterError(f"{param('band_tile_rows')} must be >= 1, got "
                                 f"{self.band_tile_rows}")

    @property
    def is_cluster(self) -> bool:
        """Whether the jobs run on Dask workers rather than in this process."""
        return self.workers is not None or self.scheduler is not None

    def describe(self) -> str:
        """Where the jobs run, in words."""
        return (f"{self.workers} local workers" if self.workers else
                f"the Dask cluster at {self.scheduler}" if self.scheduler is not None
                else "this process")


def expand_scenes(items: Iterable[str]) -> list[str]:
    """The scenes named by paths, glob patterns and ``@list.txt`` files, in order.

    URLs (``https://``, ``s3://``, ``gs://``) become GDAL's virtual paths for them
    (:func:`geoseg.raster.scene_paths.gdal_path`); those (``/vsizip/...``, ``/vsicurl/...``) pass
    unchecked: opening the scene checks them. A ``@file`` names
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
                os.path.join(listing.parent, entry)
                if is_local(entry) and not os.path.isabs(entry) else entry
                for entry in entries if entry and not entry.startswith("#")
            ]
        else:
            names = [item]
        for name in names:
            for path in _expand_one(name):
                scenes.setdefault(path, None)
    return list(scenes)


def _expand_one(name: str) -> list[str]:
    if not is_local(name):
        return [gdal_path(name)]
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
    before any work. The jobs' paths are absolute, as workers may run in other folders.

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
        stem = scene_stem(scene)
        if stem in seen:
            raise InputError(f"{seen[stem]} and {scene} would both write {stem}{MASK_SUFFIX}; "
                             f"rename one or run them into different {param('out_dir')} folders")
        seen[stem] = scene
        jobs.append(_absolute_job(SceneJob(
            scene=scene,
            mask=folder / f"{stem}{MASK_SUFFIX}",
            probabilities=folder / f"{stem}{PROBABILITIES_SUFFIX}" if probabilities else None,
            vector=folder / f"{stem}{VECTOR_SUFFIX}" if vector else None,
        )))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: output folder cannot be created ({exc.strerror})") \
            from exc
    for job in jobs:
        check_outputs(job, overwrite)
    return jobs


_PREDICTORS: dict[tuple[object, ...], ModelPredictor] = {}
"""This process's model, so that a worker loads each model once for all its tasks."""


def process_predictor(model: ModelSpec) -> ModelPredictor:
    """This process's predictor of ``model``, made once (wherever the model file is named
    from) and kept for every job the process runs."""
    path = model.path.resolve()
    try:
        stat = path.stat()
    except OSError:
        stat = None  # reading the model says what is wrong
    key = (replace(model, path=path), stat and stat.st_mtime_ns, stat and stat.st_size)
    if key not in _PREDICTORS:
        predictor = ModelPredictor(model)
        _PREDICTORS.clear()  # one model per process: a new model file replaces the old one
        _PREDICTORS[key] = predictor
    return _PREDICTORS[key]


def predict_job(job: SceneJob, model: ModelSpec, options: PredictOptions,
                progress: Callable[[int, int], None] | None = None) -> SceneOutcome:
    """Predict one scene (the task run on a worker, or in this process); the model is loaded
    once per process. ``progress``: as :func:`geoseg.prediction.jobs.run_job`'s.

    Returns
    -------
    SceneOutcome
        With the :class:`~geoseg.prediction.prediction_outputs.PredictionResult`, or the error
        message if a :class:`~geoseg.errors.GeosegError` stopped the scene. Other exceptions
        propagate.
    """
    try:
        predictor = process_predictor(model)
        return run_job(job, predictor, predictor.settings, options, model_file=model.path,
                       progress=progress)
    except GeosegError as exc:
        return SceneOutcome(job, None, this_process(), failure=exc)


def predict_band(plan: BandedPrediction, index: int, model: ModelSpec) -> BandOutcome:
    """Predict one band of a scene split over workers (the task run on a worker).

    Returns
    -------
    BandOutcome
        With the :class:`~geoseg.prediction.row_bands.BandResult`, or the
        :class:`~geoseg.errors.GeosegError` that stopped the band. Other exceptions propagate
        (and Dask retries the task).
    """
    worker = this_process()
    try:
        return BandOutcome(plan.predict_band(index, process_predictor(model)), None, worker)
    except GeosegError as exc:
        return BandOutcome(None, exc, worker)


def assemble_job(job: SceneJob, plan: BandedPrediction, bands: Sequence[BandOutcome]
                 ) -> SceneOutcome:
    """Write a banded scene's outputs from its bands' rows and vectorise the mask if asked (the
    task run on a worker once every band is done).

    Returns
    -------
    SceneOutcome
        With the :class:`~geoseg.prediction.prediction_outputs.PredictionResult` (its ``seconds``
        are the assembly's, vectorising excluded), or the first error of a band or of the assembly.
        The work folder is kept on errors, so that ``resume`` continues the run.
    """
    failed = [band.failure for band in bands if band.failure is not None]
    try:
        if failed:
            raise failed[0]
        results = [band.result for band in bands if band.result is not None]
        done = finish_job(job, plan, results)
    except GeosegError as exc:
        done = SceneOutcome(job, None, this_process(), failure=exc)
    return replace(done, bands=tuple(bands))


def band_counts(
    scenes: Sequence[str],
    plan: RunPlan,
    slots: int,
    band_tile_rows: int | None = None,
) -> list[int]:
    """How many bands of rows to split each scene into over ``slots`` worker threads.

    With ``band_tile_rows``, every scene taller than that many tile rows is split into bands
    of about that many. Otherwise a scene is split when it holds more than its share of the
    tiles of the run: into ``ceil(slots * its tiles / all tiles)`` bands, of at least
    :data:`MIN_BAND_TILE_ROWS` tile rows each; a run on one slot splits nothing. Scenes whose
    header cannot be read are not split (their task reports why).

    >>> from geoseg.settings import ModelSettings
    >>> band_counts([], plan_run(PredictOptions(), ModelSettings()), 4)
    []
    """
    shapes: list[tuple[int, int]] = []
    for scene in scenes:
        try:
            with open_scene(scene, require_crs=plan.require_crs) as src:
                shapes.append(plan.grid(src).shape)
        except GeosegError:
            shapes.append((1, 0))
    if band_tile_rows is not None:
        return [max(1, math.ceil(rows / band_tile_rows)) if cols else 1
                for rows, cols in shapes]
    total = sum(rows * cols for rows, cols in shapes)
    if slots <= 1 or total == 0:
        return [1] * len(shapes)
    return [max(1, min(math.ceil(slots * rows * cols / total), rows // MIN_BAND_TILE_ROWS))
            for rows, cols in shapes]


def predict_scenes(
    jobs: Sequence[SceneJob],
    model: ModelSpec,
    options: PredictOptions,
    executor: Executor = Executor(),
    *,
    progress: Callable[[SceneOutcome], None] | None = None,
    window_progress: Callable[[int, int], None] | None = None,
) -> list[SceneOutcome]:
    """Predict every job, then vectorise it when asked: in this process, or over a Dask
    distributed cluster (``executor``). The one way geoseg runs scenes, one or many.

    Parameters
    ----------
    jobs : sequence of SceneJob
        From :func:`plan_jobs`, or built by hand.
    model : ModelSpec
        The model, loaded once by each process that runs jobs.
    options : PredictOptions
        How every job is predicted.
    executor : Executor, optional
        Where the jobs run: this process by default, a local cluster of ``workers`` processes
        (one thread each) started for the run, or the Dask cluster at ``scheduler``. On a
        cluster a scene larger than its share of the workers is split into bands of rows
        (``band_tile_rows``, else :func:`band_counts`); in this process never.
    progress : callable, optional
        Called with each :class:`SceneOutcome` as it finishes (in completion order).
    window_progress : callable, optional
        In this process: called as ``progress(windows_just_finished, windows_total)`` while
        each scene's windows finish (:func:`geoseg.prediction.predict.predict_scene`).

    Returns
    -------
    list of SceneOutcome
        In the order of ``jobs``; a job that failed with a :class:`~geoseg.errors.GeosegError`
        holds it (``failure``), and the other jobs go on. The ``seconds`` of a banded
        scene's result are the wall time from its submission to its outputs, its
        ``assembly_seconds`` the assembly's.

    Raises
    ------
    InputError
        Dask is not installed, or the scheduler cannot be reached.
    """
    if not executor.is_cluster:  # the jobs' paths as given: this process runs them
        outcomes = []
        for job in jobs:
            outcomes.append(predict_job(job, model, options, window_progress))
            if progress is not None:
                progress(outcomes[-1])
        return outcomes
    model = replace(model, path=model.path.absolute())
    jobs = [_absolute_job(job) for job in jobs]
    band_tile_rows = executor.band_tile_rows
    with _dask_client(executor.workers, executor.scheduler) as client:
        from distributed import as_completed

        slots = executor.workers or sum(client.nthreads().values())
        done: list[SceneOutcome | None] = [None] * len(jobs)
        submitted: dict[str, tuple[int, float]] = {}
        futures = []
        for index, job, plan in _plan(jobs, model, options, slots, band_tile_rows):
            if isinstance(plan, SceneOutcome):  # refused before any work
                done[index] = plan
                if progress is not None:
                    progress(plan)
                continue
            if plan is None:
                future = client.submit(predict_job, job, model, options, pure=False)
            else:  # the bands first: they are the long pole of the run
                bands = [client.submit(predict_band, plan, band, model, pure=False,
                                       retries=RETRIES, priority=1)
                         for band in range(len(plan.row_bands))]
                future = client.submit(assemble_job, job, plan, bands, pure=False,
                                       retries=RETRIES, priority=1)
            submitted[future.key] = (index, time.perf_counter())
            futures.append(future)
        for future in as_completed(futures):
            index, started = submitted[future.key]
            outcome = future.result()
            if outcome.bands and outcome.result is not None:
                outcome = replace(outcome, assembly_seconds=outcome.result.seconds,
                                  result=replace(outcome.result,
                                                 seconds=time.perf_counter() - started))
            done[index] = outcome
            if progress is not None:
                progress(outcome)
    return [outcome for outcome in done if outcome is not None]


def _plan(
    jobs: Sequence[SceneJob], model: ModelSpec, options: PredictOptions, slots: int,
    band_tile_rows: int | None,
) -> Iterator[tuple[int, SceneJob, BandedPrediction | SceneOutcome | None]]:
    """Each job with its bands' plan, None for one task, or the outcome of a refused job.

    The model's settings are read and the run planned here, once for every band (no
    TensorFlow); when they cannot be, no scene is split and every task reports the error.
    """
    plan: RunPlan | None
    try:
        plan = plan_run(options, read_settings(model.path), model,  # the workers' window
                        model.runtime())
    except GeosegError:
        plan = None
    counts = ([1] * len(jobs) if plan is None else
              band_counts([job.scene for job in jobs], plan, slots, band_tile_rows))
    for index, (job, count) in enumerate(zip(jobs, counts, strict=True)):
        if plan is None or count == 1:
            yield index, job, None
            continue
        try:
            yield index, job, plan_banded_job(job, plan, model_file=model.path,
                                              row_bands=count)
        except GeosegError as exc:
            yield index, job, SceneOutcome(job, None, this_process(), failure=exc)


def _absolute_job(job: SceneJob) -> SceneJob:
    """The job with absolute paths, as workers may run in other folders."""
    scene = str(Path(job.scene).absolute()) if is_local(job.scene) else job.scene
    return replace(
        job, scene=scene, mask=job.mask.absolute(),
        probabilities=job.probabilities.absolute() if job.probabilities else None,
        vector=job.vector.absolute() if job.vector else None,
        uncertainty=job.uncertainty.absolute() if job.uncertainty else None,
    )


QUIET_DASK = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}
"""Dask settings of the local clusters geoseg starts. A worker's statistical profiler samples
the stacks of its threads every 10 ms, and every Dask server checks every 20 ms that its event
loop is not blocked: 4% of a core per worker process for a dashboard that a geoseg cluster does
not have (``dashboard_address=None``), taken from the cores predicting (bench/RESULTS.md). The
event loop is still checked every second."""


def local_cluster(workers: int, threads: int | None = None,
                  env: dict[str, str] | None = None) -> LocalCluster:
    """A ``dask.distributed.LocalCluster`` of ``workers`` processes on loopback, one task thread
    each, with :data:`QUIET_DASK`.

    ``threads`` is what each worker's TensorFlow and OpenVINO may use (default: the machine's
    cores shared out among the workers); ``env`` adds environment variables to the workers'.
    """
    import dask
    from distributed import LocalCluster

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    # TensorFlow sizes its thread pools by the machine: share the cores out.
    worker_env = {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
                  "OMP_NUM_THREADS": str(threads)} | (env or {})
    with dask.config.set(QUIET_DASK):  # read by the scheduler and the nannies as they start
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None, env=worker_env)


@contextlib.contextmanager
def _dask_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the run, closed (with its local cluster) at the end.

    Dask's own log messages are shown only at the level the application logs at, and its
    warnings while closing the cluster not at all.
    """
    try:
        from distributed import Client
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
                client = Client(stack.enter_context(local_cluster(workers)))
            try:
                yield stack.enter_context(client)
            finally:  # TensorFlow workers may exit slowly: closing is not news to report
                dask_log.setLevel(max(logging.ERROR, dask_log.level))
    finally:
        dask_log.setLevel(previous)
