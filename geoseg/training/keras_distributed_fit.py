"""Keras 3's ``model.fit`` made to run on several replicas of ``tf.distribute`` strategies.

Keras 3 (3.15 with TensorFlow 2.21) fails there in two places:

1. Before every epoch, ``fit`` and ``evaluate`` reduce a batch over the replicas
   (``strategy.reduce("MEAN", (x, y))``) only to learn its shapes. Under
   ``MultiWorkerMirroredStrategy`` with 2+ workers the collective reduction of a tuple fails
   ("Attempt to convert a value (PerReplica...) to a Tensor"); under ``MirroredStrategy`` it
   fails when the replicas' batches differ in size, as the last validation batches do
   ("Inputs to operation AddN ... must have the same size and shape").
2. With 2+ workers every step reduces its results, scalars, with ``strategy.reduce("MEAN",
   value, axis=0)``, which fails ("Invalid reduction dimension 0 for input with 0
   dimensions").

keras-team/keras#20585 and tensorflow/tensorflow#72388 report the multi-worker failures.
:func:`distributed_fit` fixes both for the duration of a block, and only there: the shapes
come from this worker's first replica's batch, read only while something is left to build
(Keras reads one every epoch, which fails on a validation set read to its end with a given
number of steps), and step results are averaged over all
replicas with ``axis=None``. The epoch's logs do not depend on it: Keras reads them from the
metrics' variables, summed over every replica of every worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer
# isort: on

__all__ = ["distributed_fit"]


def _local_batch(batch: Any, strategy: tf.distribute.Strategy) -> Any:
    """This worker's first replica's part of a distributed batch (for its shapes)."""
    return tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0]
        if isinstance(value, tf.distribute.DistributedValues) else value, batch)


def _local_batches(epoch: Any, strategy: tf.distribute.Strategy) -> Iterator[Any]:
    """Keras' epoch iterator, its batches reduced to :func:`_local_batch` (read when asked)."""
    for first, last, batches in epoch:
        yield first, last, (_local_batch(batch, strategy) for batch in batches)


def _maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
    """Keras' ``TensorFlowTrainer._maybe_symbolic_build``, which reads a batch only if something
    is left to build (a later epoch's validation iterator may be at its end) and takes its
    shapes without reducing it over the replicas."""
    if self._distribute_strategy is None:
        return
    if iterator is not None:
        iterator = _local_batches(iterator, self.distribute_strategy)
    with self.distribute_strategy.scope():
        self._symbolic_build(iterator=iterator, data_batch=data_batch)


def _reduce_per_replica(values: Any, strategy: tf.distribute.Strategy, reduction: str) -> Any:
    """Step results averaged over all replicas (scalars too); other reductions as Keras does."""
    if reduction not in ("auto", "mean"):
        return _KERAS_REDUCE(values, strategy, reduction)
    return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)


_KERAS_REDUCE = tf_trainer.reduce_per_replica


@contextmanager
def distributed_fit() -> Iterator[None]:
    """A block in which ``model.fit`` and ``model.evaluate`` work on several replicas."""
    trainer = tf_trainer.TensorFlowTrainer
    saved = trainer._maybe_symbolic_build, tf_trainer.reduce_per_replica
    trainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = _reduce_per_replica
    try:
        yield
    finally:
        trainer._maybe_symbolic_build, tf_trainer.reduce_per_replica = saved
