"""Accuracy figures for landslide segmentation: pixel, threshold and object metrics.

Everything here accumulates in constant memory, so a whole scene can be scored tile by tile:
:class:`ConfusionMatrix` (class-indexed pixels), :class:`ThresholdSweep` (landslide
probabilities, in fixed-bin histograms) and :func:`match_objects` (polygons). A
:class:`MetricsReport` turns them into JSON, CSV, a terminal table and a PR-curve plot, with the
landslide figures first.

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

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geoseg.errors import ConfigError, InputError
from geoseg.geometry import repair_polygons
from geoseg.outputs import atomic_output

__all__ = [
    "ConfusionMatrix",
    "ThresholdSweep",
    "ObjectMatch",
    "ObjectOverlaps",
    "label_overlaps",
    "match_objects",
    "object_overlaps",
    "MetricsReport",
]

PathLike = str | os.PathLike[str]


def _ratio(num: ArrayLike, den: ArrayLike) -> NDArray[np.float64]:
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


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _jsonable(value: Any) -> Any:
    """Numpy scalars to Python, NaN to None (JSON has no NaN), recursively."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


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
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def precision(self) -> NDArray[np.float64]:
        """Per-class precision; NaN where nothing was predicted as the class."""
        return _ratio(self.tp, self.predicted)

    @property
    def recall(self) -> NDArray[np.float64]:
        """Per-class recall; NaN where the class is absent from the truth."""
        return _ratio(self.tp, self.support)

    @property
    def f1(self) -> NDArray[np.float64]:
        """Per-class F1 (= Dice); NaN where truth and prediction are both empty."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

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
        return float(_ratio(self.matrix.trace(), self.total))

    @property
    def dice_coef_multiclass(self) -> float:
        """The reference FlexUNet metric: one Dice pooled over all one-hot channels.

        ``2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred))`` over every channel,
        background included, of hard one-hot predictions. Every pixel puts exactly one 1 in
        each of ``y_true`` and ``y_pred``, so this equals the overall accuracy: with
        background covering most of a scene it stays high even when every landslide is
        missed, which is why the landslide-class F1/IoU are reported first.
        """
        return float(_ratio(2 * self.matrix.trace(), 2 * self.total))


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
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> NDArray[np.float64]:
        """Recall per threshold; NaN if there are no landslide pixels."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> NDArray[np.float64]:
        """F1 (Dice) per threshold; NaN where truth and prediction are both empty."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> NDArray[np.float64]:
        """IoU per threshold; NaN where truth and prediction are both empty."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

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


@dataclass(frozen=True)
class ObjectMatch:
    """One-to-one matching of truth and predicted landslide polygons.

    Attributes
    ----------
    pairs : list of (truth index, prediction index, IoU)
        Matched pairs, highest IoU first.
    n_truth, n_pred : int
        Numbers of truth and predicted polygons.
    iou_threshold : float
        A pair matches when its IoU is ``>=`` this.
    """

    pairs: list[tuple[int, int, float]]
    n_truth: int
    n_pred: int
    iou_threshold: float

    @property
    def true_positives(self) -> int:
        """Matched landslides."""
        return len(self.pairs)

    @property
    def missed(self) -> list[int]:
        """Indices of truth polygons without a match (false negatives)."""
        return sorted(set(range(self.n_truth)) - {t for t, _, _ in self.pairs})

    @property
    def false_landslides(self) -> list[int]:
        """Indices of predicted polygons without a match (false positives)."""
        return sorted(set(range(self.n_pred)) - {p for _, p, _ in self.pairs})

    @property
    def precision(self) -> float:
        """Matched / predicted objects; NaN if nothing was predicted."""
        return float(_ratio(self.true_positives, self.n_pred))

    @property
    def recall(self) -> float:
        """Matched / truth objects; NaN if there are no truth objects."""
        return float(_ratio(self.true_positives, self.n_truth))

    @property
    def f1(self) -> float:
        """Object F1; NaN when there are neither truth nor predicted objects."""
        return float(_ratio(2 * self.true_positives, self.n_truth + self.n_pred))

    def summary(self) -> dict[str, Any]:
        """Counts and scores as a JSON-able dict."""
        return {
            "iou_threshold": self.iou_threshold, "truth_objects": self.n_truth,
            "predicted_objects": self.n_pred, "true_positives": self.true_positives,
            "missed_landslides": len(self.missed), "false_landslides": len(self.false_landslides),
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
        }  # fmt: skip


