"""One scene split into bands of rows: the same bytes as one run, whatever order the bands run
in, whoever runs them, and after a band is lost half-way; on a two-worker Dask cluster too."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import write_raster

from geoseg.cli import cli
from geoseg.errors import InputError
from geoseg.model.flexunet import save_model
from geoseg.model.predictor import ModelPredictor, ModelSpec
from geoseg.prediction.distributed import Executor, band_counts, local_cluster, predict_scenes
from geoseg.prediction.jobs import SceneJob
from geoseg.prediction.predict import BandedPrediction, PredictOptions, plan_run, predict_scene
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)
TILES = PredictOptions(window="tile")
"""The model's 64-pixel tiles (the band geometry below is counted in them), not the larger
windows ``auto`` gives the keras and openvino backends."""
BLOB_ROWS = (256, 512, 770)
"""Rows the bright blobs (landslides to the model) are centred on: the band boundaries."""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def smoothing_keras_model(settings: ModelSettings):  # type: ignore[no-untyped-def]
    """p(landslide) = softmax of 0.05 * (9x9 mean of band 1 - 128), zero-padded at tile edges.

    Bright blobs become landslides; near a tile's edges the zero padding darkens the mean, so
    neighbouring tiles disagree in their overlap and the blend decides every bit there.
    """
    import keras

    inputs = keras.Input((settings.image_size, settings.image_size, settings.image_channels))
    conv = keras.layers.Conv2D(2, 9, padding="same", activation="softmax", name="probabilities")
    outputs = conv(inputs)
    kernel = np.zeros((9, 9, settings.image_channels, 2), dtype="float32")
    kernel[:, :, 0, 1] = 0.05 / 81
    conv.set_weights([kernel, np.array([0.0, -0.05 * 128], dtype="float32")])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    return save_model(smoothing_keras_model(SETTINGS), SETTINGS, folder / "smooth.keras")


@pytest.fixture
def tall_scene(tmp_path) -> Path:
    """900 x 230 pixels: 19 tile rows of 64-pixel tiles; blobs across rows 256, 512 and 770,
    a nodata hole."""
    rng = np.random.default_rng(7)
    data = rng.integers(20, 120, (3, 900, 230), dtype=np.uint8)
    rows, cols = np.mgrid[:900, :230]
    for centre in BLOB_ROWS:
        blob = (rows - centre) ** 2 / 45**2 + (cols - 60 - centre % 100) ** 2 / 35**2 < 1
        data[0][blob] = 250
    data[:, 330:420, 150:] = 0
    return write_raster(tmp_path / "tall.tif", data, nodata=0)


def test_bands_in_any_order_give_the_bytes_of_one_run(tall_scene, tmp_path, model_path):
    spec = ModelSpec(model_path, batch_size=3, device="cpu")
    predictor = ModelPredictor(spec)
    options = PredictOptions(probability_dtype="float32", cog=True, window="tile")
    reference = predict_scene(tall_scene, tmp_path / "one.tif", predictor, SETTINGS, options,
                              probabilities_path=tmp_path / "one_prob.tif",
                              model_file=model_path)
    plan = BandedPrediction.plan(tall_scene, tmp_path / "bands.tif", plan_run(options, SETTINGS),
                                 probabilities_path=tmp_path / "bands_prob.tif",
                                 model_file=model_path, row_bands=4)
    assert plan.row_bands == ((0, 256), (256, 512), (512, 768), (768, 900))
    results = sorted((plan.predict_band(i, predictor) for i in (2, 0, 3, 1)),
                     key=lambda r: r.index)
    # the tile rows across the boundaries were handed over, in whole tiles, not predicted twice
    exchanged = sorted(p.name for p in (tmp_path / ".bands.tif.resume").glob("*tile_*"))
    assert exchanged == [f"tile_{row:06d}_{col:06d}.npy" for row in (5, 10, 15) for col in range(5)]
    assembled = plan.assemble(results)
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")
    assert digest(tmp_path / "bands_prob.tif") == digest(tmp_path / "one_prob.tif")
    assert assembled.tiles_predicted == reference.tiles_predicted  # shared rows predicted once
    assert assembled.foreground_pixels == reference.foreground_pixels
    with rasterio.open(tmp_path / "bands.tif") as mask:
        landslides = mask.read(1) == 1
    for row in BLOB_ROWS[:2]:  # landslides run across the band boundaries
        assert (landslides[row - 1] & landslides[row]).any()
    assert not (tmp_path / ".bands.tif.resume").exists()  # the work folder is gone


def test_bands_hand_over_the_shared_rows_after_test_time_augmentation(tall_scene, tmp_path,
                                                                      model_path):
    predictor = ModelPredictor(ModelSpec(model_path, batch_size=4, device="cpu"))
    options = PredictOptions(tta="flips", probability_dtype="float32", window="tile")
    reference = predict_scene(tall_scene, tmp_path / "one.tif", predictor, SETTINGS, options,
                              probabilities_path=tmp_path / "one_prob.tif",
                              uncertainty_path=tmp_path / "one_unc.tif")
    plan = BandedPrediction.plan(tall_scene, tmp_path / "bands.tif", plan_run(options, SETTINGS),
                                 probabilities_path=tmp_path / "bands_prob.tif", row_bands=2,
                                 uncertainty_path=tmp_path / "bands_unc.tif")
    results = [plan.predict_band(i, predictor) for i in (0, 1)]  # 0 predicts half ahead
    assert sum(r.tiles_predicted for r in results) == reference.tiles_predicted
    plan.assemble(results)
    assert digest(tmp_path / "bands_prob.tif") == digest(tmp_path / "one_prob.tif")
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")
    # the spread across TTA travels with the shared tiles and the saved rows
    assert digest(tmp_path / "bands_unc.tif") == digest(tmp_path / "one_unc.tif")


class LostAfter:
    """The model, until its n-th call: then the process is gone (Ctrl-C, a lost machine)."""

    def __init__(self, predictor: ModelPredictor, calls: int):
        self.predictor, self.batch_size, self.calls = predictor, predictor.batch_size, calls

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        return self.predictor(batch)


def test_a_band_lost_half_way_continues_below_its_saved_rows(tall_scene, tmp_path,
                                                             model_path):
    predictor = ModelPredictor(ModelSpec(model_path, batch_size=3, device="cpu"))
    predict_scene(tall_scene, tmp_path / "one.tif", predictor, SETTINGS, TILES)
    plan = BandedPrediction.plan(tall_scene, tmp_path / "bands.tif", plan_run(TILES, SETTINGS),
                                 row_bands=2)
    assert plan.row_bands == ((0, 512), (512, 900))
    first = plan.predict_band(0, predictor)
    with pytest.raises(KeyboardInterrupt):
        plan.predict_band(1, LostAfter(predictor, 13))  # after 36 tiles: one block row saved
    # the run goes on elsewhere, and so does the band: from the first row not saved
    resumed = BandedPrediction.plan(tall_scene, tmp_path / "bands.tif",
                                    plan_run(replace(TILES, resume=True), SETTINGS), row_bands=2)
    second = resumed.predict_band(1, predictor)
    assert second.rows_resumed == 256
    assert resumed.predict_band(0, predictor).rows_resumed == 512  # nothing left to predict
    resumed.assemble([first, second])
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")


def test_a_single_process_run_continues_in_bands(tall_scene, tmp_path, model_path,
                                                 monkeypatch):
    predictor = ModelPredictor(ModelSpec(model_path, batch_size=3, device="cpu"))
    predict_scene(tall_scene, tmp_path / "one.tif", predictor, SETTINGS, TILES)
    monkeypatch.chdir(tall_scene.parent)
    with pytest.raises(KeyboardInterrupt):  # interrupted below row 512
        predict_scene(tall_scene.name, "bands.tif", LostAfter(predictor, 20), SETTINGS, TILES)
    plan = BandedPrediction.plan(str(tall_scene), tmp_path / "bands.tif",
                                 plan_run(replace(TILES, resume=True), SETTINGS), row_bands=2)
    results = [plan.predict_band(i, predictor) for i in range(2)]
    assert [r.rows_resumed for r in results] == [512, 0]
    plan.assemble(results)
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")


def test_bands_refuse_another_runs_work_folder_and_an_empty_scene(tall_scene, tmp_path,
                                                                  model_path, make_raster):
    plan = BandedPrediction.plan(tall_scene, tmp_path / "bands.tif", plan_run(None, SETTINGS),
                                 row_bands=2)
    with pytest.raises(InputError, match="another scene, model or options"):
        BandedPrediction.plan(tall_scene, tmp_path / "bands.tif",
                              plan_run(PredictOptions(threshold=0.3, resume=True), SETTINGS),
                              row_bands=2)
    BandedPrediction.plan(tall_scene, tmp_path / "bands.tif", plan_run(None, SETTINGS),
                          row_bands=3)  # starts over
    with pytest.raises(InputError, match="rows from 0 on were not predicted"):
        plan.assemble([])
    empty = make_raster("empty.tif", data=np.zeros((3, 600, 100), dtype=np.uint8), nodata=0)
    plan = BandedPrediction.plan(empty, tmp_path / "empty_mask.tif", plan_run(None, SETTINGS),
                                 row_bands=2)
    predictor = ModelPredictor(ModelSpec(model_path, device="cpu"))
    results = [plan.predict_band(i, predictor) for i in range(len(plan.row_bands))]
    with pytest.raises(InputError, match="every pixel is nodata"):
        plan.assemble(results)
    assert not (tmp_path / ".empty_mask.tif.resume").exists()


def test_one_huge_scene_among_small_ones_is_split_by_its_share(make_raster):
    small = [str(make_raster(f"small{i}.tif", height=100, width=100)) for i in range(6)]
    huge = str(make_raster("huge.tif", height=2400, width=600))  # 50 tile rows, 650 tiles
    plan = plan_run(PredictOptions(), SETTINGS)
    counts = band_counts([*small, huge], plan, slots=4)
    assert counts == [1] * 6 + [4]  # 6 x 4 tiles and 650 tiles over 4 workers
    assert band_counts([*small, huge], plan, slots=1) == [1] * 7
    assert band_counts([huge], plan, slots=32) == [25]  # >= 2 tile rows
    assert band_counts([small[0], huge], plan, slots=2, band_tile_rows=10) == [1, 5]
    assert band_counts(["missing.tif"], plan, slots=4) == [1]


def kill_first_band_worker(marker: Path):  # type: ignore[no-untyped-def]
    """A Dask worker plugin: the first band to save its second block row kills its worker
    process (a machine lost mid-task); the ``marker`` file makes it happen once in the cluster.

    Defined in a function so that Dask stays optional and cloudpickle ships the class by value.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class KillFirstBandWorker(WorkerPlugin):
        name = "kill-first-band-worker"

        def setup(self, worker: object) -> None:
            from geoseg.raster.journal import PredictionJournal

            original = PredictionJournal.save
            saved: list[int] = []

            def save(journal: PredictionJournal, row_off: int, *arrays: np.ndarray | None
                     ) -> None:
                original(journal, row_off, *arrays)
                saved.append(row_off)
                if len(saved) == 2 and not marker.exists():
                    marker.write_text(str(os.getpid()))
                    os._exit(1)

            PredictionJournal.save = save  # type: ignore[method-assign]

    return KillFirstBandWorker()


