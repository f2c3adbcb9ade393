"""``geoseg info``: what geoseg sees in a scene or a model."""

from __future__ import annotations

import json

import click

from geoseg.commands.options import grid_model_opt, overlap_opt, raster_input, tile_size_opt
from geoseg.model.bundled import bundled_name, resolve_model


@click.command(short_help="Describe a scene or a model as geoseg sees it.")
@click.argument("path", required=False)
@tile_size_opt
@overlap_opt
@grid_model_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(path: str | None, tile_size: int | None, overlap: int | None, model_path: str | None,
         as_json: bool) -> None:
    """Describe PATH: a raster, a file or a URL (CRS, size, bands, validity, tiles; with
    --model, also the windows geoseg predict would predict it in), or a model: a .keras file
    or a bundled model's name (settings; for a bundled model its card: training data, terms,
    the imagery it expects). Without PATH, describe the --model.

    \b
    Examples:
      geoseg info scene.tif --tile-size 512 --overlap 64
      geoseg info scene.tif --model model.keras
      geoseg info model.keras
      geoseg info --model hokkaido-iburi
    """
    from geoseg.prediction.info import describe

    if path is None:
        if model_path is None:
            raise click.UsageError("give a PATH to describe, or --model")
        path, model_path = model_path, None
    elif bundled_name(resolve_model(path)) is None:  # a file, or a GDAL virtual path
        path = raster_input.convert(path, None, click.get_current_context())
    facts = describe(path, tile_size, overlap, model_path)
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        click.echo(f"{key:<{width}}  {shown}")
