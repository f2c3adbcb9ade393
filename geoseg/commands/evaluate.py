"""``geoseg evaluate``: landslide accuracy of a model on labelled scenes or a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoseg.commands.options import (
    ProgressBar,
    existing_file,
    model_opt,
    model_spec,
    out_opt,
    overwrite_opt,
    predict_options,
    prediction_opts,
    progress_opt,
    raster_input,
)


def _data_source(
    scenes: tuple[str, ...], labels: tuple[str, ...], dataset: str | None, split: str | None,
    test_dirs: tuple[Path | None, Path | None],
) -> list[tuple[str, str]] | str | tuple[Path, Path]:
    """Scene/label pairs, a dataset folder, or the config's [test] folders; usage errors."""
    if scenes and dataset is not None:
        raise click.UsageError("give SCENES with --labels, or --dataset, not both")
    if split is not None and dataset is None:
        raise click.UsageError("--split applies to --dataset")
    if scenes:
        if len(labels) != len(scenes):
            raise click.UsageError(
                f"give one --labels per scene, in the same order: {len(scenes)} scene(s), "
                f"{len(labels)} --labels"
            )
        return list(zip(scenes, labels, strict=True))
    if labels:
        raise click.UsageError("--labels needs the SCENES they label")
    if dataset is not None:
        return dataset
    images_dir, masks_dir = test_dirs
    if images_dir is not None and masks_dir is not None:
        return (images_dir, masks_dir)
    raise click.UsageError(
        "nothing to evaluate: give SCENES with --labels, --dataset DIR, or a --config whose "
        "[test] section has images_dir and masks_dir"
    )


@click.command(short_help="Measure a model's landslide accuracy on labelled data.")
@click.argument("scenes", nargs=-1, type=raster_input)
@click.option("-l", "--labels", multiple=True, type=click.Path(exists=True),
              help="Labels of a SCENE, once per scene in the same order: a vector layer "
                   "(every polygon a landslide), a label raster or an RGB mask on its grid.")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder in the reference layout: images/ and masks/ (RGB-coded PNGs), or "
                   "a dataset root with split folders, or a geoseg tile chip folder.")
@click.option("--split", default=None,
              help="Split of --dataset to evaluate [default: its images/ and masks/, else "
                   "test/, else valid/].")
@model_opt
@click.option("-c", "--config", "config_path", type=existing_file, default=None,
              help="FlexUNet config: [mask] rgb_map and mask_file_format, [eval] "
                   "iou_threshold and output_dir, [test] folders when nothing else is given.")
@out_opt("out_dir", holds="folder",
         help="Report folder (evaluation.json/.csv, threshold_sweep.csv/.png, scenes.csv, "
                   "objects.csv, objects.gpkg: matched, missed and false polygons styled by "
                   "objects.qml, objects_frequency_area.png) [default: [eval] output_dir of "
                   "--config, else print only].")
@prediction_opts
@click.option("--iou-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="IoU for a predicted landslide polygon to match a true one [default: [eval] "
                   "iou_threshold, 0.5]; objects are also scored at 0.5 and 0.25.")
@click.option("--no-objects", is_flag=True, help="Skip the polygon (object) metrics.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@progress_opt
@overwrite_opt
def evaluate(
    scenes: tuple[str, ...],
    labels: tuple[str, ...],
    dataset: str | None,
    split: str | None,
    model_path: str,
    config_path: str | None,
    out_dir: str | None,
    iou_threshold: float | None,
    no_objects: bool,
    quiet: bool,
    overwrite: bool,
    **run: Any,
) -> None:
    """Predict labelled SCENES (files or URLs: https://, s3://, gs://), or a --dataset, as
    geoseg predict does and score the result.

    Pixels without scene data or without a label are left out. Landslide IoU, F1, precision
    and recall come first, pooled over all scenes (micro average); then landslide polygons
    found, missed and false (one-to-one, at IoU >= 0.5 and >= 0.25), the best probability
    threshold, and the per-class table.

    \b
    Examples:
      geoseg evaluate scene.tif --labels inventory.gpkg --model model.keras --out report/
      geoseg evaluate --dataset hokkaido-iburi/valid --model model.keras
    """
    from geoseg.config import default_config, load_config
    from geoseg.evaluation.evaluation_report import DICE_NOTE, check_report_dir, write_report

    config = load_config(config_path) if config_path else default_config()
    source = _data_source(scenes, labels, dataset, split,
                          (config.test.images_dir, config.test.masks_dir))
    report_dir = out_dir if out_dir is not None else config.eval.output_dir
    if report_dir is not None:
        check_report_dir(report_dir, overwrite)

    from geoseg.evaluation.evaluate import evaluate_dataset, evaluate_scenes
    from geoseg.model.predictor import ModelPredictor

    predictor = ModelPredictor(model_spec(model_path, run))
    settings = predictor.settings
    options = predict_options(model_path, run)
    iou = iou_threshold or config.eval.iou_threshold
    with ProgressBar("windows", enabled=not quiet) as progress:
        if isinstance(source, list):
            result = evaluate_scenes(source, predictor, settings, options=options,
                                     iou_threshold=iou, rgb_map=config.mask.rgb_map,
                                     objects=not no_objects, progress=progress)
        else:
            result = evaluate_dataset(source, predictor, settings, split=split,
                                      mask_suffix=config.mask.mask_file_format, options=options,
                                      iou_threshold=iou, rgb_map=config.mask.rgb_map,
                                      objects=not no_objects, progress=progress)
    count = len(result.scenes)
    click.echo(
        f"{Path(model_path).name} on {count} scene{'s' if count != 1 else ''} "
        f"({result.report.confusion.total} pixels scored, pooled) in {result.seconds:.1f} s"
    )
    click.echo(result.report.format_table())
    click.echo(DICE_NOTE)
    if report_dir is not None:
        written = write_report(result, report_dir, overwrite=overwrite)
        click.echo(f"report: {', '.join(str(p) for p in written)}")
