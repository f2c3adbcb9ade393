"""Seeded, reproducible augmentation of training tiles, usable inside ``tf.data``.

Geometric changes (flips, 90-degree rotations, zoom) move the image, the class mask and the
valid mask together, so labels stay on their pixels; photometric changes (brightness,
contrast) touch the image only. Every random draw is a stateless TensorFlow op whose seed
comes from a base seed and the example's running number (:func:`example_seed`), so the same
seed gives the same tiles on every run, in any order and on any number of tf.data threads.

Images are raw pixel values (the model scales them itself), so brightness is a gain and
contrast a stretch about the tile mean, both relative; ``value_range`` clips the result to
the range of the data (0-255 for 8-bit imagery).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import tensorflow as tf
# isort: on

__all__ = ["Augmentation", "augment", "example_seed"]


@dataclass(frozen=True)
class Augmentation:
    """What :func:`augment` may change.

    Parameters
    ----------
    flips : bool
        Random left-right and up-down flips.
    rotations : bool
        Random rotations by 0, 90, 180 or 270 degrees.
    brightness : float
        Largest relative gain change: the image is multiplied by a factor drawn from
        ``[1 - brightness, 1 + brightness]``; 0 disables it.
    contrast : float
        Largest relative contrast change: each band is stretched about its tile mean by a
        factor drawn from ``[1 - contrast, 1 + contrast]``; 0 disables it.
    value_range : (float, float) or None
        Clip the changed image to this range (e.g. ``(0, 255)`` for 8-bit data); None keeps
        any value.
    scale : float
        Largest relative zoom: the tile is resized by a factor drawn log-uniformly from
        ``[1 / (1 + scale), 1 + scale]`` (the image bilinearly, the masks by nearest
        neighbour), then cropped back to its size, or padded with pixels that do not count
        (``valid`` False), at a random place; 0 disables it.
    """

    flips: bool = True
    rotations: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    value_range: tuple[float, float] | None = (0.0, 255.0)
    scale: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.scale <= 1.0:
            raise ValueError(f"scale must be in [0, 1], got {self.scale}")


def example_seed(base_seed: int | tf.Tensor, number: int | tf.Tensor) -> tf.Tensor:
    """The stateless seed of example ``number``: ``[base_seed, number]`` as int64, shape (2,)."""
    return tf.stack([tf.cast(base_seed, tf.int64), tf.cast(number, tf.int64)])


def augment(
    image: tf.Tensor,
    mask: tf.Tensor,
    valid: tf.Tensor,
    seed: tf.Tensor,
    options: Augmentation = Augmentation(),  # noqa: B008  (frozen, immutable)
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Augment one example; the same seed always gives the same result.

    Parameters
    ----------
    image : tensor, float32, shape (size, size, bands)
        Raw pixel values; the band count must be known (static).
    mask : tensor, integer, shape (size, size)
        Class ids.
    valid : tensor, bool, shape (size, size)
        Pixels that count for the loss.
    seed : tensor, int, shape (2,)
        See :func:`example_seed`.
    options : Augmentation

    Returns
    -------
    image, mask, valid
        Same shapes and dtypes as given; mask and valid moved exactly like the image.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    mask = tf.convert_to_tensor(mask)
    valid = tf.convert_to_tensor(valid, tf.bool)
    bands = image.shape[-1]
    if bands is None:
        raise ValueError("augment needs the band count of the image to be known (set_shape)")
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    # Stack mask and valid as extra float bands so one op moves all three; float32 holds
    # the integers 0..255 exactly, so the round trip is lossless.
    stack = tf.concat([image, tf.cast(mask, tf.float32)[..., None],
                       tf.cast(valid, tf.float32)[..., None]], axis=-1)
    if options.flips:
        stack = tf.image.stateless_random_flip_left_right(stack, seeds[0])
        stack = tf.image.stateless_random_flip_up_down(stack, seeds[1])
    if options.rotations:
        turns = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=4, dtype=tf.int32)
        stack = tf.image.rot90(stack, turns)
    if options.scale > 0:
        stack = _zoom(stack, bands, options.scale, tf.random.experimental.stateless_fold_in(
            tf.cast(seed, tf.int64), 1))
    image = stack[..., :bands]
    mask = tf.cast(tf.round(stack[..., bands]), mask.dtype)
    valid = stack[..., bands + 1] > 0.5
    if options.contrast > 0:
        factor = tf.random.stateless_uniform(
            [], seeds[3], 1.0 - options.contrast, 1.0 + options.contrast)
        mean = tf.reduce_mean(image, axis=(0, 1), keepdims=True)
        image = (image - mean) * factor + mean
    if options.brightness > 0:
        image = image * tf.random.stateless_uniform(
            [], seeds[4], 1.0 - options.brightness, 1.0 + options.brightness)
    if options.value_range is not None and (options.contrast > 0 or options.brightness > 0):
        image = tf.clip_by_value(image, *options.value_range)
    return image, mask, valid


def _zoom(stack: tf.Tensor, bands: int, scale: float, seed: tf.Tensor) -> tf.Tensor:
    """Resize ``stack`` (image bands, then mask and valid) by a random factor and crop or pad
    it back to its size; padding is zero, so ``valid`` is False there."""
    size = tf.shape(stack)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    spread = math.log1p(scale)
    factor = tf.exp(tf.random.stateless_uniform([], seeds[0], -spread, spread))
    side = tf.cast(tf.round(tf.cast(size, tf.float32) * factor), tf.int32)
    image = tf.image.resize(stack[..., :bands], [side, side], method="bilinear")
    labels = tf.image.resize(stack[..., bands:], [side, side], method="nearest")
    zoomed = tf.concat([image, labels], axis=-1)
    missing = tf.maximum(size - side, 0)
    top, left = (tf.random.stateless_uniform([], seeds[k], 0, missing + 1, dtype=tf.int32)
                 for k in (1, 2))
    zoomed = tf.pad(zoomed, [[top, missing - top], [left, missing - left], [0, 0]])
    cropped = tf.image.stateless_random_crop(zoomed, tf.shape(stack), seeds[3])
    return tf.ensure_shape(cropped, stack.shape)
