"""``geoseg quantize``: an int8 version of a model for OpenVINO, calibrated on your imagery."""

from __future__ import annotations

import click

from geoseg.commands.options import model_input, run_option


@click.command(short_help="Make a model's int8 version (the default on VNNI/AMX CPUs).")
@click.argument("model_path", type=model_input)
@click.argument("scenes", nargs=-1, required=True)
@click.option("--tiles", type=click.IntRange(min=1), default=64, show_default=True,
              help="Tiles of the scenes to calibrate on (as many others check the result).")
@run_option("bands")
def quantize(model_path: str, scenes: tuple[str, ...], tiles: int,
             bands: list[int] | None) -> None:
    """Quantise MODEL_PATH (a .keras model or a bundled model's name) to int8 for OpenVINO,
    calibrated on tiles of SCENES: imagery like the imagery you will predict (files, glob
    patterns or @list.txt files).

    The int8 version is kept in the model's conversion cache (next to the model, else in
    ~/.cache/geoseg) and used by geoseg predict by default on CPUs with VNNI or AMX int8
    instructions (--precision auto), or with --precision int8: 3.7x as fast as OpenVINO
    float32 on the CPU measured (AMX), with masks a little different from float32's
    (--precision float32 keeps float32). How different is measured on other tiles of SCENES and
    printed. Quantising again replaces it. Needs pip install 'geoseg[int8]' (NNCF and
    OpenVINO).

    \b
    Example:
      geoseg quantize model.keras "area/*.tif" --tiles 64
      geoseg predict scene.tif --model model.keras --out mask.tif --precision int8
    """
    from geoseg.model.quantize import quantize_model
    from geoseg.prediction.distributed import expand_scenes

    click.echo(f"Quantising {click.format_filename(model_path)} to int8 on {tiles} tiles...",
               err=True)
    result = quantize_model(model_path, expand_scenes(scenes), tiles=tiles, bands=bands)
    click.echo(f"int8 version calibrated on {result.calibration_tiles} tiles: {result.path}")
    checked = (f"on {result.checked_tiles} other tiles" if result.checked_tiles
               else "on the same tiles (the scenes hold no other)")
    click.echo(f"{checked} its landslide pixels agree with float32's at IoU "
               f"{result.agreement_iou:.4f} ({result.differing_pixels:.3%} of pixels differ); "
               "geoseg predict runs it by default on CPUs with VNNI or AMX (--precision int8 "
               "elsewhere)")
