"""Previews: PNG panels from a scene, its truth, the prediction and polygons."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from shapely.geometry import box

from geoseg.cli import cli
from geoseg.errors import InputError
from geoseg.prediction.preview import render_preview

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_preview_with_every_panel_and_a_window(make_raster, tmp_path):
    scene = make_raster(height=300, width=400)
    classes = np.zeros((1, 300, 400), dtype=np.uint8)
    classes[0, 100:150, 100:200] = 1
    mask = make_raster("mask.tif", data=classes, nodata=255)
    with rasterio.open(scene) as src:
        left, top = src.transform @ (100, 100)
        right, bottom = src.transform @ (200, 150)
    gpd.GeoDataFrame(geometry=[box(left, bottom, right, top)], crs=src.crs).to_file(
        tmp_path / "polys.gpkg")
    result = CliRunner().invoke(cli, [
        "preview", str(scene), "--out", str(tmp_path / "p.png"), "--truth", str(mask),
        "--mask", str(mask), "--polygons", str(tmp_path / "polys.gpkg"),
        "--window", "50,50,200,200"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_preview_refuses_masks_off_the_scene_grid(make_raster, tmp_path):
    scene = make_raster(height=100, width=100)
    other = make_raster("other.tif", height=50, width=100, bands=1)
    with pytest.raises(InputError, match="not on the scene's grid"):
        render_preview(scene, tmp_path / "p.png", mask_path=other)
    assert not (tmp_path / "p.png").exists()


def test_preview_window_outside_the_scene(make_raster, tmp_path):
    from rasterio.windows import Window

    scene = make_raster(height=100, width=100)
    with pytest.raises(InputError, match="outside the scene"):
        render_preview(scene, tmp_path / "p.png", window=Window(500, 500, 10, 10))


def test_preview_bands_are_described_as_display_bands():
    text = " ".join(CliRunner().invoke(cli, ["preview", "--help"]).output.split())
    assert "--bands BANDS Comma-separated 1-based bands to show as red, green and blue" in text
    assert "feed the model" not in text
