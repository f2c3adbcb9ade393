"""Training losses for segmentation, with per-pixel weights and class weights.

Targets are class-id tiles ``(batch, size, size)`` (or with a trailing axis of 1) in which
:data:`IGNORE` (255, :data:`geoseg.labels.reader.NO_LABEL`) marks pixels that must not count: no
image data, reflect padding, no label. :func:`decode_target` turns such a target into one-hot
classes and a per-pixel weight (0 for ignored pixels, 1 otherwise), and every loss here is a
weighted mean over that weight, so ignored pixels change neither the loss nor its gradient.

Losses (``[model] loss`` of a config, see :func:`make_loss`):

* ``categorical_crossentropy``: ``sum(w * cw[y] * -log p[y]) / sum(w)``;
* ``dice``: ``1 - mean_c(cw[c] * dice_c) / mean(cw)`` with the soft Dice
  ``dice_c = (2 sum(w t p) + 1) / (sum(w t) + sum(w p) + 1)`` pooled over the batch;
* ``ce_dice``: their sum;
* ``focal``: ``sum(w * cw[y] * -(1 - p[y])**gamma * log p[y]) / sum(w)``, gamma 2;
* ``lovasz_softmax``: the Lovasz-softmax loss (Berman et al., CVPR 2018), a convex surrogate
  of ``1 - IoU`` pooled over the batch, averaged over the classes present (class-weighted);
* ``ce_lovasz_softmax``: cross-entropy plus Lovasz-softmax.

``cw`` are the class weights (``[train] class_weights``; all 1 by default): give the rare
landslide class a larger weight to count its pixels more. With a gap weight (``[train]
gap_weight``, :func:`gap_pixels`), the cross-entropy and focal terms count the background
pixels of narrow gaps between landslides ``1 + gap_weight`` times, as the U-Net paper's
weight map does for touching cells (Ronneberger et al., MICCAI 2015): neighbouring landslides
predicted as one blob become one polygon, so the gaps that keep them apart matter more than
their share of pixels. A single-channel (sigmoid) output is
treated as the two classes ``(1 - p, p)``. Models are saved without their compiled loss
(``geoseg.model.flexunet.load_model`` loads with ``compile=False``), so nothing here is serialised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import tensorflow as tf
# isort: on

from geoseg.config_schema import LOSSES
from geoseg.errors import ConfigError
from geoseg.labels.reader import NO_LABEL

__all__ = [
    "IGNORE",
    "LossFn",
    "crossentropy",
    "decode_target",
    "dice",
    "focal",
    "gap_pixels",
    "lovasz",
    "make_loss",
    "two_class",
]

IGNORE = NO_LABEL
"""Target value of pixels left out of losses and metrics."""

EPSILON = 1e-7
SMOOTH = 1.0
FOCAL_GAMMA = 2.0

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def decode_target(y_true: tf.Tensor, num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """One-hot classes and per-pixel weights from a class-id target.

    Parameters
    ----------
    y_true : tensor, shape (..., size, size) or (..., size, size, 1)
        Class ids, any numeric dtype; :data:`IGNORE` for pixels that do not count.
    num_classes : int
        Classes of the one-hot encoding (2 for a sigmoid model).

    Returns
    -------
    onehot : tensor, float32, shape (..., size, size, num_classes)
        Zero everywhere on ignored pixels.
    weight : tensor, float32, shape (..., size, size)
        1 where the pixel counts, 0 where it is ignored.
    """
    labels = tf.convert_to_tensor(y_true)
    if labels.dtype.is_floating:
        labels = tf.round(labels)
    labels = tf.cast(labels, tf.int32)
    if labels.shape.rank is not None and labels.shape.rank >= 1 and labels.shape[-1] == 1:
        labels = tf.squeeze(labels, axis=-1)
    counted = tf.not_equal(labels, IGNORE)
    onehot = tf.one_hot(tf.where(counted, labels, -1), num_classes, dtype=tf.float32)
    return onehot, tf.cast(counted, tf.float32)


def two_class(y_pred: tf.Tensor) -> tf.Tensor:
    """Class probabilities with a class axis of at least 2: ``(1 - p, p)`` for a sigmoid."""
    probs = tf.cast(y_pred, tf.float32)
    if probs.shape[-1] == 1:
        probs = tf.concat([1.0 - probs, probs], axis=-1)
    return probs


def _class_weights(class_weights: Sequence[float] | None, num_classes: int) -> tf.Tensor:
    if class_weights is None:
        return tf.ones([num_classes], tf.float32)
    return tf.constant(list(class_weights), tf.float32)


def _weighted_mean(per_pixel: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(per_pixel * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)


def crossentropy(
    onehot: tf.Tensor, probs: tf.Tensor, weight: tf.Tensor,
    class_weights: Sequence[float] | None = None,
) -> tf.Tensor:
    """Weighted categorical cross-entropy (a scalar; 0 when no pixel counts).

    Parameters
    ----------
    onehot, probs : tensor, shape (..., classes)
        True classes one-hot, and predicted probabilities.
    weight : tensor, shape (...)
        Per-pixel weight (0 = ignored).
    class_weights : sequence of float, optional
        Weight of each class; 1 by default.
    """
    probs = tf.clip_by_value(tf.cast(probs, tf.float32), EPSILON, 1.0)
    cw = tf.reduce_sum(onehot * _class_weights(class_weights, onehot.shape[-1]), axis=-1)
    per_pixel = -tf.reduce_sum(onehot * tf.math.log(probs), axis=-1)
    return _weighted_mean(per_pixel * cw, weight)


def dice(
    onehot: tf.Tensor, probs: tf.Tensor, weight: tf.Tensor,
    class_weights: Sequence[float] | None = None,
) -> tf.Tensor:
    """``1 -`` the class-weighted mean soft Dice, pooled over all counted pixels (a scalar).

    Parameters are those of :func:`crossentropy`.
    """
    probs = tf.cast(probs, tf.float32)
    w = weight[..., None]
    axes = list(range(onehot.shape.rank - 1))
    intersection = tf.reduce_sum(w * onehot * probs, axis=axes)
    total = tf.reduce_sum(w * onehot, axis=axes) + tf.reduce_sum(w * probs, axis=axes)
    per_class = (2.0 * intersection + SMOOTH) / (total + SMOOTH)
    cw = _class_weights(class_weights, onehot.shape[-1])
    return 1.0 - tf.reduce_sum(cw * per_class) / tf.reduce_sum(cw)


def focal(
    onehot: tf.Tensor, probs: tf.Tensor, weight: tf.Tensor,
    class_weights: Sequence[float] | None = None, gamma: float = FOCAL_GAMMA,
) -> tf.Tensor:
    """Weighted focal loss: cross-entropy scaled by ``(1 - p_true)**gamma`` (a scalar).

    Parameters are those of :func:`crossentropy`, and the focusing exponent ``gamma``.
    """
    probs = tf.clip_by_value(tf.cast(probs, tf.float32), EPSILON, 1.0)
    p_true = tf.reduce_sum(onehot * probs, axis=-1)
    cw = tf.reduce_sum(onehot * _class_weights(class_weights, onehot.shape[-1]), axis=-1)
    per_pixel = -((1.0 - p_true) ** gamma) * tf.math.log(tf.maximum(p_true, EPSILON))
    return _weighted_mean(per_pixel * cw, weight)


def _lovasz_grad(sorted_truth: tf.Tensor) -> tf.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at truth sorted by error."""
    positives = tf.reduce_sum(sorted_truth)
    intersection = positives - tf.cumsum(sorted_truth)
    union = positives + tf.cumsum(1.0 - sorted_truth)
    jaccard = 1.0 - intersection / tf.maximum(union, EPSILON)
    return tf.concat([jaccard[:1], jaccard[1:] - jaccard[:-1]], axis=0)


