"""Where ``geoseg train`` runs: one device, the devices of one machine, or several machines.

:func:`training_placement` picks the ``tf.distribute`` strategy, once per process:

* ``TF_CONFIG`` in the environment (TensorFlow's description of a cluster: every machine runs
  the same command with the same config, and ``TF_CONFIG`` tells each one the cluster and its
  own place in it): ``MultiWorkerMirroredStrategy`` over all the workers, each replicating the
  model on its own GPUs, or on its CPU.
* Else more than one GPU, or the CPU split into logical devices: ``MirroredStrategy``.
* Else TensorFlow's default strategy: one device.

Every replica gets an equal, contiguous share of every global batch of ``[train] batch_size``
tiles (:meth:`Placement.distribute`, :mod:`geoseg.training.tf_dataset`); the gradients of all
replicas are summed at every step and the epoch's metrics are summed over all of them, so N replicas
follow the curve of one process with the same batch size, up to the order of floating-point
sums (and to losses pooled over a batch, such as Dice, which each replica pools over its
share). Worker 0 is the chief: it writes the outputs. The other workers run the same code,
writing into a scratch folder they remove at the end (:meth:`Placement.output_folder`):
saving a model reads its metrics' variables, summed across the workers, so every worker must
save.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
import tensorflow as tf
# isort: on
import numpy as np

from geoseg.errors import ConfigError
from geoseg.training.keras_distributed_fit import distributed_fit

__all__ = ["CLUSTER_TIMEOUT", "CLUSTER_TIMEOUT_VARIABLE", "Placement", "cluster_timeout",
           "training_placement", "weights_digest"]

MakeDataset = Callable[[int, int], tf.data.Dataset]
"""``make(worker, workers)``: one worker's pipeline (see :meth:`Placement.distribute`)."""

_JOBS = ("chief", "worker")

CLUSTER_TIMEOUT_VARIABLE = "GEOSEG_CLUSTER_TIMEOUT"
CLUSTER_TIMEOUT = 600
"""Seconds a worker waits for every worker of ``TF_CONFIG`` to join, unless
``GEOSEG_CLUSTER_TIMEOUT`` says otherwise: workers started by hand on several machines a few
minutes apart still meet, and one left alone stops in one line instead of waiting forever."""


