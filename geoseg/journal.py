"""The journal that lets an interrupted ``geoseg predict`` continue where it stopped.

A GeoTIFF killed while being written cannot be trusted (GDAL writes its tile index when the
file is closed), so every finished band of rows is also saved, atomically, as a small
compressed file in a hidden folder next to the output: ``.<output name>.resume/``. A
fingerprint of the run (scene, model settings, options) is saved with them. A resumed run
checks the fingerprint, writes the saved rows back and predicts only the tiles that reach
below them; the blending is the same, so the result is identical to an uninterrupted run.
The folder is removed when the prediction completes or fails on bad input; it is kept when
the run is interrupted (Ctrl-C, killed).

This module never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InputError, param

__all__ = ["FinishedRows", "PredictionJournal"]

FINGERPRINT = "fingerprint.json"


@dataclass(frozen=True)
class FinishedRows:
    """One saved band of finished rows."""

    row_off: int
    mask: np.ndarray
    probabilities: np.ndarray | None


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

    def load(self) -> list[FinishedRows]:
        """The rows an interrupted run finished, top down and contiguous from row 0.

        Returns an empty list when there is nothing to resume.

        Raises
        ------
        InputError
            The interrupted run predicted with other inputs or settings.
        """
        record = self.folder / FINGERPRINT
        if not record.is_file():
            return []
        if json.loads(record.read_text()) != self.fingerprint:
            raise InputError(
                f"{self.folder}: the interrupted run used another scene, model or options; "
                f"run again with the same ones, or without {param('resume')} to start over"
            )
        finished: list[FinishedRows] = []
        for path in sorted(self.folder.glob("rows_*.npz")):
            row_off = int(path.stem.split("_")[1])
            expected = finished[-1].row_off + finished[-1].mask.shape[0] if finished else 0
            if row_off != expected:
                break
            with np.load(path) as saved:
                probs = saved["probabilities"] if "probabilities" in saved else None
                finished.append(FinishedRows(row_off, saved["mask"], probs))
        return finished

    def start(self, keep: bool) -> None:
        """Begin recording: keep the saved rows (resuming) or clear any old ones."""
        if not keep:
            self.discard()
        self.folder.mkdir(exist_ok=True)
        (self.folder / FINGERPRINT).write_text(json.dumps(self.fingerprint, sort_keys=True))

    def save(self, row_off: int, mask: np.ndarray, probabilities: np.ndarray | None) -> None:
        """Record finished rows (written to a temporary name, then renamed)."""
        arrays = {"mask": mask}
        if probabilities is not None:
            arrays["probabilities"] = probabilities
        partial = self.folder / f"partial_{row_off:010d}.npz"
        # An .npz numpy can load, deflated at level 1: the journal must cost little CPU next to
        # the model (level 6, numpy's default, took ~3% of a prediction's throughput).
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array))
        os.replace(partial, self._strip(row_off))

    def discard(self) -> None:
        """Remove the journal."""
        shutil.rmtree(self.folder, ignore_errors=True)
