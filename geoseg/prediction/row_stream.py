"""The streaming loop of a prediction run over scene rows (:func:`predict_rows`): a reader
thread reads the grid's windows and stacks batches (:func:`read_batches`), the calling thread
runs the model, and a blender thread blends, classifies and hands out finished block rows.
This module never imports TensorFlow."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from queue import Full, Queue
from typing import TypeVar

import numpy as np
import rasterio

from geoseg.model.model_protocol import BatchPredictor
from geoseg.prediction.heap_release import release_freed_memory
from geoseg.prediction.predict_options import RunPlan
from geoseg.prediction.prediction_outputs import OUTPUT_BLOCK, output_bands
from geoseg.prediction.prediction_run import OpenRun
from geoseg.prediction.tta import with_tta
from geoseg.raster.batching import windows_per_batch
from geoseg.raster.blending import ChunkedAccumulator, Piece
from geoseg.raster.block_rows import BlockRows, RowsFinished
from geoseg.raster.journal import PredictionJournal, window_digest
from geoseg.raster.mask_format import classify
from geoseg.raster.scene import read_window
from geoseg.raster.tiling import Tile, TileGrid, tile_input
from geoseg.settings import ModelSettings

__all__ = ["Batch", "batch_windows", "predict_rows", "read_batches"]

log = logging.getLogger(__name__)


_T = TypeVar("_T")


@dataclass
class Batch:
    """Tiles read ahead for one model call, and the nodata-only tiles passed over before them."""

    tiles: list[Tile]
    valid: list[np.ndarray]
    images: np.ndarray
    skipped: int
    upto: tuple[int, int] | None = None
    """Without tiles: the grid position of the next tile to read. Every tile before it was
    read, and those not in an earlier batch hold no data: the scene's chunks that no tile from
    there on touches can be finished (written as nodata) now, not when the next tile with data
    comes, which on a sparse scene may be the end of the run."""


class _Failure:
    """An exception raised in the read-ahead thread, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _read_ahead(items: Iterator[_T], depth: int) -> Generator[_T, None, None]:
    """Produce ``items`` in a background thread, up to ``depth`` ahead; yield them in order.

    Exceptions of the producer re-raise here. Closing the generator stops the thread (after
    the item it is producing) and waits for it, so the producer's resources can close next.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001  (re-raised in the consumer)
            put(_Failure(error))

    thread = threading.Thread(target=produce, name="geoseg-read", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _recorded_in(journal: PredictionJournal) -> Callable[[Tile, np.ndarray, np.ndarray], None]:
    """Record the digest of each window read in ``journal``, saved with the rows it makes."""

    def record(tile: Tile, data: np.ndarray, valid: np.ndarray) -> None:
        journal.record_window(tile.row, tile.col, window_digest(data, valid))

    return record


def _warn_if_out_of_range(name: str, image: np.ndarray, valid: np.ndarray) -> None:
    """Warn when a model trained on 8-bit imagery is fed values far beyond 0-255."""
    values = image[valid]
    low, high = float(values.min()), float(values.max())
    if low < -1.0 or high > 1.5 * 255:
        log.warning("%s: pixel values %.4g to %.4g, but the model divides by 255 and was "
                    "trained on 0-255 imagery: rescale the scene to 8 bits (gdal_translate "
                    "-ot Byte -scale) or predictions will be meaningless", name, low, high)


def read_batches(
    src: rasterio.io.DatasetReader,
    grid: TileGrid,
    bands: list[int],
    batch_size: int,
    check_range: bool = False,
    start_row: int = 0,
    stop_row: int | None = None,
    extra_nodata: float | None = None,
    tiles: Iterable[Tile] | None = None,
    on_read: Callable[[Tile, np.ndarray, np.ndarray], None] | None = None,
) -> Iterator[Batch]:
    """Read the grid's tiles (or ``tiles`` of it) in row order and group those with data into
    model batches.

    A batch holds ``batch_size`` tiles (fewer at the end) of one or several tile rows; its
    images are one contiguous float32 array. The last item may hold no tiles: it reports the
    nodata-only tiles after the last batch. Tiles ending above ``start_row`` (finished by an
    interrupted run, or above a band) are passed over like nodata-only ones; reading stops
    before the first tile starting at or below ``stop_row``. ``on_read(tile, data, valid)``
    is called for every tile read, with or without data, with its raw pixels
    (:func:`geoseg.raster.scene.read_window`).
    """
    size = grid.tile_size
    shape = (batch_size, size, size, len(bands))
    images = np.empty(shape, dtype=np.float32)
    batch_tiles: list[Tile] = []
    valid: list[np.ndarray] = []
    skipped = 0
    for tile in grid if tiles is None else tiles:
        if stop_row is not None and tile.window.row_off >= stop_row:
            break
        if tile.window.row_off + tile.window.height <= start_row:
            skipped += 1
            continue
        data, tile_valid = read_window(src, tile.window, bands, extra_nodata)
        if on_read is not None:
            on_read(tile, data, tile_valid)
        if not tile_valid.any():  # nodata only: nothing to predict
            skipped += 1
            upto = _next_position(grid, tile)
            if not batch_tiles and upto is not None and (skipped >= batch_size
                                                         or upto[1] == 0):
                yield Batch([], [], images[:0], skipped, upto)  # the rows above can be written
                skipped = 0
            continue
        image, tile_valid = tile_input(data, tile_valid, size)
        if check_range:  # once, on the first tile with data
            _warn_if_out_of_range(src.name, image, tile_valid)
            check_range = False
        images[len(batch_tiles)] = image
        batch_tiles.append(tile)
        valid.append(tile_valid)
        if len(batch_tiles) == batch_size:
            yield Batch(batch_tiles, valid, images, skipped)
            images = np.empty(shape, dtype=np.float32)
            batch_tiles, valid, skipped = [], [], 0
    if batch_tiles or skipped:
        yield Batch(batch_tiles, valid, images[: len(batch_tiles)], skipped)


def _next_position(grid: TileGrid, tile: Tile) -> tuple[int, int] | None:
    """The grid position after ``tile``'s in the grid's row order; None after the last tile."""
    rows, columns = grid.shape
    if tile.col + 1 < columns:
        return tile.row, tile.col + 1
    return (tile.row + 1, 0) if tile.row + 1 < rows else None


def batch_windows(predictor: BatchPredictor, grid: TileGrid, settings: ModelSettings) -> int:
    """Windows per model call: as many as the predictor runs at a time
    (:func:`geoseg.raster.batching.windows_per_batch`)."""
    return windows_per_batch(max(1, int(predictor.batch_size)), settings.image_size,
                             grid.tile_size)


def predict_rows(
    run: OpenRun,
    predictor: BatchPredictor,
    settings: ModelSettings,
    opts: RunPlan,
    start: int,
    stop: int,
    finished: RowsFinished,
    progress: Callable[[int, int], None] | None,
    shared: frozenset[int] = frozenset(),
) -> int:
    """The streaming loop: predict scene rows ``[start, stop)``, both block-aligned (or the
    scene's height), and hand each finished block row to ``finished`` (in the blender thread),
    then give the memory freed back to the system
    (:func:`~geoseg.prediction.heap_release.release_freed_memory`).

    The model's output for a tile of the tile rows ``shared`` (indices) is taken from the
    run's journal when another band saved it there, and saved there when predicted here
    (:meth:`~geoseg.raster.journal.PredictionJournal.save_tile`).

    Only the tiles touching those rows are read and predicted, and they are blended with the
    whole grid's weights in the grid's order, so every row comes out exactly as in a run over
    the whole scene. Three threads: the reader reads tiles and stacks batches, this thread only
    runs the model, and the blender adds each batch's probabilities to the accumulator and
    finishes and classifies every chunk that no later tile touches. The model is never
    idle waiting for reading, blending or writing, which overlap with the next batch.

    Returns the number of tiles the model ran on.
    """
    predictor = with_tta(predictor, opts.tta, run.spread)
    grid = run.grid
    batch_size = batch_windows(predictor, grid, settings)
    # Tiles are added in row order; before each, the chunks that no later tile touches are
    # finished: the sums held are the overlap with the next tile row and the tiles around.
    # The spread across TTA, when written, is blended as one more channel.
    accumulator = ChunkedAccumulator(
        grid.height, grid.width, grid.row_offsets, grid.col_offsets,
        settings.num_classes + run.spread, grid.tile_size, grid.overlap, top=start,
        bottom=stop)

    def written(row_off: int, mask: np.ndarray, probabilities: np.ndarray | None) -> None:
        finished(row_off, mask, probabilities)
        release_freed_memory()  # else the peak grows with the scene's width

    block_rows = BlockRows(start, stop, grid.width, OUTPUT_BLOCK, written)
    total = len(grid)
    predicted = 0

    def hand_out(pieces: Iterable[Piece]) -> None:
        """Classify finished pieces and gather them into block rows."""
        for row_off, col_off, blended, valid in pieces:
            band = output_bands(run, blended, valid, settings.num_classes,
                                opts.probability_dtype)
            probs = blended[:settings.num_classes]
            block_rows.add(row_off, col_off, classify(probs, valid, opts.threshold), band)

    def predict(batch: Batch) -> tuple[list[np.ndarray], list[Tile]]:
        """The batch's probabilities, tile by tile, and the tiles the model ran on."""
        taken = {index: tile_probs for index, tile in enumerate(batch.tiles)
                 if tile.row in shared
                 and (tile_probs := run.journal.load_tile(tile.row, tile.col)) is not None}
        todo = [index for index in range(len(batch.tiles)) if index not in taken]
        computed = iter(predictor(batch.images[todo] if taken else batch.images) if todo else ())
        probs = [taken[index] if index in taken else next(computed)
                 for index in range(len(batch.tiles))]
        return probs, [batch.tiles[index] for index in todo]

    def blend(tiles: list[Tile], valids: list[np.ndarray], probs: list[np.ndarray],
              fresh: list[Tile]) -> None:
        for tile, valid, tile_probs in zip(tiles, valids, probs, strict=True):
            hand_out(accumulator.finish_before(tile.row, tile.col))
            accumulator.add(tile.window, tile_probs, valid)
            if tile.row in shared and tile in fresh:
                run.journal.save_tile(tile.row, tile.col, tile_probs)

    def finish_before(position: tuple[int, int] | None) -> None:
        if position is not None:
            hand_out(accumulator.finish_before(*position))

    def report(windows: int) -> None:
        if progress is not None and windows:
            progress(windows, total)

    with ExitStack() as stack:
        blender = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="geoseg-blend"))
        # The blender's work, with the windows (read, skipped or predicted) it completes: they
        # are reported once it is done, so that progress counts the rows written too.
        pending: deque[tuple[Future[None], int]] = deque()
        batches = stack.enter_context(closing(_read_ahead(
            read_batches(run.src, grid, run.bands, batch_size, settings.input_normalize, start,
                     stop, opts.extra_nodata, on_read=_recorded_in(run.journal)), depth=2
        )))
        for batch in batches:
            if batch.tiles:
                probs, fresh = predict(batch)
                predicted += len(fresh)
                # not the batch: its images are freed while the blender works
                work = blender.submit(blend, batch.tiles, batch.valid, probs, fresh)
            else:
                work = blender.submit(finish_before, batch.upto)
            pending.append((work, batch.skipped + len(batch.tiles)))
            while len(pending) > 1:
                done, windows = pending.popleft()
                done.result()
                report(windows)
        withheld = 0  # the last windows count once every row is written
        while pending:
            done, windows = pending.popleft()
            done.result()
            withheld += windows
        blender.submit(lambda: hand_out(accumulator.finish_all())).result()
        report(withheld)
    return predicted