@dataclass(frozen=True)
class Placement:
    """The strategy a training run uses and this process's place among its workers."""

    strategy: tf.distribute.Strategy
    name: str = ""
    """The strategy's name for the log ("" for TensorFlow's default, one device)."""
    worker: int = 0
    """This process's index among the workers (0: the chief)."""
    workers: int = 1

    @property
    def replicas(self) -> int:
        """Copies of the model trained in step: devices over all workers."""
        return int(self.strategy.num_replicas_in_sync)

    @property
    def chief(self) -> bool:
        """Whether this process writes the run's outputs."""
        return self.worker == 0

    def describe(self) -> str:
        """One line naming the strategy, the workers and the replicas ("" on one device)."""
        if not self.name:
            return ""
        devices = ", ".join(device.split("/device:")[-1]
                            for device in self.strategy.extended.worker_devices)
        if self.workers == 1:
            return f"{self.name}: {self.replicas} replica(s) ({devices})"
        return (f"{self.name}: {self.workers} workers, {self.replicas} replicas ({devices} on "
                f"each worker); this is worker {self.worker}, "
                + ("the chief: it writes the outputs" if self.chief else
                   "which writes only into a scratch folder it removes (the chief, worker 0, "
                   "writes the outputs)"))

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse a global batch that does not split evenly over the replicas.

        Raises
        ------
        ConfigError
            ``batch_size`` is not a multiple of the replicas.
        """
        if batch_size % self.replicas:
            raise ConfigError(f"[train] batch_size {batch_size} does not split evenly over "
                              f"{self.replicas} replicas ({self.workers} worker(s)); give a "
                              f"multiple of {self.replicas}")

    def distribute(self, make: MakeDataset) -> tf.data.Dataset | tf.distribute.DistributedDataset:
        """A dataset whose elements are spread over the replicas, one element per replica.

        ``make(worker, workers)`` builds one worker's pipeline: the batches of its replicas,
        one after the other (e.g. :func:`geoseg.training.tf_dataset.training_dataset` with
        ``worker``, ``workers`` and :attr:`replicas`), so each worker reads only its own tiles. On
        one device: ``make(0, 1)`` itself.
        """
        if self.replicas == 1:
            return make(0, 1)

        def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return make(context.input_pipeline_id, context.num_input_pipelines)

        return self.strategy.distribute_datasets_from_function(pipeline)

    def fitting(self) -> AbstractContextManager[None]:
        """A block in which Keras' ``model.fit`` runs on this placement (on several replicas,
        with :func:`geoseg.training.keras_distributed_fit.distributed_fit`)."""
        return distributed_fit() if self.replicas > 1 else nullcontext()

    @contextmanager
    def output_folder(self, out: Path) -> Iterator[Path]:
        """The folder this process writes the run's files into.

        ``out`` on the chief. On another worker a new scratch folder (in the system's
        temporary folder, ``TMPDIR``), removed with everything in it when the block ends.
        """
        if self.chief:
            yield out
            return
        scratch = Path(tempfile.mkdtemp(prefix=f"geoseg-train-worker{self.worker}-"))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of a model's weights (values, shapes and order): equal on workers in sync."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(repr((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _cluster_place(text: str) -> tuple[int, int] | None:
    """(this worker's index, number of workers) from a ``TF_CONFIG`` text; None: no cluster.

    Raises
    ------
    ConfigError
        Not JSON, or not a cluster of ``worker`` tasks (and at most one ``chief``) with this
        task in it.
    """
    hint = "; see 'Training on several devices or machines' in docs/scaling.md"
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG: not JSON ({exc}){hint}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    if not cluster:
        return None
    task = spec.get("task") or {}
    if not isinstance(cluster, dict) or set(cluster) - set(_JOBS) or \
            not all(isinstance(cluster[job], list) for job in cluster) or \
            len(cluster.get("chief", [])) > 1 or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG: the cluster must list \"worker\" addresses (and at most "
                          f"one \"chief\"); got {json.dumps(cluster)}{hint}")
    kind, index = task.get("type"), task.get("index")
    chiefs = len(cluster.get("chief", []))
    if kind not in cluster or not isinstance(index, int) or \
            not 0 <= index < len(cluster[kind]):
        raise ConfigError(f"TF_CONFIG: task {json.dumps(task)} is not one of the cluster's "
                          f"tasks (\"type\" {' or '.join(map(repr, cluster))}, \"index\" from "
                          f"0){hint}")
    workers = chiefs + len(cluster.get("worker", []))
    return (index if kind == "chief" else chiefs + index), workers


def cluster_timeout() -> int:
    """Seconds a worker waits for the others to join the cluster: ``GEOSEG_CLUSTER_TIMEOUT``,
    else :data:`CLUSTER_TIMEOUT`.

    Raises
    ------
    ConfigError
        ``GEOSEG_CLUSTER_TIMEOUT`` is not a whole number of seconds > 0.
    """
    text = os.environ.get(CLUSTER_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return CLUSTER_TIMEOUT
    if not text.isdecimal() or int(text) < 1:
        raise ConfigError(f"{CLUSTER_TIMEOUT_VARIABLE} must be a whole number of seconds > 0, "
                          f"got {text!r}")
    return int(text)


def _join_cluster(tf_config: str, place: tuple[int, int]) -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` over the cluster of ``TF_CONFIG``, once every worker has
    joined; a one-line error when they have not within :func:`cluster_timeout`.

    TensorFlow's own wait has no end: a worker whose chief stopped on an error before joining
    (an existing ``--out``, a bad scene) would wait forever, deaf to SIGTERM. So the cluster's
    coordination service is set up here, as the strategy would, with a registration deadline.
    """
    # The coordination protos as the strategy's own module imports them: their home moves
    # between TensorFlow versions.
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.collective_all_reduce_strategy import (
        coordination_config_pb2,
    )
    from tensorflow.python.eager import context

    spec = tf.train.ClusterSpec(json.loads(tf_config)["cluster"])
    timeout = cluster_timeout()
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job,
                                                                 num_tasks=spec.num_tasks(job))
                          for job in _JOBS if job in spec.jobs],
        cluster_register_timeout_in_ms=timeout * 1000)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError):
        index, workers = place
        raise ConfigError(
            f"TF_CONFIG: worker {index} of {workers} waited {timeout} s for the others to join "
            f"the cluster ({', '.join(spec.jobs)} at {', '.join(_addresses(spec))}): start "
            f"every worker TF_CONFIG lists, and look at their output (one may have stopped on "
            f"an error); {CLUSTER_TIMEOUT_VARIABLE} sets the wait in seconds") from None


def _addresses(spec: tf.train.ClusterSpec) -> list[str]:
    return [address for job in _JOBS if job in spec.jobs for address in spec.job_tasks(job)]


@cache
def _placement(tf_config: str) -> Placement:
    place = _cluster_place(tf_config) if tf_config.strip() else None
    if place is not None:
        return Placement(_join_cluster(tf_config, place), "MultiWorkerMirroredStrategy", *place)
    for kind in ("GPU", "CPU"):
        devices = [device.name for device in tf.config.list_logical_devices(kind)]
        if len(devices) > 1:
            return Placement(tf.distribute.MirroredStrategy(devices), "MirroredStrategy")
    return Placement(tf.distribute.get_strategy())


def training_placement() -> Placement:
    """Where this process trains, from ``TF_CONFIG`` and the visible devices (see the module).

    Call it before TensorFlow runs anything else in the process: TensorFlow configures the
    cluster's collective operations at start-up. With ``TF_CONFIG`` it returns once every
    worker of the cluster has started, within :func:`cluster_timeout`. The placement is made
    once per process.

    Raises
    ------
    ConfigError
        ``TF_CONFIG`` is not a cluster of workers this process belongs to, or its workers did
        not all join in time.
    """
    return _placement(os.environ.get("TF_CONFIG", ""))