def _polygons(name: str, geoms: Any) -> NDArray[np.object_]:
    arr = np.asarray(list(geoms), dtype=object)
    if arr.size == 0:
        return arr
    ok = shapely.is_geometry(arr)
    types = shapely.get_type_id(np.where(ok, arr, np.array(None, dtype=object)))
    bad = np.flatnonzero(~ok | ~np.isin(types, [3, 6]) | shapely.is_empty(arr))
    if bad.size:
        raise InputError(
            f"{name} geometry number {bad[0]} (0-based) is not a non-empty (multi)polygon; "
            "landslide objects must be polygons"
        )
    return repair_polygons(arr, method="structure")


def _check_iou_threshold(iou_threshold: float) -> None:
    if not 0 < iou_threshold <= 1:
        raise ConfigError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


@dataclass(frozen=True)
class ObjectOverlaps:
    """Every pair of a truth and a predicted landslide that overlap, with its IoU.

    Computed once (:func:`object_overlaps` for polygons, :func:`label_overlaps` for labelled
    regions), then matched at any IoU threshold with :meth:`match`.
    """

    n_truth: int
    n_pred: int
    truth_index: NDArray[np.int64]
    pred_index: NDArray[np.int64]
    iou: NDArray[np.float64]

    def match(self, iou_threshold: float = 0.5) -> ObjectMatch:
        """Match one-to-one, greedily: pairs with IoU ``>= iou_threshold``, highest IoU first
        (ties by truth, then prediction index), each object at most once.

        Raises
        ------
        ConfigError
            ``iou_threshold`` is outside ``(0, 1]``.
        """
        _check_iou_threshold(iou_threshold)
        ti, pi, iou = self.truth_index, self.pred_index, self.iou
        keep = np.flatnonzero(iou >= iou_threshold)
        order = keep[np.lexsort((pi[keep], ti[keep], -iou[keep]))]
        used_t: set[int] = set()
        used_p: set[int] = set()
        pairs: list[tuple[int, int, float]] = []
        for k in order:
            a, b = int(ti[k]), int(pi[k])
            if a not in used_t and b not in used_p:
                used_t.add(a)
                used_p.add(b)
                pairs.append((a, b, float(iou[k])))
        return ObjectMatch(pairs, self.n_truth, self.n_pred, float(iou_threshold))

    def best_iou(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Each truth object's and each predicted object's highest IoU with any object of the
        other side (0 when it overlaps none)."""
        truth, pred = np.zeros(self.n_truth), np.zeros(self.n_pred)
        np.maximum.at(truth, self.truth_index, self.iou)
        np.maximum.at(pred, self.pred_index, self.iou)
        return truth, pred


def object_overlaps(truth: Any, pred: Any) -> ObjectOverlaps:
    """The overlapping pairs of truth and predicted landslide polygons, with their IoU.

    Candidate pairs come from a shapely STRtree query (only intersecting pairs are scored).
    Invalid polygons (e.g. self-intersecting digitised outlines) are repaired first with
    ``shapely.make_valid(method="structure")``.

    Parameters
    ----------
    truth, pred : GeoSeries or iterable of shapely (Multi)Polygons
        Both in the same projected CRS (areas are compared).

    Raises
    ------
    InputError
        A geometry is missing, empty or not polygonal, or the two GeoSeries have different CRS.
    """
    crs_t, crs_p = getattr(truth, "crs", None), getattr(pred, "crs", None)
    if crs_t is not None and crs_p is not None and crs_t != crs_p:
        raise InputError(
            f"truth polygons ({crs_t}) and predicted polygons ({crs_p}) have different CRS; "
            "reproject one of them"
        )
    t, p = _polygons("truth", truth), _polygons("prediction", pred)
    ti = pi = np.zeros(0, dtype=np.int64)
    iou = np.zeros(0)
    if t.size and p.size:
        ti, pi = shapely.STRtree(p).query(t, predicate="intersects")
        inter = shapely.area(shapely.intersection(t[ti], p[pi]))
        iou = _ratio(inter, shapely.area(t[ti]) + shapely.area(p[pi]) - inter)
    return ObjectOverlaps(int(t.size), int(p.size), ti.astype(np.int64), pi.astype(np.int64),
                          iou)


def label_overlaps(truth: ArrayLike, pred: ArrayLike) -> ObjectOverlaps:
    """The overlapping pairs of truth and predicted regions of two label arrays, with the IoU
    of their pixels.

    Parameters
    ----------
    truth, pred : array_like of int
        Same shape; 0 outside objects, ``1..n`` the objects (every number up to the largest
        is an object, so counts are the largest labels).

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2]])
    >>> overlaps = label_overlaps(truth, np.array([[1, 0, 0, 1]]))
    >>> overlaps.iou.tolist(), overlaps.match(0.25).true_positives
    ([0.3333333333333333, 0.5], 1)
    """
    t, p = np.asarray(truth), np.asarray(pred)
    if t.shape != p.shape:
        raise InputError(f"predicted labels have shape {p.shape} but truth has shape {t.shape}")
    n_truth, n_pred = int(t.max(initial=0)), int(p.max(initial=0))
    both = (t > 0) & (p > 0)
    pairs, inter = np.unique(t[both].astype(np.int64) * (n_pred + 1) + p[both], return_counts=True)
    ti, pi = pairs // (n_pred + 1), pairs % (n_pred + 1)
    area_t = np.bincount(t.ravel(), minlength=n_truth + 1)
    area_p = np.bincount(p.ravel(), minlength=n_pred + 1)
    iou = _ratio(inter, area_t[ti] + area_p[pi] - inter)
    return ObjectOverlaps(n_truth, n_pred, ti - 1, pi - 1, iou)


def match_objects(truth: Any, pred: Any, iou_threshold: float = 0.5) -> ObjectMatch:
    """Match truth and predicted landslide polygons one-to-one, greedily by IoU.

    The pairs of :func:`object_overlaps` with IoU ``>= iou_threshold`` are taken in order of
    decreasing IoU, each polygon at most once (:meth:`ObjectOverlaps.match`).

    Parameters
    ----------
    truth, pred : GeoSeries or iterable of shapely (Multi)Polygons
        Both in the same projected CRS (areas are compared).
    iou_threshold : float
        In ``(0, 1]``.

    Returns
    -------
    ObjectMatch

    Raises
    ------
    InputError
        A geometry is missing, empty or not polygonal, or the two GeoSeries have different CRS.
    ConfigError
        ``iou_threshold`` is outside ``(0, 1]``.
    """
    _check_iou_threshold(iou_threshold)
    return object_overlaps(truth, pred).match(iou_threshold)


@dataclass
class MetricsReport:
    """Landslide-first accuracy report from a confusion matrix, and optional object/sweep results.

    The foreground class is the one named ``"landslide"`` (any case) if present, else class 1.
    """

    confusion: ConfusionMatrix
    objects: ObjectMatch | None = None
    sweep: ThresholdSweep | None = None
    more_objects: tuple[ObjectMatch, ...] = ()
    """Object matchings at IoU thresholds other than that of ``objects`` (0.25 next to 0.5)."""
    foreground: int = field(init=False)

    def __post_init__(self) -> None:
        names = [n.lower() for n in self.confusion.class_names]
        self.foreground = names.index("landslide") if "landslide" in names else 1

    def class_rows(self) -> list[dict[str, Any]]:
        """Per-class table: class, support, predicted, tp, fp, fn, iou, precision, recall, f1."""
        cm = self.confusion
        return [
            {
                "class": name, "support": int(cm.support[i]), "predicted": int(cm.predicted[i]),
                "tp": int(cm.tp[i]), "fp": int(cm.fp[i]), "fn": int(cm.fn[i]),
                "iou": float(cm.iou[i]), "precision": float(cm.precision[i]),
                "recall": float(cm.recall[i]), "f1": float(cm.f1[i]),
            }  # fmt: skip
            for i, name in enumerate(cm.class_names)
        ]

    @property
    def object_matches(self) -> list[ObjectMatch]:
        """Every object matching of the report, by decreasing IoU threshold."""
        found = [self.objects] if self.objects is not None else []
        return sorted([*found, *self.more_objects], key=lambda match: -match.iou_threshold)

    def object_rows(self) -> list[dict[str, Any]]:
        """One row per object matching (:meth:`ObjectMatch.summary`), by decreasing IoU."""
        return [match.summary() for match in self.object_matches]

    def to_dict(self) -> dict[str, Any]:
        """Ordered, JSON-able figures: landslide class first; NaN becomes None (n/a).

        ``objects`` is the matching at the report's IoU threshold, ``objects_by_iou`` every
        matching (when there are several).
        """
        cm = self.confusion
        out: dict[str, Any] = {"landslide": self.class_rows()[self.foreground]}
        if self.objects is not None:
            out["objects"] = self.objects.summary()
        if self.more_objects:
            out["objects_by_iou"] = self.object_rows()
        if self.sweep is not None and self.sweep.best_index is not None:
            best = self.sweep.rows()[self.sweep.best_index]
            out["best_threshold"] = {k: best[k] for k in ("threshold", "f1", "iou", "precision",
                                                          "recall")}  # fmt: skip
        out |= {
            "classes": self.class_rows(),
            "mean_iou": cm.mean_iou,
            "mean_f1": cm.mean_f1,
            "overall_accuracy": cm.overall_accuracy,
            "dice_coef_multiclass": cm.dice_coef_multiclass,
            "dice_coef_multiclass_note": "reference FlexUNet metric, pooled over all classes "
            "including background; equals overall accuracy for hard predictions",
            "pixels": cm.total,
            "confusion_matrix": cm.matrix.tolist(),
        }
        return _jsonable(out)

    def to_json(self, path: PathLike, overwrite: bool = False) -> None:
        """Write :meth:`to_dict` as JSON (NaN as ``null``).

        Raises
        ------
        OutputError
            The file exists (without ``overwrite``) or cannot be written.
        """
        with atomic_output(path, overwrite) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    def to_csv(self, path: PathLike, overwrite: bool = False) -> None:
        """Write the per-class table as CSV (n/a for undefined figures).

        Raises
        ------
        OutputError
            The file exists (without ``overwrite``) or cannot be written.
        """
        _write_csv(path, self.class_rows(), overwrite)

    def objects_to_csv(self, path: PathLike, overwrite: bool = False) -> None:
        """Write the object figures as CSV, one row per IoU threshold (n/a when undefined).

        Raises
        ------
        ValueError
            The report has no object figures.
        OutputError
            The file exists (without ``overwrite``) or cannot be written.
        """
        if not self.object_matches:
            raise ValueError("this report has no object figures")
        _write_csv(path, self.object_rows(), overwrite)

    def sweep_to_csv(self, path: PathLike, overwrite: bool = False) -> None:
        """Write the threshold sweep, one row per threshold, as CSV.

        Raises
        ------
        ValueError
            The report has no sweep.
        OutputError
            The file exists (without ``overwrite``) or cannot be written.
        """
        _write_csv(path, self._require_sweep().rows(), overwrite)

    def plot_sweep(self, path: PathLike, overwrite: bool = False) -> None:
        """Save a PR curve and F1-vs-threshold plot (format from the suffix, e.g. ``.png``).

        Raises
        ------
        ValueError
            The report has no sweep.
        OutputError
            The file exists (without ``overwrite``) or cannot be written.
        """
        sweep = self._require_sweep()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4.5))
        FigureCanvasAgg(fig)
        ax_pr, ax_f1 = fig.subplots(1, 2)
        recall, precision, _ = sweep.pr_curve()
        ax_pr.plot(recall, precision, marker=".", markersize=3)
        ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
                  title="Landslide precision-recall")  # fmt: skip
        ax_f1.plot(sweep.thresholds, sweep.f1, label="F1")
        ax_f1.plot(sweep.thresholds, sweep.iou, label="IoU", alpha=0.6)
        ax_f1.set(xlabel="threshold (positive when p >= threshold)", ylabel="score",
                  ylim=(0, 1.02), title="Landslide F1 / IoU vs threshold")  # fmt: skip
        i = sweep.best_index
        if i is not None:
            label = f"best F1 {sweep.f1[i]:.3f} at {sweep.thresholds[i]:.2f}"
            ax_f1.axvline(sweep.thresholds[i], color="k", linestyle="--", label=label)
            ax_pr.plot(sweep.recall[i], sweep.precision[i], "ko", label=label)
            ax_pr.legend(loc="lower left")
        ax_f1.legend(loc="lower left")
        fig.tight_layout()
        with atomic_output(path, overwrite) as tmp:
            fig.savefig(tmp, dpi=120)

    def format_table(self) -> str:
        """A plain-text summary for the terminal, landslide figures first."""
        cm, fg = self.confusion, self.foreground
        lines = [
            f"Landslide ({cm.class_names[fg]!r}, class {fg}): IoU {_fmt(cm.iou[fg])}  "
            f"F1 {_fmt(cm.f1[fg])}  precision {_fmt(cm.precision[fg])}  "
            f"recall {_fmt(cm.recall[fg])}"
        ]
        for o in self.object_matches:
            lines.append(
                f"Objects (IoU >= {o.iou_threshold:g}): {o.true_positives} found, "
                f"{len(o.missed)} missed, {len(o.false_landslides)} false; precision "
                f"{_fmt(o.precision)}  recall {_fmt(o.recall)}  F1 {_fmt(o.f1)}"
            )
        if self.sweep is not None:
            s = self.sweep
            f1 = math.nan if s.best_index is None else float(s.f1[s.best_index])
            lines.append(f"Best threshold: {_fmt(s.best_threshold, 2)} (F1 {_fmt(f1)})")
        width = max(12, *(len(n) for n in cm.class_names))
        head = ["support", "predicted", "IoU", "precision", "recall", "F1"]
        lines += ["", f"{'class':<{width}}" + "".join(f"{h:>11}" for h in head)]
        for row in self.class_rows():
            cells = [str(row["support"]), str(row["predicted"])]
            cells += [_fmt(row[k]) for k in ("iou", "precision", "recall", "f1")]
            lines.append(f"{row['class']:<{width}}" + "".join(f"{c:>11}" for c in cells))
        lines += [
            "",
            f"mean IoU {_fmt(cm.mean_iou)}  mean F1 {_fmt(cm.mean_f1)}  "
            f"overall accuracy {_fmt(cm.overall_accuracy)}  pixels {cm.total}",
            f"dice_coef_multiclass {_fmt(cm.dice_coef_multiclass)} (reference metric, includes "
            "background; not a landslide score)",
        ]
        return "\n".join(lines)

    def _require_sweep(self) -> ThresholdSweep:
        if self.sweep is None:
            raise ValueError("this report has no threshold sweep")
        return self.sweep


def _write_csv(path: PathLike, rows: list[dict[str, Any]], overwrite: bool) -> None:
    with atomic_output(path, overwrite) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "n/a" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in row.items()})  # fmt: skip
