"""Keras callbacks of ``geoseg train``: checkpoints with settings, the epoch log, previews.

* :class:`SettingsCheckpoint` saves the model through :func:`geoseg.model.flexunet.save_model`, so
every
  checkpoint carries its :class:`~geoseg.settings.ModelSettings` and opens in ``geoseg
  predict`` (a plain ``ModelCheckpoint`` would lose them).
* :class:`EpochRecorder` writes one CSV row per epoch (rewritten atomically, so the log is
  never half-written) and reports one line per epoch.
* :class:`EpochPreviews` predicts a few fixed tiles after every epoch and draws them as
  image | truth | prediction panels.
* :class:`StepProgress` reports every training step to a ``progress(just_done, total)``
  callback, as the other commands report tiles (``geoseg train --progress json``).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
# isort: on
import numpy as np

from geoseg.model.flexunet import build_flexunet, save_model
from geoseg.raster.outputs import atomic_output
from geoseg.settings import ModelSettings
from geoseg.training.trainplots import save_preview

__all__ = ["EpochPreviews", "EpochRecorder", "SettingsCheckpoint", "StepProgress", "improved",
           "read_log"]

PathLike = str | os.PathLike[str]
Row = dict[str, float]


def improved(value: float | None, best: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``best`` (``mode`` ``min`` or ``max``); NaN never does.

    >>> improved(0.3, 0.4, "min"), improved(0.3, None, "max"), improved(float("nan"), 1, "min")
    (True, True, False)
    """
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value < best if mode == "min" else value > best


def read_log(path: PathLike) -> list[Row]:
    """The rows of a training log written by :class:`EpochRecorder` (``n/a`` becomes NaN).

    Returns
    -------
    list of dict
        One per epoch, values as floats (``epoch`` too).

    Raises
    ------
    ValueError
        A value is not a number.
    """
    with open(path, newline="") as handle:
        return [{key: math.nan if text in ("", "n/a") else float(text)
                 for key, text in row.items()} for row in csv.DictReader(handle)]


def _number(value: Any) -> float:
    return float(np.asarray(value).item())


class SettingsCheckpoint(keras.callbacks.Callback):
    """Save ``last`` after every epoch and ``best`` whenever ``monitor`` improves.

    ``last`` is the compiled model with its optimizer state (to resume); ``best`` holds the
    weights only, in an uncompiled copy of the network (a third of the size, for prediction):
    the optimizer's moving average of the weights when it keeps one (``use_ema``), else the
    weights themselves.

    Parameters
    ----------
    settings : ModelSettings
        Stored inside both files.
    best_path, last_path : path
        ``.keras`` files (replaced as training goes).
    monitor : str
        Logged value deciding the best epoch, e.g. ``val_loss``.
    mode : {"min", "max"}
    best : float, optional
        Best value so far (when resuming), so an earlier, better model is not replaced.
    """

    def __init__(self, settings: ModelSettings, best_path: PathLike, last_path: PathLike,
                 monitor: str = "val_loss", mode: str = "min", best: float | None = None):
        super().__init__()
        self.settings = settings
        self.best_path = Path(best_path)
        self.last_path = Path(last_path)
        self.monitor = monitor
        self.mode = mode
        self.best = best
        self._export: keras.Model | None = None

    def _save_best(self) -> None:
        if self._export is None:
            self._export = build_flexunet(self.settings, name=self.model.name)
        optimizer = self.model.optimizer
        if getattr(optimizer, "use_ema", False):
            # Keras' public way to the averages: write them into the model, copy, restore.
            weights = self.model.get_weights()
            optimizer.finalize_variable_values(self.model.trainable_variables)
            self._export.set_weights(self.model.get_weights())
            self.model.set_weights(weights)
        else:
            self._export.set_weights(self.model.get_weights())
        save_model(self._export, self.settings, self.best_path, overwrite=True)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        value = None if value is None else _number(value)
        if improved(value, self.best, self.mode) or not self.best_path.exists():
            if value is not None and not math.isnan(value):
                self.best = value
            self._save_best()
        save_model(self.model, self.settings, self.last_path, overwrite=True)


