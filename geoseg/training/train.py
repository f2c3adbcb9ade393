"""Training a FlexUNet on labelled tiles: ``geoseg train``.

:func:`train` builds the model from a config's ``[model]`` section, streams tiles read
exactly as prediction reads them (:mod:`geoseg.training.datasets`,
:mod:`geoseg.training.tf_dataset`), and writes into one output folder:

``model.keras``
    The best model so far (by ``monitor``), with its settings: ready for ``geoseg predict``.
``last.keras``
    The model after the latest epoch, with optimizer state, for ``resume``.
``training_log.csv``
    One row per epoch: losses, metrics (``landslide_iou`` ...), learning rate, seconds.
``training_curves.png``
    The curves of the log, drawn when training ends (or is interrupted).
``epoch_previews/epoch_NNN.png``
    Image | truth | prediction of a few fixed validation tiles after every epoch (when
    ``[train] epoch_change_infer`` is on and ``num_infer_images`` > 0).

A model can start from another one's weights (``init``, ``[train] init_model``: fine-tuning),
with the same network; its encoder can stay fixed for the first epochs
(``freeze_encoder_epochs``). Every model saved carries the facts of its training imagery
(:func:`geoseg.raster.imagery.training_facts`: pixel size, band statistics) and its parent, so that
``geoseg predict`` can warn about scenes unlike them.

An output folder is never emptied silently: a non-empty folder is refused unless ``resume``
(continue from ``last.keras`` and the log's epoch count) or ``overwrite`` (delete the files
above, and only those, first). With more than one GPU visible the model is replicated with
``tf.distribute.MirroredStrategy``; with ``TF_CONFIG`` set, several machines train it together
with ``MultiWorkerMirroredStrategy``, worker 0 writing the outputs
(:mod:`geoseg.training.training_strategy`). The output folder and its files are those of
:mod:`geoseg.training.training_outputs`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
# isort: on
import numpy as np

from geoseg.config import Config
from geoseg.errors import (
    ConfigError,
    InputError,
    ModelError,
    param,
)
from geoseg.evaluation.metrics import ThresholdSweep
from geoseg.model.bundled import BUNDLED_MODELS, bundled_name, resolve_model
from geoseg.model.flexunet import build_flexunet, encoder_layers, load_model, read_settings
from geoseg.model.model_archive import replace_settings
from geoseg.model.predictor import file_digest
from geoseg.raster.imagery import format_metres, training_facts
from geoseg.settings import ModelParent, ModelSettings
from geoseg.training.augment import Augmentation
from geoseg.training.callbacks import (
    EpochPreviews,
    EpochRecorder,
    SettingsCheckpoint,
    StepProgress,
    improved,
    read_log,
)
from geoseg.training.datasets import (
    LabelledScene,
    MemoryTiles,
    TileDataset,
    TileSource,
    example_bytes,
    reference_scenes,
)
from geoseg.training.keras_metrics import training_metrics
from geoseg.training.losses import make_loss
from geoseg.training.tf_dataset import training_dataset, validation_dataset, validation_steps
from geoseg.training.training_outputs import (
    CURVES_NAME,
    LAST_NAME,
    LOG_NAME,
    MODEL_NAME,
    PREVIEWS_DIR,
    TrainResult,
    prepare_out_dir,
)
from geoseg.training.training_strategy import training_placement, weights_digest
from geoseg.training.trainplots import panel_colours, plot_history

__all__ = [  # the output folder's names are re-exported from geoseg.training.training_outputs
    "CURVES_NAME",
    "LAST_NAME",
    "LOG_NAME",
    "MODEL_NAME",
    "PREVIEWS_DIR",
    "TrainResult",
    "choose_threshold",
    "prepare_out_dir",
    "train",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _mode(monitor: str) -> str:
    return "min" if monitor.removeprefix("val_") == "loss" else "max"


def _check_monitor(monitor: str, metric_names: Sequence[str], validation: bool) -> None:
    names = ["loss", *metric_names]
    known = names + ([f"val_{n}" for n in names] if validation else [])
    if monitor not in known:
        hint = " (val_ values need validation data)" if monitor.startswith("val_") else ""
        raise ConfigError(f"monitor {monitor!r} is not one of {', '.join(known)}{hint}")


def _config_scenes(config: Config, section: str) -> list[LabelledScene] | None:
    part = config.train if section == "train" else config.valid
    if part.images_dir is None or part.masks_dir is None:
        return None
    return reference_scenes(part.images_dir, part.masks_dir, config.mask.mask_file_format)


def _optimizer(config: Config, total_steps: int) -> keras.optimizers.Optimizer:
    rate: float | keras.optimizers.schedules.LearningRateSchedule = config.model.learning_rate
    if config.train.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(config.model.learning_rate, total_steps)
    options: dict[str, object] = {"learning_rate": rate}
    if config.model.clipvalue is not None:
        options["clipvalue"] = config.model.clipvalue
    if config.train.ema_momentum is not None:
        options.update(use_ema=True, ema_momentum=config.train.ema_momentum)
    try:
        return keras.optimizers.get({"class_name": config.model.optimizer, "config": options})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[model] optimizer: {config.model.optimizer!r} is not a Keras "
                          f"optimizer such as \"Adam\" ({exc})") from None


def _augmentation(config: Config, settings: ModelSettings) -> Augmentation | None:
    """The ``[train]`` augmentation, checked by :class:`Augmentation` (before any data is read)."""
    if not config.train.augmentation:
        return None
    try:
        return Augmentation(
            brightness=config.train.augment_brightness, contrast=config.train.augment_contrast,
            scale=config.train.augment_scale,
            value_range=(0.0, 255.0) if settings.input_normalize else None)
    except ValueError as exc:  # "brightness must be ...": the key is augment_<name>
        raise ConfigError(f"{config.source}: [train] augment_{exc}") from None


def _init_model(config: Config, init: PathLike | None) -> Path | None:
    """The model file to fine-tune: ``init``, else ``[train] init_model``; None for neither.

    Raises
    ------
    ModelError
        It is neither a model file nor a bundled model.
    """
    wanted = init if init is not None else config.train.init_model
    if wanted is None:
        return None
    path = resolve_model(wanted)
    if not path.is_file():
        raise ModelError(f"{wanted}: no such model file to fine-tune ({param('init')}); give a "
                         f".keras model or a bundled model's name ({', '.join(BUNDLED_MODELS)})")
    return path


def _settings(config: Config, parent_path: Path | None) -> tuple[ModelSettings, ModelParent | None]:
    """The settings of the model to train: the config's, or those of a model fine-tuned from
    ``parent_path`` (:meth:`Config.fine_tuned_kwargs`), and its parent."""
    if parent_path is None:
        return ModelSettings(**config.model_kwargs()), None
    name = bundled_name(parent_path) or os.fspath(parent_path)
    kwargs = config.fine_tuned_kwargs(read_settings(parent_path), name)
    return ModelSettings(**kwargs), ModelParent(name, file_digest(parent_path))


def _imagery_facts(config: Config, pixel_size: float | None, tiles: TileSource,
                   scenes: Sequence[LabelledScene], say: Callable[[str], None]
                   ) -> dict[str, object]:
    """What the model stores of its training imagery, with a note when its pixel size is
    unknown (:func:`geoseg.raster.imagery.training_facts`)."""
    size = pixel_size if pixel_size is not None else config.train.pixel_size
    facts = training_facts(tiles, [scene.image for scene in scenes], size)
    if facts["pixel_size_m"] is None:
        say("note: the training images carry no georeference, so the model will not know "
            "their pixel size; set [train] pixel_size (metres) so that it can warn about "
            "scenes of another resolution")
    else:
        say(f"training imagery: {format_metres(float(facts['pixel_size_m']))} pixels"
            + (" (as given)" if size is not None else " (from the images' georeference)"))
    return facts


def _phases(done: int, total: int, frozen_epochs: int) -> list[tuple[int, int, bool]]:
    """The fits of a run: (first epoch done before it, last epoch, encoder frozen), 0-based.

    >>> _phases(0, 5, 2), _phases(3, 5, 2), _phases(0, 5, 0)
    ([(0, 2, True), (2, 5, False)], [(3, 5, False)], [(0, 5, False)])
    """
    if done >= frozen_epochs:
        return [(done, total, False)]
    frozen_until = min(frozen_epochs, total)
    return [(done, frozen_until, True)] + ([(frozen_until, total, False)]
                                           if frozen_until < total else [])


def _train_encoder(model: keras.Model, trainable: bool, compile_model: Callable[[], None]
                   ) -> None:
    """Freeze or unfreeze the encoder (:func:`geoseg.model.flexunet.encoder_layers`) and compile
    again, as Keras needs for a change of ``trainable`` to take effect.

    The optimizer is built over every weight first and kept: its step count (the learning
    rate schedule) and the decoder's moments go on across the change, and the encoder's
    moments start when it starts learning.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    for layer in encoder_layers(model):
        layer.trainable = trainable
    compile_model()


