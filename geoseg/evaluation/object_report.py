"""Which landslides were found, missed or made up: a GeoPackage, its QGIS style and a plot.

For each evaluated scene, :func:`object_layer` keeps the predicted polygons (``status``
``matched`` or ``false``) and the true landslides no prediction matched (``missed``), with
``iou`` (of the matched pair; for the others the highest IoU with any polygon of the other
side, 0 when none overlaps) and ``area_m2``. :func:`write_objects` writes them to one
GeoPackage layer per CRS (``objects``; ``objects_2``... when scenes differ in CRS), with a
QGIS style sidecar that colours them by status; :func:`plot_frequency_area` draws the
frequency-area distributions of true and predicted landslides, as landslide inventories
are compared (log-log).

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from geoseg.evaluation.object_matching import ObjectMatch, ObjectOverlaps
from geoseg.raster.outputs import atomic_output
from geoseg.raster.scene import quiet_georeference
from geoseg.vectors.vector_features import Measure
from geoseg.vectors.vector_formats import steady_geopackage

__all__ = ["OBJECT_STATUS", "ObjectLayer", "object_layer", "objects_style",
           "plot_frequency_area", "write_objects"]

PathLike = str | os.PathLike[str]

OBJECT_STATUS = {"matched": (51, 160, 44), "missed": (31, 120, 180), "false": (227, 26, 28)}
"""Status of an object in the layer, and its colour in the style."""


@dataclass(frozen=True)
class ObjectLayer:
    """The objects of one scene: the layer's features and every object's area."""

    frame: gpd.GeoDataFrame
    """Columns ``scene, status, iou, area_m2`` and the polygons, in the scene's CRS."""
    truth_area_m2: NDArray[np.float64]
    """Areas of all true landslides (matched or not)."""
    predicted_area_m2: NDArray[np.float64]
    """Areas of all predicted landslides."""


def object_layer(scene: str, truth: Iterable[Any], predicted: Iterable[Any],
                 overlaps: ObjectOverlaps, match: ObjectMatch, measure: Measure,
                 crs: Any) -> ObjectLayer:
    """The layer of one scene from its polygons and their matching.

    Parameters
    ----------
    scene : str
        The scene's name (a field of every feature).
    truth, predicted : iterables of shapely (Multi)Polygons
        The polygons ``overlaps`` and ``match`` index.
    overlaps, match : ObjectOverlaps, ObjectMatch
        Their overlaps, and the matching whose status the layer shows.
    measure : Measure
        Areas in metres of the scene's CRS.
    crs :
        The scene's CRS (None for a plain image).
    """
    truth_geoms = np.asarray(list(truth), dtype=object)
    predicted_geoms = np.asarray(list(predicted), dtype=object)
    best_truth, best_predicted = overlaps.best_iou()
    status = np.full(len(predicted_geoms), "false", dtype=object)
    iou = best_predicted.copy()
    for _, index, pair_iou in match.pairs:
        status[index], iou[index] = "matched", pair_iou
    missed = np.asarray(match.missed, dtype=np.int64)
    geoms = np.concatenate([predicted_geoms, truth_geoms[missed]])
    areas = measure.area(geoms) if geoms.size else np.zeros(0)
    frame = gpd.GeoDataFrame(
        {"scene": np.full(len(geoms), scene, dtype=object),
         "status": np.concatenate([status, np.full(missed.size, "missed", dtype=object)]),
         "iou": np.concatenate([iou, best_truth[missed]]), "area_m2": areas},
        geometry=gpd.GeoSeries(_multipolygons(geoms), crs=crs),
    )
    truth_areas = measure.area(truth_geoms) if truth_geoms.size else np.zeros(0)
    return ObjectLayer(frame, truth_areas, areas[: len(predicted_geoms)])


def _multipolygons(geoms: NDArray[np.object_]) -> list[Any]:
    """Polygons as one-part MultiPolygons, as the layer declares."""
    return [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms]


def objects_style() -> str:
    """A QGIS style colouring the objects by ``status``: matched green, missed blue, false
    red, semi-transparent fills with solid outlines."""
    categories, symbols = [], []
    for number, (status, (r, g, b)) in enumerate(OBJECT_STATUS.items()):
        categories.append(f'      <category value="{status}" symbol="{number}" '
                          f'label="{status}" render="true"/>')
        symbols.append(
            f'      <symbol type="fill" name="{number}" alpha="1" clip_to_extent="1" '
            f'force_rhr="0">\n        <layer class="SimpleFill" enabled="1" pass="0" '
            f'locked="0">\n          <Option type="Map">\n'
            + "".join(f'            <Option type="QString" name="{key}" value="{value}"/>\n'
                      for key, value in (("color", f"{r},{g},{b},90"),
                                         ("outline_color", f"{r},{g},{b},255"),
                                         ("outline_width", "0.5"),
                                         ("outline_width_unit", "MM")))
            + "          </Option>\n        </layer>\n      </symbol>"
        )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28" styleCategories="Symbology">\n'
        '  <renderer-v2 type="categorizedSymbol" attr="status" symbollevels="0" '
        'enableorderby="0" forceraster="0">\n    <categories>\n'
        + "\n".join(categories) + "\n    </categories>\n    <symbols>\n"
        + "\n".join(symbols) + "\n    </symbols>\n  </renderer-v2>\n</qgis>\n"
    )


