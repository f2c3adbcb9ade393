"""Writing polygons in GIS formats, chosen by the file extension.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import geopandas as gpd

from geoseg.errors import OutputError
from geoseg.outputs import atomic_output
from geoseg.scene import quiet_georeference

__all__ = ["VECTOR_FORMATS", "output_format", "write_polygons"]

VECTOR_FORMATS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": "GeoParquet",
}
"""Output file extension -> format (an OGR driver name, or GeoParquet written by geopandas).
A path without extension is written as a GeoPackage with ``.gpkg`` appended."""


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


def write_polygons(
    frame: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write polygons in the format named by the file extension (see :data:`VECTOR_FORMATS`).

    The file is written atomically (:func:`geoseg.outputs.atomic_output`); geometries are
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
        Replace an existing file.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        Unknown extension, pyarrow missing for ``.parquet``, unwritable folder.
    OutputExistsError
        The file exists and ``overwrite`` is False.
    """
    final, fmt = output_format(Path(path))
    with atomic_output(final, overwrite) as tmp, quiet_georeference():
        if fmt == "GeoParquet":
            frame.to_parquet(tmp, index=False)
        else:
            options = {"layer": layer or final.stem} if fmt == "GPKG" else {}
            frame.to_file(tmp, driver=fmt, engine="pyogrio", geometry_type="MultiPolygon",
                          index=False, **options)
    return final
