"""One scene predicted in horizontal bands of rows by independent tasks, then assembled
(:class:`BandedPrediction`), with the same output bytes as one run over the whole scene.
This module never imports TensorFlow."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import InputError, ParameterError, param
from geoseg.model.model_protocol import BatchPredictor
from geoseg.prediction.predict_options import RunPlan
from geoseg.prediction.prediction_outputs import (
    OUTPUT_BLOCK,
    Outputs,
    PredictionResult,
    bound_block_cache,
    write_outputs,
)
from geoseg.prediction.prediction_run import (
    OpenRun,
    checked_rows,
    end_row,
    nothing_to_predict,
    open_run,
    stream_options,
)
from geoseg.prediction.row_stream import batch_windows, predict_rows, read_batches
from geoseg.prediction.tta import with_tta
from geoseg.raster.tiling import Tile, TileGrid
from geoseg.settings import ModelSettings

__all__ = ["BandResult", "BandedPrediction"]


@dataclass(frozen=True)
class BandResult:
    """What the task of one band of a :class:`BandedPrediction` did."""

    index: int
    """The band's index in :attr:`BandedPrediction.row_bands`."""
    rows: tuple[int, int]
    """Its scene rows ``[start, stop)``."""
    tiles_predicted: int
    """Tiles the band's task ran the model on; the tiles of a shared tile row it blended from
    the other band's saved output are not counted."""
    rows_resumed: int
    """Rows at the band's top found saved already (by an earlier attempt or run)."""
    seconds: float


