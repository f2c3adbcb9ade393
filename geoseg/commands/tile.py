"""``geoseg tile``: cut training chips from scenes, on the prediction grid, split spatially."""

from __future__ import annotations

from typing import Any

import click

from geoseg.commands.options import (
    BandListType,
    ProgressBar,
    grid_model_opt,
    out_opt,
    overlap_opt,
    overwrite_opt,
    progress_opt,
    raster_input,
    tile_size_opt,
)


class SplitType(click.ParamType):
    """Three comma-separated shares for train, valid and test, such as ``0.8,0.1,0.1``."""

    name = "TRAIN,VALID,TEST"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            shares = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            shares = ()
        if len(shares) != 3:
            self.fail(f"{value!r} is not three shares such as 0.8,0.1,0.1", param, ctx)
        return shares


@click.command(short_help="Cut training chips from scenes, with a leak-free spatial split.")
@click.argument("scenes", nargs=-1, required=True, type=raster_input)
@click.option("-l", "--labels", "labels", multiple=True, required=True,
              type=click.Path(exists=True, readable=True),
              help="Labels of a SCENE: polygons (.gpkg, .shp, ...) or a label raster. "
                   "Repeat once per scene, in the same order.")
@out_opt("out_dir", "Folder for images/, labels/ and index.gpkg (created if missing).",
         holds="folder", required=True)
@tile_size_opt
@overlap_opt
@grid_model_opt
@click.option("--bands", type=BandListType(), default=None,
              help="Comma-separated 1-based bands to keep, in this order, e.g. 1,2,3 "
                   "[default: every band but alpha].")
@click.option("--format", "chip_format", type=click.Choice(["tif", "png"]), default="tif",
              show_default=True,
              help="tif: GeoTIFF chips keeping their georeference; png: 8-bit RGB chips and "
                   "red/black masks like the reference dataset.")
@click.option("--split", type=SplitType(), default="0.8,0.1,0.1", show_default=True,
              help="Shares of train, valid and test blocks.")
@click.option("--split-block", type=click.IntRange(min=16), default=None,
              help="Side of the square blocks dealt to the splits, in pixels "
                   "[default: 4 tiles].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the block shuffle and of --keep-empty.")
@click.option("--min-foreground", type=click.FloatRange(0.0, 1.0), default=None,
              help="Leave out chips with a smaller landslide fraction (except --keep-empty).")
@click.option("--keep-empty", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Share of chips without landslide pixels to keep.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@progress_opt
@overwrite_opt
def tile(
    scenes: tuple[str, ...],
    labels: tuple[str, ...],
    out_dir: str,
    tile_size: int | None,
    overlap: int | None,
    model_path: str | None,
    bands: list[int] | None,
    chip_format: str,
    split: tuple[float, float, float],
    split_block: int | None,
    seed: int,
    min_foreground: float | None,
    keep_empty: float,
    quiet: bool,
    overwrite: bool,
) -> None:
    """Cut SCENES (files or URLs: https://, s3://, gs://) into training chips: exactly the
    tiles prediction reads (--window tile).

    Blocks of the scenes go to train, valid and test at random (seeded); chips touching a
    chip of another split are dropped, so no pixel is shared between splits. index.gpkg
    holds every chip's footprint, split and landslide fraction.

    \b
    Example:
      geoseg tile scene.tif --labels landslides.gpkg --out chips/ --tile-size 512 --overlap 64
      geoseg tile scene.tif --labels landslides.gpkg --out chips/ --model model.keras
    """
    from geoseg.model.model_archive import read_settings
    from geoseg.training.chips import write_chips

    settings = read_settings(model_path) if model_path is not None else None
    with ProgressBar("windows", enabled=not quiet) as progress:
        summary = write_chips(
            list(scenes), list(labels), out_dir,
            tile_size=tile_size, overlap=overlap, settings=settings, bands=bands,
            chip_format=chip_format,
            split=split, split_block=split_block, seed=seed, min_foreground=min_foreground,
            keep_empty=keep_empty, overwrite=overwrite, progress=progress,
        )
    click.echo(summary.describe())