def _layers_by_crs(layers: Sequence[ObjectLayer]) -> list[tuple[str, gpd.GeoDataFrame]]:
    """One frame per CRS, in the order the scenes first use it: ``objects``, ``objects_2``..."""
    groups: dict[str, list[gpd.GeoDataFrame]] = {}
    for layer in layers:
        crs = layer.frame.crs
        groups.setdefault(crs.to_wkt() if crs is not None else "", []).append(layer.frame)
    named = []
    for number, frames in enumerate(groups.values(), start=1):
        frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
        named.append(("objects" if number == 1 else f"objects_{number}", frame))
    return named


def write_objects(layers: Sequence[ObjectLayer], path: PathLike, overwrite: bool = False
                  ) -> list[str]:
    """Write the objects of every scene to a GeoPackage (one layer per CRS) and its style.

    The style goes to the ``.qml`` sidecar QGIS loads with the file.

    Returns
    -------
    list of str
        The layer names written.

    Raises
    ------
    OutputError
        The file (or its style) exists without ``overwrite``, or cannot be written.
    """
    named = _layers_by_crs(layers)
    with atomic_output(path, overwrite) as tmp, quiet_georeference():
        for number, (name, frame) in enumerate(named):
            frame.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio",
                          geometry_type="MultiPolygon", index=False,
                          mode="a" if number else "w")
        steady_geopackage(tmp)
    with atomic_output(Path(path).with_suffix(".qml"), overwrite) as tmp:
        tmp.write_text(objects_style(), encoding="utf-8")
    return [name for name, _ in named]


def _frequency_density(areas: NDArray[np.float64], edges: NDArray[np.float64]
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bin centres (geometric) and the frequency density ``(1/N) dN/dA`` where not empty."""
    counts, _ = np.histogram(areas, edges)
    keep = counts > 0
    centres = np.sqrt(edges[:-1] * edges[1:])
    return centres[keep], counts[keep] / np.diff(edges)[keep] / max(1, areas.size)


def plot_frequency_area(layers: Sequence[ObjectLayer], path: PathLike, area_unit: str = "m²",
                        overwrite: bool = False) -> None:
    """Plot the frequency-area distributions of true and predicted landslides (log-log).

    Left: the frequency density ``p(A) = (1/N) dN/dA`` in logarithmic bins (5 a decade);
    right: the number of landslides of area ``>= A``.

    Raises
    ------
    OutputError
        The file exists (without ``overwrite``) or cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = {
        "true": np.concatenate([np.zeros(0), *(layer.truth_area_m2 for layer in layers)]),
        "predicted": np.concatenate([np.zeros(0),
                                     *(layer.predicted_area_m2 for layer in layers)]),
    }
    positive = np.concatenate([a[a > 0] for a in series.values()])
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    ax_density, ax_cumulative = fig.subplots(1, 2)
    if positive.size:
        low, high = np.log10(positive.min()), np.log10(positive.max())
        edges = np.logspace(np.floor(low * 5) / 5, np.ceil(high * 5) / 5 + 0.2,
                            int(np.ceil(high * 5) - np.floor(low * 5)) + 2)
        for (name, areas), colour in zip(series.items(), ("#1f78b4", "#e31a1c"), strict=True):
            areas = areas[areas > 0]
            label = f"{name} ({areas.size})"
            ax_density.loglog(*_frequency_density(areas, edges), "o-", color=colour, label=label)
            ordered = np.sort(areas)[::-1]
            ax_cumulative.loglog(ordered, np.arange(1, ordered.size + 1), color=colour,
                                 label=label, drawstyle="steps-post")
        ax_density.legend()
        ax_cumulative.legend()
    ax_density.set(xlabel=f"landslide area ({area_unit})",
                   ylabel=f"frequency density (1/{area_unit})",
                   title="Frequency-area distribution")
    ax_cumulative.set(xlabel=f"landslide area A ({area_unit})", ylabel="landslides of area >= A",
                      title="Cumulative")
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=120)
