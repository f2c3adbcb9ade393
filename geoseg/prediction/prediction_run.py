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
from geoseg.model.model_archive import file_digest
from geoseg.prediction.predict_options import RunPlan
from geoseg.prediction.uncertainty import UncertaintyKind, uncertainty_kind
from geoseg.raster.imagery import format_metres, model_label, warn_if_unfit
from geoseg.raster.journal import FinishedRows, PredictionJournal, window_digest
from geoseg.raster.outputs import check_output_path, is_same_file
from geoseg.raster.resample import resampled_view, resampling_scale
from geoseg.raster.scene import (
    describe_validity,
    open_scene,
    read_window,
    scene_fingerprint,
    select_bands,
)
from geoseg.raster.scene_paths import gdal_path, is_local
from geoseg.raster.styles import check_style_path
from geoseg.raster.tiling import TileGrid

__all__ = [
    "OpenRun", "checked_rows", "end_row", "nothing_to_predict", "open_run", "stream_options",
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
    (``resolution``: :func:`geoseg.raster.resample.resampled_view`): the stream writes the view's
    probabilities, which :func:`geoseg.prediction.prediction_outputs.write_outputs` puts back on the
    scene's grid."""
    uncertainty: Path | None = None
    """The uncertainty raster to write (:mod:`geoseg.prediction.uncertainty`), if asked for."""
    uncertainty_kind: UncertaintyKind | None = None
    """What it holds: ``tta_spread`` with test-time augmentation, else ``entropy``; also set
    for the hidden spread of ``uncertainty_hidden``."""
    uncertainty_hidden: bool = False
    """The spread across TTA is written to a hidden file for the polygons' ``tta_spread``
    only (a run with ``tta`` whose polygons are asked for, without an uncertainty output)."""

    @property
    def scene(self) -> rasterio.io.DatasetReader:
        """The scene as the user gave it: the grid of the outputs."""
        return self.resampled_from if self.resampled_from is not None else self.src

    @property
    def spread(self) -> bool:
        """Whether the model's output carries the spread across TTA as a last channel
        (:class:`geoseg.prediction.tta.TTAPredictor`), blended with the probabilities."""
        return self.uncertainty_kind == "tta_spread"

    @property
    def keeps_probabilities(self) -> bool:
        """Whether the stream computes and writes the probabilities."""
        return (self.probabilities is not None or self.postprocessed
                or self.resampled_from is not None)


def open_run(
    stack: ExitStack,
    scene_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    opts: RunPlan,
    probabilities_path: str | os.PathLike[str] | None,
    model_file: str | os.PathLike[str] | None,
    uncertainty_path: str | os.PathLike[str] | None = None,
    polygons: bool = False,
    warn: bool = True,
) -> OpenRun:
    """Open the scene (closed with ``stack``) and check everything a run of the plan ``opts``
    needs before it starts: the bands, the grid, the outputs against the inputs; describe the
    run in its journal's fingerprint. With ``polygons`` (the run's mask will be vectorised), a
    run with ``tta`` computes the spread across it for the polygons even without an
    uncertainty output. With ``warn`` (as a run starts, not in each of its bands' tasks),
    warn when the scene is not the imagery the model was trained on."""
    settings = opts.settings
    scene = stack.enter_context(open_scene(scene_path, require_crs=opts.require_crs))
    band_list = select_bands(scene, settings.bands, opts.bands)
    scale = resampling_scale(opts.resolution, scene, settings.pixel_size_m)
    src = stack.enter_context(resampled_view(scene, scale)) if scale is not None else scene
    grid = opts.grid_of(src)
    inputs = [*scene.files, *([model_file] if model_file is not None else [])]
    mask_final = check_output_path(out_path, opts.overwrite, inputs)
    prob_final = (check_output_path(probabilities_path, opts.overwrite, inputs)
                  if probabilities_path else None)
    if prob_final is not None and is_same_file(prob_final, mask_final):
        raise ParameterError(f"{param('probabilities_path')} must differ from the mask "
                             f"output ({mask_final})")
    unc_final = _uncertainty_output(uncertainty_path, opts, inputs, mask_final, prob_final,
                                    scale is not None)
    others = [path for path in (prob_final, unc_final) if path is not None]
    if opts.style:
        check_style_path(mask_final, opts.overwrite, inputs, layers=[*scene.files, *others],
                         advice="give the mask another name")
        if unc_final is not None:
            check_style_path(unc_final, opts.overwrite, inputs,
                             layers=[*scene.files, mask_final, *others],
                             advice="give the uncertainty output another name")
    hidden = (polygons and unc_final is None and opts.tta != "none" and scale is None)
    kind = uncertainty_kind(opts.tta) if unc_final is not None or hidden else None
    journal = PredictionJournal(mask_final, {
        "scene": _absolute(scene_path), "content": scene_fingerprint(scene),
        "model": file_digest(model_file) if model_file is not None else None,
        "runtime": opts.runtime,
        "size": [src.height, src.width],
        "transform": list(src.transform)[:6], "crs": str(src.crs), "bands": band_list,
        "settings": settings.to_dict(), "overlap": grid.overlap, "window": grid.tile_size,
        "threshold": opts.threshold,
        "probabilities": prob_final is not None, "probability_dtype": opts.probability_dtype,
        "postprocessing": (opts.postprocessing.to_dict() if opts.postprocessing is not None
                           else None),
        "extra_nodata": opts.extra_nodata, "tta": opts.tta,
        **({"resampled": scale} if scale is not None else {}),
        **({"uncertainty": kind} if kind is not None else {}),
    })
    run = OpenRun(src, band_list, grid, mask_final, prob_final, inputs, journal,
                  postprocessed=opts.postprocessing is not None,
                  resampled_from=scene if scale is not None else None,
                  uncertainty=unc_final, uncertainty_kind=kind, uncertainty_hidden=hidden)
    if warn:
        _warn_if_unfit(run, model_file, opts)
    return run


def _uncertainty_output(path: str | os.PathLike[str] | None, opts: RunPlan,
                        inputs: list[str | os.PathLike[str]], mask: Path,
                        probabilities: Path | None, resampled: bool) -> Path | None:
    """The uncertainty output checked like the others (never an input, nor another output),
    or None when not asked for."""
    if path is None:
        return None
    if resampled:
        raise ParameterError(f"{param('uncertainty_path')} is not written yet by a run at "
                             f"another pixel size than the scene's; predict with "
                             f"{param('resolution')} native")
    final = check_output_path(path, opts.overwrite, inputs)
    for other in (mask, probabilities):
        if other is not None and is_same_file(final, other):
            raise ParameterError(f"{param('uncertainty_path')} must differ from the other "
                                 f"outputs ({other})")
    return final


def _warn_if_unfit(run: OpenRun, model_file: str | os.PathLike[str] | None,
                   opts: RunPlan) -> None:
    """Warn when the scene is not the imagery the model was trained on
    (:func:`geoseg.raster.imagery.warn_if_unfit`); not of its pixel size when the run reads it at
    another one."""
    settings = opts.settings
    if run.resampled_from is not None:
        settings = replace(settings, pixel_size_m=None)
    warn_if_unfit(run.scene, run.bands, settings, model_file, opts.extra_nodata)
    recipe, size = opts.postprocessing, opts.settings.pixel_size_m
    if run.scene.crs is None and recipe is not None and recipe.measures_metres:
        log.warning("%s has no CRS: the post-processing (%s) measures %s",
                    Path(run.scene.name).name, recipe.describe(),
                    f"its pixels as {format_metres(size)}, the pixels {model_label(model_file)} "
                    "was trained on" if size is not None else
                    "in its own units (pixels of a plain image), as the model states no "
                    "pixel size: give the scene a CRS")


def stream_options(run: OpenRun, opts: RunPlan) -> RunPlan:
    """The plan the stream writes with: a resampled run's probabilities, the stage of its
    outputs, are float32 plain GeoTIFFs (:meth:`RunPlan.streamed`)."""
    return opts if run.resampled_from is None else opts.streamed()


def _absolute(scene_path: str | os.PathLike[str]) -> str:
    """A scene's path wherever the run starts from (a URL as GDAL's path for it, GDAL virtual
    paths as they are), so that a run continues whether it was given ``scene.tif`` or the path
    a Dask worker gets, ``https://...`` or ``/vsicurl/https://...``."""
    path = gdal_path(scene_path)
    return os.path.abspath(path) if is_local(path) else path


def checked_rows(run: OpenRun, opts: RunPlan, strips: list[FinishedRows]
                  ) -> list[FinishedRows]:
    """The saved ``strips`` that a run may reuse: those whose windows' input reads as it did
    when they were saved (:func:`geoseg.raster.journal.window_digest`).

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
