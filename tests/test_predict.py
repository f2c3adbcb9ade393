"""Streaming prediction and stitching, with a per-pixel numpy 'model' (no TensorFlow needed)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import rasterio
from conftest import TEST_CRS, TEST_TRANSFORM, PixelwisePredictor

from geoseg.errors import InputError, OutputExistsError
from geoseg.prediction.predict import (
    CLASS_NAMES_TAG,
    MASK_NODATA,
    PROBABILITY_NODATA,
    PredictOptions,
    predict_scene,
)
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16, base_filters=4)


def read(path, band=None):
    with rasterio.open(path) as src:
        return src.read(band) if band else src.read(), src.profile, src.tags(), src


@pytest.mark.parametrize(("height", "width"), [(200, 300), (64, 64), (130, 77), (37, 45),
                                               (1, 1), (600, 90)])
def test_stitched_probabilities_equal_the_whole_array_function(make_raster, tmp_path, height,
                                                               width):
    """No seams: a translation-equivariant model gives the whole-array answer everywhere."""
    scene = make_raster(height=height, width=width)
    result = predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                           PredictOptions(probability_dtype="float32"),
                           probabilities_path=tmp_path / "prob.tif")
    with rasterio.open(scene) as src:
        expected = src.read(1) / 255.0
    probs, _, _, _ = read(tmp_path / "prob.tif")
    np.testing.assert_allclose(probs[1], expected, atol=1e-5)
    np.testing.assert_allclose(probs[0], 1.0 - expected, atol=1e-5)
    mask, _, _, _ = read(tmp_path / "mask.tif", 1)
    decided = np.abs(expected - 0.5) > 1e-4  # leave exact ties to argmax
    np.testing.assert_array_equal(mask[decided], (expected >= 0.5)[decided].astype(np.uint8))
    assert result.tiles_predicted == result.tiles_total
    assert result.foreground_pixels == int((mask == 1).sum())


def test_output_is_georeferenced_like_the_input(make_raster, tmp_path):
    scene = make_raster(height=150, width=170)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  probabilities_path=tmp_path / "prob.tif")
    _, profile, tags, _ = read(tmp_path / "mask.tif")
    assert profile["crs"].to_string() == TEST_CRS
    assert profile["transform"] == TEST_TRANSFORM
    assert (profile["height"], profile["width"]) == (150, 170)
    assert profile["dtype"] == "uint8" and profile["count"] == 1
    assert profile["nodata"] == MASK_NODATA
    assert profile["tiled"] and profile["compress"] == "deflate"
    assert json.loads(tags[CLASS_NAMES_TAG]) == ["background", "landslide"]
    _, prob_profile, _, _ = read(tmp_path / "prob.tif")
    assert prob_profile["count"] == 2 and prob_profile["dtype"] == "uint8"
    assert prob_profile["nodata"] == PROBABILITY_NODATA
    with rasterio.open(tmp_path / "prob.tif") as src:
        assert src.scales == pytest.approx((1 / 254, 1 / 254))
        assert src.descriptions == ("probability background", "probability landslide")


def test_uint8_probabilities_unscale_to_the_probability(make_raster, tmp_path):
    scene = make_raster(height=80, width=90)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  probabilities_path=tmp_path / "prob.tif")
    with rasterio.open(tmp_path / "prob.tif") as src, rasterio.open(scene) as img:
        stored = src.read(2).astype(np.float64) * src.scales[1] + src.offsets[1]
        expected = img.read(1) / 255.0
    assert np.abs(stored - expected).max() <= 0.5 / 254 + 1e-6


def test_nodata_propagates_and_nodata_only_tiles_are_skipped(make_raster, tmp_path):
    data = np.random.default_rng(1).integers(1, 255, (3, 256, 256), dtype=np.uint8)
    data[:, :128, :] = 0  # the whole top half has no data
    data[:, 200, 10] = 0  # and one pixel in the bottom half
    scene = make_raster(data=data, nodata=0)
    predictor = PixelwisePredictor(batch_size=2)
    result = predict_scene(scene, tmp_path / "mask.tif", predictor, SETTINGS,
                           PredictOptions(probability_dtype="float32"),
                           probabilities_path=tmp_path / "prob.tif")
    mask, _, _, _ = read(tmp_path / "mask.tif", 1)
    probs, _, _, _ = read(tmp_path / "prob.tif")
    nodata = (data == 0).all(axis=0)
    assert (mask[nodata] == MASK_NODATA).all()
    assert (mask[~nodata] != MASK_NODATA).all()
    assert np.isnan(probs[:, nodata]).all() and not np.isnan(probs[:, ~nodata]).any()
    assert result.tiles_predicted < result.tiles_total  # windows entirely in the top half


def test_threshold_decides_the_landslide_class(make_raster, tmp_path):
    scene = make_raster(height=70, width=70)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  PredictOptions(threshold=0.8))
    mask, _, _, _ = read(tmp_path / "mask.tif", 1)
    with rasterio.open(scene) as src:
        p = src.read(1) / 255.0
    decided = np.abs(p - 0.8) > 1e-4  # 204/255 is 0.8 exactly: a float tie either way
    np.testing.assert_array_equal(mask[decided], (p >= 0.8)[decided].astype(np.uint8))
    assert decided.sum() > 0.9 * p.size


@pytest.mark.parametrize(("given", "used"), [(None, 0.8), (0.3, 0.3)])
def test_the_models_threshold_is_used_unless_one_is_given(make_raster, tmp_path, given, used):
    scene = make_raster(height=70, width=70)
    settings = dataclasses.replace(SETTINGS, threshold=0.8)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), settings,
                  PredictOptions(threshold=given))
    mask, _, _, _ = read(tmp_path / "mask.tif", 1)
    with rasterio.open(scene) as src:
        p = src.read(1) / 255.0
    decided = np.abs(p - used) > 1e-4
    np.testing.assert_array_equal(mask[decided], (p >= used)[decided].astype(np.uint8))


@pytest.mark.parametrize("bands", [1, 4])
def test_one_and_four_band_scenes(make_raster, tmp_path, bands):
    settings = ModelSettings(image_size=64, num_layers=3, overlap=16, image_channels=bands)
    scene = make_raster(height=100, width=90, bands=bands)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), settings)
    mask, profile, _, _ = read(tmp_path / "mask.tif", 1)
    assert mask.shape == (100, 90)


def test_band_selection_feeds_the_chosen_bands_in_order(make_raster, tmp_path):
    scene = make_raster(height=70, width=70, bands=4)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  PredictOptions(bands=[4, 2, 1], probability_dtype="float32"),
                  probabilities_path=tmp_path / "prob.tif")
    probs, _, _, _ = read(tmp_path / "prob.tif")
    with rasterio.open(scene) as src:
        np.testing.assert_allclose(probs[1], src.read(4) / 255.0, atol=1e-5)


def test_band_count_mismatch_is_a_clear_error(make_raster, tmp_path):
    scene = make_raster(height=50, width=50, bands=4)
    with pytest.raises(InputError, match="has 4 bands but the model takes 3.*with bands$"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS)
    with pytest.raises(InputError, match="band 7 does not exist"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                      PredictOptions(bands=[1, 2, 7]))
    assert not list(tmp_path.glob("mask*")) and not list(tmp_path.glob(".mask*"))


def test_existing_output_is_refused_then_overwritten(make_raster, tmp_path):
    scene = make_raster(height=50, width=50)
    out = tmp_path / "mask.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        predict_scene(scene, out, PixelwisePredictor(), SETTINGS)
    assert out.read_bytes() == b"keep me"
    predict_scene(scene, out, PixelwisePredictor(), SETTINGS, PredictOptions(overwrite=True))
    assert read(out, 1)[0].shape == (50, 50)


def test_a_failing_model_leaves_no_output(make_raster, tmp_path):
    class Broken(PixelwisePredictor):
        def __call__(self, batch):
            if self.calls == 2:
                raise RuntimeError("out of memory")
            return super().__call__(batch)

    scene = make_raster(height=300, width=300)
    with pytest.raises(RuntimeError):
        predict_scene(scene, tmp_path / "mask.tif", Broken(batch_size=1), SETTINGS,
                      probabilities_path=tmp_path / "prob.tif")
    assert list(tmp_path.iterdir()) == [scene]


def test_cog_output_is_a_valid_cloud_optimized_geotiff(make_raster, tmp_path):
    scene = make_raster(height=600, width=520)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  PredictOptions(cog=True))
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert src.overviews(1), "a COG carries overviews"
        assert src.profile["tiled"] and src.crs.to_string() == TEST_CRS
        assert src.tags()[CLASS_NAMES_TAG]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.qml", "mask.tif", "scene.tif"]


def test_scene_without_crs_warns_or_is_refused(make_raster, tmp_path, caplog):
    scene = make_raster(height=40, width=40, crs=None)
    with pytest.raises(InputError, match="has no CRS"):
        predict_scene(scene, tmp_path / "a.tif", PixelwisePredictor(), SETTINGS,
                      PredictOptions(require_crs=True))
    predict_scene(scene, tmp_path / "b.tif", PixelwisePredictor(), SETTINGS)
    assert "no CRS" in caplog.text
    with rasterio.open(tmp_path / "b.tif") as src:
        assert src.crs is None


def test_bad_threshold_for_multiclass_model(make_raster, tmp_path):
    settings = ModelSettings(image_size=64, num_layers=3, num_classes=3)
    with pytest.raises(InputError, match="one or two classes"):
        predict_scene(make_raster(), tmp_path / "m.tif", PixelwisePredictor(), settings,
                      PredictOptions(threshold=0.5))


def test_batches_span_tile_rows_without_losing_tiles(make_raster, tmp_path):
    """Narrow scene, large batch: one batch holds tiles of several grid rows."""
    scene = make_raster(height=700, width=70)
    predictor = PixelwisePredictor(batch_size=8)
    result = predict_scene(scene, tmp_path / "mask.tif", predictor, SETTINGS,
                           PredictOptions(probability_dtype="float32"),
                           probabilities_path=tmp_path / "prob.tif")
    probs, _, _, _ = read(tmp_path / "prob.tif")
    with rasterio.open(scene) as src:
        np.testing.assert_allclose(probs[1], src.read(1) / 255.0, atol=1e-5)
    assert predictor.calls == -(-result.tiles_total // 8)
