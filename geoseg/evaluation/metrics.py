"""Pixel accuracy figures for landslide segmentation: a confusion matrix and a threshold sweep.

Everything here accumulates in constant memory, so a whole scene can be scored tile by tile:
:class:`ConfusionMatrix` (class-indexed pixels) and :class:`ThresholdSweep` (landslide
probabilities, in fixed-bin histograms). Landslides as objects are matched in
:mod:`geoseg.evaluation.object_matching`; :class:`~geoseg.evaluation.metrics_report.MetricsReport`
turns all of them into JSON, CSV, a terminal table and a PR-curve plot, with the landslide figures
first.

Conventions for empty classes (they decide how honest a figure is):

* IoU = tp / (tp + fp + fn) and F1 = Dice = 2 tp / (2 tp + fp + fn) are NaN when the class is
  absent from both truth and prediction (0 / 0: nothing to get right or wrong); they are 0 when
  only one of them is empty. Precision is NaN when nothing was predicted as the class, recall is
  NaN when the class is absent from the truth.
* NaN is reported as ``"n/a"`` (terminal, CSV) or ``null`` (JSON), never silently as 1 or 0.
  Means over classes skip n/a classes. A caller that wants "both empty = perfect" can apply
  ``np.nan_to_num(cm.iou, nan=1.0)`` explicitly.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geoseg.errors import ConfigError, InputError

__all__ = ["ConfusionMatrix", "ThresholdSweep", "ratio"]


def ratio(num: ArrayLike, den: ArrayLike) -> NDArray[np.float64]:
    """``num / den`` as float64, NaN where ``den == 0`` (no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: NDArray[np.float64]) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _select(
    name: str, array: ArrayLike, valid: NDArray[np.bool_] | None, shape: tuple[int, ...]
) -> NDArray[Any]:
    """Flatten ``array`` to the counted pixels, checking its shape against ``shape``."""
    arr = np.asarray(array)
    if arr.shape != shape:
        raise InputError(f"{name} has shape {arr.shape} but truth has shape {shape}")
    return arr.ravel() if valid is None else arr[valid]


def _valid_mask(valid: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.bool_] | None:
    if valid is None:
        return None
    mask = np.asarray(valid)
    if mask.dtype != np.bool_ or mask.shape != shape:
        raise InputError(
            f"valid mask must be a boolean array of shape {shape}; got {mask.dtype} {mask.shape}"
        )
    return mask



