"""``geoseg models``: the bundled models and the imagery each one knows."""

from __future__ import annotations

import json

import click


@click.command(short_help="List the bundled models and the imagery they know.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list (name, path, default, imagery, pixel_size_m, license, "
                   "works_on) instead of a table.")
def models(as_json: bool) -> None:
    """List the models that ship with geoseg, one line each: name, the imagery it was
    trained on, its pixel size, its license and where it works. Give a name to --model;
    'geoseg info NAME' shows its whole card.

    \b
    Examples:
      geoseg models
      geoseg models --json
    """
    from geoseg.model.bundled import bundled_models
    from geoseg.raster.imagery import format_metres

    found = bundled_models()
    if as_json:
        click.echo(json.dumps([model.to_dict() for model in found], indent=2))
        return
    rows = [("name", "imagery", "pixels", "license", "works on")]
    for model in found:
        size = format_metres(model.pixel_size_m) if model.pixel_size_m else "unknown"
        rows.append((model.name + (" (default)" if model.default else ""), model.imagery,
                     f"~{size}" if model.pixel_size_m else size, model.license,
                     model.works_on))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    widths[-1] = 0  # the last column is not padded
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())