def test_two_dask_workers_split_a_scene_into_bands_with_the_bytes_of_one_run(
    tall_scene, tmp_path, model_path, make_raster
):
    """The CI byte-identity test of a scene split over workers: a band's worker is killed
    half-way and Dask runs the band again; a small scene of the same run stays one task."""
    distributed = pytest.importorskip("distributed")
    dask = pytest.importorskip("dask")

    small = make_raster("small.tif", height=150, width=170, seed=2)
    spec = ModelSpec(model_path, batch_size=3, device="cpu")
    options = PredictOptions(probability_dtype="float32", window=128)

    def jobs(folder: Path) -> list[SceneJob]:
        folder.mkdir()
        return [SceneJob(str(scene), folder / f"{scene.stem}.tif", folder / f"{scene.stem}_p.tif",
                         folder / f"{scene.stem}_v.geojson") for scene in (tall_scene, small)]

    serial = predict_scenes(jobs(tmp_path / "serial"), spec, options)
    assert all(outcome.error is None for outcome in serial)
    base = ["predict", str(tall_scene), "--model", str(model_path), "--batch-size", "3",
            "--device", "cpu", "--window", "128", "--cog", "-q"]
    runner = CliRunner()
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "serial" / "cog.tif"),
                                 "--vector", str(tmp_path / "serial" / "cog_polygons.geojson")])
    assert result.exit_code == 0, result.output

    marker = tmp_path / "killed"
    with local_cluster(2, threads=1, env={"TF_CPP_MIN_LOG_LEVEL": "3"}) as cluster, \
            distributed.Client(cluster) as client:
        quiet = client.run(dask.config.get, "distributed.worker.profile.enabled")
        assert list(quiet.values()) == [False, False]  # no stack sampling on the workers
        client.register_plugin(kill_first_band_worker(marker))
        spread = predict_scenes(jobs(tmp_path / "dask"), spec, options,
                                Executor(scheduler=cluster.scheduler_address, band_tile_rows=2))
        assert marker.exists()  # a worker was lost in the middle of a band
        result = runner.invoke(cli, [*base, "--out", str(tmp_path / "dask" / "cog.tif"),
                                     "--vector", str(tmp_path / "dask" / "cog_polygons.geojson"),
                                     "--dask-scheduler", cluster.scheduler_address,
                                     "--band-tile-rows", "2"])
        assert result.exit_code == 0, result.output
    assert "4 bands on workers" in result.output
    tall, little = spread
    assert tall.error is None and little.error is None
    assert serial[0].result.tiles_predicted == 8 * 2  # 128-pixel windows, not 19 x 5 tiles
    assert [band.result.rows for band in tall.bands] == [(0, 256), (256, 512), (512, 768),
                                                         (768, 900)]
    assert str(os.getpid()) not in {band.worker.rsplit(":", 1)[1] for band in tall.bands}
    assert not little.bands  # 2 window rows: one task
    assert tall.result.foreground_pixels == serial[0].result.foreground_pixels
    assert tall.vector.count == serial[0].vector.count > 0
    names = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask").iterdir())
    for name in names:  # masks, probabilities, styles, polygons, and the COG run's
        assert digest(tmp_path / "serial" / name) == digest(tmp_path / "dask" / name), name