def _worker_data(tiles: TileSource, batch: int, seed: int, augmentation: Augmentation | None,
                 start: int, replicas: int, worker: int, workers: int) -> Any:
    """One worker's share of the training batches from example ``start`` on
    (:func:`geoseg.training.tf_dataset.training_dataset`)."""
    return training_dataset(tiles, batch, seed, augmentation, start=start, worker=worker,
                            workers=workers, replicas=replicas)


@contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    """Layers built inside compute with the Keras dtype policy ``name``."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _best_row(rows: Sequence[dict[str, float]], monitor: str) -> dict[str, float] | None:
    best: dict[str, float] | None = None
    for row in rows:
        if improved(row.get(monitor), None if best is None else best[monitor], _mode(monitor)):
            best = row
    return best


def _in_memory(tiles: TileDataset, budget: int, say: Callable[[str], None],
               what: str) -> TileSource:
    """``tiles`` decoded into memory if they fit in ``budget`` bytes, else as they are."""
    need = len(tiles) * example_bytes(tiles.settings)
    if need > budget:
        if budget > 0:
            say(f"{what} tiles need {need / 2**20:.0f} MiB, more than [train] cache_mb; "
                "reading them from the files every epoch")
        return tiles
    return MemoryTiles(tiles)


def choose_threshold(model: keras.Model, tiles: TileSource, batch_size: int) -> float | None:
    """The landslide probability threshold with the best IoU of ``model`` on ``tiles``.

    Every tile is predicted once, unaugmented; thresholds 0.01 ... 0.99 are tried on the
    pooled pixels that count (``valid``). The best F1 is also the best IoU (IoU = F1 / (2 -
    F1)).

    Returns
    -------
    float or None
        None when no threshold is defined (no landslide pixel and none predicted).
    """
    sweep = ThresholdSweep(np.linspace(0.01, 0.99, 99))
    for start in range(0, len(tiles), batch_size):
        images, masks, valid = tiles.read_many(range(start, min(start + batch_size, len(tiles))))
        probs = np.asarray(model(images, training=False), dtype=np.float64)
        sweep.update(np.clip(probs[..., -1], 0.0, 1.0), masks == 1, valid)
    best = sweep.best_threshold
    return None if math.isnan(best) else round(best, 2)


def _previews(tiles: TileSource, count: int, folder: Path, colours: np.ndarray,
              batch_size: int) -> EpochPreviews:
    picks = sorted(set(np.linspace(0, len(tiles) - 1, min(count, len(tiles))).round()
                       .astype(int).tolist()))
    images, truths, valid = tiles.read_many(picks)
    return EpochPreviews(folder, images, truths, valid, colours,
                         [tiles.describe(i) for i in picks], batch_size)


def train(
    config: Config,
    *,
    out_dir: PathLike | None = None,
    train_scenes: Sequence[LabelledScene] | None = None,
    valid_scenes: Sequence[LabelledScene] | None = None,
    epochs: int | None = None,
    init: PathLike | None = None,
    freeze_encoder_epochs: int | None = None,
    pixel_size: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    monitor: str | None = None,
    report: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train a FlexUNet as ``config`` says and save it with its settings.

    Parameters
    ----------
    config : Config
        ``[model]`` gives the network, optimizer (``learning_rate``, ``clipvalue``), loss and
        metrics; ``[train]`` the data folders, ``epochs``, ``batch_size``, ``steps_per_epoch``,
        ``validation_steps``, ``patience``, the learning-rate reducer or ``lr_schedule``,
        ``seed``, ``augmentation`` and ``augment_*``, ``class_weights``, ``tune_threshold``,
        ``precision``, ``ema_momentum``, ``cache_mb`` and the previews; ``[valid]`` the
        validation folders; ``[mask] rgb_map`` the mask colours.
    out_dir : path, optional
        Output folder [default: ``[train] model_dir``].
    train_scenes : sequence of LabelledScene, optional
        Training images and labels [default: ``[train] images_dir``/``masks_dir``].
    valid_scenes : sequence of LabelledScene, optional
        Validation images and labels [default: ``[valid]`` folders, if set]; an empty
        sequence trains without validation.
    epochs : int, optional
        Train until this epoch (counting epochs done before a resume) [default:
        ``[train] epochs``].
    init : path, optional
        Fine-tune this model (a ``.keras`` file or a bundled model's name): start from its
        weights, with its network, tile size, bands and normalisation (the ``[model]`` keys
        the config sets must not change the network) [default: ``[train] init_model``, else
        train from scratch]. The model saved records it as its ``parent``.
    freeze_encoder_epochs : int, optional
        When fine-tuning, train the decoder only for this many first epochs, then the whole
        network (early stopping restores the best weights of the decoder-only epochs first)
        [default: ``[train] freeze_encoder_epochs``].
    pixel_size : float, optional
        Ground size of the training pixels in metres, stored in the model [default: ``[train]
        pixel_size``, else from the training images' georeference, else unknown].
    resume : bool
        Continue the run in ``out_dir`` from ``last.keras`` and its log.
    overwrite : bool
        Replace the outputs of an earlier run in ``out_dir``.
    monitor : str, optional
        Logged value that picks the best model, stops early and reduces the learning rate
        [default: ``val_loss``, or ``loss`` without validation]; metrics (``*_iou``,
        ``dice_coef_multiclass``) are maximised, losses minimised.
    report : callable, optional
        Receives one line per epoch and a few notes [default: the module logger at INFO].
    progress : callable, optional
        Called as ``progress(steps_just_done, steps_total)`` after every training step.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        Invalid model settings, loss, metric, optimizer or monitor; ``resume`` with other
        model settings than the saved run; a model to fine-tune with another network than the
        config's, or frozen encoder epochs without one.
    ModelError
        The model to fine-tune is not a geoseg model.
    InputError
        No training data, unusable images or labels, or nothing left to resume.
    OutputExistsError, OutputError
        See :func:`prepare_out_dir`.
    """
    started = time.perf_counter()
    say = report or log.info
    parent_path = _init_model(config, init)
    settings, parent = _settings(config, parent_path)
    frozen_epochs = (config.train.freeze_encoder_epochs if freeze_encoder_epochs is None
                     else freeze_encoder_epochs)
    if frozen_epochs < 0:
        raise ConfigError(f"{param('freeze_encoder_epochs')} must be >= 0, got {frozen_epochs}")
    if frozen_epochs and parent_path is None:
        raise ConfigError(f"{param('freeze_encoder_epochs')} keeps a trained encoder fixed: it "
                          f"needs a model to fine-tune ({param('init')} or [train] init_model)")
    total = config.train.epochs if epochs is None else epochs
    if total < 1:
        raise ConfigError(f"epochs must be >= 1, got {total}")
    if train_scenes is None:
        train_scenes = _config_scenes(config, "train")
        if train_scenes is None:
            raise InputError(f"{config.source}: no training data; set [train] images_dir and "
                             "masks_dir, or give a dataset folder or scenes with labels")
    if valid_scenes is None:
        valid_scenes = _config_scenes(config, "valid") or []
    placement = training_placement()  # first: a cluster is set up before TensorFlow runs
    if where := placement.describe():
        say(where)
    with placement.strategy.scope():  # metrics summed over the replicas
        metrics = training_metrics(settings, config.model.metrics)
    metric_names = [m.name for m in metrics]
    validation = bool(valid_scenes)
    monitor = monitor or ("val_loss" if validation else "loss")
    _check_monitor(monitor, metric_names, validation)
    loss = make_loss(config.model.loss, settings.num_classes, config.train.class_weights,
                     config.train.gap_weight, config.train.gap_width)
    augmentation = _augmentation(config, settings)
    out = prepare_out_dir(out_dir if out_dir is not None else config.train.model_dir,
                          resume=resume, overwrite=overwrite, check_only=not placement.chief)
    paths = {name: out / name for name in (MODEL_NAME, LAST_NAME, LOG_NAME, CURVES_NAME)}
    rows: list[dict[str, float]] = []
    if resume:
        saved = read_settings(paths[LAST_NAME]).without_facts()
        if saved.to_dict() != settings.to_dict():
            raise ConfigError(f"{config.source}: [model] differs from the model in "
                              f"{paths[LAST_NAME]}; resume with the config (and the model to "
                              "fine-tune) it was trained with")
        try:
            rows = read_log(paths[LOG_NAME])
        except (OSError, ValueError) as exc:
            raise InputError(f"{paths[LOG_NAME]}: unreadable training log ({exc})") from None
    done = int(rows[-1]["epoch"]) if rows else 0
    if done >= total:
        more = done + total if epochs is None else done + 10
        raise InputError(f"{out}: {done} epochs are done already; ask for more epochs "
                         f"(e.g. {param('epochs')} {more})")

    with ExitStack() as stack:
        folder = stack.enter_context(placement.output_folder(out))  # out, on the chief
        written = {name: folder / name for name in paths}
        train_tiles = stack.enter_context(
            TileDataset(train_scenes, settings, rgb_map=config.mask.rgb_map))
        valid_tiles = stack.enter_context(
            TileDataset(valid_scenes, settings, rgb_map=config.mask.rgb_map)
        ) if validation else None
        budget = config.train.cache_mb * 2**20
        train_source = _in_memory(train_tiles, budget, say, "training")
        if train_source is not train_tiles:
            budget -= len(train_tiles) * example_bytes(settings)
        valid_source = _in_memory(valid_tiles, budget, say, "validation") \
            if valid_tiles else None
        settings = dataclasses.replace(
            settings, parent=parent,
            **_imagery_facts(config, pixel_size, train_source, train_scenes, say))  # type: ignore[arg-type]
        batch = config.train.batch_size
        placement.check_batch_size(batch)
        steps = config.train.steps_per_epoch or math.ceil(len(train_tiles) / batch)
        say(f"training on {len(train_tiles)} tiles"
            + (f", validating on {len(valid_tiles)}" if valid_tiles else ", no validation")
            + f"; {steps} steps of {batch} per epoch, epochs {done + 1}-{total}")

        keras.utils.set_random_seed(config.train.seed)
        with placement.strategy.scope(), _dtype_policy(config.train.precision):
            model = build_flexunet(settings)
            model.compile(optimizer=_optimizer(config, total * steps), loss=loss, metrics=metrics)
            if resume:
                model.optimizer.build(model.trainable_variables)
                model.load_weights(paths[LAST_NAME])
            elif parent_path is not None:
                model.set_weights(load_model(parent_path)[0].get_weights())
                say(f"fine-tuning {parent.name if parent else parent_path}"
                    + (f", its encoder fixed for {frozen_epochs} epochs" if frozen_epochs else ""))
        if config.model.show_summary:
            model.summary(print_fn=say)

        valid_data = placement.distribute(lambda worker, workers: validation_dataset(
            valid_source, batch, worker=worker, workers=workers, replicas=placement.replicas)
        ) if valid_source else None
        valid_steps = config.train.validation_steps or validation_steps(
            len(valid_tiles), batch, placement.replicas) if valid_tiles else None
        best = _best_row(rows, monitor)
        checkpoint = SettingsCheckpoint(
            settings, written[MODEL_NAME], written[LAST_NAME], monitor, _mode(monitor),
            best=best[monitor] if best is not None and paths[MODEL_NAME].exists() else None)
        stopper = keras.callbacks.EarlyStopping(monitor=monitor, mode=_mode(monitor),
                                                patience=config.train.patience,
                                                restore_best_weights=True)
        callbacks: list[keras.callbacks.Callback] = [
            EpochRecorder(written[LOG_NAME], rows, total, say), stopper, checkpoint]
        if config.train.learning_rate_reducer and config.train.lr_schedule == "plateau":
            callbacks.insert(1, keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, mode=_mode(monitor), factor=config.train.reducer_factor,
                patience=config.train.reducer_patience, verbose=0))
        previews = None
        if config.train.epoch_change_infer and config.train.num_infer_images > 0:
            previews = out / PREVIEWS_DIR
            colours = panel_colours(settings.mask_class_names, config.mask.rgb_map)
            callbacks.append(_previews(valid_source or train_source,
                                       config.train.num_infer_images, folder / PREVIEWS_DIR,
                                       colours, batch))
        if progress is not None:
            callbacks.append(StepProgress(progress, (total - done) * steps))
        try:
            for first, last, frozen in _phases(done, total, frozen_epochs):
                if frozen_epochs:
                    with model.distribute_strategy.scope():
                        _train_encoder(model, not frozen, lambda: model.compile(
                            optimizer=model.optimizer, loss=loss,
                            metrics=training_metrics(settings, config.model.metrics)))
                data = placement.distribute(functools.partial(
                    _worker_data, train_source, batch, config.train.seed, augmentation,
                    first * steps * batch, placement.replicas))
                with placement.fitting():
                    model.fit(data, epochs=last, initial_epoch=first, steps_per_epoch=steps,
                              validation_data=valid_data, validation_steps=valid_steps,
                              callbacks=callbacks, shuffle=False, verbose=0)
                if model.stop_training:
                    break
        finally:
            if rows:
                plot_history(rows, written[CURVES_NAME])
        counts = (len(train_tiles), len(valid_tiles) if valid_tiles else 0)
        if placement.workers > 1:
            say(f"worker {placement.worker} of {placement.workers}: weights sha256 "
                f"{weights_digest(model)[:16]} (the same on every worker when in step)")
        threshold = None
        if config.train.tune_threshold and settings.num_classes <= 2 and rows:
            best_model, _ = load_model(written[MODEL_NAME])
            threshold = choose_threshold(best_model, train_source, batch)
            if threshold is not None:
                replace_settings(written[MODEL_NAME],
                                 dataclasses.replace(settings, threshold=threshold))
                say(f"landslide threshold {threshold:.2f} (best IoU on the training tiles), "
                    f"stored in {paths[MODEL_NAME].name}")

    best = _best_row(rows, monitor)
    last = int(rows[-1]["epoch"]) if rows else done
    result = TrainResult(
        out_dir=out, model_path=paths[MODEL_NAME], last_path=paths[LAST_NAME],
        log_path=paths[LOG_NAME], curves_path=paths[CURVES_NAME], previews_dir=previews,
        first_epoch=done + 1, last_epoch=last, monitor=monitor,
        best_epoch=int(best["epoch"]) if best is not None else None,
        best=dict(best) if best is not None else {}, stopped_early=last < total,
        threshold=threshold,
        train_tiles=counts[0], valid_tiles=counts[1],
        seconds=time.perf_counter() - started, chief=placement.chief,
        valid_scenes=tuple(valid_scenes) if validation and valid_scenes else (),
        train_scenes=tuple(train_scenes))
    say(f"best epoch {result.best_epoch} by {monitor}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in result.best.items()
                    if k.startswith("val_") or (not validation and k != "epoch")))
    return result

