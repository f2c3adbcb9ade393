"""``geoseg sample``, ``geoseg configs``, ``geoseg qgis-plugin``: the files a source checkout
has besides the code, written from an installed geoseg (:mod:`geoseg.shipped`)."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.commands.options import overwrite_opt

out_dir_arg = click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))


@click.command(short_help="Write the sample scene and its true landslides.")
@out_dir_arg
@overwrite_opt
def sample(out_dir: str, overwrite: bool) -> None:
    """Write the sample scene of the quick start and its truth into DIR (created).

    The repository's sample_data/ files, generated (seed 2018, a few seconds):
    iburi_synthetic.tif, a synthetic 2048 x 2048 RGB scene of 3 m pixels in EPSG:32654;
    iburi_synthetic_labels.tif, its labels (1 landslide); iburi_synthetic_landslides.gpkg,
    its landslide polygons.

    \b
    Example, then the README's quick start as written:
      geoseg sample sample_data
    """
    from geoseg.labels.synthetic import write_sample

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    _, files = write_sample(out_dir, overwrite=overwrite)
    for path in (files.image, files.labels, files.landslides):
        click.echo(path)


@click.command(short_help="Copy the training configs geoseg ships.")
@out_dir_arg
@overwrite_opt
def configs(out_dir: str, overwrite: bool) -> None:
    """Copy the training configs of the repository's configs/ into DIR (created).

    hokkaido_cpu.config is the recipe of the bundled hokkaido-iburi model. Its data folders
    are relative to the config's folder and name the maintainers' layout (a geoseg checkout
    with shared/ beside it): give your own with geoseg train --dataset (or --scene and
    --labels), or edit them.

    \b
    Example:
      geoseg configs configs
      geoseg train configs/hokkaido_cpu.config --dataset chips --out runs/hokkaido
    """
    from geoseg.shipped import copy_configs

    for path in copy_configs(out_dir, overwrite):
        click.echo(path)


@click.command("qgis-plugin", short_help="Write the QGIS plugin's zip.")
@out_dir_arg
@overwrite_opt
def qgis_plugin(out_dir: str, overwrite: bool) -> None:
    """Write geoseg_qgis.zip, the QGIS plugin, into DIR (created).

    Install it in QGIS with Plugins > Manage and Install Plugins > Install from ZIP, then set
    the geoseg executable under Settings > Options > Processing > Providers > geoseg.
    """
    from geoseg.shipped import PLUGIN_NAME, build_plugin_zip

    click.echo(build_plugin_zip(Path(out_dir) / f"{PLUGIN_NAME}.zip", overwrite=overwrite))
