"""The ``tf.data`` pipelines that feed training and validation tiles to Keras.

Examples come from a :class:`geoseg.datasets.TileDataset`, read on demand (raw values, the
model's bands, the prediction grid), or from the same tiles decoded once and kept in memory
(:class:`geoseg.datasets.MemoryTiles`). The training stream is endless and fully determined by
the seed: example number ``k`` is tile ``permutation(seed, k // n)[k % n]`` (a fresh seeded
permutation of the ``n`` tiles for every pass) augmented with seed ``(seed, k)``, so a run
resumed at example ``k`` continues exactly where it stopped. Each element is
``(image, target)``: float32 ``(batch, size, size, bands)`` and uint8 class ids
``(batch, size, size)`` with :data:`geoseg.losses.IGNORE` where a pixel does not count.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

# isort: off
import geoseg._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import tensorflow as tf
# isort: on
import numpy as np

from geoseg.augment import Augmentation, augment, example_seed
from geoseg.datasets import TileSource
from geoseg.losses import IGNORE

__all__ = ["example_tile", "training_dataset", "validation_dataset"]

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

    Returns
    -------
    tf.data.Dataset
        Of ``(image, target)`` batches, prefetched.
    """
    count = len(tiles)
    read = _reader(tiles, lambda number: example_tile(seed, count, number))

    def example(number: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask, valid = read(number)
        if augmentation is not None:
            image, mask, valid = augment(image, mask, valid, example_seed(seed, number),
                                         augmentation)
        return image, _target(mask, valid)

    return (tf.data.Dataset.counter(start)
            .map(example, num_parallel_calls=_READERS, deterministic=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(_options()))


def validation_dataset(tiles: TileSource, batch_size: int) -> tf.data.Dataset:
    """Every tile once, in order, unaugmented, in batches of ``(image, target)``."""
    read = _reader(tiles, int)

    def example(number: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask, valid = read(number)
        return image, _target(mask, valid)

    return (tf.data.Dataset.range(len(tiles))
            .map(example, num_parallel_calls=_READERS, deterministic=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(_options()))
