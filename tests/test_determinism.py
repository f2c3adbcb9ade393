"""Same inputs, same model: the same output bytes, run after run."""

from __future__ import annotations

import hashlib

from click.testing import CliRunner
from conftest import pixelwise_keras_model

from geoseg.cli import cli
from geoseg.flexunet import build_flexunet, save_model
from geoseg.settings import ModelSettings


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predict_twice_writes_identical_bytes(make_raster, tmp_path):
    settings = ModelSettings(image_size=64, num_layers=3, base_filters=4, overlap=16)
    model = save_model(build_flexunet(settings), settings, tmp_path / "flexunet.keras")
    scene = make_raster(height=170, width=150, nodata=0)
    outputs = []
    for run in ("first", "second"):  # same file names, other folders
        folder = tmp_path / run
        folder.mkdir()
        result = CliRunner().invoke(cli, [
            "predict", str(scene), "--model", str(model), "--out", str(folder / "mask.tif"),
            "--probabilities", str(folder / "prob.tif"), "--vector",
            str(folder / "landslides.geojson"), "-q"])
        assert result.exit_code == 0, result.output
        outputs.append([digest(folder / name)
                        for name in ("mask.tif", "prob.tif", "landslides.geojson")])
    assert outputs[0] == outputs[1]


def test_pixelwise_model_is_independent_of_batch_size(make_raster, tmp_path):
    settings = ModelSettings(image_size=64, num_layers=3, overlap=16)
    model = save_model(pixelwise_keras_model(settings), settings, tmp_path / "m.keras")
    scene = make_raster(height=300, width=200)
    for batch in ("1", "5"):
        result = CliRunner().invoke(cli, [
            "predict", str(scene), "--model", str(model), "--batch-size", batch,
            "--out", str(tmp_path / f"b{batch}.tif"), "-q"])
        assert result.exit_code == 0, result.output
    assert digest(tmp_path / "b1.tif") == digest(tmp_path / "b5.tif")
