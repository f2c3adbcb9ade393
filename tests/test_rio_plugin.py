"""geoseg as a rasterio `rio` plugin: the same commands, the same results."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import rasterio
from click.testing import CliRunner
from conftest import pixelwise_keras_model
from rasterio.rio.main import main_group

from geoseg.cli import cli
from geoseg.model.flexunet import save_model
from geoseg.settings import ModelSettings


def test_geoseg_is_registered_as_a_rio_plugin():
    plugins = {ep.name: ep.value for ep in entry_points(group="rasterio.rio_plugins")}
    assert plugins.get("geoseg") == "geoseg.cli:cli"
    result = CliRunner().invoke(main_group, ["--help"])
    assert result.exit_code == 0 and "geoseg" in result.output


def test_rio_geoseg_runs_the_same_command(make_raster):
    scene = make_raster(height=90, width=80)
    direct = CliRunner().invoke(cli, ["info", str(scene), "--json"])
    via_rio = CliRunner().invoke(main_group, ["geoseg", "info", str(scene), "--json"])
    assert via_rio.exit_code == 0, via_rio.output
    assert via_rio.output == direct.output


def test_rio_geoseg_reports_errors_in_one_line(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("no raster here")
    result = CliRunner().invoke(main_group, ["geoseg", "info", str(bad)])
    assert result.exit_code == 1 and "Error: " in result.output and "Traceback" not in result.output


def test_rio_geoseg_predict_writes_the_same_mask_as_geoseg_predict(make_raster, tmp_path):
    settings = ModelSettings(image_size=64, num_layers=3, overlap=16)
    model = save_model(pixelwise_keras_model(settings), settings, tmp_path / "m.keras")
    scene = make_raster(height=150, width=130)
    common = ["predict", str(scene), "--model", str(model), "-q"]
    direct = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "a.tif")])
    via_rio = CliRunner().invoke(main_group, ["geoseg", *common, "--out", str(tmp_path / "b.tif")])
    assert direct.exit_code == 0 and via_rio.exit_code == 0, via_rio.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.profile == b.profile
