"""``geoseg preview``: image, truth, prediction and polygons side by side, as a PNG."""

from __future__ import annotations

from typing import Any

import click

from geoseg.commands.options import (
    display_bands_opt,
    existing_file,
    out_opt,
    overwrite_opt,
    raster_input,
)


class WindowType(click.ParamType):
    """A pixel window ``col_off,row_off,width,height``."""

    name = "COL,ROW,WIDTH,HEIGHT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from rasterio.windows import Window

        if isinstance(value, Window):
            return value
        try:
            col, row, width, height = (int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not four integers col,row,width,height", param, ctx)
        if width < 1 or height < 1 or col < 0 or row < 0:
            self.fail(f"{value!r}: offsets must be >= 0 and sizes >= 1", param, ctx)
        return Window(col, row, width, height)


@click.command(short_help="Draw image | truth | prediction | polygons as a PNG.")
@click.argument("scene", type=raster_input)
@out_opt("out_path", "PNG to write.", required=True)
@click.option("--truth", "truth_path", type=existing_file, default=None,
              help="Reference labels: class raster on the scene grid or a vector file.")
@click.option("--mask", "mask_path", type=existing_file, default=None,
              help="Predicted class mask (geoseg predict output).")
@click.option("--polygons", "polygons_path", type=existing_file, default=None,
              help="Predicted polygons (geoseg vectorize output).")
@click.option("--window", type=WindowType(), default=None,
              help="Part of the scene to show, in pixels [default: the whole scene].")
@click.option("--max-size", type=click.IntRange(min=64), default=1024, show_default=True,
              help="Longest side of each panel in pixels (the scene is read decimated).")
@display_bands_opt
@overwrite_opt
def preview(scene: str, out_path: str, truth_path: str | None, mask_path: str | None,
            polygons_path: str | None, window: Any, max_size: int, bands: list[int] | None,
            overwrite: bool) -> None:
    """Draw SCENE with its truth, prediction and polygons side by side.

    \b
    Example:
      geoseg preview scene.tif --truth labels.gpkg --mask pred.tif --out preview.png
    """
    from geoseg.prediction.preview import render_preview

    path = render_preview(scene, out_path, truth_path=truth_path, mask_path=mask_path,
                          polygons_path=polygons_path, window=window, bands=bands,
                          max_size=max_size, overwrite=overwrite)
    click.echo(f"{path}: preview written")
