"""Prediction at the model's pixel size (``resolution``): the scene read resampled, the outputs
on the scene's own grid, with its validity; the scene's own pixels by default."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import InterruptedAfter, PixelwisePredictor, pixelwise_keras_model, write_raster
from rasterio.transform import from_origin

from geoseg.cli import cli
from geoseg.errors import InputError, ParameterError
from geoseg.model.flexunet import save_model
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.predict import BandedPrediction, PredictOptions, plan_run, predict_scene
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16, base_filters=4)
TWO_METRE_MODEL = dataclasses.replace(SETTINGS, pixel_size_m=2.0)
ONE_METRE = from_origin(582000.0, 4734000.0, 1.0, 1.0)
HEIGHT, WIDTH = 300, 261


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def smooth_bands(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Three equal bands varying slowly (a pixelwise model's landslides are large blobs),
    8..248, with zeros (nodata where the scene says 0 is nodata): a corner not aligned with
    coarser pixels, and single pixels, which averaged pixels do not keep."""
    y, x = np.mgrid[0:height, 0:width]
    band = np.clip(128 + 120 * np.sin(x / 23.0) * np.cos(y / 31.0), 1, 255).astype(np.uint8)
    band[:41, :51] = 0
    band[100:200:7, 120:220:9] = 0
    return np.stack([band, band, band])


def smooth_scene(tmp_path, name="scene.tif", **kwargs):
    kwargs.setdefault("transform", ONE_METRE)
    return write_raster(tmp_path / name, smooth_bands(), **kwargs)


def run(scene, out, settings=TWO_METRE_MODEL, predictor=None, **options):
    predictor = predictor or PixelwisePredictor()
    result = predict_scene(scene, out, predictor, settings, PredictOptions(**options),
                           probabilities_path=out.with_name(out.stem + "_prob.tif"))
    return result, predictor


@pytest.mark.parametrize(("settings", "resolution"), [
    (TWO_METRE_MODEL, "native"),
    (SETTINGS, "auto"),  # the model's training pixel size unknown
    (dataclasses.replace(SETTINGS, pixel_size_m=1.2), "auto"),  # within 1.25x of the scene's
    (TWO_METRE_MODEL, 1.0),  # the scene's own
])
def test_the_scene_s_own_pixels_give_the_bytes_of_a_run_without_the_option(
        tmp_path, settings, resolution):
    scene = smooth_scene(tmp_path, nodata=0)
    run(scene, tmp_path / "plain.tif", settings)
    run(scene, tmp_path / "own.tif", settings, resolution=resolution)
    for name in ("", "_prob"):
        assert digest(tmp_path / f"own{name}.tif") == digest(tmp_path / f"plain{name}.tif")


def test_auto_predicts_the_model_s_pixel_size_and_writes_on_the_scene_s_grid(tmp_path, caplog):
    scene = smooth_scene(tmp_path, nodata=0)
    native, _ = run(scene, tmp_path / "native.tif")
    with caplog.at_level("INFO"):
        auto, predictor = run(scene, tmp_path / "auto.tif", resolution="auto")
    assert "predicting at 2 m pixels" in caplog.text
    # the windows of a scene of half the size, each side rounded up
    half = write_raster(tmp_path / "half.tif", smooth_bands(math.ceil(HEIGHT / 2),
                                                            math.ceil(WIDTH / 2)))
    expected, half_predictor = run(half, tmp_path / "half_mask.tif")
    assert auto.tiles_total == expected.tiles_total < native.tiles_total
    with rasterio.open(scene) as src:  # the grid evaluate's and Dask's planning count
        assert len(plan_run(PredictOptions(resolution="auto"), TWO_METRE_MODEL).grid(src)) == (
            auto.tiles_total)
    assert predictor.calls == half_predictor.calls
    for suffix in (".tif", "_prob.tif"):
        with rasterio.open(tmp_path / f"native{suffix}") as a, \
                rasterio.open(tmp_path / f"auto{suffix}") as b:
            assert b.profile == a.profile  # CRS, transform, size, dtype, nodata, blocks
            assert b.tags() == a.tags() and b.scales == a.scales
            assert b.descriptions == a.descriptions
    with rasterio.open(tmp_path / "native.tif") as a, rasterio.open(tmp_path / "auto.tif") as b:
        native_mask, auto_mask = a.read(1), b.read(1)
    nodata = smooth_bands()[0] == 0
    np.testing.assert_array_equal(auto_mask == 255, nodata)
    assert (auto_mask == native_mask).mean() > 0.98
    assert auto.foreground_pixels == int((auto_mask == 1).sum())
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "auto")))
    assert leftovers == ["auto.qml", "auto.tif", "auto_prob.tif"]


