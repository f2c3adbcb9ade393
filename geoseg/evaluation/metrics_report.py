"""The accuracy report of an evaluation: landslide figures first, as JSON, CSV, a table and plots.

:class:`MetricsReport` gathers a :class:`~geoseg.evaluation.metrics.ConfusionMatrix`, optionally a
:class:`~geoseg.evaluation.metrics.ThresholdSweep` and
:class:`~geoseg.evaluation.object_matching.ObjectMatch` results; NaN figures are written ``"n/a"``
(terminal, CSV) or ``null`` (JSON).

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geoseg.evaluation.metrics import ConfusionMatrix, ThresholdSweep
from geoseg.evaluation.object_matching import ObjectMatch
from geoseg.raster.outputs import atomic_output

__all__ = ["MetricsReport", "write_csv"]

PathLike = str | os.PathLike[str]


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
        write_csv(path, self.class_rows(), overwrite)

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
        write_csv(path, self.object_rows(), overwrite)

    def sweep_to_csv(self, path: PathLike, overwrite: bool = False) -> None:
        """Write the threshold sweep, one row per threshold, as CSV.

        Raises
        ------
        ValueError
            The report has no sweep.
        OutputError
            The file exists (without ``overwrite``) or cannot be written.
        """
        write_csv(path, self._require_sweep().rows(), overwrite)

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


def write_csv(path: PathLike, rows: list[dict[str, Any]], overwrite: bool) -> None:
    """Write ``rows`` (the first one's keys as the header) as CSV, NaN as ``n/a``, atomically."""
    with atomic_output(path, overwrite) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "n/a" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in row.items()})  # fmt: skip
