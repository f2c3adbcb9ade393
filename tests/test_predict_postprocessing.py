"""Prediction with post-processing: the model's stored recipe by default, options over it, the
same mask as the recipe applied to the run's own probabilities, whole or in bands."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import PixelwisePredictor, write_raster

from geoseg.errors import ParameterError
from geoseg.postprocessing.postprocess import postprocess_array
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.predict import BandedPrediction, PredictOptions, plan_run, predict_scene
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, base_filters=4, overlap=8, threshold=0.5)
HYSTERESIS = PostProcessing(threshold=0.5, seed_threshold=0.8)
STORED = replace(SETTINGS, postprocessing=HYSTERESIS.to_dict())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def scene(tmp_path) -> Path:
    """300 x 260 pixels (p = band 1 / 255 with the pixelwise model): a blob peaking at 0.94
    inside a ring of 0.6, a blob of 0.6 only, and a speckle of 0.9; a nodata corner."""
    data = np.full((3, 300, 260), 40, dtype=np.uint8)
    rows, cols = np.mgrid[:300, :260]
    ring = (rows - 80) ** 2 + (cols - 70) ** 2 < 40**2
    data[0][ring] = 153
    data[0][(rows - 80) ** 2 + (cols - 70) ** 2 < 15**2] = 240
    data[0][(rows - 200) ** 2 + (cols - 180) ** 2 < 35**2] = 153
    data[0, 250:252, 30:32] = 230
    data[:, :20, 200:] = 0
    return write_raster(tmp_path / "scene.tif", data, nodata=0)


def landslide(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_the_stored_recipe_is_the_recipe_on_the_run_s_probabilities(scene, tmp_path):
    options = PredictOptions(probability_dtype="float32")
    result = predict_scene(scene, tmp_path / "m.tif", PixelwisePredictor(), STORED, options,
                           probabilities_path=tmp_path / "p.tif")
    with rasterio.open(tmp_path / "p.tif") as src:
        prob = src.read(2)
    expected = postprocess_array(prob, HYSTERESIS).mask
    mask = landslide(tmp_path / "m.tif")
    np.testing.assert_array_equal(mask, expected)
    assert mask[80, 70] == 1 and mask[80, 105] == 1  # the peaked blob, grown down to 0.5
    assert mask[200, 180] == 0 and mask[250, 30] == 1  # no peak: dropped; the speckle peaks
    assert mask[5, 250] == 255  # nodata stays nodata
    assert result.foreground_pixels == int(np.count_nonzero(mask == 1))
    plain = predict_scene(scene, tmp_path / "plain.tif", PixelwisePredictor(), SETTINGS, options)
    assert landslide(tmp_path / "plain.tif")[200, 180] == 1  # what the recipe removed
    assert plain.foreground_pixels > result.foreground_pixels


def test_options_override_the_stored_recipe(scene, tmp_path):
    smallest = PostProcessing(threshold=0.5, min_area_m2=100.0)  # 100 pixels of 1 m
    predict_scene(scene, tmp_path / "m.tif", PixelwisePredictor(), STORED,
                  PredictOptions(postprocessing=smallest))
    mask = landslide(tmp_path / "m.tif")
    assert mask[200, 180] == 1 and mask[250, 30] == 0  # kept without a peak; speckle gone
    predict_scene(scene, tmp_path / "t.tif", PixelwisePredictor(), STORED,
                  PredictOptions(threshold=0.7))  # the run's threshold grows the regions
    expected = postprocess_array(_probabilities(scene), replace(HYSTERESIS, threshold=0.7))
    np.testing.assert_array_equal(landslide(tmp_path / "t.tif"), expected.mask)
    assert landslide(tmp_path / "t.tif")[80, 105] == 0  # the 0.6 ring is below 0.7


def _probabilities(scene: Path) -> np.ndarray:
    with rasterio.open(scene) as src:
        band = src.read(1).astype(np.float64)
        valid = src.read_masks(1) > 0
    prob = np.clip(band / 255.0, 0.0, 1.0)
    prob[~valid] = np.nan
    return prob


def test_a_recipe_that_only_thresholds_takes_the_plain_path(scene, tmp_path):
    predict_scene(scene, tmp_path / "plain.tif", PixelwisePredictor(), SETTINGS)
    only_threshold = replace(SETTINGS, postprocessing=PostProcessing(threshold=0.5).to_dict())
    predict_scene(scene, tmp_path / "stored.tif", PixelwisePredictor(), only_threshold)
    predict_scene(scene, tmp_path / "given.tif", PixelwisePredictor(), STORED,
                  PredictOptions(postprocessing=PostProcessing()))
    for name in ("stored.tif", "given.tif"):  # the settings in their tags differ
        np.testing.assert_array_equal(landslide(tmp_path / name),
                                      landslide(tmp_path / "plain.tif"))
        with rasterio.open(tmp_path / name) as src:
            assert "GEOSEG_POSTPROCESSING" not in src.tags()


def test_hidden_probabilities_leave_nothing_behind(scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    predict_scene(scene, out / "m.tif", PixelwisePredictor(), STORED, PredictOptions(cog=True))
    assert sorted(os.listdir(out)) == ["m.qml", "m.tif"]
    predict_scene(scene, tmp_path / "with.tif", PixelwisePredictor(), STORED,
                  PredictOptions(cog=True), probabilities_path=tmp_path / "with_prob.tif")
    np.testing.assert_array_equal(landslide(out / "m.tif"), landslide(tmp_path / "with.tif"))
    with rasterio.open(out / "m.tif") as src:
        assert "seed_threshold" in src.tags()["GEOSEG_POSTPROCESSING"]
        assert src.tags(1)["CLASS_1"] == "landslide"


def test_bands_give_the_bytes_of_one_run(scene, tmp_path):
    options = PredictOptions(window="tile")
    predict_scene(scene, tmp_path / "one.tif", PixelwisePredictor(), STORED, options)
    plan = BandedPrediction.plan(scene, tmp_path / "bands.tif", plan_run(options, STORED),
                                 row_bands=2)
    results = [plan.predict_band(i, PixelwisePredictor()) for i in range(len(plan.row_bands))]
    plan.assemble(results)
    assert len(plan.row_bands) == 2
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")


def test_a_recipe_for_a_model_of_three_classes_is_refused(scene, tmp_path):
    three = ModelSettings(image_size=64, num_layers=3, num_classes=3)
    with pytest.raises(ParameterError, match="postprocessing"):
        predict_scene(scene, tmp_path / "m.tif", PixelwisePredictor(), three,
                      PredictOptions(postprocessing=HYSTERESIS))


def test_cli_flags_change_the_stored_recipe_value_by_value(scene, tmp_path):
    from click.testing import CliRunner
    from conftest import pixelwise_keras_model

    from geoseg.cli import cli
    from geoseg.model.flexunet import save_model

    model = save_model(pixelwise_keras_model(STORED), STORED, tmp_path / "m.keras")
    runs = {"stored": [], "off": ["--no-postprocessing"], "area": ["--min-region-area", "100"]}
    masks = {}
    for name, flags in runs.items():
        result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "-q",
                                          "--out", str(tmp_path / f"{name}.tif"), *flags])
        assert result.exit_code == 0, result.output
        masks[name] = landslide(tmp_path / f"{name}.tif")
    assert masks["stored"][200, 180] == 0 and masks["off"][200, 180] == 1
    assert masks["stored"][250, 30] == 1 and masks["area"][250, 30] == 0  # peak kept, area not
    assert masks["area"][200, 180] == 0  # the stored peak rule still holds
    refused = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out",
                                       str(tmp_path / "x.tif"), "--no-postprocessing",
                                       "--seed-threshold", "0.9"])
    assert refused.exit_code != 0 and "--no-postprocessing goes without" in refused.output


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("pixel_size_m", [3.0, None])
def test_a_scene_without_crs_is_post_processed_at_the_model_s_pixel_size(
        scene, tmp_path, caplog, pixel_size_m):
    with rasterio.open(scene) as src:  # the same pixels as a plain image: no CRS, no transform
        plain = write_raster(tmp_path / "plain.tif", src.read(), crs=None,
                             transform=rasterio.Affine.identity(), nodata=0)
    smallest = PostProcessing(threshold=0.5, min_area_m2=30.0)
    settings = replace(SETTINGS, pixel_size_m=pixel_size_m)
    predict_scene(plain, tmp_path / "m.tif", PixelwisePredictor(), settings,
                  PredictOptions(postprocessing=smallest))
    # the 2 x 2 speckle: 36 m² in the 3 m pixels the model was trained on, 4 pixels otherwise
    assert landslide(tmp_path / "m.tif")[250, 30] == (1 if pixel_size_m else 0)
    assert landslide(tmp_path / "m.tif")[200, 180] == 1
    said = [record.getMessage() for record in caplog.records
            if "has no CRS: the post-processing" in record.getMessage()]
    assert len(said) == 1 and said[0].startswith("plain.tif has no CRS")
    assert ("its pixels as 3 m" in said[0]) == (pixel_size_m is not None)
    with rasterio.open(tmp_path / "m.tif") as out:
        assert out.crs is None
