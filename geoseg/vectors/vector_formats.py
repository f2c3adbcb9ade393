"""Writing polygons in GIS formats, chosen by the file extension, with their QGIS style.

A GeoPackage keeps its style inside, in the ``layer_styles`` table QGIS reads a layer's default
style from (QGIS lists that table as no layer); other formats get a ``.qml`` sidecar named
after the file (:func:`geoseg.raster.styles.check_style_path` keeps it every file's own). A
GeoPackage records no time: the dates GDAL and QGIS keep in it (``gpkg_contents.last_change``,
``layer_styles.update_time``) are set to :data:`FIXED_TIME`, as is the date in a Shapefile's
``.dbf`` header, so that the same polygons give the same bytes run after run.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyogrio

from geoseg.errors import OutputError
from geoseg.raster.outputs import atomic_output, check_output_path
from geoseg.raster.scene import quiet_georeference
from geoseg.raster.styles import check_style_path, write_style

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["FIXED_TIME", "STYLE_TABLE", "VECTOR_FORMATS", "check_vector_output", "data_layer",
           "output_format", "steady_geopackage", "steady_sqlite_header", "write_polygons"]

VECTOR_FORMATS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": "GeoParquet",
}
"""Output file extension -> format (an OGR driver name, or GeoParquet written by geopandas).
A path without extension is written as a GeoPackage with ``.gpkg`` appended."""

STYLE_TABLE = "layer_styles"
"""The table of a GeoPackage where QGIS finds its layers' styles."""

FIXED_TIME = pd.Timestamp("1970-01-01T00:00:00", tz="UTC")
SQLITE_CHANGE_COUNTERS = (24, 92)
"""Offsets of the SQLite header's file change counter and of the version-valid-for number
that must equal it (https://www.sqlite.org/fileformat.html)."""
"""The time recorded in a GeoPackage or a Shapefile, whenever it is written."""

_NOT_DATA = frozenset({STYLE_TABLE, "qgis_projects"})
"""Tables QGIS keeps in a GeoPackage beside the data (styles, projects)."""


def output_format(path: Path) -> tuple[Path, str]:
    """The output path (``.gpkg`` appended when it has no extension) and its format.

    Parameters
    ----------
    path : Path
        The path asked for.

    Returns
    -------
    path : Path
    format : str
        A value of :data:`VECTOR_FORMATS`.

    Raises
    ------
    OutputError
        Unknown extension, or pyarrow missing for ``.parquet``.
    """
    if not path.suffix:
        path = path.with_name(path.name + ".gpkg")
    fmt = VECTOR_FORMATS.get(path.suffix.lower())
    if fmt is None:
        valid = ", ".join(VECTOR_FORMATS)
        raise OutputError(f"{path}: unknown vector format {path.suffix!r}; use one of {valid}")
    if fmt == "GeoParquet" and importlib.util.find_spec("pyarrow") is None:
        raise OutputError(
            f"{path}: writing GeoParquet needs the pyarrow package; install it with "
            "`pip install pyarrow`, or write .gpkg instead"
        )
    return path, fmt


def check_vector_output(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    layers: Iterable[str | os.PathLike[str]] = (),
    style: bool = True,
) -> tuple[Path, str]:
    """Check, before any work, a polygon output and (unless it keeps it inside) its style.

    ``overwrite`` and ``inputs`` are those of :func:`geoseg.raster.outputs.check_output_path`,
    ``layers`` those of :func:`geoseg.raster.styles.check_style_path`; ``style``: whether the
    polygons get a style.

    Returns
    -------
    path : Path
    format : str
        As :func:`output_format`.

    Raises
    ------
    OutputError, OutputExistsError, OutputIsInputError
        As :func:`output_format`, :func:`~geoseg.raster.outputs.check_output_path` and
        :func:`~geoseg.raster.styles.check_style_path`.
    """
    input_list = list(inputs)
    check_output_path(path, overwrite, input_list)  # an input is refused whatever its format
    final, fmt = output_format(Path(path))
    if final != Path(path):
        check_output_path(final, overwrite, input_list)
    if style and fmt != "GPKG":
        check_style_path(final, overwrite, input_list, layers, advice=(
            "give the polygons another name, or write a GeoPackage (.gpkg), which keeps its "
            "style inside"))
    return final, fmt


