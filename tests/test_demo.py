"""The bundled demo model on the bundled sample scene: the README's quick start, measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from click.testing import CliRunner

from geoseg.cli import cli
from geoseg.model.bundled import resolve_model
from geoseg.model.model_archive import read_settings

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

# Measured on 2026-11-25 with the committed demo model: landslide IoU 0.846 (precision 0.928,
# recall 0.906) on the sample scene. The floor leaves room for numeric differences between
# machines, not for a broken model or pipeline.
IOU_FLOOR = 0.75


def test_demo_model_is_bundled_small_and_described():
    path = resolve_model()  # the default: demo
    assert path.is_file() and path.stat().st_size < 5 * 2**20
    settings = read_settings(path)
    assert settings.class_names == ["background", "landslide"] and settings.bands == [1, 2, 3]


def test_quick_start_finds_the_sample_landslides(tmp_path):
    scene = SAMPLE / "iburi_synthetic.tif"
    result = CliRunner().invoke(cli, [
        "predict", str(scene), "--out", str(tmp_path / "mask.tif"),
        "--vector", str(tmp_path / "landslides.gpkg"), "--preview", str(tmp_path / "p.png"),
        "-q"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "mask.tif") as pred, \
            rasterio.open(SAMPLE / "iburi_synthetic_labels.tif") as truth, \
            rasterio.open(scene) as src:
        assert (pred.crs, pred.transform, pred.shape) == (src.crs, src.transform, src.shape)
        predicted, actual = pred.read(1) == 1, truth.read(1) == 1
    iou = np.count_nonzero(predicted & actual) / np.count_nonzero(predicted | actual)
    assert iou > IOU_FLOOR, f"demo model landslide IoU {iou:.3f} on the sample scene"
    assert (tmp_path / "landslides.gpkg").exists() and (tmp_path / "p.png").exists()
