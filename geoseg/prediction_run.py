"""A scene opened and checked for one prediction run (:class:`OpenRun`): its bands, grid,
outputs and resume journal, every mistake knowable before predicting refused at once
(:func:`open_run`), and the rows an interrupted run saved that may be reused
(:func:`checked_rows`). This module never imports TensorFlow."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio

from geoseg.errors import InputError, ParameterError, param
from geoseg.imagery import warn_if_unfit
from geoseg.journal import FinishedRows, PredictionJournal, window_digest
from geoseg.model_archive import file_digest
from geoseg.outputs import check_output_path, is_same_file
from geoseg.predict_options import PredictOptions
from geoseg.resample import resampled_view, resampling_scale
from geoseg.scene import (
    describe_validity,
    open_scene,
    read_window,
    scene_fingerprint,
    select_bands,
)
from geoseg.settings import ModelSettings
from geoseg.styles import check_style_path
from geoseg.tiling import TileGrid

__all__ = [
    "OpenRun", "checked_rows", "end_row", "nothing_to_predict", "open_run", "stream_options",
    "warn_if_run_unfit",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenRun:
    """A scene opened and checked for one prediction run, with its outputs and journal."""

    src: rasterio.io.DatasetReader
    bands: list[int]
    grid: TileGrid
    mask: Path
    probabilities: Path | None
    inputs: list[str | os.PathLike[str]]
    journal: PredictionJournal
    postprocessed: bool = False
    """The mask is made from the probabilities after the stream (``postprocessing``): they
    are computed, and kept in a hidden file when not asked for."""
    resampled_from: rasterio.io.DatasetReader | None = None
    """The scene, when ``src`` (and ``grid``) is a view of it at another pixel size
    (``resolution``: :func:`geoseg.resample.resampled_view`): the stream writes the view's
    probabilities, which :func:`geoseg.prediction_outputs.write_outputs` puts back on the scene's grid."""

    @property
    def scene(self) -> rasterio.io.DatasetReader:
        """The scene as the user gave it: the grid of the outputs."""
        return self.resampled_from if self.resampled_from is not None else self.src

    @property
    def keeps_probabilities(self) -> bool:
        """Whether the stream computes and writes the probabilities."""
        return (self.probabilities is not None or self.postprocessed
                or self.resampled_from is not None)


def open_run(
    stack: ExitStack,
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    settings: ModelSettings,
    opts: PredictOptions,
    probabilities_path: str | os.PathLike[str] | None,
    model_file: str | os.PathLike[str] | None,
    runtime: str | None,
) -> OpenRun:
    """Open the scene (closed with ``stack``) and check everything a run needs before it starts:
    the threshold, the bands, the grid, the outputs against the inputs; describe the run in its
    journal's fingerprint."""
    if opts.threshold is not None and settings.num_classes > 2:
        raise ParameterError(f"{param('threshold')} applies to models with one or two "
                             f"classes; this model has {settings.num_classes}")
    scene = stack.enter_context(open_scene(scene_path, require_crs=opts.require_crs))
    band_list = select_bands(scene, settings.bands, opts.bands)
    scale = resampling_scale(opts.resolution, scene, settings.pixel_size_m)
    src = stack.enter_context(resampled_view(scene, scale)) if scale is not None else scene
    grid = opts._grid_of(src, settings)
    inputs = [*scene.files, *([model_file] if model_file is not None else [])]
    mask_final = check_output_path(out_path, opts.overwrite, inputs)
    prob_final = (check_output_path(probabilities_path, opts.overwrite, inputs)
                  if probabilities_path else None)
    if prob_final is not None and is_same_file(prob_final, mask_final):
        raise ParameterError(f"{param('probabilities_path')} must differ from the mask "
                             f"output ({mask_final})")
    if opts.style:
        check_style_path(mask_final, opts.overwrite, inputs,
                         layers=[*scene.files, *([prob_final] if prob_final else [])],
                         advice="give the mask another name")
    journal = PredictionJournal(mask_final, {
        "scene": _absolute(scene_path), "content": scene_fingerprint(scene),
        "model": file_digest(model_file) if model_file is not None else None,
        "runtime": runtime,
        "size": [src.height, src.width],
        "transform": list(src.transform)[:6], "crs": str(src.crs), "bands": band_list,
        "settings": settings.to_dict(), "overlap": grid.overlap, "window": grid.tile_size,
        "threshold": opts.threshold,
        "probabilities": prob_final is not None, "probability_dtype": opts.probability_dtype,
        "postprocessing": (opts.postprocessing.to_dict() if opts.postprocessing is not None
                           else None),
        "extra_nodata": opts.extra_nodata, "tta": opts.tta,
        **({"resampled": scale} if scale is not None else {}),
    })
    return OpenRun(src, band_list, grid, mask_final, prob_final, inputs, journal,
                    postprocessed=opts.postprocessing is not None,
                    resampled_from=scene if scale is not None else None)


