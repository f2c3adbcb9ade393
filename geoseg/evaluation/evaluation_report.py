"""The report of an evaluation: its figures per scene and pooled, and the report folder.

:class:`Evaluation` holds the pooled :class:`~geoseg.evaluation.metrics_report.MetricsReport` and
one :class:`SceneReport` per scene; :func:`check_report_dir` checks a report folder before any work
and :func:`write_report` writes it (:data:`REPORT_FILES`, :data:`SCENES_FILE`,
:data:`OBJECT_FILES`), each file atomically.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import OutputError, OutputExistsError, param
from geoseg.evaluation.metrics_report import MetricsReport, write_csv
from geoseg.evaluation.object_report import ObjectLayer, plot_frequency_area, write_objects

__all__ = [
    "DICE_NOTE", "OBJECT_FILES", "REPORT_FILES", "SCENES_FILE", "Evaluation", "SceneReport",
    "check_report_dir", "write_report",
]

PathLike = str | os.PathLike[str]

REPORT_FILES = ("evaluation.json", "evaluation.csv", "threshold_sweep.csv", "threshold_sweep.png")
"""Files :func:`write_report` writes into the report folder."""
SCENES_FILE = "scenes.csv"
"""Per-scene figures, written by :func:`write_report` for an :class:`Evaluation`."""
OBJECT_FILES = ("objects.csv", "objects.gpkg", "objects.qml", "objects_frequency_area.png")
"""Object files :func:`write_report` writes when there are object figures: the figures per IoU
threshold; for an :class:`Evaluation`, the matched, missed and false polygons, their QGIS
style and the frequency-area plot of true and predicted landslides."""

DICE_NOTE = (
    "dice_coef_multiclass (the reference FlexUNet metric) pools every class, background "
    "included: each pixel adds one 1 to truth and prediction, so it equals overall accuracy "
    "and stays high even when every landslide is missed. Judge the model by the landslide "
    "IoU/F1 above."
)
"""Why the reference metric overstates landslide accuracy (after ConfusionMatrix's docs)."""



@dataclass(frozen=True)
class SceneReport:
    """The figures of one scene."""

    name: str
    """The scene's file name."""
    report: MetricsReport
    objects: ObjectLayer | None = None
    """Its matched, missed and false polygons (when objects were matched)."""


@dataclass(frozen=True)
class Evaluation:
    """Pooled and per-scene figures of an evaluation run."""

    report: MetricsReport
    """All scenes pooled (micro average)."""
    scenes: list[SceneReport]
    """One report per scene, in input order."""
    seconds: float
    """Wall time of the run (prediction included)."""



def check_report_dir(out_dir: PathLike, overwrite: bool = False) -> list[Path]:
    """Check, before any work, that a report can be written into ``out_dir``.

    Returns
    -------
    list of Path
        The files :func:`write_report` may write: :data:`REPORT_FILES`, ``scenes.csv`` and
        :data:`OBJECT_FILES`.

    Raises
    ------
    OutputError
        ``out_dir`` is a file.
    OutputExistsError
        One of the report files exists and ``overwrite`` is False.
    """
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file; give a folder for the evaluation report")
    paths = [folder / name for name in (*REPORT_FILES, SCENES_FILE, *OBJECT_FILES)]
    existing = [p.name for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{folder}: holds a report already ({', '.join(existing)}); pass "
            f"{param('overwrite')} to replace it or choose another folder"
        )
    return paths


def _scene_rows(scenes: Sequence[SceneReport]) -> list[dict[str, object]]:
    rows = []
    for scene in scenes:
        landslide = scene.report.class_rows()[scene.report.foreground]
        row: dict[str, object] = {
            "scene": scene.name, "pixels": scene.report.confusion.total,
            "support": landslide["support"], "predicted": landslide["predicted"],
            "iou": landslide["iou"], "f1": landslide["f1"],
            "precision": landslide["precision"], "recall": landslide["recall"],
        }  # fmt: skip
        objects = scene.report.objects
        if objects is not None:
            row |= {"truth_objects": objects.n_truth, "predicted_objects": objects.n_pred,
                    "matched_objects": objects.true_positives}  # fmt: skip
        for match in scene.report.more_objects:
            row[f"matched_objects_iou{match.iou_threshold:g}"] = match.true_positives
        rows.append(row)
    return rows


def _write_objects(scenes: Sequence[SceneReport], folder: Path, overwrite: bool) -> list[Path]:
    """The scenes' objects as a styled GeoPackage and a frequency-area plot, if any."""
    layers = [scene.objects for scene in scenes if scene.objects is not None]
    if not layers:
        return []
    gpkg, style, plot = (folder / name for name in OBJECT_FILES[1:])
    write_objects(layers, gpkg, overwrite)
    georeferenced = all(layer.frame.crs is not None for layer in layers)
    plot_frequency_area(layers, plot, "m²" if georeferenced else "units²", overwrite)
    return [gpkg, style, plot]


def write_report(
    report: MetricsReport | Evaluation, out_dir: PathLike, *, overwrite: bool = False
) -> list[Path]:
    """Write an evaluation report into ``out_dir`` (created if missing).

    Files: ``evaluation.json`` (all figures, landslide first, n/a as null),
    ``evaluation.csv`` (per-class table), ``threshold_sweep.csv`` and
    ``threshold_sweep.png`` (landslide precision/recall/F1/IoU per threshold); for an
    :class:`Evaluation` ``scenes.csv`` (landslide figures per scene); with object figures
    ``objects.csv`` (precision, recall, F1 per IoU threshold) and, for an
    :class:`Evaluation`, ``objects.gpkg`` (matched, missed and false polygons, styled by
    ``objects.qml``) and ``objects_frequency_area.png``. Each file is written atomically.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    OutputError
        ``out_dir`` cannot be created or written.
    OutputExistsError
        A report file exists and ``overwrite`` is False.
    """
    folder = Path(out_dir)
    check_report_dir(folder, overwrite)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the report folder ({exc.strerror})") from exc
    scenes = report.scenes if isinstance(report, Evaluation) else None
    metrics = report.report if isinstance(report, Evaluation) else report
    paths = [folder / name for name in REPORT_FILES]
    metrics.to_json(paths[0], overwrite)
    metrics.to_csv(paths[1], overwrite)
    metrics.sweep_to_csv(paths[2], overwrite)
    metrics.plot_sweep(paths[3], overwrite)
    if scenes is not None:
        rows = _scene_rows(scenes)
        paths.append(folder / SCENES_FILE)
        write_csv(paths[-1], rows, overwrite)
    if metrics.object_matches:
        paths.append(folder / OBJECT_FILES[0])
        metrics.objects_to_csv(paths[-1], overwrite)
    return paths + _write_objects(scenes or [], folder, overwrite)