@dataclass(frozen=True)
class BandedPrediction:
    """One scene predicted in horizontal bands of rows by independent tasks, then assembled.

    :meth:`plan` checks the run like :func:`~geoseg.prediction.predict.predict_scene` does and
    splits the scene's rows into bands at 256-row block boundaries; :meth:`predict_band` predicts
    one band (any process that sees the scene, the model and the output folder can run it, in any
    order, again after a failure); :meth:`assemble` writes the outputs from what the bands saved.
    The outputs are byte-identical to :func:`~geoseg.prediction.predict.predict_scene`'s with the
    same options:

    - a band blends the tiles that touch its rows, including the tile row it shares with each
      neighbour, with the whole grid's weights in the grid's order, so its pixels are the
      serial run's to the bit;
    - a shared tile row is predicted once, half by each band: the band above predicts the
      row's right half first thing, the band below predicts the left half as it starts its
      rows, and each saves the model's raw output for its half in the work folder, where the
      other band finds it when it gets there (a tile not saved yet is predicted again, to the
      same bits);
    - each finished block row is saved to the run's journal (:mod:`geoseg.raster.journal`), the work
      folder next to the output; rows saved already (a retried task, ``resume``) are not
      predicted again;
    - one writer copies the saved rows, top to bottom and one block row at a time, through the
      code that writes a serial run's outputs.

    The plan is small and picklable: it travels to the tasks (:mod:`geoseg.prediction.distributed`).
    """

    scene: str
    mask: Path
    probabilities: Path | None
    options: RunPlan
    """The run, resolved once (:func:`~geoseg.prediction.predict_options.plan_run`)."""
    model_file: Path | None
    row_bands: tuple[tuple[int, int], ...]
    """Scene rows ``[start, stop)`` of each band, top to bottom."""
    tiles_total: int
    uncertainty: Path | None = None
    """The uncertainty raster (:mod:`geoseg.prediction.uncertainty`), when asked for."""
    polygons: bool = False
    """The assembled mask is vectorised (:func:`~geoseg.prediction.predict.predict_scene`'s
    ``polygons``)."""

    @property
    def settings(self) -> ModelSettings:
        """The model's settings the run was planned with."""
        return self.options.settings

    @classmethod
    def plan(
        cls,
        scene_path: str | os.PathLike[str],
        out_path: str | os.PathLike[str],
        plan: RunPlan,
        *,
        probabilities_path: str | os.PathLike[str] | None = None,
        model_file: str | os.PathLike[str] | None = None,
        row_bands: int = 2,
        uncertainty_path: str | os.PathLike[str] | None = None,
        polygons: bool = False,
    ) -> BandedPrediction:
        """Check the run and split the scene into at most ``row_bands`` bands of rows.

        Parameters are those of :func:`~geoseg.prediction.predict.predict_scene`, with the run's
        ``plan`` (:func:`~geoseg.prediction.predict_options.plan_run`, for the bands' model and what
        computes with it: to predict the windows :func:`~geoseg.prediction.predict.predict_scene`
        would, plan it with their :class:`~geoseg.model.predictor.ModelSpec`, as
        :func:`geoseg.prediction.distributed.predict_scenes` does), and ``row_bands``: the bands
        wanted. Each band holds about as many tile rows; the boundaries are block boundaries
        crossed by as few tile rows as possible (each one crossing is blended by both its
        bands).

        Starts the run's journal (kept with ``resume``, whose saved rows are not predicted
        again).

        Raises
        ------
        GeosegError
            As :func:`~geoseg.prediction.predict.predict_scene`, for every mistake knowable before
            predicting.
        """
        if row_bands < 1:
            raise ParameterError(f"{param('row_bands')} must be at least 1, got {row_bands}")
        with ExitStack() as stack:
            run = open_run(stack, scene_path, out_path, plan, probabilities_path, model_file,
                           uncertainty_path, polygons)
            if plan.resume:
                run.journal.load()  # refuses the journal of another run
                checked_rows(run, plan, run.journal.saved())
                run.journal.drop_tiles()
            run.journal.start(keep=plan.resume)
            return cls(os.fspath(scene_path), run.mask, run.probabilities, plan,
                       Path(model_file) if model_file is not None else None,
                       row_band_bounds(run.grid, row_bands), len(run.grid),
                       uncertainty=run.uncertainty, polygons=polygons)

    def _open(self, stack: ExitStack) -> OpenRun:
        return open_run(stack, self.scene, self.mask, self.options, self.probabilities,
                        self.model_file, self.uncertainty, self.polygons, warn=False)

    def predict_band(self, index: int, predictor: BatchPredictor) -> BandResult:
        """Predict band ``index`` and save its rows to the run's journal.

        Rows of the band saved already are kept; the band continues below them.

        Raises
        ------
        GeosegError
            The scene or the journal cannot be read (the journal missing or another run's).
        """
        started = time.perf_counter()
        start, stop = self.row_bands[index]
        with ExitStack() as stack:
            run = self._open(stack)
            top = end_row(run.journal.load(start, stop, required=True), start)
            predicted = 0
            if top < stop:
                bound_block_cache(stack, run, self.settings, self.options, outputs=False)
                shared = frozenset(tile_row for band_start, _ in self.row_bands[1:]
                                   for tile_row in _tile_rows_across(run.grid, band_start))
                if index + 1 < len(self.row_bands):
                    predicted += _predict_ahead(run, predictor, self.settings, self.options, [
                        tile for tile_row in _tile_rows_across(run.grid, stop)
                        for tile in _right_half(run.grid.row_tiles(tile_row))])
                predicted += predict_rows(run, predictor, self.settings,
                                           stream_options(run, self.options), top, stop,
                                           run.journal.save, None, shared)
        return BandResult(index, (start, stop), predicted, top - start,
                          time.perf_counter() - started)

    def assemble(self, results: Sequence[BandResult],
                 then: Callable[[PredictionResult], None] | None = None) -> PredictionResult:
        """Write the outputs from the saved rows of every band, then remove the journal.

        Parameters
        ----------
        results : sequence of BandResult
            What each band's task returned.
        then : callable, optional
            As :func:`~geoseg.prediction.predict.predict_scene`'s: called with the outputs complete,
            before they are moved into place.

        Raises
        ------
        InputError
            Rows of the scene were not saved (a band did not finish), or the scene is nodata
            everywhere. The journal is kept, except in the latter case, so that ``resume``
            continues the run.
        OutputError
            An output cannot be written (the journal is kept).
        """
        started = time.perf_counter()
        with ExitStack() as stack:
            run = self._open(stack)
            saved = run.journal.load(required=True)
            if end_row(saved) < run.grid.height:
                raise InputError(f"{run.mask}: rows from {end_row(saved)} on were not "
                                 f"predicted; run again with {param('resume')} to finish them")
            if not any(r.tiles_predicted or r.rows_resumed for r in results):
                run.journal.discard()
                raise nothing_to_predict(run.scene)
            def rows(outputs: Outputs) -> int:
                outputs.copy(saved)
                return sum(r.tiles_predicted for r in results)

            return write_outputs(run, self.settings, self.options, self.model_file, rows,
                                 tiles_total=self.tiles_total, started=started, then=then,
                                 keep_journal=True)


