"""``geoseg predict``: segment whole scenes into class-mask GeoTIFFs, on one or many machines."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from geoseg.commands.options import (
    ProgressBar,
    model_opt,
    model_spec,
    out_opt,
    overwrite_opt,
    predict_options,
    prediction_opts,
    progress_opt,
    run_option,
)

if TYPE_CHECKING:
    from geoseg.model.predictor import ModelSpec
    from geoseg.prediction.distributed import Executor
    from geoseg.prediction.jobs import SceneOutcome
    from geoseg.prediction.predict_options import PredictOptions
    from geoseg.prediction.prediction_outputs import PredictionResult


@click.command(short_help="Segment scenes into class-mask GeoTIFFs.")
@click.argument("scenes", nargs=-1, required=True)
@model_opt
@out_opt("out_path", "Class mask GeoTIFF to write for one scene (uint8, nodata 255).")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the outputs of several scenes: <scene stem>_mask.tif, ...")
@click.option("--probabilities", "probabilities_path", type=click.Path(dir_okay=False),
              default=None, help="Also write per-class probabilities to this GeoTIFF.")
@click.option("--uncertainty", "uncertainty_path", type=click.Path(dir_okay=False),
              default=None,
              help="Also write the per-pixel uncertainty to this GeoTIFF (with a QGIS style): "
                   "the spread of the landslide probability across --tta's predictions, else "
                   "the predictive entropy (0 sure .. 1 even odds); stored like the "
                   "probabilities. The polygons then get its mean (tta_spread or entropy).")
@run_option("probability_dtype")
@prediction_opts
@click.option("--cog", is_flag=True, help="Write Cloud Optimized GeoTIFFs (with overviews).")
@click.option("--vector", "vector_path", type=click.Path(dir_okay=False), default=None,
              help="Also vectorise the mask into polygons (.gpkg, .shp, .geojson, ...).")
@click.option("--preview", "preview_path", type=click.Path(dir_okay=False), default=None,
              help="Also draw a PNG: scene | prediction | polygons.")
@click.option("--also", type=click.Choice(["probabilities", "vector"]), multiple=True,
              help="With --out-dir: also write <stem>_probabilities.tif and/or "
                   "<stem>_landslides.gpkg for every scene (repeatable).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Spread the work over a local Dask cluster of N worker processes: a scene "
                   "larger than its share is split into bands of rows, assembled into one "
                   "output.")
@click.option("--dask-scheduler", default=None, metavar="ADDRESS",
              help="Spread the work over the Dask cluster at ADDRESS (tcp://host:8786); "
                   "workers must see the same paths.")
@click.option("--band-tile-rows", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --workers or --dask-scheduler: split every scene taller than N tile "
                   "rows into bands of about N [default: from the scenes' sizes and the "
                   "workers].")
@click.option("--require-crs", is_flag=True, help="Refuse scenes without a CRS (default: warn).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@progress_opt
@click.option("--resume", is_flag=True,
              help="Continue a run that was interrupted or met a full disk, with the same "
                   "scene, model and options, from its last finished rows; rows whose input "
                   "pixels read otherwise now are predicted again (the result is identical "
                   "to an uninterrupted run).")
@overwrite_opt
def predict(
    scenes: tuple[str, ...],
    model_path: str,
    out_path: str | None,
    out_dir: str | None,
    probabilities_path: str | None,
    uncertainty_path: str | None,
    probability_dtype: str,
    cog: bool,
    vector_path: str | None,
    preview_path: str | None,
    also: tuple[str, ...],
    workers: int | None,
    dask_scheduler: str | None,
    band_tile_rows: int | None,
    require_crs: bool,
    quiet: bool,
    resume: bool,
    overwrite: bool,
    **run: Any,
) -> None:
    """Segment SCENES tile by tile and stitch a class mask aligned with each.

    The output has the scene's CRS, transform and size; pixels where the scene has no data
    are nodata (255). Overlapping tiles are blended, so there are no seams.

    SCENES are files, URLs (https://, s3://, gs://; outputs stay local), GDAL virtual paths
    (/vsizip/..., /vsicurl/...), glob patterns ("tiles/*.tif") or @list.txt files (one of
    those per line). One scene goes to --out;
    several go to --out-dir, one after another or spread over Dask workers (--workers,
    --dask-scheduler), each worker loading the model once. On workers, a scene larger than its
    share is split into bands of rows; the outputs are the same bytes as without workers.

    \b
    Examples:
      geoseg predict scene.tif --model model.keras --out pred.tif --probabilities prob.tif
      geoseg predict real.tif --model hokkaido-iburi --out pred.tif --vector slides.gpkg
      geoseg predict mosaic.vrt --model model.keras --out pred.tif --cog --workers 4
      geoseg predict "area/*.tif" --model model.keras --out-dir preds --workers 2 --also vector
    """
    from geoseg.prediction.distributed import Executor, expand_scenes

    if (out_path is None) == (out_dir is None):
        raise click.UsageError("give --out for one scene or --out-dir for several")
    _say_terms(model_path)
    scene_paths = expand_scenes(scenes)
    spec = model_spec(model_path, run)
    options = predict_options(model_path, run, probability_dtype=probability_dtype, cog=cog,
                              overwrite=overwrite, require_crs=require_crs, resume=resume)
    if band_tile_rows is not None and not (workers or dask_scheduler):
        raise click.UsageError("--band-tile-rows applies with --workers or --dask-scheduler")
    executor = Executor(workers, dask_scheduler, band_tile_rows)
    if out_path is not None:
        if len(scene_paths) != 1:
            raise click.UsageError(f"{len(scene_paths)} scenes given: use --out-dir for several")
        if also:
            raise click.UsageError("--also applies with --out-dir")
        _predict_one(scene_paths[0], spec, options, out_path, probabilities_path, vector_path,
                     preview_path, quiet, executor, uncertainty_path)
        return
    for option, value in (("--probabilities", probabilities_path), ("--vector", vector_path),
                          ("--preview", preview_path), ("--uncertainty", uncertainty_path)):
        if value:
            raise click.UsageError(f"{option} names one scene's output; with --out-dir use "
                                   "--also probabilities / --also vector")
    _predict_many(scene_paths, spec, options, Path(out_dir or "."), also, executor, quiet)


def _say_terms(model_path: str) -> None:
    """Once per run: the terms of use of a bundled model whose license is not geoseg's."""
    from geoseg.model.bundled import bundled_name, model_terms

    terms = model_terms(model_path)
    if terms is not None:
        click.echo(f"Model {bundled_name(model_path)}: {terms}", err=True)


def _predict_one(
    scene: str, spec: ModelSpec, options: PredictOptions, out_path: str,
    probabilities_path: str | None, vector_path: str | None, preview_path: str | None,
    quiet: bool, executor: Executor, uncertainty_path: str | None = None,
) -> None:
    from geoseg.prediction.distributed import predict_scenes, process_predictor
    from geoseg.prediction.jobs import SceneJob, check_outputs
    from geoseg.raster.outputs import check_output_path

    predictor = process_predictor(spec)  # the one predict_scenes runs in this process
    job = SceneJob(scene, Path(out_path),
                   Path(probabilities_path) if probabilities_path else None,
                   Path(vector_path) if vector_path else None,
                   Path(uncertainty_path) if uncertainty_path else None)
    check_outputs(job, options.overwrite, spec.path, options.style)  # before naming the model
    if preview_path is not None:
        check_output_path(preview_path, options.overwrite, inputs=[scene, spec.path])
    if not quiet:  # at once, not after the seconds TensorFlow takes to import
        click.echo(f"Loading {spec.path.name} ({predictor.backend} backend)...", err=True)
    predictor.start()  # a converted model loads while the scene is checked
    if executor.is_cluster and not quiet:
        click.echo(f"{scene} -> {out_path} on {executor.describe()}", err=True)
    with (nullcontext(None) if executor.is_cluster
          else ProgressBar("windows", enabled=not quiet)) as progress:
        outcome, = predict_scenes([job], spec, options, executor, window_progress=progress)
    if outcome.failure is not None:
        raise outcome.failure  # worded as flags by the command line, like any other
    result = outcome.result
    assert result is not None
    click.echo(_describe(result, options.resume) + (_where(outcome) if executor.is_cluster
                                                    else ""))
    if result.probabilities_path is not None:
        click.echo(f"{result.probabilities_path}: class probabilities")
    if result.uncertainty_path is not None:
        click.echo(f"{result.uncertainty_path}: uncertainty "
                   f"({'tta spread' if options.tta != 'none' else 'predictive entropy'})")
    if outcome.vector is not None:
        click.echo(outcome.vector.describe())
    if preview_path is not None:
        from geoseg.prediction.preview import render_preview

        render_preview(scene, preview_path, mask_path=result.mask_path,
                       polygons_path=vector_path, bands=options.bands,
                       overwrite=options.overwrite, title=Path(scene).name)
        click.echo(f"{preview_path}: preview written")


def _predict_many(
    scenes: list[str], spec: ModelSpec, options: PredictOptions, out_dir: Path,
    also: tuple[str, ...], executor: Executor, quiet: bool,
) -> None:
    from geoseg.prediction.distributed import plan_jobs, predict_scenes

    jobs = plan_jobs(scenes, out_dir, probabilities="probabilities" in also,
                     vector="vector" in also, overwrite=options.overwrite)
    if not quiet:
        noun = "scene" if len(jobs) == 1 else "scenes"
        click.echo(f"{len(jobs)} {noun} -> {out_dir} on {executor.describe()}", err=True)

    def report(outcome: SceneOutcome) -> None:
        if outcome.result is None:
            click.echo(f"{outcome.job.scene}: FAILED: {_reason(outcome)}", err=True)
            return
        click.echo(_describe(outcome.result, options.resume)
                   + (_where(outcome) if executor.is_cluster else ""))
        if outcome.vector is not None:
            click.echo(outcome.vector.describe())

    outcomes = predict_scenes(jobs, spec, options, executor, progress=report)
    failed = [o for o in outcomes if o.result is None]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} scenes failed (see above), first: "
            f"{failed[0].job.scene}: {_reason(failed[0])}"
        )