def write_polygons(
    frame: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    overwrite: bool = False,
    style: str | None = None,
) -> Path:
    """Write polygons in the format named by the file extension (see :data:`VECTOR_FORMATS`).

    The file is written atomically (:func:`geoseg.raster.outputs.atomic_output`); geometries are
    declared MultiPolygon, so an empty frame still gives a layer with its schema and CRS.

    Parameters
    ----------
    frame : geopandas.GeoDataFrame
        Features to write, with a CRS (or none).
    path : path
        Output file; ``.gpkg`` is appended when it has no extension.
    layer : str, optional
        GeoPackage layer name (the file stem by default); other formats have one layer.
    overwrite : bool
        Replace an existing file (and style).
    style : str, optional
        A QGIS style (``.qml`` text) for the polygons: the layer's default style inside a
        GeoPackage, a ``.qml`` sidecar next to other formats (check it first:
        :func:`check_vector_output`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        Unknown extension, pyarrow missing for ``.parquet``, unwritable folder.
    OutputExistsError
        The file (or its style sidecar) exists and ``overwrite`` is False.
    """
    final, fmt = output_format(Path(path))
    with atomic_output(final, overwrite) as tmp, quiet_georeference():
        if fmt == "GeoParquet":
            frame.to_parquet(tmp, index=False)
        else:
            options = {"layer": layer or final.stem} if fmt == "GPKG" else {}
            frame.to_file(tmp, driver=fmt, engine="pyogrio", geometry_type="MultiPolygon",
                          index=False, **options)
        if fmt == "GPKG":
            if style is not None:
                _store_style(tmp, layer or final.stem, style)
            steady_geopackage(tmp)
        elif fmt == "ESRI Shapefile":
            _fix_dbf_date(tmp.with_suffix(".dbf"))
    if style is not None and fmt != "GPKG":
        write_style(final, style, overwrite)
    return final


def data_layer(path: str | os.PathLike[str]) -> str | None:
    """The layer to read from a vector file: its one layer besides the tables QGIS keeps in a
    GeoPackage (styles, projects); None when it has several (a reader then takes the first
    and says so) or cannot be listed (the reader says why)."""
    try:
        names = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except Exception:  # noqa: BLE001 - pyogrio raises several types; the reader reports them
        return None
    data = [name for name in names if name not in _NOT_DATA]
    return data[0] if len(data) == 1 and len(names) > 1 else None


def _store_style(gpkg: Path, layer: str, style: str) -> None:
    """Store ``style`` as ``layer``'s default style in the GeoPackage, as QGIS does."""
    geometry = pyogrio.read_info(gpkg, layer=layer)["geometry_name"]
    row = {"f_table_catalog": "", "f_table_schema": "", "f_table_name": layer,
           "f_geometry_column": geometry, "styleName": layer, "styleQML": style,
           "styleSLD": "", "useAsDefault": True, "description": "geoseg", "owner": "",
           "ui": None, "update_time": FIXED_TIME}
    pyogrio.write_dataframe(pd.DataFrame([row]), gpkg, layer=STYLE_TABLE, driver="GPKG",
                            layer_options={"FID": "id"})


def steady_geopackage(gpkg: Path) -> None:
    """Make a closed GeoPackage the same bytes whenever the same layers are written: its
    last-change dates (GDAL writes the time of writing) set to :data:`FIXED_TIME`, its SQLite
    change counter to 1 (:func:`steady_sqlite_header`)."""
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with closing(sqlite3.connect(gpkg)) as db:
        db.execute("PRAGMA secure_delete = ON")  # no trace of the replaced dates in the file
        with db:
            db.execute("UPDATE gpkg_contents SET last_change = ?", (stamp,))
    steady_sqlite_header(gpkg)


def steady_sqlite_header(path: Path) -> None:
    """Set a closed SQLite file's (a GeoPackage's) change counter to 1: it counts the writes
    that made the file, whose number may vary from run to run for the same content."""
    with open(path, "r+b") as file:
        for offset in SQLITE_CHANGE_COUNTERS:
            file.seek(offset)
            file.write((1).to_bytes(4, "big"))


def _fix_dbf_date(dbf: Path) -> None:
    """Set the date of last update in a ``.dbf`` header (bytes 1-3: years since 1900, month,
    day), which GDAL sets to the day of writing."""
    with open(dbf, "r+b") as file:
        file.seek(1)
        file.write(bytes([FIXED_TIME.year - 1900, FIXED_TIME.month, FIXED_TIME.day]))
