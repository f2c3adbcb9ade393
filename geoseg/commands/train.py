"""``geoseg train``: train a FlexUNet from a config, on a dataset folder or on whole scenes."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.commands.options import (
    BUNDLED_NAMES,
    ProgressBar,
    existing_file,
    model_input,
    out_opt,
    overwrite_opt,
    progress_opt,
)


def _pairs(scenes: tuple[str, ...], labels: tuple[str, ...], scene_opt: str,
           labels_opt: str) -> list[tuple[str, str]]:
    if len(scenes) != len(labels):
        raise click.UsageError(f"{len(scenes)} {scene_opt} but {len(labels)} {labels_opt}; "
                               f"give one {labels_opt} per {scene_opt}, in the same order")
    return list(zip(scenes, labels, strict=True))


@click.command(short_help="Train a FlexUNet on labelled tiles or scenes.")
@click.argument("config_path", metavar="CONFIG", type=existing_file)
@out_opt("out_dir", "Output folder for model.keras, last.keras, the log, curves and previews "
         "[default: the config's [train] model_dir].", holds="folder")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Train until this epoch, counting epochs done before --resume "
                   "[default: the config's [train] epochs].")
@click.option("--dataset", "dataset_dir", type=click.Path(exists=True, file_okay=False),
              default=None,
              help="Dataset folder replacing the config's image and mask folders: the "
                   "reference layout (train/ and valid/, each with images/ and masks/) or a "
                   "chip folder written by 'geoseg tile' (index.gpkg).")
@click.option("--scene", "scenes", multiple=True, type=existing_file,
              help="Scene to train on, tiled like prediction; repeat, each with --labels.")
@click.option("--labels", "labels", multiple=True, type=click.Path(exists=True),
              help="Labels of each --scene (polygons or a label raster), in the same order.")
@click.option("--valid-scene", "valid_scenes", multiple=True, type=existing_file,
              help="Scene to validate on; repeat, each with --valid-labels "
                   "[default: the config's [valid] folders].")
@click.option("--valid-labels", "valid_labels", multiple=True, type=click.Path(exists=True),
              help="Labels of each --valid-scene, in the same order.")
@click.option("--monitor", default=None,
              help="Logged value choosing the best model, early stopping and learning-rate "
                   "steps, e.g. val_landslide_iou [default: val_loss].")
@click.option("--init", "init", type=model_input, default=None, metavar="MODEL",
              help="Fine-tune this model: start from its weights (a .keras file or a bundled "
                   f"model: {BUNDLED_NAMES}); the [model] keys CONFIG sets must not change "
                   "its network [default: the config's [train] init_model, else train from "
                   "scratch].")
@click.option("--freeze-encoder-epochs", type=click.IntRange(min=0), default=None, metavar="N",
              help="With --init: train the decoder only for the first N epochs, then the "
                   "whole network [default: the config's [train] freeze_encoder_epochs, 0].")
@click.option("--pixel-size", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="METRES",
              help="Ground size of the training pixels, stored in the model so that geoseg "
                   "predict warns about scenes of another resolution [default: the config's "
                   "[train] pixel_size, else the images' georeference; PNG tiles have none].")
@click.option("--resume", is_flag=True,
              help="Continue the run in the output folder from last.keras and its log.")
@overwrite_opt
@click.option("-q", "--quiet", is_flag=True, help="No line per epoch.")
@progress_opt
def train(
    config_path: str,
    out_dir: str | None,
    epochs: int | None,
    dataset_dir: str | None,
    scenes: tuple[str, ...],
    labels: tuple[str, ...],
    valid_scenes: tuple[str, ...],
    valid_labels: tuple[str, ...],
    monitor: str | None,
    init: str | None,
    freeze_encoder_epochs: int | None,
    pixel_size: float | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Train the FlexUNet that CONFIG describes and save it with its settings.

    Tiles are read exactly as 'geoseg predict' reads them (same grid, bands, padding and raw
    values). The output folder gets model.keras (the best epoch, for 'geoseg predict'),
    last.keras (for --resume), training_log.csv, training_curves.png and
    epoch_previews/. A non-empty output folder is refused without --resume or --overwrite.
    With TF_CONFIG set, every machine of the cluster runs this same command: they train one
    model together and worker 0 writes the outputs (docs/scaling.md).

    With validation scenes, the post-processing of the landslide regions (hysteresis peak,
    minimum area, hole filling) is then chosen on them for the best object F1, keeping their
    pixel IoU, and stored in model.keras ([train] tune_postprocessing).

    \b
    Examples:
      geoseg train hokkaido.config --dataset data/hokkaido-iburi --out runs/first
      geoseg train my.config --scene a.tif --labels a.gpkg --scene b.tif --labels b.gpkg
      geoseg train hokkaido.config --out runs/first --resume --epochs 40
      geoseg train sichuan.config --dataset data/sichuan --init hokkaido-iburi \\
          --freeze-encoder-epochs 3 --pixel-size 0.5 --out runs/sichuan
    """
    from geoseg.config import load_config
    from geoseg.training.datasets import LabelledScene, dataset_split
    from geoseg.training.train import train as run_training

    if dataset_dir is not None and scenes:
        raise click.UsageError("give either --dataset or --scene/--labels, not both")
    config = load_config(config_path)
    suffix = config.mask.mask_file_format
    train_set = valid_set = None
    if dataset_dir is not None:
        train_set = dataset_split(dataset_dir, "train", suffix)
        if not train_set:
            raise click.UsageError(f"{dataset_dir}: has no train split")
        valid_set = dataset_split(dataset_dir, "valid", suffix)
    elif scenes:
        train_set = [LabelledScene(Path(s), Path(lab))
                     for s, lab in _pairs(scenes, labels, "--scene", "--labels")]
    elif labels:
        raise click.UsageError("--labels needs a --scene for each labels file")
    if valid_scenes or valid_labels:
        valid_set = [LabelledScene(Path(s), Path(lab)) for s, lab in
                     _pairs(valid_scenes, valid_labels, "--valid-scene", "--valid-labels")]

    # The epoch lines are the terminal's progress; the steps go out only with --progress json.
    with ProgressBar("steps", enabled=False) as progress:
        result = run_training(
            config, out_dir=out_dir, train_scenes=train_set, valid_scenes=valid_set,
            epochs=epochs, init=init, freeze_encoder_epochs=freeze_encoder_epochs,
            pixel_size=pixel_size, resume=resume, overwrite=overwrite, monitor=monitor,
            report=(lambda line: None) if quiet else click.echo, progress=progress,
        )
    if (config.train.tune_postprocessing and result.chief and result.valid_scenes
            and result.last_epoch):
        from geoseg.training.tuning import tune_model_postprocessing

        tuned = tune_model_postprocessing(result.model_path, result.valid_scenes,
                                          rgb_map=config.mask.rgb_map, report=click.echo)
        click.echo(f"{tuned.describe()}; stored in {result.model_path.name}")
    if result.chief and result.last_epoch and result.train_scenes:
        _int8_version(result.model_path, [scene.image for scene in result.train_scenes])
    best = ", ".join(f"{key} {value:.4f}" for key, value in result.best.items()
                     if key == result.monitor or key.endswith("_iou"))
    if not result.chief:
        click.echo("this worker's copies are removed; the chief (worker 0) wrote:")
    click.echo(f"model: {result.model_path} (epoch {result.best_epoch} of {result.last_epoch}"
               + (f"; {best})" if best else ")"))
    click.echo(f"log: {result.log_path}; curves: {result.curves_path}"
               + (f"; previews: {result.previews_dir}" if result.previews_dir else ""))


def _int8_version(model_path: Path, scenes: list[Path | str]) -> None:
    """Make the trained model's int8 version, calibrated on its training scenes, when NNCF is
    installed; a failure is reported, the model stays."""
    from geoseg.cli import flag
    from geoseg.errors import GeosegError
    from geoseg.model.quantize import quantize_if_installed

    try:
        made = quantize_if_installed(model_path, scenes)
    except GeosegError as exc:
        click.echo(f"Warning: no int8 version: {exc.worded(flag)}", err=True)
        return
    if made is None:
        click.echo("no int8 version (pip install 'geoseg[int8]' for one: faster on CPUs with "
                   "VNNI or AMX)")
    else:
        click.echo(f"int8 version (used by geoseg predict on CPUs with VNNI or AMX): landslide "
                   f"pixels agree with float32's at IoU {made.agreement_iou:.4f} on "
                   f"{made.checked_tiles or made.calibration_tiles} training tiles")