def _hidden() -> np.ndarray:
    """The pixels a mask or alpha hides: the zeros and the top 130 rows (whole windows)."""
    hidden = smooth_bands()[0] == 0
    hidden[:130] = True
    return hidden


def _masked(tmp_path):
    data = smooth_bands()
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
            tmp_path / "masked.tif", "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=3,
            dtype="uint8", crs="EPSG:32654", transform=ONE_METRE) as dst:
        dst.write(np.where(_hidden(), 255, data))  # only the mask tells
        dst.write_mask(np.where(_hidden(), 0, 255).astype(np.uint8))
    return tmp_path / "masked.tif"


def _alpha(tmp_path):
    data = smooth_bands()
    alpha = np.where(_hidden(), 0, 255).astype(np.uint8)[None]
    with rasterio.open(tmp_path / "rgba.tif", "w", driver="GTiff", width=WIDTH, height=HEIGHT,
                       count=4, dtype="uint8", crs="EPSG:32654", transform=ONE_METRE,
                       photometric="RGB", alpha="YES") as dst:
        dst.write(np.concatenate([np.where(_hidden(), 255, data), alpha]))
    return tmp_path / "rgba.tif"


@pytest.mark.parametrize("make", [_masked, _alpha], ids=["internal mask", "alpha"])
@pytest.mark.parametrize("resolution", ["auto", 0.5])  # coarser, finer
def test_the_scene_s_mask_or_alpha_is_the_outputs_nodata(tmp_path, make, resolution):
    """The model never sees the hidden pixels (255 there) and passes over the windows without
    data; the outputs have nodata there."""
    scene = make(tmp_path)
    seen = []

    class Recording(PixelwisePredictor):
        def __call__(self, batch):
            seen.append(batch.max())
            return super().__call__(batch)

    result, _ = run(scene, tmp_path / "mask.tif", predictor=Recording(), resolution=resolution)
    assert max(seen) <= 248
    assert result.tiles_predicted < result.tiles_total
    with rasterio.open(tmp_path / "mask.tif") as dst:
        assert (dst.width, dst.height, dst.transform) == (WIDTH, HEIGHT, ONE_METRE)
        mask = dst.read(1)
    np.testing.assert_array_equal(mask == 255, _hidden())


def test_a_pixel_size_in_metres_is_predicted_at_either_way(tmp_path):
    scene = smooth_scene(tmp_path, nodata=0)
    native, _ = run(scene, tmp_path / "native.tif")
    coarse, _ = run(scene, tmp_path / "coarse.tif", resolution="4")
    fine, _ = run(scene, tmp_path / "fine.tif", resolution=0.5)
    assert coarse.tiles_total < native.tiles_total < fine.tiles_total
    with rasterio.open(tmp_path / "native.tif") as a:
        native_mask = a.read(1)
    for name in ("coarse", "fine"):
        with rasterio.open(tmp_path / f"{name}.tif") as b:
            assert (b.width, b.height, b.transform) == (WIDTH, HEIGHT, ONE_METRE)
            assert (b.read(1) == native_mask).mean() > 0.95


@pytest.mark.parametrize(("resolution", "message"), [
    ("fine", "resolution must be native, auto or a pixel size in metres > 0, got 'fine'"),
    (0, "resolution must be native"),
    (-2.0, "resolution must be native"),
    (float("nan"), "resolution must be native"),
    ("inf", "resolution must be native"),
])
def test_impossible_resolutions_are_one_line(resolution, message):
    with pytest.raises(ParameterError, match=message) as error:
        PredictOptions(resolution=resolution)
    assert "\n" not in str(error.value)


def test_a_target_of_more_than_16_times_the_pixels_or_without_a_scene_size_is_refused(
        tmp_path, make_raster):
    scene = smooth_scene(tmp_path, nodata=0)
    with pytest.raises(ParameterError, match=r"resolution 0\.2 m would make scene.tif \(1 m "
                       r"pixels\) 25 times more pixels; at most 16") as error:
        run(scene, tmp_path / "mask.tif", resolution=0.2)
    assert "\n" not in str(error.value)
    run(scene, tmp_path / "mask.tif", resolution=0.25)  # 16 times: allowed
    plain = make_raster("plain.tif", crs=None)
    with pytest.raises(ParameterError, match="needs the scene's pixel size in metres"):
        run(plain, tmp_path / "plain_mask.tif", resolution=2)
    run(plain, tmp_path / "plain_mask.tif", resolution="auto")  # the scene's own pixels