def warn_if_run_unfit(run: OpenRun, settings: ModelSettings,
                   model_file: str | os.PathLike[str] | None, opts: PredictOptions) -> None:
    """Warn when the scene is not the imagery the model was trained on
    (:func:`geoseg.imagery.warn_if_unfit`); not of its pixel size when the run reads it at
    another one."""
    if run.resampled_from is not None:
        settings = replace(settings, pixel_size_m=None)
    warn_if_unfit(run.scene, run.bands, settings, model_file, opts.extra_nodata)


def stream_options(run: OpenRun, opts: PredictOptions) -> PredictOptions:
    """The options the stream writes with: a resampled run's probabilities, the stage
    of its outputs, are float32 plain GeoTIFFs."""
    if run.resampled_from is None:
        return opts
    return replace(opts, probability_dtype="float32", cog=False)


def _absolute(scene_path: str | os.PathLike[str]) -> str:
    """A scene's path wherever the run starts from (GDAL virtual paths as they are), so that a
    run continues whether it was given ``scene.tif`` or the path a Dask worker gets."""
    path = os.fspath(scene_path)
    return path if path.startswith("/vsi") else os.path.abspath(path)


def checked_rows(run: OpenRun, opts: PredictOptions, strips: list[FinishedRows]
                  ) -> list[FinishedRows]:
    """The saved ``strips`` that a run may reuse: those whose windows' input reads as it did
    when they were saved (:func:`geoseg.journal.window_digest`).

    Every window touching their rows is read again; the strips any window changed in (or whose
    windows cannot be checked) are dropped from the journal, to be predicted again, so that
    the outputs are those of a run over the scene as it is now. Returns the strips above the
    first one dropped.
    """
    if not strips:
        return strips
    saved = np.zeros(run.grid.height, dtype=bool)
    for strip in strips:
        saved[strip.row_off:strip.end] = True
    digests = run.journal.window_digests(strips)
    changed = np.zeros(run.grid.height, dtype=bool)
    windows = 0
    for tile in run.grid:
        rows = slice(tile.window.row_off, tile.window.row_off + tile.window.height)
        if saved[rows].any():
            data, valid = read_window(run.src, tile.window, run.bands, opts.extra_nodata)
            if digests.get((tile.row, tile.col)) != window_digest(data, valid):
                changed[rows] = True
                windows += 1
    stale = [strip for strip in strips if changed[strip.row_off:strip.end].any()]
    if not stale:
        return strips
    log.warning("%s: %d window(s) read otherwise than when the interrupted run saved their "
                "rows (was the scene changed?); predicting their rows again, from row %d",
                run.scene.name, windows, stale[0].row_off)
    run.journal.drop(stale)
    return strips[:strips.index(stale[0])]


def end_row(finished: Sequence[FinishedRows], start: int = 0) -> int:
    """The first scene row after the strips finished from row ``start`` on."""
    return finished[-1].end if finished else start


def nothing_to_predict(src: rasterio.io.DatasetReader) -> InputError:
    return InputError(
        f"{src.name}: every pixel is nodata (validity from {_validity_words(src)}); nothing "
        "to predict: check the scene, its nodata value (gdal_edit.py -a_nodata) or its mask"
    )


def _validity_words(src: rasterio.io.DatasetReader) -> str:
    source = describe_validity(src)
    return f"nodata value {src.nodata}" if source == "nodata value" else source
