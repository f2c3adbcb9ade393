"""Keras metrics reported while training, on class-id targets with ignored pixels.

Targets are those of :mod:`geoseg.training.losses` (class ids,
:data:`~geoseg.training.losses.IGNORE` for pixels that do not count). The metrics accumulate counts
over a whole epoch, so ``val_landslide_iou`` is the pixel IoU of the landslide class over the entire
validation set (micro-averaged, as :class:`geoseg.evaluation.metrics.ConfusionMatrix` computes it),
not a mean of per-batch values. An IoU with nothing to get right or wrong (no landslide in truth or
prediction) is NaN, as in :mod:`geoseg.evaluation.metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
import tensorflow as tf
# isort: on

from geoseg.errors import ConfigError
from geoseg.settings import ModelSettings
from geoseg.training.losses import decode_target, two_class

__all__ = ["ClassIoU", "DiceCoefMulticlass", "METRICS", "foreground_metric_name",
           "training_metrics"]

METRICS = ("dice_coef_multiclass",)
"""Optional metric names a config may list (``[model] metrics``); the foreground IoU is
always reported."""


class _EpochSums(keras.metrics.Metric):
    """State shared by the metrics below: float64 sums over the epoch, for ``num_classes``."""

    def __init__(self, num_classes: int, size: int, sums_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.sums = self.add_variable(shape=(size,), initializer="zeros", name=sums_name,
                                      dtype="float64")

    def _decoded(self, y_true: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One-hot truth and per-pixel weight (0 where ignored), as
        :mod:`geoseg.training.losses`."""
        return decode_target(y_true, max(2, self.num_classes))

    def reset_state(self) -> None:
        self.sums.assign(tf.zeros_like(self.sums))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


class ClassIoU(_EpochSums):
    """Pixel IoU of one class over all counted pixels seen since the last reset.

    Predictions are the most probable class (``p >= 0.5`` for a sigmoid model).

    Parameters
    ----------
    class_id : int
        The class (1 = landslide; 1 also for a sigmoid model's foreground).
    num_classes : int
        Output channels of the model.
    name : str
        Metric name, e.g. ``landslide_iou``.
    """

    def __init__(self, class_id: int = 1, num_classes: int = 2, name: str = "landslide_iou",
                 **kwargs: Any) -> None:
        super().__init__(num_classes, 3, "tp_fp_fn", name=name, **kwargs)
        self.class_id = class_id

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor,
                     sample_weight: tf.Tensor | None = None) -> None:
        """Add a batch: ``y_true`` class ids (IGNORE skipped), ``y_pred`` probabilities."""
        onehot, weight = self._decoded(y_true)
        counted = weight > 0
        truth = tf.logical_and(counted, onehot[..., self.class_id] > 0)
        predicted = tf.logical_and(counted, tf.argmax(two_class(y_pred), axis=-1)
                                   == self.class_id)

        def count(mask: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(tf.cast(mask, tf.float64))

        tp = count(tf.logical_and(truth, predicted))
        self.sums.assign_add(tf.stack([tp, count(predicted) - tp, count(truth) - tp]))

    def result(self) -> tf.Tensor:
        tp, fp, fn = tf.unstack(self.sums)
        union = tp + fp + fn
        return tf.cast(tf.where(union > 0, tp / tf.maximum(union, 1.0), float("nan")),
                       tf.float32)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_id": self.class_id}


class DiceCoefMulticlass(_EpochSums):
    """The reference FlexUNet metric: soft Dice pooled over every one-hot channel.

    ``2 sum(t * p) / (sum(t) + sum(p))`` over all counted pixels and all classes, background
    included. Since every counted pixel contributes 1 to both sums it equals the mean
    probability given to the true class: high even when every landslide is missed on a
    mostly-background tile, which is why the landslide IoU is reported too.
    """

    def __init__(self, num_classes: int = 2, name: str = "dice_coef_multiclass",
                 **kwargs: Any) -> None:
        super().__init__(num_classes, 2, "sums", name=name, **kwargs)

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor,
                     sample_weight: tf.Tensor | None = None) -> None:
        """Add a batch: ``y_true`` class ids (IGNORE skipped), ``y_pred`` probabilities."""
        onehot, weight = self._decoded(y_true)
        probs = two_class(y_pred) * weight[..., None]
        intersection = tf.reduce_sum(tf.cast(onehot * probs, tf.float64))
        total = tf.reduce_sum(tf.cast(onehot, tf.float64)) + tf.reduce_sum(
            tf.cast(probs, tf.float64))
        self.sums.assign_add(tf.stack([2.0 * intersection, total]))

    def result(self) -> tf.Tensor:
        numerator, total = tf.unstack(self.sums)
        return tf.cast(tf.where(total > 0, numerator / tf.maximum(total, 1e-12), float("nan")),
                       tf.float32)


def foreground_metric_name(settings: ModelSettings) -> str:
    """Name of the foreground IoU metric: ``<class name>_iou``, e.g. ``landslide_iou``."""
    name = settings.class_names[1 if settings.num_classes > 1 else 0]
    return re.sub(r"\W+", "_", name.strip().lower()).strip("_") + "_iou"


def training_metrics(settings: ModelSettings, names: Sequence[str] = ()) -> list[keras.Metric]:
    """The metrics to compile a model with: the foreground IoU, then ``names``.

    Parameters
    ----------
    settings : ModelSettings
    names : sequence of str
        Extra metrics from :data:`METRICS` (the config's ``[model] metrics``); the foreground
        IoU's own name may be listed too.

    Returns
    -------
    list of keras.Metric

    Raises
    ------
    ConfigError
        An unknown metric name.
    """
    iou_name = foreground_metric_name(settings)
    metrics: list[keras.Metric] = [ClassIoU(1, settings.num_classes, name=iou_name)]
    for name in dict.fromkeys(names):
        if name == iou_name:
            continue
        if name != "dice_coef_multiclass":
            raise ConfigError(f"[model] metrics: unknown metric {name!r}; known: "
                              f"{', '.join([iou_name, *METRICS])}")
        metrics.append(DiceCoefMulticlass(settings.num_classes))
    return metrics
