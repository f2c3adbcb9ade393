"""Same inputs, same model: the same output bytes, run after run."""

from __future__ import annotations

import hashlib

from click.testing import CliRunner

from geoseg.cli import cli
from geoseg.model.flexunet import build_flexunet, save_model
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


def test_predictions_are_independent_of_the_batch_size(make_raster, tmp_path):
    """A FlexUNet (3 x 3 convolutions, batch normalisation in inference mode) sees each pixel's
    surroundings: tiles batched one or four at a time must give the same bytes."""
    import keras

    keras.utils.set_random_seed(11)
    settings = ModelSettings(image_size=64, num_layers=3, base_filters=4, overlap=16)
    model = save_model(build_flexunet(settings), settings, tmp_path / "m.keras")
    scene = make_raster(height=170, width=150)
    for batch in ("1", "4"):  # 12 tiles: 12 calls of one, 3 of four
        result = CliRunner().invoke(cli, [
            "predict", str(scene), "--model", str(model), "--batch-size", batch,
            "--window", "tile", "--out", str(tmp_path / f"b{batch}.tif"), "--probabilities",
            str(tmp_path / f"p{batch}.tif"), "--probability-dtype", "float32", "-q"])
        assert result.exit_code == 0, result.output
    assert digest(tmp_path / "p1.tif") == digest(tmp_path / "p4.tif")
    assert digest(tmp_path / "b1.tif") == digest(tmp_path / "b4.tif")
