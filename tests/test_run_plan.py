"""A run is resolved once into a frozen plan (:func:`geoseg.prediction.predict_options.plan_run`),
which the scene run, the bands of a Dask run and evaluation read: the window among them, resolved
once."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import PixelwisePredictor

import geoseg.prediction.predict_options
from geoseg.errors import ParameterError
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.predict import BandedPrediction, PredictOptions, plan_run, predict_scene
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, base_filters=64, num_layers=3, overlap=16,
                         threshold=0.4, postprocessing={"threshold": 0.4, "min_area_m2": 10.0})


class WindowsPredictor(PixelwisePredictor):
    """A per-pixel model run by a backend that takes windows larger than its tile."""

    takes_windows = True
    runtime = "test float32 cpu"


def test_the_plan_holds_the_run_resolved_for_the_model_and_is_frozen():
    plan = plan_run(PredictOptions(), SETTINGS, WindowsPredictor())
    assert (plan.tile_size, plan.overlap, plan.threshold) == (64, 16, 0.4)
    assert plan.postprocessing == PostProcessing(threshold=0.4, min_area_m2=10.0)
    assert plan.window == 724  # "auto" for 64 base filters (size step 4), taking windows
    assert plan.runtime == "test float32 cpu" and plan.resolution == "native"
    assert plan_run(PredictOptions(), SETTINGS, PixelwisePredictor()).window is None
    given = plan_run(PredictOptions(overlap=8, threshold=0.7, window="tile"), SETTINGS)
    assert (given.overlap, given.threshold, given.window) == (8, 0.7, None)
    assert given.postprocessing == PostProcessing(threshold=0.7, min_area_m2=10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.window = 128  # type: ignore[misc]


def test_every_check_of_the_request_against_the_model_is_made_by_the_plan():
    with pytest.raises(ParameterError, match="overlap must be at least 0 and less than"):
        plan_run(PredictOptions(overlap=64), SETTINGS)
    three = ModelSettings(image_size=64, num_layers=3, num_classes=3)
    with pytest.raises(ParameterError, match="threshold applies to models with one or two"):
        plan_run(PredictOptions(threshold=0.5), three)
    with pytest.raises(ParameterError, match="window must be auto, tile or a number"):
        plan_run(PredictOptions(window="big"), SETTINGS)  # type: ignore[arg-type]


def test_the_window_is_resolved_once_per_run(make_raster, tmp_path, monkeypatch):
    calls = []
    resolve = geoseg.prediction.predict_options.resolve_window

    def counted(*args, **kwargs):
        calls.append(args[0])
        return resolve(*args, **kwargs)

    monkeypatch.setattr(geoseg.prediction.predict_options, "resolve_window", counted)
    scene = make_raster(height=900, width=300)
    result = predict_scene(scene, tmp_path / "m.tif", WindowsPredictor(), SETTINGS)
    assert calls == ["auto"]
    tiles = predict_scene(scene, tmp_path / "t.tif", PixelwisePredictor(), SETTINGS)
    assert result.tiles_total < tiles.tiles_total  # the windows were the resolved ones


def test_the_bands_of_a_run_predict_the_windows_of_its_plan(make_raster, tmp_path):
    scene = make_raster(height=900, width=300)
    whole = predict_scene(scene, tmp_path / "m.tif", WindowsPredictor(), SETTINGS)
    plan = plan_run(PredictOptions(), SETTINGS, WindowsPredictor())
    bands = BandedPrediction.plan(scene, tmp_path / "b.tif", plan, row_bands=2)
    assert bands.tiles_total == whole.tiles_total and bands.options is plan
