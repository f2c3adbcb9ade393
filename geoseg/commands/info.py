"""``geoseg info``: what geoseg sees in a scene or a model."""

from __future__ import annotations

import json

import click

from geoseg.commands.options import raster_input


@click.command(short_help="Describe a scene or a model as geoseg sees it.")
@click.argument("path", type=raster_input)
@click.option("--tile-size", type=click.IntRange(min=16), default=512, show_default=True,
              help="Tile size used to count a scene's tiles.")
@click.option("--overlap", type=click.IntRange(min=0), default=64, show_default=True,
              help="Overlap used to count a scene's tiles.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(path: str, tile_size: int, overlap: int, as_json: bool) -> None:
    """Describe PATH: a raster (CRS, size, bands, nodata, tiles) or a .keras model (settings).

    \b
    Examples:
      geoseg info scene.tif --tile-size 512 --overlap 64
      geoseg info model.keras
    """
    from geoseg.info import describe

    try:
        facts = describe(path, tile_size, overlap)
    except ValueError as exc:  # impossible tile/overlap combination
        raise click.BadParameter(str(exc), param_hint="--overlap") from exc
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        click.echo(f"{key:<{width}}  {shown}")
