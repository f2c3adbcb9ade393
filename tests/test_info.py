"""`geoseg info` on scenes and models."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import TEST_CRS, TEST_TRANSFORM

from geoseg.cli import cli
from geoseg.model.model_archive import replace_settings, write_settings
from geoseg.settings import BandStats, ModelParent, ModelSettings


def test_info_on_a_scene_reports_crs_size_bands_and_tiles(make_raster):
    scene = make_raster(height=1000, width=700, bands=4, nodata=0)
    result = CliRunner().invoke(cli, ["info", str(scene), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["crs"] == "EPSG:32654"
    assert facts["size"] == "700 x 1000 pixels"
    assert len(facts["bands"]) == 4 and facts["nodata"] == 0
    assert facts["validity from"] == "nodata value"
    assert facts["tiles"].startswith("6 (3 rows x 2 columns)")


def test_info_says_where_validity_comes_from_and_how_much_is_valid(tmp_path):
    import numpy as np
    import rasterio

    rgba = np.full((4, 20, 50), 100, dtype=np.uint8)
    rgba[3, :, :10] = 0  # a fifth of the scene is transparent
    path = tmp_path / "drone.tif"
    with rasterio.open(path, "w", driver="GTiff", width=50, height=20, count=4, dtype="uint8",
                       crs=TEST_CRS, transform=TEST_TRANSFORM, photometric="RGB",
                       alpha="YES") as dst:
        dst.write(rgba)
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["bands"] == ["1 red", "2 green", "3 blue", "4 alpha"]
    assert facts["data bands"] == [1, 2, 3]
    assert facts["validity from"] == "alpha band"
    assert facts["valid fraction"] == 0.8


def test_info_on_a_model_reads_settings_without_loading_it(tmp_path):
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:  # settings alone are enough for info
        archive.writestr("config.json", "{}")
    settings = ModelSettings(image_size=256, num_layers=4, class_names=["bg", "slide"])
    write_settings(path, settings)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "bg, slide" in result.output and "256" in result.output
    assert "threshold" in result.output and "None (most probable class)" in result.output


def test_info_shows_the_threshold_a_model_carries(tmp_path):
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    write_settings(path, ModelSettings(image_size=64, num_layers=3, threshold=0.37))
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["threshold"] == 0.37


def test_info_shows_what_a_model_knows_of_its_imagery_or_says_it_knows_nothing(tmp_path):
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    write_settings(path, ModelSettings(image_size=64, num_layers=3))
    facts = json.loads(CliRunner().invoke(cli, ["info", str(path), "--json"]).output)
    assert facts["pixel_size_m"] is None and facts["band_stats"] is None
    assert facts["imagery check"].startswith("none: the model does not know its training "
                                             "imagery")
    stats = [BandStats(p1=7, p50=107, p99=244, mean=110.73, std=46.59)] * 3
    replace_settings(path, ModelSettings(image_size=64, num_layers=3, pixel_size_m=0.5,
                                         band_stats=stats, bands=[3, 2, 1],
                                         parent=ModelParent("hokkaido-iburi", "ab" * 32)))
    facts = json.loads(CliRunner().invoke(cli, ["info", str(path), "--json"]).output)
    assert "imagery check" not in facts and facts["pixel_size_m"] == 0.5
    assert facts["band_stats"].startswith("3: 1-99% 7-244, median 107, mean 110.7 +- 46.59; 2:")
    assert facts["parent"] == "hokkaido-iburi (sha256 abababababab...)"


def test_info_with_a_model_counts_the_windows_predict_would_use(make_raster, tmp_path,
                                                                monkeypatch):
    import zipfile

    from geoseg.model import predictor

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    write_settings(path, ModelSettings(image_size=64, num_layers=3, overlap=16))
    scene = make_raster(height=1000, width=700)
    facts = json.loads(CliRunner().invoke(cli, ["info", str(scene), "--model", str(path),
                                                "--json"]).output)
    assert facts["tiles"].startswith("315 (21 rows x 15 columns) of 64 px")
    # 1440-pixel windows for 16 filters, no wider than the scene: two of 700 pixels
    assert facts["prediction windows"] == "2 (2 rows x 1 columns) of 700 px with 16 px overlap"
    monkeypatch.setattr(predictor, "resolve_backend", lambda *args, **kwargs: "onnx")
    facts = json.loads(CliRunner().invoke(cli, ["info", str(scene), "--model", str(path),
                                                "--json"]).output)
    assert facts["prediction windows"] == facts["tiles"]  # a backend of fixed-size tiles


def test_info_on_a_non_raster_is_one_line(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("hello")
    result = CliRunner().invoke(cli, ["info", str(bad)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "not a raster" in result.output


def test_the_valid_fraction_of_a_large_scene_comes_from_a_decimated_view(tmp_path):
    import numpy as np
    import rasterio

    from geoseg.prediction.info import valid_fraction

    data = np.full((1, 300, 400), 7, dtype=np.uint8)
    data[:, :, :100] = 0  # a quarter of the scene is nodata
    path = tmp_path / "big.tif"
    with rasterio.open(path, "w", driver="GTiff", width=400, height=300, count=1,
                       dtype="uint8", nodata=0, crs=TEST_CRS, transform=TEST_TRANSFORM) as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        assert valid_fraction(src) == (0.75, 1)
        fraction, factor = valid_fraction(src, view=100)
    assert factor == 4 and abs(fraction - 0.75) < 0.02