class EpochRecorder(keras.callbacks.Callback):
    """Append each epoch's values to ``rows``, rewrite the CSV log, and report one line.

    Parameters
    ----------
    path : path
        CSV log: ``epoch``, the logged losses and metrics, ``learning_rate`` (during the
        epoch) and ``seconds``.
    rows : list of dict
        Rows of earlier epochs (when resuming); extended in place.
    epochs : int
        Last epoch of the run, for the ``epoch 3/20`` counter.
    report : callable
        Receives one line per epoch.
    """

    def __init__(self, path: PathLike, rows: list[Row], epochs: int,
                 report: Callable[[str], None]):
        super().__init__()
        self.path = Path(path)
        self.rows = rows
        self.epochs = epochs
        self.report = report
        self._started = 0.0
        self._rate = math.nan

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        self._rate = _number(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logged = {key: _number(value) for key, value in (logs or {}).items()
                  if key != "learning_rate"}
        # loss, metrics, then val_loss, val_metrics
        order = sorted(logged, key=lambda k: (k.startswith("val_"),
                                              k.removeprefix("val_") != "loss", k))
        values = {key: logged[key] for key in order}
        row: Row = {"epoch": float(epoch + 1), **values, "learning_rate": self._rate,
                    "seconds": round(time.perf_counter() - self._started, 2)}
        self.rows.append(row)
        self._write()
        parts = [f"{key} {value:.4g}" if key == "learning_rate" else f"{key} {value:.4f}"
                 for key, value in row.items() if key not in ("epoch", "seconds")]
        self.report(f"epoch {epoch + 1}/{self.epochs} - {row['seconds']:.1f} s - "
                    + " - ".join(parts))

    def _write(self) -> None:
        fields = list(dict.fromkeys(key for row in self.rows for key in row))
        with atomic_output(self.path, overwrite=True) as tmp, tmp.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=fields, restval="n/a")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({key: "n/a" if math.isnan(value) else
                                 (int(value) if key == "epoch" else value)
                                 for key, value in row.items()})


class StepProgress(keras.callbacks.Callback):
    """Call ``progress(1, total)`` after every training step.

    Parameters
    ----------
    progress : callable
        Receives ``(steps_just_done, steps_total)``.
    total : int
        Training steps of the run: epochs to do times steps per epoch (a run that stops early
        ends below it).
    """

    def __init__(self, progress: Callable[[int, int], None], total: int):
        super().__init__()
        self.progress = progress
        self.total = total

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.progress(1, self.total)


def _classes(probs: np.ndarray) -> np.ndarray:
    if probs.shape[-1] == 1:
        return (probs[..., 0] >= 0.5).astype(np.uint8)
    return np.argmax(probs, axis=-1).astype(np.uint8)


def _iou(truth: np.ndarray, pred: np.ndarray, valid: np.ndarray, cls: int) -> str:
    t, p = (truth == cls) & valid, (pred == cls) & valid
    union = np.count_nonzero(t | p)
    return f"IoU {np.count_nonzero(t & p) / union:.2f}" if union else "IoU n/a"


class EpochPreviews(keras.callbacks.Callback):
    """After every epoch, predict fixed tiles and save ``epoch_NNN.png`` panels in ``folder``.

    Parameters
    ----------
    folder : path
        Created if missing.
    images : ndarray, shape (n, size, size, bands)
        Raw tiles, as fed to the model.
    truths : ndarray of uint8, shape (n, size, size)
    valid : ndarray of bool, shape (n, size, size)
    colours : ndarray of uint8, shape (classes, 3)
    titles : sequence of str
        One name per tile.
    batch_size : int
        Tiles per model call.
    """

    def __init__(self, folder: PathLike, images: np.ndarray, truths: np.ndarray,
                 valid: np.ndarray, colours: np.ndarray, titles: Sequence[str],
                 batch_size: int = 4):
        super().__init__()
        self.folder = Path(folder)
        self.images, self.truths, self.valid = images, truths, valid
        self.colours = colours
        self.titles = list(titles)
        self.batch_size = batch_size

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.folder.mkdir(exist_ok=True)
        probs = np.concatenate([
            np.asarray(self.model(self.images[i : i + self.batch_size], training=False))
            for i in range(0, len(self.images), self.batch_size)])
        preds = _classes(probs)
        notes = [_iou(t, p, v, 1) for t, p, v in zip(self.truths, preds, self.valid,
                                                      strict=True)]
        save_preview(self.folder / f"epoch_{epoch + 1:03d}.png", self.images, self.truths, preds,
                     self.valid, self.colours, titles=self.titles, notes=notes,
                     heading=f"epoch {epoch + 1}")