def row_band_bounds(grid: TileGrid, count: int) -> tuple[tuple[int, int], ...]:
    """Split the scene's rows into at most ``count`` bands at block boundaries.

    Band ``j`` should start near scene row ``j * height / count``, so that the bands hold as
    many rows; of the block boundaries within a tile (at least a block) of it, the one fewest
    tile rows cross wins (a tile row crossing a boundary is read and blended by the bands on
    both sides, and predicted half by each), then the nearest. (Aiming at the top of a tile row
    instead put a whole 976-pixel window row more in one of two bands of a 9-row scene.)

    >>> row_band_bounds(TileGrid(6144, 600, 512, 64), 2)
    ((0, 3072), (3072, 6144))
    >>> row_band_bounds(TileGrid(8192, 600, 976, 64), 2)  # 9 rows of windows: 4.5 on each side
    ((0, 4096), (4096, 8192))
    """
    offsets = grid.row_offsets
    reach = max(min(grid.tile_size, grid.height), OUTPUT_BLOCK)

    def crossing(row: int) -> int:
        return len(_tile_rows_across(grid, row))

    bounds = [0]
    for band in range(1, min(count, len(offsets))):
        target = round(band * grid.height / count)
        candidates = [row for row in range(_aligned(target - reach) + OUTPUT_BLOCK,
                                           min(target + reach, grid.height - 1) + 1, OUTPUT_BLOCK)
                      if row > bounds[-1]]
        if candidates:
            bounds.append(min(candidates, key=lambda row: (crossing(row), abs(row - target))))
    bounds.append(grid.height)
    return tuple(zip(bounds[:-1], bounds[1:], strict=True))


def _tile_rows_across(grid: TileGrid, row: int) -> list[int]:
    """Indices of the tile rows with scene rows on both sides of scene row ``row``.

    >>> grid = TileGrid(1000, 600, 512, 64)
    >>> grid.row_offsets, _tile_rows_across(grid, 256), _tile_rows_across(grid, 512)
    ([0, 448, 488], [0], [1, 2])
    """
    size = min(grid.tile_size, grid.height)
    return [index for index, offset in enumerate(grid.row_offsets)
            if offset < row < offset + size]


def _right_half(tiles: list[Tile]) -> list[Tile]:
    """The tiles of a shared tile row that the band above predicts before its own rows: the
    right half, no more than the left half that the band below predicts (in grid order)
    before it needs them."""
    return tiles[(len(tiles) + 1) // 2:]


def _predict_ahead(run: OpenRun, predictor: BatchPredictor, settings: ModelSettings,
                   opts: RunPlan, tiles: list[Tile]) -> int:
    """Predict the ``tiles`` with data that no band saved yet and save the model's raw output
    for each in the run's journal; returns how many were predicted."""
    predictor = with_tta(predictor, opts.tta, run.spread)
    todo = [tile for tile in tiles if not run.journal.has_tile(tile.row, tile.col)]
    predicted = 0
    batch_size = batch_windows(predictor, run.grid, settings)
    for batch in read_batches(run.src, run.grid, run.bands, batch_size,
                          extra_nodata=opts.extra_nodata, tiles=todo):
        if batch.tiles:
            for tile, probs in zip(batch.tiles, predictor(batch.images), strict=True):
                run.journal.save_tile(tile.row, tile.col, probs)
            predicted += len(batch.tiles)
    return predicted


def _aligned(row: int) -> int:
    """The block boundary at or above scene row ``row``."""
    return row - row % OUTPUT_BLOCK
