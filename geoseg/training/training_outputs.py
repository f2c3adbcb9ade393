"""The output folder of a training run: its files, checked and prepared, and what a run wrote.

:func:`prepare_out_dir` refuses a folder that is not empty unless the run resumes
(``last.keras`` and the log are there) or overwrites (the files below, and only those, are
deleted first); :class:`TrainResult` says what a run did and wrote.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import InputError, OutputError, OutputExistsError, param
from geoseg.training.datasets import LabelledScene

__all__ = [
    "CURVES_NAME", "LAST_NAME", "LOG_NAME", "MODEL_NAME", "PREVIEWS_DIR", "TrainResult",
    "prepare_out_dir",
]

MODEL_NAME = "model.keras"
LAST_NAME = "last.keras"
LOG_NAME = "training_log.csv"
CURVES_NAME = "training_curves.png"
PREVIEWS_DIR = "epoch_previews"

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class TrainResult:
    """What a training run did and wrote."""

    out_dir: Path
    model_path: Path
    """The best model (``model.keras``)."""
    last_path: Path
    log_path: Path
    curves_path: Path
    previews_dir: Path | None
    """None when previews were off."""
    first_epoch: int
    """First epoch run by this call (1-based; > 1 when resumed)."""
    last_epoch: int
    """Epochs done in total."""
    monitor: str
    best_epoch: int | None
    """Epoch of ``model.keras``; None if ``monitor`` was never a number."""
    best: dict[str, float]
    """Logged values of the best epoch."""
    stopped_early: bool
    threshold: float | None
    """The landslide threshold stored in ``model.keras`` (``[train] tune_threshold``)."""
    train_tiles: int
    valid_tiles: int
    seconds: float
    valid_scenes: tuple[LabelledScene, ...] = ()
    """The validation scenes (none without validation), for
    :func:`geoseg.training.tuning.tune_model_postprocessing`."""
    train_scenes: tuple[LabelledScene, ...] = ()
    """The training scenes, for the int8 version's calibration
    (:func:`geoseg.model.quantize.quantize_if_installed`)."""
    chief: bool = True
    """False on a worker other than the chief of a run on several machines: it wrote nothing,
    and the paths above are where the chief wrote."""


def prepare_out_dir(out_dir: PathLike, *, resume: bool = False, overwrite: bool = False,
                    check_only: bool = False) -> Path:
    """Check (and create) the output folder of a training run.

    ``check_only``: check, but neither create the folder nor delete anything (on the workers
    other than the chief, which prepares it).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        ``resume`` and ``overwrite`` together, or ``resume`` without ``last.keras``/log.
    OutputExistsError
        The folder is not empty and neither ``resume`` nor ``overwrite`` is set.
    OutputError
        The path is a file, or the folder cannot be created.
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise InputError("resume continues the run in the output folder and overwrite replaces "
                         "it; give only one of them")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder for the training outputs")
    if resume:
        for name in (LAST_NAME, LOG_NAME):
            if not (out / name).is_file():
                raise InputError(f"{out}: no {name} to resume from; train without "
                                 f"{param('resume')} first")
        return out
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out}: is not empty; pass {param('resume')} to continue "
                                    f"its training, {param('overwrite')} to replace its "
                                    "outputs, or choose "
                                    "another folder")
        if check_only:
            return out
        for name in (MODEL_NAME, LAST_NAME, LOG_NAME, CURVES_NAME):
            (out / name).unlink(missing_ok=True)
        for preview in (out / PREVIEWS_DIR).glob("epoch_*.png"):
            preview.unlink()
        return out
    if check_only:
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be created ({exc.strerror or exc})") from None
    return out