class ConfusionMatrix:
    """Streaming pixel confusion matrix; rows are truth classes, columns predicted classes.

    Parameters
    ----------
    num_classes : int
        Number of classes (>= 2); labels are ``0 .. num_classes - 1``.
    class_names : sequence of str, optional
        One name per class; defaults to ``"class 0"``, ``"class 1"``, ...

    Examples
    --------
    >>> cm = ConfusionMatrix(2, ["background", "landslide"])
    >>> cm.update(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]))
    >>> cm.iou.tolist()
    [0.3333333333333333, 0.3333333333333333]
    """

    def __init__(self, num_classes: int, class_names: Iterable[str] | None = None) -> None:
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
        names = [f"class {i}" for i in range(num_classes)] if class_names is None else list(
            class_names
        )
        if len(names) != num_classes:
            raise ConfigError(f"{len(names)} class names given for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names: list[str] = [str(n) for n in names]
        self.matrix: NDArray[np.int64] = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, truth: ArrayLike, pred: ArrayLike, valid: ArrayLike | None = None) -> None:
        """Add the pixels of one tile (or scene).

        Parameters
        ----------
        truth, pred : array_like of int or bool
            Class indices, same shape (any number of dimensions).
        valid : array_like of bool, optional
            Pixels to count (e.g. not nodata); values under ``False`` are not checked.

        Raises
        ------
        InputError
            Shapes differ, labels are not integers, or a counted label is outside
            ``0 .. num_classes - 1``.
        """
        truth = np.asarray(truth)
        mask = _valid_mask(valid, truth.shape)
        n = self.num_classes
        flat = []
        for name, arr in (("truth", truth), ("prediction", pred)):
            values = _select(name, arr, mask, truth.shape)
            if values.dtype.kind not in "biu":
                raise InputError(f"{name} must hold integer class indices, not {values.dtype}")
            if values.size and (values.min() < 0 or values.max() >= n):
                bad = values.min() if values.min() < 0 else values.max()
                raise InputError(
                    f"{name} holds label {bad}, outside the classes 0..{n - 1}; "
                    "exclude nodata pixels with the valid mask"
                )
            flat.append(values.astype(np.int64))
        counts = np.bincount(flat[0] * n + flat[1], minlength=n * n)
        self.matrix += counts.reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """A new matrix holding the counts of both (neither input is changed).

        Raises
        ------
        ConfigError
            The two matrices have different classes.
        """
        if other.class_names != self.class_names:
            raise ConfigError(
                f"cannot merge confusion matrices with classes {self.class_names} "
                f"and {other.class_names}"
            )
        merged = ConfusionMatrix(self.num_classes, self.class_names)
        merged.matrix = self.matrix + other.matrix
        return merged

    @property
    def total(self) -> int:
        """Number of pixels counted."""
        return int(self.matrix.sum())

    @property
    def tp(self) -> NDArray[np.int64]:
        """True positives per class."""
        return np.diag(self.matrix).copy()

    @property
    def fp(self) -> NDArray[np.int64]:
        """False positives per class (predicted as the class, truth another)."""
        return self.matrix.sum(axis=0) - self.tp

    @property
    def fn(self) -> NDArray[np.int64]:
        """False negatives per class (truth the class, predicted another)."""
        return self.matrix.sum(axis=1) - self.tp

    @property
    def support(self) -> NDArray[np.int64]:
        """Truth pixels per class."""
        return self.matrix.sum(axis=1)

    @property
    def predicted(self) -> NDArray[np.int64]:
        """Predicted pixels per class."""
        return self.matrix.sum(axis=0)

    @property
    def iou(self) -> NDArray[np.float64]:
        """Per-class IoU (Jaccard); NaN where truth and prediction are both empty."""
        return ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def precision(self) -> NDArray[np.float64]:
        """Per-class precision; NaN where nothing was predicted as the class."""
        return ratio(self.tp, self.predicted)

    @property
    def recall(self) -> NDArray[np.float64]:
        """Per-class recall; NaN where the class is absent from the truth."""
        return ratio(self.tp, self.support)

    @property
    def f1(self) -> NDArray[np.float64]:
        """Per-class F1 (= Dice); NaN where truth and prediction are both empty."""
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def mean_iou(self) -> float:
        """Mean IoU over the classes that are not n/a."""
        return _nanmean(self.iou)

    @property
    def mean_f1(self) -> float:
        """Mean F1 over the classes that are not n/a."""
        return _nanmean(self.f1)

    @property
    def overall_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly; NaN if none was counted."""
        return float(ratio(self.matrix.trace(), self.total))

    @property
    def dice_coef_multiclass(self) -> float:
        """The reference FlexUNet metric: one Dice pooled over all one-hot channels.

        ``2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred))`` over every channel,
        background included, of hard one-hot predictions. Every pixel puts exactly one 1 in
        each of ``y_true`` and ``y_pred``, so this equals the overall accuracy: with
        background covering most of a scene it stays high even when every landslide is
        missed, which is why the landslide-class F1/IoU are reported first.
        """
        return float(ratio(2 * self.matrix.trace(), 2 * self.total))


class ThresholdSweep:
    """Streaming precision/recall/F1/IoU of the landslide class at many probability thresholds.

    A pixel is predicted positive when ``p >= threshold`` (compared in float64). Probabilities
    of truth-positive and truth-negative pixels go into two histograms whose bin edges are the
    thresholds themselves, so memory is constant and the counts are exact (not binned
    approximations) at every threshold.

    Parameters
    ----------
    thresholds : array_like of float, optional
        Strictly increasing, finite; defaults to ``np.linspace(0, 1, 101)``.
    """

    def __init__(self, thresholds: ArrayLike | None = None) -> None:
        th = np.linspace(0, 1, 101) if thresholds is None else np.asarray(thresholds, float)
        if th.ndim != 1 or th.size == 0 or not np.all(np.isfinite(th)) or np.any(np.diff(th) <= 0):
            raise ConfigError("thresholds must be a non-empty, strictly increasing list of numbers")
        self.thresholds: NDArray[np.float64] = th
        # bin i holds p with thresholds[i-1] <= p < thresholds[i]; p >= thresholds[k] <=> i > k
        self.positive_hist = np.zeros(th.size + 1, dtype=np.int64)
        self.negative_hist = np.zeros(th.size + 1, dtype=np.int64)

    def update(self, prob: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> None:
        """Add one tile: landslide probabilities and the binary truth (bool or 0/1).

        Raises
        ------
        InputError
            Shapes differ, truth is not 0/1, or a counted probability is not in [0, 1].
        """
        truth = np.asarray(truth)
        mask = _valid_mask(valid, truth.shape)
        t = _select("truth", truth, mask, truth.shape)
        p = _select("probabilities", prob, mask, truth.shape).astype(np.float64)
        if t.dtype.kind not in "biu" or (t.size and (t.min() < 0 or t.max() > 1)):
            raise InputError("threshold sweep truth must be binary (bool or 0/1 landslide mask)")
        if p.size and not (np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 1):
            raise InputError(
                "landslide probabilities must lie in [0, 1]; exclude nodata with the valid mask"
            )
        bins = np.searchsorted(self.thresholds, p, side="right")
        positive = t.astype(bool)
        self.positive_hist += np.bincount(bins[positive], minlength=self.thresholds.size + 1)
        self.negative_hist += np.bincount(bins[~positive], minlength=self.thresholds.size + 1)

    def merge(self, other: ThresholdSweep) -> ThresholdSweep:
        """A new sweep holding the counts of both (same thresholds required).

        Raises
        ------
        ConfigError
            The thresholds differ.
        """
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ConfigError("cannot merge threshold sweeps with different thresholds")
        merged = ThresholdSweep(self.thresholds)
        merged.positive_hist = self.positive_hist + other.positive_hist
        merged.negative_hist = self.negative_hist + other.negative_hist
        return merged

    @property
    def tp(self) -> NDArray[np.int64]:
        """Landslide pixels with ``p >= threshold``, per threshold."""
        return self.positive_hist.sum() - np.cumsum(self.positive_hist)[:-1]

    @property
    def fp(self) -> NDArray[np.int64]:
        """Background pixels with ``p >= threshold``, per threshold."""
        return self.negative_hist.sum() - np.cumsum(self.negative_hist)[:-1]

    @property
    def fn(self) -> NDArray[np.int64]:
        """Landslide pixels with ``p < threshold``, per threshold."""
        return self.positive_hist.sum() - self.tp

    @property
    def tn(self) -> NDArray[np.int64]:
        """Background pixels with ``p < threshold``, per threshold."""
        return self.negative_hist.sum() - self.fp

    @property
    def precision(self) -> NDArray[np.float64]:
        """Precision per threshold; NaN where no pixel reaches the threshold."""
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> NDArray[np.float64]:
        """Recall per threshold; NaN if there are no landslide pixels."""
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> NDArray[np.float64]:
        """F1 (Dice) per threshold; NaN where truth and prediction are both empty."""
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> NDArray[np.float64]:
        """IoU per threshold; NaN where truth and prediction are both empty."""
        return ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def best_index(self) -> int | None:
        """Index of the best-F1 threshold (the lowest on ties); None if every F1 is n/a."""
        f1 = self.f1
        return None if np.all(np.isnan(f1)) else int(np.nanargmax(f1))

    @property
    def best_threshold(self) -> float:
        """Threshold with the best F1 (NaN if every F1 is n/a)."""
        i = self.best_index
        return math.nan if i is None else float(self.thresholds[i])

    def pr_curve(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(recall, precision, thresholds)`` for the thresholds where precision is defined."""
        keep = ~np.isnan(self.precision)
        return self.recall[keep], self.precision[keep], self.thresholds[keep]

    def rows(self) -> list[dict[str, float]]:
        """One dict per threshold: threshold, tp, fp, fn, tn, precision, recall, f1, iou."""
        cols = {
            "threshold": self.thresholds, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "tn": self.tn, "precision": self.precision, "recall": self.recall,
            "f1": self.f1, "iou": self.iou,
        }  # fmt: skip
        return [{k: v[i].item() for k, v in cols.items()} for i in range(self.thresholds.size)]