def lovasz(
    onehot: tf.Tensor, probs: tf.Tensor, weight: tf.Tensor,
    class_weights: Sequence[float] | None = None,
) -> tf.Tensor:
    """Lovasz-softmax: a surrogate of ``1 - IoU`` per class, averaged over present classes.

    Parameters are those of :func:`crossentropy`. Pixels of weight 0 get error 0 and truth 0,
    which leaves the loss and its gradient unchanged (they sort last and add nothing).
    """
    classes = onehot.shape[-1]
    counted = tf.reshape(weight, [-1]) > 0
    truth = tf.reshape(onehot, [-1, classes]) * tf.cast(counted, tf.float32)[:, None]
    errors = tf.abs(truth - tf.reshape(tf.cast(probs, tf.float32), [-1, classes]))
    errors *= tf.cast(counted, tf.float32)[:, None]
    cw = _class_weights(class_weights, classes)
    total, weights = tf.constant(0.0), tf.constant(0.0)
    for c in range(classes):
        ranked, order = tf.math.top_k(errors[:, c], k=tf.shape(errors)[0], sorted=True)
        grad = _lovasz_grad(tf.gather(truth[:, c], order))
        present = tf.cast(tf.reduce_sum(truth[:, c]) > 0, tf.float32) * cw[c]
        total += present * tf.tensordot(ranked, tf.stop_gradient(grad), 1)
        weights += present
    return total / tf.maximum(weights, EPSILON)


