"""The ``tf.data`` pipelines that feed training and validation tiles to Keras.

Examples come from a :class:`geoseg.training.datasets.TileDataset`, read on demand (raw values, the
model's bands, the prediction grid), or from the same tiles decoded once and kept in memory
(:class:`geoseg.training.datasets.MemoryTiles`). The training stream is endless and fully determined
by the seed: example number ``k`` is tile ``permutation(seed, k // n)[k % n]`` (a fresh seeded
permutation of the ``n`` tiles for every pass) augmented with seed ``(seed, k)``, so a run
resumed at example ``k`` continues exactly where it stopped. Each element is
``(image, target)``: float32 ``(batch, size, size, bands)`` and uint8 class ids
``(batch, size, size)`` with :data:`geoseg.training.losses.IGNORE` where a pixel does not count.

Trained on several replicas (devices, or machines: :mod:`geoseg.training.training_strategy`), each
worker builds a pipeline of its own replicas' shares (the ``worker``, ``workers`` and ``replicas``
arguments): every global batch of ``batch_size`` examples is split into equal contiguous parts,
so the replicas of a step together see exactly the batch of a single process, and each worker
reads only its own tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import tensorflow as tf
# isort: on
import numpy as np

from geoseg.errors import InputError
from geoseg.training.augment import Augmentation, augment, example_seed
from geoseg.training.datasets import TileSource
from geoseg.training.losses import IGNORE

__all__ = ["example_tile", "replica_shares", "training_dataset", "validation_dataset",
           "validation_steps"]

_Reader = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]

_READERS = 2  # tiles read in parallel (each read holds the dataset's lock only while reading)


def example_tile(seed: int, count: int, number: int) -> int:
    """Index of the tile that is example ``number`` of the seeded endless stream over ``count``.

    >>> sorted(example_tile(7, 5, k) for k in range(5))
    [0, 1, 2, 3, 4]
    """
    return int(_permutation(seed, count, number // count)[number % count])


@lru_cache(maxsize=4)
def _permutation(seed: int, count: int, cycle: int) -> np.ndarray:
    return np.random.default_rng([seed, cycle]).permutation(count)


def _options() -> tf.data.Options:
    """Input-pipeline options: each element built on one thread (the model's ops get the
    cores), autotuned buffers."""
    options = tf.data.Options()
    options.autotune.enabled = True
    options.threading.max_intra_op_parallelism = 1
    return options


def _target(mask: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    return tf.where(valid, tf.cast(mask, tf.uint8), tf.constant(IGNORE, tf.uint8))


def _reader(tiles: TileSource, index_of: Callable[[int], int]) -> _Reader:
    """A tf function reading the example a scalar int64 names, with static shapes."""
    size, bands = tiles.settings.image_size, tiles.settings.image_channels

    def load(number: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tiles.read(index_of(int(number)))

    def read(number: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        image, mask, valid = tf.numpy_function(load, [number], (tf.float32, tf.uint8, tf.bool),
                                               stateful=False)
        image.set_shape((size, size, bands))
        mask.set_shape((size, size))
        valid.set_shape((size, size))
        return image, mask, valid

    return read


def training_dataset(
    tiles: TileSource,
    batch_size: int,
    seed: int,
    augmentation: Augmentation | None = None,
    start: int = 0,
    *,
    worker: int = 0,
    workers: int = 1,
    replicas: int = 1,
) -> tf.data.Dataset:
    """The endless, seeded, shuffled (and augmented) stream of training batches.

    Parameters
    ----------
    tiles : TileDataset or MemoryTiles
    batch_size : int
    seed : int
        Seed of the order and of the augmentation.
    augmentation : Augmentation, optional
        None: tiles as read.
    start : int
        Number of the first example (``epochs done * steps per epoch * batch size`` when
        resuming).
    worker, workers, replicas : int
        On several replicas (``batch_size`` being a multiple of ``replicas``, and
        ``replicas`` of ``workers``): the stream of worker ``worker``'s replicas, each taking
        ``batch_size / replicas`` consecutive examples of every global batch in turn.

    Returns
    -------
    tf.data.Dataset
        Of ``(image, target)`` batches, prefetched.
    """
    count = len(tiles)
    share = batch_size // workers  # this worker's examples of every global batch
    numbers = tf.data.Dataset.counter(start)
    if workers > 1:
        numbers = tf.data.Dataset.counter().map(
            lambda k: start + k // share * batch_size + worker * share + k % share)
    read = _reader(tiles, lambda number: example_tile(seed, count, number))

    def example(number: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask, valid = read(number)
        if augmentation is not None:
            image, mask, valid = augment(image, mask, valid, example_seed(seed, number),
                                         augmentation)
        return image, _target(mask, valid)

    return (numbers
            .map(example, num_parallel_calls=_READERS, deterministic=True)
            .batch(batch_size // replicas)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(_options()))


def validation_steps(count: int, batch_size: int, replicas: int = 1) -> int:
    """Steps of :func:`validation_dataset` over ``count`` tiles.

    Raises
    ------
    InputError
        Fewer tiles than replicas.
    """
    steps = math.ceil(count / batch_size)
    if replicas == 1:
        return steps
    if count < replicas:
        raise InputError(f"{count} validation tile(s) for {replicas} replicas; give at least "
                         "one per replica")
    return min(steps, count // replicas)


def replica_shares(count: int, batch_size: int, replicas: int) -> list[range]:
    """The validation tiles of each replica at each step, step after step.

    As many steps as batches of ``batch_size`` (fewer if the last would leave a replica
    without a tile), the tiles split as evenly as possible: no replica ever gets an empty
    batch, on which TensorFlow's CPU convolutions fail (with oneDNN, TensorFlow 2.21).

    >>> [len(share) for share in replica_shares(9, 4, 2)]
    [1, 2, 1, 2, 1, 2]
    """
    parts = validation_steps(count, batch_size, replicas) * replicas
    bounds = [count * part // parts for part in range(parts + 1)]
    return [range(first, end) for first, end in pairwise(bounds)]


def validation_dataset(tiles: TileSource, batch_size: int, *, worker: int = 0,
                       workers: int = 1, replicas: int = 1) -> tf.data.Dataset:
    """Every tile once, in order, unaugmented, in batches of ``(image, target)``.

    On several replicas: worker ``worker``'s replicas' batches of :func:`replica_shares`,
    in turn.
    """
    if replicas > 1:
        return _replica_validation(tiles, batch_size, worker, replicas // workers, replicas)
    read = _reader(tiles, int)

    def example(number: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask, valid = read(number)
        return image, _target(mask, valid)

    return (tf.data.Dataset.range(len(tiles))
            .map(example, num_parallel_calls=_READERS, deterministic=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(_options()))


def _replica_validation(tiles: TileSource, batch_size: int, worker: int, local: int,
                        replicas: int) -> tf.data.Dataset:
    """The :func:`replica_shares` of worker ``worker``'s ``local`` replicas, each one batch."""
    shares = [share for part, share in
              enumerate(replica_shares(len(tiles), batch_size, replicas))
              if part % replicas // local == worker]
    size, bands = tiles.settings.image_size, tiles.settings.image_channels

    def load(first: np.int64, end: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tiles.read_many(range(int(first), int(end)))

    def batch(first: tf.Tensor, end: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask, valid = tf.numpy_function(load, [first, end],
                                               (tf.float32, tf.uint8, tf.bool), stateful=False)
        image.set_shape((None, size, size, bands))
        mask.set_shape((None, size, size))
        valid.set_shape((None, size, size))
        return image, _target(mask, valid)

    bounds = ([share.start for share in shares], [share.stop for share in shares])
    return (tf.data.Dataset.from_tensor_slices(tuple(np.array(b, np.int64) for b in bounds))
            .map(batch, num_parallel_calls=_READERS, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(_options()))
