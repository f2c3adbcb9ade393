"""``geoseg info``: what geoseg sees in a scene or a model."""

from __future__ import annotations

import json

import click

from geoseg.commands.options import grid_model_opt, overlap_opt, raster_input, tile_size_opt


@click.command(short_help="Describe a scene or a model as geoseg sees it.")
@click.argument("path", type=raster_input)
@tile_size_opt
@overlap_opt
@grid_model_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(path: str, tile_size: int | None, overlap: int | None, model_path: str | None,
         as_json: bool) -> None:
    """Describe PATH: a raster (CRS, size, bands, nodata, tiles) or a .keras model (settings).

    \b
    Examples:
      geoseg info scene.tif --tile-size 512 --overlap 64
      geoseg info scene.tif --model model.keras
      geoseg info model.keras
    """
    from geoseg.info import describe

    facts = describe(path, tile_size, overlap, model_path)
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        click.echo(f"{key:<{width}}  {shown}")
