"""Many scenes: naming, the per-process model cache, and a two-worker Dask run on loopback
that must write byte-identical masks to the serial run."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geoseg.model.flexunet
from geoseg.cli import cli
from geoseg.errors import InputError, OutputExistsError, ParameterError
from geoseg.model.flexunet import build_flexunet, save_model
from geoseg.model.predictor import ModelSpec
from geoseg.prediction import distributed
from geoseg.prediction.distributed import (
    Executor,
    expand_scenes,
    plan_jobs,
    predict_job,
    predict_scenes,
)
from geoseg.prediction.jobs import SceneJob
from geoseg.prediction.predict import PredictOptions
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16, base_filters=4,
                         base_kernels=3)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = build_flexunet(SETTINGS)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return save_model(model, SETTINGS, path)


@pytest.fixture
def scenes(make_raster):
    data = np.random.default_rng(5).integers(1, 255, (3, 90, 120), dtype=np.uint8)
    data[:, :40, :50] = 0  # a nodata corner
    return [
        make_raster("north.tif", height=150, width=170, seed=1),
        make_raster("south.tif", height=130, width=200, seed=2),
        make_raster("east.tif", data=data, nodata=0),
    ]


def test_scenes_from_paths_globs_and_lists(tmp_path, scenes):
    listing = tmp_path / "list.txt"
    listing.write_text("# scenes of the day\nsouth.tif\n\n*.tif\n")
    found = expand_scenes([str(scenes[1]), f"@{listing}"])
    north, south, east = map(str, scenes)
    assert found == [south, east, north]  # in order given, globs sorted, each scene once
    assert expand_scenes(["/vsizip/archive.zip/scene.tif"]) == ["/vsizip/archive.zip/scene.tif"]
    with pytest.raises(InputError, match="matches no file"):
        expand_scenes([str(tmp_path / "*.jp2")])
    with pytest.raises(InputError, match="does not exist"):
        expand_scenes([str(tmp_path / "gone.tif")])
    with pytest.raises(InputError, match="scene list cannot be read"):
        expand_scenes([f"@{tmp_path / 'nolist.txt'}"])


def test_outputs_are_named_after_the_scene_and_checked_first(tmp_path, scenes):
    out = tmp_path / "out"
    out.mkdir()
    jobs = plan_jobs([str(p) for p in scenes], out, probabilities=True, vector=True)
    assert [j.mask.name for j in jobs] == ["north_mask.tif", "south_mask.tif", "east_mask.tif"]
    assert jobs[0].probabilities == out / "north_probabilities.tif"
    assert jobs[0].vector == out / "north_landslides.gpkg"
    (out / "south_mask.tif").write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        plan_jobs([str(p) for p in scenes], out)
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "north.tif"
    twin.write_bytes(scenes[0].read_bytes())
    with pytest.raises(InputError, match="would both write north_mask.tif"):
        plan_jobs([str(scenes[0]), str(twin)], tmp_path / "elsewhere")


def test_a_process_loads_the_model_once_and_a_bad_scene_does_not_stop_the_others(
    tmp_path, scenes, model_path, make_raster, monkeypatch
):
    loads = []
    distributed._PREDICTORS.clear()
    original = geoseg.model.flexunet.load_model
    monkeypatch.setattr(geoseg.model.flexunet, "load_model",
                        lambda p: loads.append(p) or original(p))
    bad = make_raster("four.tif", height=70, width=70, bands=4)
    jobs = plan_jobs([str(scenes[0]), str(bad), str(scenes[1])], tmp_path)
    model = ModelSpec(model_path, batch_size=3, device="cpu", backend="keras")
    outcomes = predict_scenes(jobs, model, PredictOptions())
    assert len(loads) == 1
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert "has 4 bands but the model takes 3" in outcomes[1].error
    assert outcomes[0].result.mask_path == jobs[0].mask and jobs[0].mask.exists()
    assert not jobs[1].mask.exists()
    assert outcomes[0].worker.endswith(f":{os.getpid()}")
    again = predict_job(jobs[0], model, PredictOptions(overwrite=True))
    assert again.error is None and len(loads) == 1  # same process, same model: cached


def test_the_model_loaded_early_is_the_one_the_jobs_of_this_process_run(model_path,
                                                                         monkeypatch):
    """``geoseg predict`` starts loading the model before the run (process_predictor), named as
    the user gave it; the run in this process must find that predictor, not load another."""
    monkeypatch.chdir(model_path.parent)
    relative = ModelSpec(Path(model_path.name), device="cpu", backend="keras")
    early = distributed.process_predictor(relative)
    assert distributed.process_predictor(replace(relative, path=model_path)) is early


def test_serial_jobs_keep_their_paths_and_a_failure_is_an_outcome(tmp_path, make_raster,
                                                                   model_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_raster("four.tif", height=70, width=70, bands=4)
    model = ModelSpec(model_path, device="cpu", backend="keras")
    done, = predict_scenes([SceneJob("four.tif", Path("four_mask.tif"))], model,
                           PredictOptions(), Executor())
    assert done.result is None and done.job.mask == Path("four_mask.tif")
    assert done.error is not None and "has 4 bands but the model takes 3" in done.error
    with pytest.raises(ParameterError, match="either workers or scheduler"):
        Executor(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ParameterError, match="band_tile_rows must be >= 1"):
        Executor(workers=2, band_tile_rows=0)


def test_two_dask_workers_write_the_same_bytes_as_one_process(tmp_path, scenes, model_path):
    serial, spread = tmp_path / "serial", tmp_path / "dask"
    serial.mkdir()
    spread.mkdir()
    runner = CliRunner()
    base = ["predict", *map(str, scenes), "--model", str(model_path), "--batch-size", "3",
            "--device", "cpu", "--also", "probabilities", "-q"]
    result = runner.invoke(cli, [*base, "--out-dir", str(serial)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, [*base, "--out-dir", str(spread), "--workers", "2"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("windows predicted") == 3
    pids = {line.rsplit(":", 1)[1].rstrip("]") for line in result.output.splitlines()
            if "[worker " in line}
    assert pids and str(os.getpid()) not in pids  # run by worker processes, not this one
    names = sorted(p.name for p in serial.iterdir())
    assert names == sorted(p.name for p in spread.iterdir())
    assert len(names) == 9  # a mask, its QGIS style and probabilities per scene, nothing else
    for name in names:
        assert (serial / name).read_bytes() == (spread / name).read_bytes(), name
    with rasterio.open(spread / "east_mask.tif") as mask, rasterio.open(scenes[2]) as src:
        assert mask.crs == src.crs and mask.transform == src.transform
        assert (mask.read(1)[:40, :50] == 255).all()  # nodata corner stays nodata


def test_cli_refuses_mixed_single_and_many_scene_options(tmp_path, scenes, model_path):
    runner = CliRunner()
    common = ["--model", str(model_path)]
    cases = [
        ([str(scenes[0]), str(scenes[1]), "--out", str(tmp_path / "m.tif")], "--out-dir"),
        ([str(scenes[0])], "give --out for one scene or --out-dir"),
        ([str(scenes[0]), "--out-dir", str(tmp_path), "--vector", "v.gpkg"], "--also vector"),
        ([str(scenes[0]), "--out", str(tmp_path / "m.tif"), "--band-tile-rows", "2"],
         "--band-tile-rows applies with --workers or --dask-scheduler"),
        ([str(scenes[0]), "--out-dir", str(tmp_path), "--workers", "2", "--dask-scheduler",
          "tcp://127.0.0.1:1"], "either --workers or --dask-scheduler"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["predict", *args, *common])
        assert result.exit_code != 0
        assert message in result.output, (args, result.output)
    assert not list(tmp_path.glob("*_mask.tif")) and not (tmp_path / "m.tif").exists()
