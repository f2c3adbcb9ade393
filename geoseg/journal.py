"""The journal that lets an interrupted ``geoseg predict`` continue where it stopped.

A GeoTIFF killed while being written cannot be trusted (GDAL writes its tile index when the
file is closed), so every finished band of rows is also saved, atomically, as a small
compressed file in a hidden folder next to the output: ``.<output name>.resume/``. A
fingerprint of the run (scene, model settings, options) is saved with them. A resumed run
checks the fingerprint, writes the saved rows back and predicts only the tiles that reach
below them; the blending is the same, so the result is identical to an uninterrupted run.
The folder is removed when the prediction completes or fails on bad input; it is kept when
the run is interrupted (Ctrl-C, killed) or an output cannot be written (a full disk).

A scene predicted in bands by several processes (:class:`geoseg.predict.BandedPrediction`)
uses the same folder as its shared work folder: each band's task saves its rows there, in any
order and from any machine that sees the folder, and one writer then copies them, top to
bottom, into the outputs. Saved rows are read one strip at a time (:meth:`FinishedRows.read`),
never all at once. Two bands also share there the model's raw output for the tiles of the
tile row they both need (:meth:`PredictionJournal.save_tile`), so that row is predicted once;
those files go with the folder.

This module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InputError, param
from geoseg.outputs import output_errors

__all__ = ["CONTINUE", "FinishedRows", "PredictionJournal"]

FINGERPRINT = "fingerprint.json"
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
        record = self.folder / FINGERPRINT
        if not record.is_file():
            if required:
                raise InputError(f"{self.folder}: the run's work folder is missing; was the run "
                                 "cancelled? Start it again")
            return []
        if json.loads(record.read_text()) != self.fingerprint:
            raise InputError(
                f"{self.folder}: the interrupted run used another scene, model or options; "
                f"run again with the same ones, or without {param('resume')} to start over"
            )
        finished: list[FinishedRows] = []
        for path in sorted(self.folder.glob("rows_*.npz")):
            row_off = int(path.stem.split("_")[1])
            expected = finished[-1].end if finished else start
            if row_off < expected:
                continue
            if row_off > expected or (stop is not None and row_off >= stop):
                break
            finished.append(FinishedRows(row_off, _saved_rows(path), path))
        return finished

    def start(self, keep: bool) -> None:
        """Begin recording: keep the saved rows (resuming) or clear any old ones."""
        if not keep:
            self.discard()
        with output_errors(self.folder, CONTINUE):
            self.folder.mkdir(exist_ok=True)
            (self.folder / FINGERPRINT).write_text(json.dumps(self.fingerprint, sort_keys=True))

    def save(self, row_off: int, mask: np.ndarray, probabilities: np.ndarray | None) -> None:
        """Record finished rows (written to a temporary name, then renamed)."""
        arrays = {"mask": mask}
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