def _reason(outcome: SceneOutcome) -> str:
    """Why a scene failed, with the library's parameters worded as this command's flags."""
    from geoseg.cli import flag

    assert outcome.failure is not None
    return outcome.failure.worded(flag)


def _where(outcome: SceneOutcome) -> str:
    """Which workers made a scene's outputs."""
    if not outcome.bands:
        return f" [worker {outcome.worker}]"
    workers = sorted({band.worker for band in outcome.bands})
    return (f" [{len(outcome.bands)} bands on workers {', '.join(workers)}; assembled on "
            f"{outcome.worker} in {outcome.assembly_seconds or 0.0:.1f} s]")


def _describe(result: PredictionResult, resume: bool) -> str:
    """What a run did; a rate only when every window was predicted: a window passed over (no
    data, or finished by the interrupted run ``resume`` continues) takes a fraction of a
    predicted one's time."""
    skipped = result.tiles_total - result.tiles_predicted
    if skipped:
        pace = f"{skipped} {'skipped or done before' if resume else 'without data skipped'}"
    else:
        rate = result.tiles_predicted / result.seconds if result.seconds > 0 else 0.0
        pace = f"{rate:.2f} windows/s"
    return (f"{result.mask_path}: {result.tiles_predicted} of {result.tiles_total} windows "
            f"predicted in {result.seconds:.1f} s ({pace}), "
            f"{result.foreground_pixels} landslide pixels")
