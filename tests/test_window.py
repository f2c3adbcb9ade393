"""Inference windows larger than the model's tile: same grid rules, same outputs' geometry,
fewer pixels predicted twice, on Keras and OpenVINO, by default as large as the model's width
allows; a clear refusal elsewhere."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import PixelwisePredictor
from hypothesis import given
from hypothesis import strategies as st

from geoseg.cli import cli
from geoseg.errors import ParameterError
from geoseg.model.flexunet import build_flexunet, resized_flexunet, save_model
from geoseg.model.predictor import load_predictor
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.raster.tiling import (
    AUTO_WINDOW,
    AUTO_WINDOW_FILTERS,
    TileGrid,
    axis_offsets,
    inference_window,
    resolve_window,
)
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, base_filters=4, num_layers=3, overlap=16)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("window") / "m.keras"
    return save_model(build_flexunet(SETTINGS), SETTINGS, path)


def test_a_window_keeps_the_overlap_and_fits_small_scenes(make_raster):
    with rasterio.open(make_raster(height=300, width=500)) as src:
        grid = TileGrid.for_model(src, SETTINGS, window=128)
        # 128-pixel windows need 3 rows and 5 columns; 116 pixels (a multiple of 4) cover it
        assert (grid.tile_size, grid.overlap, grid.shape) == (116, 16, (3, 5))
        assert len(grid) < len(TileGrid.for_model(src, SETTINGS))
        # one window of 500 pixels would pad 300 rows to 500: two of 300 predict less
        assert TileGrid.for_model(src, SETTINGS, window=1024).tile_size == 300
        for bad in (102, 32):  # not a multiple of 4; smaller than the model's tile
            with pytest.raises(ParameterError, match="window must be a multiple of 4"):
                TileGrid.for_model(src, SETTINGS, window=bad)


def test_a_narrow_scene_gets_windows_as_wide_as_itself(make_raster):
    with rasterio.open(make_raster(height=1000, width=100)) as src:
        grid = TileGrid.for_model(src, SETTINGS, window=1024)
        # one 1000-pixel window would pad 100 columns to 1000: 12 windows of 100 predict less
        assert (grid.tile_size, grid.shape) == (100, (12, 1))
        assert TileGrid.for_model(src, SETTINGS, window=128).tile_size == 100  # also wider


@given(height=st.integers(1, 5000), width=st.integers(1, 5000),
       window=st.sampled_from([64, 128, 256, 1024, 2048]))
def test_fitted_windows_are_valid_split_long_scenes_and_predict_no_more_than_needed(
        height, width, window):
    overlap, step = SETTINGS.overlap, SETTINGS.size_step
    side = inference_window(window, SETTINGS, height, width, overlap)
    assert SETTINGS.image_size <= side <= window and side % step == 0

    def pixels(size: int) -> int:
        return (len(axis_offsets(height, size, overlap))
                * len(axis_offsets(width, size, overlap)) * size * size)

    longest = max(height, width)
    if longest > 2 * SETTINGS.image_size:
        assert len(axis_offsets(longest, side, overlap)) >= 2
        # the window asked for, or the largest that still makes two along the longer side
        two = -(-(-(-(longest - overlap) // 2) + overlap) // step) * step
        window = min(window, two)
    assert pixels(side) <= pixels(window)  # fitting never costs more than that


def test_a_per_pixel_model_gives_the_same_outputs_in_any_window(make_raster, tmp_path):
    scene = make_raster(height=300, width=230, nodata=0)
    tiles = predict_scene(scene, tmp_path / "t.tif", PixelwisePredictor(), SETTINGS,
                          probabilities_path=tmp_path / "tp.tif")
    windows = predict_scene(scene, tmp_path / "w.tif", PixelwisePredictor(), SETTINGS,
                            PredictOptions(window=128), probabilities_path=tmp_path / "wp.tif")
    assert windows.tiles_predicted < tiles.tiles_predicted
    for name in ("t", "tp"):
        with rasterio.open(tmp_path / f"{name}.tif") as a, \
                rasterio.open(tmp_path / f"{name.replace('t', 'w', 1)}.tif") as b:
            assert (a.transform, a.crs, a.shape) == (b.transform, b.crs, b.shape)
            assert np.array_equal(a.read(), b.read())


def test_a_resized_flexunet_has_the_same_weights(model_file):
    from geoseg.model.flexunet import load_model

    model, settings = load_model(model_file)
    same = resized_flexunet(model, settings, 64)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    assert np.array_equal(model.predict(batch, verbose=0), same.predict(batch, verbose=0))
    assert resized_flexunet(model, settings, 128).output_shape == (None, 128, 128, 2)


WINDOW_BACKENDS = [
    "keras",
    pytest.param("openvino", marks=pytest.mark.skipif(
        importlib.util.find_spec("openvino") is None, reason="openvino is not installed")),
]


@pytest.mark.parametrize("backend", WINDOW_BACKENDS)
def test_windows_run_on_keras_and_openvino_close_to_tiles(model_file, make_raster, tmp_path,
                                                         backend):
    scene = make_raster(height=260, width=300)
    predictor = load_predictor(model_file, batch_size=2, backend=backend)
    options = PredictOptions(probability_dtype="float32", window="tile")
    tiles = predict_scene(scene, tmp_path / "t.tif", predictor, predictor.settings, options,
                          probabilities_path=tmp_path / "tp.tif")
    windows = predict_scene(scene, tmp_path / "w.tif", predictor, predictor.settings,
                            PredictOptions(probability_dtype="float32", window=128),
                            probabilities_path=tmp_path / "wp.tif")
    assert windows.tiles_predicted < tiles.tiles_predicted
    with rasterio.open(tmp_path / "tp.tif") as a, rasterio.open(tmp_path / "wp.tif") as b:
        assert (a.transform, a.shape) == (b.transform, b.shape)
        difference = np.abs(a.read() - b.read())
    # The model sees other borders in a larger window: close, not equal.
    assert float(np.median(difference)) < 0.05


def test_the_cli_takes_a_window_and_refuses_a_bad_one_in_one_line(model_file, make_raster,
                                                                    tmp_path):
    scene = make_raster(height=200, width=200)
    runner = CliRunner()
    good = runner.invoke(cli, ["predict", str(scene), "--model", str(model_file), "--out",
                               str(tmp_path / "m.tif"), "--window", "128", "-q"])
    assert good.exit_code == 0, good.output
    bad = runner.invoke(cli, ["predict", str(scene), "--model", str(model_file), "--out",
                              str(tmp_path / "b.tif"), "--window", "130", "-q"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "--window must be a multiple of 4" in bad.output
    assert not (tmp_path / "b.tif").exists()
    onnx = runner.invoke(cli, ["predict", str(scene), "--model", str(model_file), "--out",
                               str(tmp_path / "o.tif"), "--window", "128", "--backend", "onnx",
                               "-q"])
    if importlib.util.find_spec("onnxruntime") is not None:
        assert onnx.exit_code == 1 and "runs 64-pixel tiles only" in onnx.output
        assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("backend", WINDOW_BACKENDS)
def test_a_batch_holds_as_many_windows_as_tiles_pixels(model_file, backend):
    predictor = load_predictor(model_file, batch_size=4, backend=backend).ready()
    calls: list[tuple[int, ...]] = []
    run = predictor._run  # type: ignore[attr-defined]
    predictor._run = lambda chunk: calls.append(chunk.shape) or run(chunk)  # type: ignore[attr-defined]
    windows = np.random.default_rng(1).uniform(0, 255, (3, 128, 128, 3)).astype(np.float32)
    assert predictor(windows).shape == (3, 128, 128, 2)
    assert calls == [(1, 128, 128, 3)] * 3  # one 128-pixel window holds four 64-pixel tiles
    calls.clear()
    assert predictor(windows[:, :96, :96]).shape == (3, 96, 96, 2)
    assert calls == [(1, 96, 96, 3)] * 3  # 9216 pixels: one window, 16384 / 9216 rounded down
    calls.clear()
    assert predictor(windows[:, :64, :64].repeat(2, axis=0)).shape == (6, 64, 64, 2)
    assert calls == [(4, 64, 64, 3)] * 2  # tiles: 4 a call, the last call padded


@pytest.mark.parametrize(("backend", "window"), [
    ("keras", 2048),  # fitted to the strip: ten windows of 700
    pytest.param("openvino", 2048, marks=pytest.mark.skipif(
        importlib.util.find_spec("openvino") is None, reason="openvino is not installed")),
    pytest.param("onnx", 64, marks=pytest.mark.skipif(  # fixed-size conversions: the tile
        importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")),
])
def test_the_default_window_follows_the_model_width_whatever_the_batch(
        model_file, make_raster, tmp_path, backend, window):
    assert resolve_window("auto", SETTINGS, backend != "onnx") == (
        window if window > SETTINGS.image_size else None)
    scene = make_raster(height=700, width=6200)
    digests = set()
    for batch_size in (1, 256):  # a window a call; two (256 tiles' pixels hold two of 700)
        predictor = load_predictor(model_file, batch_size=batch_size, backend=backend)
        mask = tmp_path / f"auto{batch_size}.tif"
        result = predict_scene(scene, mask, predictor, SETTINGS)
        with rasterio.open(scene) as src:
            grid = TileGrid.for_model(src, SETTINGS, window=window)
            assert grid.tile_size == (700 if window > 64 else 64)
            assert result.tiles_predicted == len(grid)
        digests.add(hashlib.sha256(mask.read_bytes()).hexdigest())
    assert len(digests) == 1  # the batch size changes the speed and memory, not the mask
    pixelwise = predict_scene(scene, tmp_path / "pixelwise.tif", PixelwisePredictor(), SETTINGS)
    with rasterio.open(scene) as src:  # a predictor that does not say it takes windows: tiles
        assert pixelwise.tiles_predicted == len(TileGrid.for_model(src, SETTINGS))


def test_the_cli_window_choices(model_file, make_raster, tmp_path):
    scene = make_raster(height=200, width=200)
    runner = CliRunner()
    counts = {}
    for choice in ("auto", "tile"):
        result = runner.invoke(cli, ["predict", str(scene), "--model", str(model_file), "--out",
                                     str(tmp_path / f"{choice}.tif"), "--window", choice])
        assert result.exit_code == 0, result.output
        counts[choice] = int(result.output.split(" of ")[1].split()[0])
    # a scene longer than two tiles gets two windows along it: 2 x 2 of 108 pixels; 4 x 4 tiles
    assert counts == {"auto": 4, "tile": 16}
    bad = runner.invoke(cli, ["predict", str(scene), "--model", str(model_file), "--out",
                              str(tmp_path / "b.tif"), "--window", "big"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "'big' is not auto, tile or a number of pixels" in bad.output


@given(filters=st.integers(1, 512), layers=st.integers(1, 7))
def test_the_automatic_window_is_the_largest_within_the_budget(filters, layers):
    settings = ModelSettings(image_size=2 ** (layers - 1) * 4, base_filters=filters,
                             num_layers=layers)
    step, budget = settings.size_step, AUTO_WINDOW**2 * AUTO_WINDOW_FILTERS
    counted = max(filters, AUTO_WINDOW_FILTERS)  # narrower models get the 8-filter window
    side = resolve_window("auto", settings, True)
    if side is None:  # the tile is as large
        assert (settings.image_size + step) ** 2 * counted > budget
    else:
        assert side % step == 0 and side > settings.image_size
        assert side**2 * counted <= budget < (side + step) ** 2 * counted
