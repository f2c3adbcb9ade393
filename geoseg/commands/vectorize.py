"""``geoseg vectorize``: turn a class mask into polygons for GIS."""

from __future__ import annotations

import click

from geoseg.commands.options import (
    ProgressBar,
    out_opt,
    overwrite_opt,
    progress_opt,
    raster_input,
    run_options,
    vectorize_workers_opt,
)
from geoseg.vectors.polygon_options import PolygonOptions


def _class_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """Parse ``--classes 1,2`` into class ids (PolygonOptions checks them)."""
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of class ids such as 1,2") from None


@click.command(short_help="Vectorise a class mask into polygons.")
@click.argument("mask", type=raster_input)
@out_opt("out_path", "Polygons to write: .gpkg, .shp, .geojson, .fgb or .parquet (GeoParquet).",
         required=True)
@click.option("--probabilities", "probabilities_path", type=raster_input, default=None,
              help="Probabilities written with the mask: adds mean_prob and max_prob.")
@click.option("--uncertainty", "uncertainty_path", type=raster_input, default=None,
              help="The uncertainty raster written with the mask (geoseg predict "
                   "--uncertainty): adds its mean per polygon, tta_spread (written with --tta) "
                   "or entropy.")
@run_options("min_area", "simplify", "fill_holes", "connectivity")
@click.option("--classes", callback=_class_ids, default=None, metavar="IDS",
              help="Comma-separated class ids to vectorise [default: all but 0].")
@vectorize_workers_opt
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@progress_opt
@overwrite_opt
def vectorize(
    mask: str,
    out_path: str,
    probabilities_path: str | None,
    uncertainty_path: str | None,
    min_area: float,
    simplify: float,
    fill_holes: float,
    connectivity: str,
    classes: list[int] | None,
    workers: int | None,
    quiet: bool,
    overwrite: bool,
) -> None:
    """Vectorise MASK (a class-mask GeoTIFF, a file or a URL) into one polygon per connected
    region.

    Polygons are in the mask's CRS with id, class, class_id, area_m2, perim_m, compact
    (4 pi area / perim^2: 1 for a disc, lower for elongated shapes), lon/lat of the centroid
    (WGS84) and, with --probabilities, mean_prob and max_prob; with --uncertainty, the
    polygon's mean uncertainty (tta_spread or entropy).

    \b
    Example:
      geoseg vectorize pred.tif --out landslides.gpkg --probabilities prob.tif --min-area 100
    """
    from geoseg.vectors.vectorize import vectorize_mask

    with ProgressBar("blocks", enabled=not quiet) as progress:
        options = PolygonOptions(min_area, simplify, fill_holes, int(connectivity),
                                 tuple(classes) if classes is not None else None)
        summary = vectorize_mask(mask, out_path, options, probabilities_path=probabilities_path,
                                 uncertainty_path=uncertainty_path, workers=workers,
                                 overwrite=overwrite, progress=progress)
    click.echo(summary.describe())
