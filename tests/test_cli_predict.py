"""`geoseg predict` end to end through Keras, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import look_right_keras_model, pixelwise_keras_model

from geoseg.cli import cli
from geoseg.model.flexunet import save_model
from geoseg.model.model_archive import read_settings, replace_settings
from geoseg.model.predictor import load_predictor
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.prediction.tta import TTAPredictor
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16, base_filters=4)


def expected_probability(band1: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-0.05 * (band1.astype(np.float64) - 128)))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_predict_through_keras_matches_the_whole_array_and_the_georeference(
    make_raster, tmp_path, model_path
):
    scene = make_raster(height=203, width=150, nodata=0)
    result = run("predict", str(scene), "--model", str(model_path), "--out",
                 str(tmp_path / "mask.tif"), "--probabilities", str(tmp_path / "prob.tif"),
                 "--probability-dtype", "float32", "--batch-size", "3", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    assert "windows predicted" in result.output
    with rasterio.open(scene) as src, rasterio.open(tmp_path / "prob.tif") as prob:
        band1 = src.read(1)
        assert prob.crs == src.crs and prob.transform == src.transform
        assert (prob.width, prob.height) == (src.width, src.height)
        np.testing.assert_allclose(prob.read(2), expected_probability(band1), atol=1e-5)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: ["predict", str(d / "missing.tif"), "--out", str(d / "o.tif")],
         "does not exist"),
        (lambda d: ["predict", str(d / "text.tif"), "--out", str(d / "o.tif")],
         "not a raster GDAL can read"),
        (lambda d: ["predict", str(d / "scene4.tif"), "--out", str(d / "o.tif")],
         "has 4 bands but the model takes 3"),
        (lambda d: ["predict", str(d / "scene3.tif"), "--out", str(d / "nodir" / "o.tif")],
         "does not exist; create it first"),
        (lambda d: ["predict", str(d / "scene3.tif"), "--out", str(d / "o.tif"), "--model",
                    str(d / "text.tif")], "not a readable .keras model file"),
    ],
)
def test_user_mistakes_exit_non_zero_with_one_line(make_raster, tmp_path, model_path, make_args,
                                                   message):
    (tmp_path / "text.tif").write_text("this is not a GeoTIFF")
    make_raster("scene4.tif", height=40, width=40, bands=4)
    make_raster("scene3.tif", height=40, width=40, bands=3)
    args = make_args(tmp_path)
    if "--model" not in args:
        args += ["--model", str(model_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]  # the whole story on one line
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.tif").exists()


def test_help_lists_predict_options():
    result = run("predict", "--help")
    for option in ("--model", "--out", "--probabilities", "--overlap", "--batch-size", "--bands",
                   "--device", "--cog", "--threshold", "--overwrite", "--require-crs"):
        assert option in result.output


def test_predict_reads_a_scene_inside_a_zip_through_vsizip(make_raster, tmp_path, model_path):
    import zipfile

    scene = make_raster(height=90, width=110)
    with zipfile.ZipFile(tmp_path / "scenes.zip", "w") as archive:
        archive.write(scene, "inside/scene.tif")
    common = ["--model", str(model_path), "-q"]
    direct = run("predict", str(scene), "--out", str(tmp_path / "a.tif"), *common)
    zipped = run("predict", f"/vsizip/{tmp_path / 'scenes.zip'}/inside/scene.tif",
                 "--out", str(tmp_path / "b.tif"), *common)
    assert direct.exit_code == 0 and zipped.exit_code == 0, zipped.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.transform == b.transform and a.crs == b.crs


def test_a_model_threshold_is_the_default_and_threshold_overrides_it(make_raster, tmp_path,
                                                                      model_path):
    stricter = tmp_path / "strict.keras"
    stricter.write_bytes(model_path.read_bytes())
    replace_settings(stricter, ModelSettings(**{**SETTINGS.to_dict(), "threshold": 0.9}))
    assert read_settings(stricter).threshold == 0.9
    scene = make_raster(height=70, width=80)
    with rasterio.open(scene) as src:
        p = expected_probability(src.read(1))
    outputs = {}
    for name, extra in (("own", []), ("given", ["--threshold", "0.5"])):
        out = tmp_path / f"{name}.tif"
        result = run("predict", str(scene), "--model", str(stricter), "--out", str(out),
                     "--device", "cpu", "-q", *extra)
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as mask:
            outputs[name] = mask.read(1)
    margin = np.abs(p - 0.9) > 1e-4
    np.testing.assert_array_equal((outputs["own"] == 1)[margin], (p >= 0.9)[margin])
    margin = np.abs(p - 0.5) > 1e-4
    np.testing.assert_array_equal((outputs["given"] == 1)[margin], (p >= 0.5)[margin])
    assert (outputs["own"] == 1).sum() < (outputs["given"] == 1).sum()


def test_tta_through_the_cli_averages_a_model_that_is_not_flip_equivariant(make_raster,
                                                                           tmp_path):
    model = save_model(look_right_keras_model(SETTINGS), SETTINGS, tmp_path / "right.keras")
    scene = make_raster(height=90, width=70)
    probabilities = {}
    for mode in ("none", "flips"):
        out = tmp_path / f"{mode}.tif"
        result = run("predict", str(scene), "--model", str(model), "--out",
                     str(tmp_path / f"{mode}_mask.tif"), "--probabilities", str(out),
                     "--probability-dtype", "float32", "--device", "cpu", "--window", "128",
                     "-q", "--tta", mode)
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as src:
            probabilities[mode] = src.read()
    # the library's flips around the same model, on the same windows
    flips = TTAPredictor(load_predictor(model, device="cpu"), "flips")
    library = predict_scene(scene, tmp_path / "lib.tif", flips, SETTINGS,
                            PredictOptions(probability_dtype="float32", window=128),
                            probabilities_path=tmp_path / "lib_p.tif")
    with rasterio.open(library.probabilities_path) as src:
        np.testing.assert_allclose(probabilities["flips"], src.read(), atol=1e-6)
    # looking right, then left and right in turn: random neighbours move p by ~0.2 on average
    assert np.mean(np.abs(probabilities["flips"] - probabilities["none"])) > 0.1
    bad = CliRunner().invoke(cli, ["predict", str(scene), "--out", str(tmp_path / "x.tif"),
                                   "--tta", "d8"])
    assert bad.exit_code == 2 and "'d8' is not one of 'none', 'flips', 'd4'" in bad.output


@pytest.mark.parametrize("existing", ["mask.tif", "prob.tif", "slides.gpkg", "preview.png"])
def test_an_existing_output_is_refused_before_the_model_is_named(make_raster, tmp_path,
                                                                  model_path, existing):
    scene = make_raster(height=40, width=40)
    (tmp_path / existing).write_bytes(b"a user's file")
    result = run("predict", str(scene), "--model", str(model_path),
                 "--out", str(tmp_path / "mask.tif"), "--probabilities", str(tmp_path / "prob.tif"),
                 "--vector", str(tmp_path / "slides.gpkg"),
                 "--preview", str(tmp_path / "preview.png"))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: {tmp_path / existing}: exists already; pass --overwrite to replace it"]
    assert (tmp_path / existing).read_bytes() == b"a user's file"


def test_uncertainty_through_the_cli_with_tta_reaches_the_polygons(make_raster, tmp_path):
    """--uncertainty with --tta: the spread raster, its style, and each polygon's mean spread
    (tta_spread), which geoseg vectorize --uncertainty gives again; refused with --out-dir."""
    import geopandas as gpd

    model = save_model(look_right_keras_model(SETTINGS), SETTINGS, tmp_path / "right.keras")
    scene = make_raster(height=90, width=70)
    result = run("predict", str(scene), "--model", str(model), "--out",
                 str(tmp_path / "mask.tif"), "--uncertainty", str(tmp_path / "unc.tif"),
                 "--vector", str(tmp_path / "slides.gpkg"), "--device", "cpu", "-q",
                 "--tta", "flips")
    assert result.exit_code == 0, result.output
    assert "unc.tif: uncertainty (tta spread)" in result.output
    assert (tmp_path / "unc.qml").exists()
    with rasterio.open(tmp_path / "unc.tif") as unc:
        assert unc.tags()["GEOSEG_UNCERTAINTY"] == "tta_spread"
        assert 0 < unc.read(1, masked=True).mean() * unc.scales[0] <= 0.5
    polygons = gpd.read_file(tmp_path / "slides.gpkg", layer="scene")
    assert len(polygons) and polygons["tta_spread"].notna().all()
    assert polygons["tta_spread"].mean() > 0.05  # looking right, then left: they disagree
    again = run("vectorize", str(tmp_path / "mask.tif"), "--uncertainty",
                str(tmp_path / "unc.tif"), "--out", str(tmp_path / "again.gpkg"), "-q")
    assert again.exit_code == 0, again.output
    spread_again = gpd.read_file(tmp_path / "again.gpkg", layer="mask")["tta_spread"]
    assert spread_again.tolist() == pytest.approx(polygons["tta_spread"].tolist())
    many = CliRunner().invoke(cli, ["predict", str(scene), "--out-dir", str(tmp_path / "d"),
                                    "--uncertainty", str(tmp_path / "u2.tif")])
    assert many.exit_code == 2 and "--uncertainty names one scene's output" in many.output