def gap_pixels(onehot: tf.Tensor, width: int) -> tf.Tensor:
    """Background pixels in gaps up to ``width`` pixels wide (rounded up to even) between
    landslide pixels.

    The gaps are what a morphological closing of the foreground (every class but class 0)
    with a square of side ``2 * ceil(width / 2) + 1`` fills: narrow gaps between neighbouring
    landslides, and narrow notches in one. Ignored pixels (all-zero one-hot) are never gaps.

    Parameters
    ----------
    onehot : tensor, float32, shape (batch, size, size, classes)
        True classes one-hot, as :func:`decode_target` gives them.
    width : int
        Widest gap, in pixels.

    Returns
    -------
    tensor, float32, shape (batch, size, size)
        1 on gap pixels, 0 elsewhere.
    """
    radius = -(-width // 2)
    side = 2 * radius + 1
    foreground = tf.reduce_sum(onehot[..., 1:], axis=-1, keepdims=True)
    # Background beyond the tile's edges, so that the edges are no gaps.
    padded = tf.pad(foreground, [[0, 0], [side, side], [side, side], [0, 0]])
    grown = tf.nn.max_pool2d(padded, side, 1, "SAME")
    closed = -tf.nn.max_pool2d(-grown, side, 1, "SAME")
    return closed[:, side:-side, side:-side, 0] * onehot[..., 0]


def make_loss(
    name: str, num_classes: int, class_weights: Sequence[float] | None = None,
    gap_weight: float = 0.0, gap_width: int = 4,
) -> LossFn:
    """The Keras loss ``loss(y_true, y_pred)`` called ``name``, on class-id targets.

    Parameters
    ----------
    name : str
        One of :data:`geoseg.config_schema.LOSSES`.
    num_classes : int
        Output channels of the model (1 for a sigmoid model).
    class_weights : sequence of float, optional
        One weight per class (two for a sigmoid model: background, foreground).
    gap_weight, gap_width : float, int
        Cross-entropy and focal terms count the background pixels of gaps up to
        ``gap_width`` pixels wide between landslides (:func:`gap_pixels`) ``1 + gap_weight``
        times; 0 = off.

    Returns
    -------
    callable
        ``loss(y_true, y_pred) -> scalar``, named ``name``; in a replica of a
        ``tf.distribute`` strategy, the replica's share (divided by the replicas in sync).

    Raises
    ------
    ConfigError
        Unknown loss, or a class weight count that does not match the classes.
    """
    if name not in LOSSES:
        raise ConfigError(f"loss {name!r} is not one of {', '.join(LOSSES)}")
    classes = max(2, num_classes)
    if class_weights is not None and len(class_weights) != classes:
        raise ConfigError(f"class_weights: {len(class_weights)} weights given for {classes} "
                          "classes")
    if class_weights is not None and not sum(class_weights) > 0:
        raise ConfigError("class_weights: at least one class needs a weight above 0")
    weights = None if class_weights is None else tuple(float(w) for w in class_weights)

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        onehot, weight = decode_target(y_true, classes)
        probs = two_class(y_pred)
        pixel_weight = weight
        if gap_weight > 0:
            pixel_weight = weight * (1.0 + gap_weight * gap_pixels(onehot, gap_width))
        value = tf.constant(0.0)
        if name in ("categorical_crossentropy", "ce_dice", "ce_lovasz_softmax"):
            value += crossentropy(onehot, probs, pixel_weight, weights)
        if name in ("dice", "ce_dice"):
            value += dice(onehot, probs, weight, weights)
        if name == "focal":
            value += focal(onehot, probs, pixel_weight, weights)
        if name in ("lovasz_softmax", "ce_lovasz_softmax"):
            value += lovasz(onehot, probs, weight, weights)
        # Over several replicas Keras sums their gradients and multiplies the logged loss by
        # their number, but divides by it only the losses it reduces itself, not a scalar.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return value / replicas if replicas > 1 else value

    loss.__name__ = name
    return loss
