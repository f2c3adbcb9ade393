"""The journal that lets an interrupted ``geoseg predict`` continue where it stopped.

A GeoTIFF killed while being written cannot be trusted (GDAL writes its tile index when the
file is closed), so every finished band of rows is also saved, atomically, as a small
compressed file in a hidden folder next to the output: ``.<output name>.resume/``. A
fingerprint of the run (scene, model settings, options) is saved with them. A resumed run
checks the fingerprint, writes the saved rows back and predicts only the tiles that reach
below them; the blending is the same, so the result is identical to an uninterrupted run.
The folder is removed when the prediction completes or fails on bad input; it is kept when
the run is interrupted (Ctrl-C, killed) or an output cannot be written (a full disk).

Saved rows are trusted only as far as they can be checked: the modification time of a scene
edited in place may be kept, and :func:`geoseg.raster.scene.scene_fingerprint` samples a few MB of
it. So each strip also holds a digest of the input of every window read before it was saved
(:func:`window_digest`, recorded by :meth:`PredictionJournal.record_window` as windows are
read); a resumed run reads the windows of the rows it would reuse again and predicts again
the rows of every window whose input changed (:func:`geoseg.prediction.predict.predict_scene`).
Reading is far cheaper than predicting.

A scene predicted in bands by several processes
(:class:`geoseg.prediction.predict.BandedPrediction`) uses the same folder as its shared work
folder: each band's task saves its rows there, in any order and from any machine that sees the
folder, and one writer then copies them, top to bottom, into the outputs. Saved rows are read one
strip at a time (:meth:`FinishedRows.read`), never all at once. Two bands also share there the
model's raw output for the tiles of the tile row they both need
(:meth:`PredictionJournal.save_tile`), so that row is predicted once; those files go with the
folder.

This module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InputError, param
from geoseg.raster.outputs import output_errors

__all__ = ["CONTINUE", "VERSION", "FinishedRows", "PredictionJournal", "window_digest"]

FINGERPRINT = "fingerprint.json"
VERSION = 2
"""The journal's format, saved with its fingerprint: 2 saves the digests of the windows read
with the rows (1, before, did not). A journal of another format is not resumed."""
_VERSION_KEY = "journal"
_DIGEST_BYTES = hashlib.sha256().digest_size
CONTINUE = f"run again with {param('resume')} to continue"
"""What to do after an output could not be written (a full disk): the journal is kept."""


@dataclass(frozen=True)
class FinishedRows:
    """One saved strip of finished rows, read from its file on demand."""

    row_off: int
    """Scene row of the strip's first row."""
    height: int
    """Rows in the strip."""
    path: Path
    """The strip's ``.npz`` file."""

    @property
    def end(self) -> int:
        """The scene row after the strip."""
        return self.row_off + self.height

    def read(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The strip's class mask (rows, width) and probabilities (classes, rows, width) or
        None when the run wrote none."""
        with np.load(self.path) as saved:
            probs = saved["probabilities"] if "probabilities" in saved else None
            return saved["mask"], probs


def window_digest(data: np.ndarray, valid: np.ndarray) -> bytes:
    """A digest of one window's input as read (:func:`geoseg.raster.scene.read_window`): its raw
    pixels, their type, and which of them hold data. 32 bytes of SHA-256 (hardware-accelerated
    on most CPUs: about 0.1 s for a 2048-pixel window of three bands, read in the reader
    thread)."""
    digest = hashlib.sha256(str((data.dtype.str, data.shape)).encode())
    digest.update(np.ascontiguousarray(data).data)
    digest.update(np.packbits(valid).data)
    return digest.digest()


def _saved_rows(path: Path) -> int:
    """Rows of a saved strip, from its mask's ``.npy`` header (no pixels are read)."""
    with zipfile.ZipFile(path) as archive, archive.open("mask.npy") as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, _ = read_header(member)
    return int(shape[0])


class PredictionJournal:
    """Finished rows of one prediction, saved next to its output.

    Parameters
    ----------
    output : Path
        The class mask the run writes.
    fingerprint : dict
        JSON-able description of everything that decides the output's pixels.
    """

    def __init__(self, output: Path, fingerprint: dict[str, Any]):
        self.folder = output.with_name(f".{output.name}.resume")
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalised as JSON reads it
        self._read: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def _strip(self, row_off: int) -> Path:
        return self.folder / f"rows_{row_off:010d}.npz"

    def load(self, start: int = 0, stop: int | None = None, *, required: bool = False
             ) -> list[FinishedRows]:
        """The saved strips from row ``start`` on, top down and contiguous, ending at or before
        row ``stop``; their pixels stay on disk until read.

        Returns an empty list when there is nothing to resume (no journal, or no strip starts
        at ``start``).

        Parameters
        ----------
        start, stop : int
            Rows to look in: ``[start, stop)``, to the end of the scene by default.
        required : bool
            The journal must exist (a band task of a run whose journal was started).

        Raises
        ------
        InputError
            The journal was recorded for other inputs or settings, or it is missing although
            ``required``.
        """
        if not self._check(required):
            return []
        finished: list[FinishedRows] = []
        for strip in self.saved():
            expected = finished[-1].end if finished else start
            if strip.row_off < expected:
                continue
            if strip.row_off > expected or (stop is not None and strip.row_off >= stop):
                break
            finished.append(strip)
        return finished

    def _check(self, required: bool) -> bool:
        """Whether the journal exists; refuses one of another run or format."""
        record = self.folder / FINGERPRINT
        if not record.is_file():
            if required:
                raise InputError(f"{self.folder}: the run's work folder is missing; was the run "
                                 "cancelled? Start it again")
            return False
        recorded = json.loads(record.read_text())
        if recorded.pop(_VERSION_KEY, 1) != VERSION:
            raise InputError(
                f"{self.folder}: the interrupted run was saved by another version of geoseg; "
                f"run again without {param('resume')} to start over"
            )
        if recorded != self.fingerprint:
            raise InputError(
                f"{self.folder}: the interrupted run used another scene, model or options; "
                f"run again with the same ones, or without {param('resume')} to start over"
            )
        return True

    def saved(self) -> list[FinishedRows]:
        """Every saved strip, top down, gaps and all (none without a journal)."""
        return [FinishedRows(int(path.stem.split("_")[1]), _saved_rows(path), path)
                for path in sorted(self.folder.glob("rows_*.npz"))]

    def window_digests(self, strips: Sequence[FinishedRows]) -> dict[tuple[int, int], bytes]:
        """The digests of the windows read before ``strips`` were saved, by their (row,
        column) in the grid (:meth:`record_window`)."""
        digests: dict[tuple[int, int], bytes] = {}
        for strip in strips:
            with np.load(strip.path) as saved:
                if "windows" in saved:
                    digests.update(zip(map(tuple, saved["windows"].tolist()),
                                       map(bytes, saved["digests"]), strict=True))
        return digests

    def drop(self, strips: Sequence[FinishedRows]) -> None:
        """Forget saved strips: their rows are predicted again."""
        for strip in strips:
            strip.path.unlink(missing_ok=True)

    def drop_tiles(self) -> None:
        """Forget the models' outputs saved for tiles (:meth:`save_tile`), which cannot be
        checked against the scene: a run that continues another predicts them again."""
        for tile in self.folder.glob("tile_*.npy"):
            tile.unlink(missing_ok=True)

    def record_window(self, row: int, col: int, digest: bytes) -> None:
        """Note the digest of window ``(row, col)`` of the grid as it is read
        (:func:`window_digest`), to be saved with the next strip (from any thread)."""
        with self._lock:
            self._read[(row, col)] = digest

    def start(self, keep: bool) -> None:
        """Begin recording: keep the saved rows (resuming) or clear any old ones."""
        if not keep:
            self.discard()
        with output_errors(self.folder, CONTINUE):
            self.folder.mkdir(exist_ok=True)
            record = {**self.fingerprint, _VERSION_KEY: VERSION}
            (self.folder / FINGERPRINT).write_text(json.dumps(record, sort_keys=True))

    def save(self, row_off: int, mask: np.ndarray, probabilities: np.ndarray | None) -> None:
        """Record finished rows (written to a temporary name, then renamed), with the digests
        of the windows read since the last strip was saved: all the windows these rows were
        blended from were read before they could finish."""
        with self._lock:
            read, self._read = self._read, {}
        arrays = {"mask": mask,
                  "windows": np.array(list(read), dtype=np.int64).reshape(-1, 2),
                  "digests": np.frombuffer(b"".join(read.values()), np.uint8).reshape(
                      len(read), _DIGEST_BYTES)}
        if probabilities is not None:
            arrays["probabilities"] = probabilities
        # A unique name: two attempts at the same band (a task Dask ran again) may overlap.
        partial = self.folder / f"partial_{row_off:010d}_{uuid.uuid4().hex[:8]}.npz"
        with self._writing(partial):
            # An .npz numpy can load, deflated at level 1: the journal must cost little CPU
            # next to the model (level 6, numpy's default, took ~3% of a prediction's
            # throughput).
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for name, array in arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.ascontiguousarray(array))
            os.replace(partial, self._strip(row_off))

    @contextlib.contextmanager
    def _writing(self, partial: Path) -> Iterator[None]:
        """Write ``partial``: removed if the block fails, a full disk reported in one line."""
        try:
            with output_errors(self.folder, CONTINUE):
                yield
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def _tile(self, row: int, col: int) -> Path:
        return self.folder / f"tile_{row:06d}_{col:06d}.npy"

    def save_tile(self, row: int, col: int, probabilities: np.ndarray) -> None:
        """Record the model's raw output for tile ``(row, col)`` of the grid (written to a
        temporary name, then renamed), for the other band that blends it."""
        partial = self.folder / f"partial_tile_{row:06d}_{col:06d}_{uuid.uuid4().hex[:8]}.npy"
        with self._writing(partial):
            with partial.open("wb") as file:
                np.lib.format.write_array(file, np.ascontiguousarray(probabilities))
            os.replace(partial, self._tile(row, col))

    def load_tile(self, row: int, col: int) -> np.ndarray | None:
        """The raw output saved for tile ``(row, col)``, or None when no band saved it yet."""
        try:
            with self._tile(row, col).open("rb") as file:
                return np.lib.format.read_array(file)
        except FileNotFoundError:
            return None

    def has_tile(self, row: int, col: int) -> bool:
        """Whether the raw output of tile ``(row, col)`` was saved."""
        return self._tile(row, col).is_file()

    def discard(self) -> None:
        """Remove the journal."""
        shutil.rmtree(self.folder, ignore_errors=True)
