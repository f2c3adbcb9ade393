"""Landslides as objects: which truth and predicted landslides overlap, matched one to one.

:func:`object_overlaps` (polygons) and :func:`label_overlaps` (labelled regions) find every
overlapping pair with its IoU once; :meth:`ObjectOverlaps.match` then matches them one to one at
any IoU threshold (:class:`ObjectMatch`: matched, missed and false landslides, object precision,
recall and F1). :func:`match_objects` does both for polygons. A NaN score follows the
conventions of :mod:`geoseg.evaluation.metrics`.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geoseg.errors import ConfigError, InputError
from geoseg.evaluation.metrics import ratio
from geoseg.vectors.geometry import repair_polygons

__all__ = ["ObjectMatch", "ObjectOverlaps", "label_overlaps", "match_objects", "object_overlaps"]


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
        return float(ratio(self.true_positives, self.n_pred))

    @property
    def recall(self) -> float:
        """Matched / truth objects; NaN if there are no truth objects."""
        return float(ratio(self.true_positives, self.n_truth))

    @property
    def f1(self) -> float:
        """Object F1; NaN when there are neither truth nor predicted objects."""
        return float(ratio(2 * self.true_positives, self.n_truth + self.n_pred))

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
        iou = ratio(inter, shapely.area(t[ti]) + shapely.area(p[pi]) - inter)
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
    iou = ratio(inter, area_t[ti] + area_p[pi] - inter)
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
