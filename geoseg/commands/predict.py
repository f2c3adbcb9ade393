"""``geoseg predict``: segment a whole scene into a class-mask GeoTIFF."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.commands.options import (
    ProgressBar,
    bands_opt,
    overlap_opt,
    overwrite_opt,
    raster_input,
)


def default_model_path() -> Path:
    """The bundled demo model, used when ``--model`` is not given."""
    return Path(__file__).resolve().parents[1] / "data" / "demo_model.keras"


@click.command(short_help="Segment a scene into a class-mask GeoTIFF.")
@click.argument("scene", type=raster_input)
@click.option("-m", "--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Trained geoseg .keras model [default: the bundled demo model].")
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Class mask GeoTIFF to write (uint8, nodata 255).")
@click.option("--probabilities", "probabilities_path", type=click.Path(dir_okay=False),
              default=None, help="Also write per-class probabilities to this GeoTIFF.")
@click.option("--probability-dtype", type=click.Choice(["uint8", "float32"]), default="uint8",
              show_default=True,
              help="uint8: round(p*254) with a GDAL scale of 1/254, nodata 255; "
                   "float32: p with nodata NaN.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Landslide probability threshold: a pixel is landslide when its "
                   "probability is >= it [default: most probable class]. geoseg evaluate "
                   "reports the threshold with the best landslide F1 (threshold_sweep.csv).")
@overlap_opt
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
              help="Tiles per model call.")
@bands_opt
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto",
              show_default=True, help="Where the model runs; auto uses a GPU when one is visible.")
@click.option("--cog", is_flag=True, help="Write Cloud Optimized GeoTIFFs (with overviews).")
@click.option("--vector", "vector_path", type=click.Path(dir_okay=False), default=None,
              help="Also vectorise the mask into polygons (.gpkg, .shp, .geojson, ...).")
@click.option("--preview", "preview_path", type=click.Path(dir_okay=False), default=None,
              help="Also draw a PNG: scene | prediction | polygons.")
@click.option("--require-crs", is_flag=True, help="Refuse scenes without a CRS (default: warn).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@overwrite_opt
def predict(
    scene: str,
    model_path: str | None,
    out_path: str,
    probabilities_path: str | None,
    probability_dtype: str,
    threshold: float | None,
    overlap: int | None,
    batch_size: int,
    bands: list[int] | None,
    device: str,
    cog: bool,
    vector_path: str | None,
    preview_path: str | None,
    require_crs: bool,
    quiet: bool,
    overwrite: bool,
) -> None:
    """Segment SCENE tile by tile and stitch a class mask aligned with it.

    The output has the scene's CRS, transform and size; pixels where the scene has no data
    are nodata (255). Overlapping tiles are blended, so there are no seams.

    \b
    Example:
      geoseg predict scene.tif --model model.keras --out pred.tif --probabilities prob.tif
    """
    from geoseg.inference import KerasPredictor
    from geoseg.model import load_model
    from geoseg.outputs import check_output_path
    from geoseg.predict import predict_scene

    for extra in (vector_path, preview_path):
        if extra is not None:
            check_output_path(extra, overwrite)
    model, settings = load_model(model_path or default_model_path())
    predictor = KerasPredictor(model, batch_size=batch_size, device=device)  # type: ignore[arg-type]
    with ProgressBar("tiles", enabled=not quiet) as progress:
        result = predict_scene(
            scene, out_path, predictor, settings,
            overlap=overlap, bands=bands, threshold=threshold,
            probabilities_path=probabilities_path,
            probability_dtype=probability_dtype,  # type: ignore[arg-type]
            cog=cog, overwrite=overwrite, require_crs=require_crs,
            progress=progress,
        )
    rate = result.tiles_predicted / result.seconds if result.seconds > 0 else 0.0
    click.echo(
        f"{result.mask_path}: {result.tiles_predicted} of {result.tiles_total} tiles predicted "
        f"in {result.seconds:.1f} s ({rate:.2f} tiles/s), "
        f"{result.foreground_pixels} landslide pixels"
    )
    if result.probabilities_path is not None:
        click.echo(f"{result.probabilities_path}: class probabilities")
    if vector_path is not None:
        from geoseg.vectorize import vectorize_mask

        summary = vectorize_mask(result.mask_path, vector_path,
                                 probabilities_path=result.probabilities_path,
                                 layer=Path(scene).stem, overwrite=overwrite)
        click.echo(summary.describe())
    if preview_path is not None:
        from geoseg.preview import render_preview

        render_preview(scene, preview_path, mask_path=result.mask_path,
                       polygons_path=vector_path, bands=bands, overwrite=overwrite,
                       title=Path(scene).name)
        click.echo(f"{preview_path}: preview written")
