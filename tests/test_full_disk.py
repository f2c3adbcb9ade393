"""A full disk is one line naming the file, leaves no output, and keeps the journal for --resume.

Most cases make a writer raise what it raises on a full disk (pyogrio's ``database or disk is
full``, libtiff's ``No space left on device`` printed before rasterio's ``Write failed``, an
``OSError`` with ``ENOSPC``); the last ones fill a real small file system, where root may
mount one (skipped elsewhere).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
from click.testing import CliRunner
from conftest import pixelwise_keras_model
from pyogrio.errors import FeatureError
from rasterio.errors import RasterioIOError
from scipy.ndimage import gaussian_filter

from geoseg.cli import cli
from geoseg.errors import DiskFullError, OutputError
from geoseg.model.flexunet import save_model
from geoseg.raster import tiff_messages
from geoseg.raster.journal import CONTINUE
from geoseg.raster.outputs import atomic_output, output_errors, retried_by
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)
DISK_FULL_SQLITE = ("Could not add feature to layer at index 262: failed to execute insert : "
                    "database or disk is full")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


@pytest.fixture
def blobs(make_raster):
    """A scene of smooth blobs: a mask of a few hundred polygons."""
    def make(height: int, width: int):
        noise = gaussian_filter(np.random.default_rng(0).normal(size=(3, height, width)), 6)
        data = np.clip(128 + noise / noise.std() * 60, 1, 254).astype(np.uint8)
        return make_raster("blobs.tif", data=data)
    return make


def predict(scene: Path, model: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out",
                                    str(out / "m.tif"), "--vector", str(out / "p.geojson"),
                                    "-q", *extra])


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if p.is_file()}


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_polygons_on_a_full_disk_leave_no_output_and_resume_finishes(blobs, model, tmp_path,
                                                                      monkeypatch):
    """The issue's case: the polygons fail after the mask is complete. No output is moved into
    place; --resume writes them all from the journal without predicting."""
    scene = blobs(300, 260)
    (tmp_path / "ref").mkdir()
    (tmp_path / "out").mkdir()
    assert predict(scene, model, tmp_path / "ref").exit_code == 0

    def full(*args, **kwargs):
        raise FeatureError(DISK_FULL_SQLITE)

    monkeypatch.setattr(pyogrio.raw, "ogr_write", full)
    result = predict(scene, model, tmp_path / "out")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = error_lines(result.output)
    assert f"{tmp_path / 'out' / 'p.geojson'}: disk full (" in line
    assert line.endswith("free some space and run again with --resume to continue")
    # Nothing looks complete: no mask, style or polygons; only the journal, for --resume.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".m.tif.resume"]

    monkeypatch.undo()
    resumed = predict(scene, model, tmp_path / "out", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert " 0 of " in resumed.output  # every row came from the journal
    assert digests(tmp_path / "out") == digests(tmp_path / "ref")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(digests(tmp_path / "ref"))


def test_libtiffs_lines_stay_off_the_terminal_and_name_a_full_disk(make_raster, model, tmp_path,
                                                                    monkeypatch, capfd):
    """libtiff prints ``_tiffWriteProc: No space left on device.`` itself; rasterio then only
    says ``Write failed``. The line is kept off the terminal and read as a full disk."""
    libtiff = ctypes.CDLL(str(next(tiff_messages._libtiff_paths())))
    scene = make_raster("s.tif", height=600, width=300)
    real_write = rasterio.io.DatasetWriter.write
    calls = {"n": 0}

    def failing_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # what GDAL's GeoTIFF writer does on a full disk
            libtiff.TIFFErrorExt(None, b"_tiffWriteProc", b"%s", b"No space left on device")
            raise RasterioIOError("Write failed. See previous exception for details.")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", failing_write)
    capfd.readouterr()
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out",
                                      str(tmp_path / "out.tif"), "-q"])
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert f"{tmp_path / 'out.tif'}: disk full (" in line
    assert "_tiffWriteProc" not in capfd.readouterr().err
    assert {p.name for p in tmp_path.iterdir()} == {"s.tif", ".out.tif.resume"}


def test_a_full_disk_while_saving_the_journal_names_it_and_leaves_no_partial(
        make_raster, model, tmp_path, monkeypatch):
    from geoseg.raster import journal

    scene = make_raster("s.tif", height=600, width=300)
    real_open = journal.zipfile.ZipFile.open
    calls = {"n": 0}

    def failing_open(self, name, mode="r", *args, **kwargs):
        if mode == "w" and name == "mask.npy":
            calls["n"] += 1
            if calls["n"] == 2:  # the second strip, half written
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(journal.zipfile.ZipFile, "open", failing_open)
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out",
                                      str(tmp_path / "out.tif"), "-q"])
    [line] = error_lines(result.output)
    assert f"{tmp_path / '.out.tif.resume'}: disk full (" in line
    saved = sorted(p.name for p in (tmp_path / ".out.tif.resume").iterdir())
    assert saved == ["fingerprint.json", "rows_0000000000.npz"]  # no partial_*.npz left
    assert {p.name for p in tmp_path.iterdir()} == {"s.tif", ".out.tif.resume"}


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    FeatureError(DISK_FULL_SQLITE),
    RasterioIOError("TIFFAppendToStrip:Write error: No space left on device"),
])
def test_what_each_writer_says_on_a_full_disk_is_a_full_disk(tmp_path, error):
    with pytest.raises(DiskFullError, match=r"out\.tif: disk full \(.* free in .*\); free some "
                                            r"space and run again$"):
        with atomic_output(tmp_path / "out.tif"):
            raise error
    assert list(tmp_path.iterdir()) == []


def test_other_failures_of_a_write_are_one_line_and_other_errors_pass(tmp_path):
    """GDAL's GeoPackage writer may only say ``Failed to commit transaction`` on a full disk:
    one line with the space left, and how to continue the run."""
    with pytest.raises(OutputError, match=r"p\.gpkg: could not be written \(Failed to commit "
                                          r"transaction; .* free in .*\); run again with "
                                          r"resume=True to continue$"):
        with retried_by(CONTINUE), output_errors(tmp_path / "p.gpkg"):
            raise pyogrio.errors.DataSourceError("Failed to commit transaction")
    with pytest.raises(ValueError, match="a bug"):  # not a write: the traceback is wanted
        with output_errors(tmp_path / "p.gpkg"):
            raise ValueError("a bug")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root, where mounting is allowed), and a function growing it."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")

    def mount(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs",
                               str(folder)], capture_output=True, text=True)

    mounted = mount("size=256k")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder, lambda size: mount("remount", f"size={size}")
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_real_full_disk_is_one_line_and_resume_continues_once_there_is_space(
        small_disk, blobs, model, tmp_path, capfd):
    folder, grow = small_disk
    scene = blobs(1500, 1200)
    (tmp_path / "ref").mkdir()
    assert predict(scene, model, tmp_path / "ref").exit_code == 0
    capfd.readouterr()
    result = predict(scene, model, folder)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = error_lines(result.output)
    assert ": disk full (" in line and "run again with --resume to continue" in line
    assert "_tiff" not in capfd.readouterr().err  # libtiff's own lines
    assert [p.name for p in folder.iterdir()] == [".m.tif.resume"]

    assert grow("64m").returncode == 0
    resumed = predict(scene, model, folder, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert digests(folder) == digests(tmp_path / "ref")


def test_a_geotiff_on_a_real_full_disk(small_disk, capfd):
    """GDAL's GeoTIFF writer on a full file system: one error, libtiff's lines kept quiet."""
    folder, _ = small_disk
    capfd.readouterr()
    data = np.random.default_rng(0).integers(0, 255, (1, 1024, 1024), dtype=np.uint8)
    with pytest.raises(DiskFullError, match=r"big\.tif: disk full \(0 bytes free"):
        with atomic_output(folder / "big.tif") as tmp, rasterio.open(
                tmp, "w", driver="GTiff", width=1024, height=1024, count=1, dtype="uint8",
                tiled=True, crs="EPSG:32654",
                transform=rasterio.transform.from_origin(0, 1024, 1, 1)) as dst:
            dst.write(data)
    assert "_tiff" not in capfd.readouterr().err
    assert list(folder.iterdir()) == []