def test_resume_of_an_interrupted_resampled_run_gives_the_uninterrupted_bytes(tmp_path):
    data = np.concatenate([smooth_bands()] * 4, axis=1)  # 1200 rows: several block rows
    scene = write_raster(tmp_path / "tall.tif", data, transform=ONE_METRE, nodata=0)
    run(scene, tmp_path / "reference.tif", resolution="auto")
    with pytest.raises(KeyboardInterrupt):
        run(scene, tmp_path / "mask.tif", predictor=InterruptedAfter(8), resolution="auto")
    assert list((tmp_path / ".mask.tif.resume").glob("rows_*.npz"))
    with pytest.raises(InputError, match="another scene, model or options"):
        run(scene, tmp_path / "mask.tif", resolution=3, resume=True)
    resumed, _ = run(scene, tmp_path / "mask.tif", resolution="auto", resume=True)
    assert resumed.tiles_predicted < resumed.tiles_total
    for suffix in (".tif", "_prob.tif"):
        assert digest(tmp_path / f"mask{suffix}") == digest(tmp_path / f"reference{suffix}")


def test_bands_of_rows_write_the_bytes_of_one_resampled_run(tmp_path):
    data = np.concatenate([smooth_bands()] * 4, axis=1)
    scene = write_raster(tmp_path / "tall.tif", data, transform=ONE_METRE, nodata=0)
    options = PredictOptions(resolution="auto")
    plan = BandedPrediction.plan(scene, tmp_path / "bands.tif",
                                 plan_run(options, TWO_METRE_MODEL), row_bands=2)
    assert len(plan.row_bands) == 2 and plan.row_bands[-1][1] == math.ceil(data.shape[1] / 2)
    plan.assemble([plan.predict_band(i, PixelwisePredictor()) for i in range(2)])
    predict_scene(scene, tmp_path / "one.tif", PixelwisePredictor(), TWO_METRE_MODEL, options)
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")


def test_cli_resolution_flag(tmp_path):
    assert "--resolution native|auto|METRES" in CliRunner().invoke(cli, ["predict", "--help"]
                                                                   ).output
    assert "--resolution" in CliRunner().invoke(cli, ["evaluate", "--help"]).output
    model = save_model(pixelwise_keras_model(TWO_METRE_MODEL), TWO_METRE_MODEL,
                       tmp_path / "two-metres.keras")
    scene = smooth_scene(tmp_path, nodata=0)
    args = ["predict", str(scene), "--model", str(model), "--device", "cpu", "-q", "--window",
            "tile"]
    windows = {}
    for resolution in ("native", "auto"):
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / f"{resolution}.tif"),
                                          "--resolution", resolution], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        windows[resolution] = int(re.search(r"of (\d+) windows", result.output)[1])
    assert windows == {"native": 36, "auto": 9}
    with rasterio.open(tmp_path / "auto.tif") as dst:
        assert (dst.width, dst.height, dst.transform) == (WIDTH, HEIGHT, ONE_METRE)
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "bad.tif"),
                                      "--resolution", "fine"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: --resolution must be native, auto or a pixel size in metres > 0, got 'fine'"]


def test_post_processing_and_cogs_run_on_the_scene_s_grid(tmp_path):
    """Post-processing remakes the mask from the probabilities put back on the scene's grid
    (hidden when not asked for); Cloud Optimized GeoTIFFs are made of the final outputs."""
    scene = smooth_scene(tmp_path, nodata=0)
    recipe = PostProcessing(seed_threshold=0.9)
    native = predict_scene(scene, tmp_path / "native.tif", PixelwisePredictor(),
                           TWO_METRE_MODEL, PredictOptions(postprocessing=recipe))
    auto = predict_scene(scene, tmp_path / "auto.tif", PixelwisePredictor(), TWO_METRE_MODEL,
                         PredictOptions(postprocessing=recipe, resolution="auto", cog=True))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "auto"))) == [
        "auto.qml", "auto.tif"]
    with rasterio.open(tmp_path / "native.tif") as a, rasterio.open(tmp_path / "auto.tif") as b:
        assert (b.width, b.height, b.transform, b.crs) == (a.width, a.height, a.transform, a.crs)
        assert b.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        native_mask, auto_mask = a.read(1), b.read(1)
    np.testing.assert_array_equal(auto_mask == 255, smooth_bands()[0] == 0)
    assert (auto_mask == native_mask).mean() > 0.98
    assert auto.foreground_pixels == int((auto_mask == 1).sum()) > 0
    assert native.foreground_pixels > 0
