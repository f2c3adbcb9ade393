"""Interrupted predictions continue with --resume and end identical to uninterrupted ones."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
import rasterio
from conftest import InterruptedAfter, PixelwisePredictor, signal_once_rows_are_saved
from rasterio.windows import Window

from geoseg.errors import InputError
from geoseg.model.flexunet import build_flexunet, save_model
from geoseg.prediction.predict import BandedPrediction, PredictOptions, plan_run, predict_scene
from geoseg.raster.scene import scene_fingerprint
from geoseg.raster.tiling import TileGrid
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_after_ctrl_c_gives_the_uninterrupted_bytes(make_raster, tmp_path):
    scene = make_raster(height=1400, width=150, nodata=0)
    reference = tmp_path / "ref"
    reference.mkdir()
    full = predict_scene(scene, reference / "mask.tif", PixelwisePredictor(4), SETTINGS,
                         probabilities_path=reference / "prob.tif")
    out = tmp_path / "mask.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, out, InterruptedAfter(12), SETTINGS,
                      probabilities_path=tmp_path / "prob.tif")
    assert not out.exists()
    journal = tmp_path / ".mask.tif.resume"
    assert len(list(journal.glob("rows_*.npz"))) >= 2  # finished block rows were kept
    resumed_predictor = PixelwisePredictor(4)
    resumed = predict_scene(scene, out, resumed_predictor, SETTINGS, PredictOptions(resume=True),
                            probabilities_path=tmp_path / "prob.tif")
    assert resumed.tiles_predicted < full.tiles_predicted  # only the rest was predicted
    assert digest(out) == digest(reference / "mask.tif")
    assert digest(tmp_path / "prob.tif") == digest(reference / "prob.tif")
    assert resumed.foreground_pixels == full.foreground_pixels
    assert not journal.exists()  # done: the journal is gone


def test_resume_with_other_options_is_refused(make_raster, tmp_path):
    scene = make_raster(height=1000, width=100)
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, tmp_path / "mask.tif", InterruptedAfter(8), SETTINGS)
    with pytest.raises(InputError, match="another scene, model or options"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                      PredictOptions(threshold=0.7, resume=True))
    # without --resume the run starts over and succeeds
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS)
    assert not (tmp_path / ".mask.tif.resume").exists()


def test_resume_by_another_runtime_is_refused(make_raster, tmp_path):
    """OpenVINO and Keras give the same masks but not the same probability bits: a run is
    resumed only by the runtime that began it."""
    scene = make_raster(height=1000, width=100)
    interrupted = InterruptedAfter(8)
    interrupted.runtime = "openvino float32 auto"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, tmp_path / "mask.tif", interrupted, SETTINGS)
    keras = PixelwisePredictor()
    keras.runtime = "keras float32 auto"
    with pytest.raises(InputError, match="another scene, model or options"):
        predict_scene(scene, tmp_path / "mask.tif", keras, SETTINGS, PredictOptions(resume=True))
    same = PixelwisePredictor()
    same.runtime = "openvino float32 auto"
    resumed = predict_scene(scene, tmp_path / "mask.tif", same, SETTINGS,
                            PredictOptions(resume=True))
    full = predict_scene(scene, tmp_path / "full.tif", PixelwisePredictor(), SETTINGS)
    assert resumed.tiles_predicted < full.tiles_predicted  # the saved rows were kept


def test_resume_without_an_interrupted_run_starts_from_the_top(make_raster, tmp_path):
    scene = make_raster(height=300, width=100)
    result = predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                           PredictOptions(resume=True))
    assert result.tiles_predicted == result.tiles_total


def test_killed_cli_run_resumes_to_identical_bytes(make_raster, tmp_path):
    """SIGKILL part way through `geoseg predict`, then `--resume`: same bytes as one run."""
    settings = ModelSettings(image_size=128, num_layers=3, base_filters=16, overlap=16)
    model = save_model(build_flexunet(settings), settings, tmp_path / "m.keras")
    scene = make_raster(height=3000, width=256)
    env = {**os.environ, "GEOSEG_TF_LOGS": "0"}
    command = [sys.executable, "-m", "geoseg", "predict", str(scene), "--model", str(model),
               "--device", "cpu", "-q", "--batch-size", "2"]
    subprocess.run([*command, "--out", str(tmp_path / "ref.tif")], check=True, env=env,
                   capture_output=True)
    run = subprocess.Popen([*command, "--out", str(tmp_path / "out.tif")], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / ".out.tif.resume"
    signal_once_rows_are_saved(run, journal, signal.SIGKILL)
    run.wait()
    assert not (tmp_path / "out.tif").exists()
    done = subprocess.run([*command, "--out", str(tmp_path / "out.tif"), "--resume"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert digest(tmp_path / "out.tif") == digest(tmp_path / "ref.tif")
    assert not journal.exists()
    assert not list(tmp_path.glob(".out.tif.partial-*"))  # the killed run's leftovers went too


def test_resume_after_every_row_was_saved_predicts_nothing(make_raster, tmp_path, monkeypatch):
    """Interrupted as the outputs were moved into place: the journal holds every row."""
    from geoseg.prediction import prediction_outputs

    scene = make_raster(height=300, width=150, nodata=0)
    reference = predict_scene(scene, tmp_path / "ref.tif", PixelwisePredictor(4), SETTINGS)
    finish = prediction_outputs._finish_outputs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prediction_outputs, "_finish_outputs", interrupted)
    out = tmp_path / "mask.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, out, PixelwisePredictor(4), SETTINGS)
    monkeypatch.setattr(prediction_outputs, "_finish_outputs", finish)
    resumed = predict_scene(scene, out, PixelwisePredictor(4), SETTINGS,
                            PredictOptions(resume=True))
    assert resumed.tiles_predicted == 0
    assert resumed.foreground_pixels == reference.foreground_pixels
    assert digest(out) == digest(tmp_path / "ref.tif")


def edit_rows_in_place(scene, rows: slice) -> None:
    """Invert ``rows`` of every band with rasterio ``r+``, then put the modification time back."""
    before = os.stat(scene)
    with rasterio.open(scene, "r+") as dst:
        window = Window(0, rows.start, dst.width, rows.stop - rows.start)
        dst.write(255 - dst.read(window=window), window=window)
    os.utime(scene, ns=(before.st_atime_ns, before.st_mtime_ns))


def fingerprint(scene) -> str:
    with rasterio.open(scene) as src:
        return scene_fingerprint(src)


def test_resume_predicts_again_the_rows_of_a_scene_edited_in_place(make_raster, tmp_path):
    """The issue's case: rows inverted with rasterio r+, the modification time kept. The
    fingerprint cannot see it (it samples 3 MB); the windows' digests do."""
    scene = make_raster(height=1400, width=1000, nodata=0)  # 4.2 MB, rows 350-526 not sampled
    out = tmp_path / "mask.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, out, InterruptedAfter(110), SETTINGS)
    saved = sorted(p.name for p in (tmp_path / ".mask.tif.resume").glob("rows_*.npz"))
    assert saved[:3] == [f"rows_{row:010d}.npz" for row in (0, 256, 512)]
    before = fingerprint(scene)
    edit_rows_in_place(scene, slice(360, 500))
    assert fingerprint(scene) == before  # what made --resume reuse the old rows
    resumed = predict_scene(scene, out, PixelwisePredictor(4), SETTINGS,
                            PredictOptions(resume=True))
    fresh = predict_scene(scene, tmp_path / "fresh.tif", PixelwisePredictor(4), SETTINGS)
    assert digest(out) == digest(tmp_path / "fresh.tif")
    assert resumed.foreground_pixels == fresh.foreground_pixels
    # rows 0-255 were kept: no window over them changed
    assert 0 < resumed.tiles_predicted < fresh.tiles_predicted


def test_resume_reuses_every_unchanged_row(make_raster, tmp_path):
    """The digests are checked, not the rows predicted again: a run continues below its last
    saved row, and only the windows reaching below it are predicted."""
    scene = make_raster(height=1000, width=200, nodata=0)
    out = tmp_path / "mask.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, out, InterruptedAfter(12), SETTINGS)
    end = max(int(p.stem.split("_")[1]) for p in (tmp_path / ".mask.tif.resume").glob("rows_*"))
    end += 256
    resumed = predict_scene(scene, out, PixelwisePredictor(4), SETTINGS,
                            PredictOptions(resume=True))
    with rasterio.open(scene) as src:
        grid = TileGrid.for_model(src, SETTINGS)
    below = [tile for tile in grid if tile.window.row_off + tile.window.height > end]
    assert resumed.tiles_predicted == len(below) < len(grid)
    full = predict_scene(scene, tmp_path / "full.tif", PixelwisePredictor(4), SETTINGS)
    assert digest(out) == digest(tmp_path / "full.tif")
    assert full.tiles_predicted == len(grid)


def test_bands_resumed_after_an_edit_predict_the_changed_rows_again(make_raster, tmp_path,
                                                                      monkeypatch):
    """Bands check the saved rows when a run continues (plan with resume), the models' outputs
    saved for shared tiles are not reused."""
    from geoseg.prediction import prediction_run

    monkeypatch.setattr(prediction_run, "scene_fingerprint", lambda src: "unchanged")
    scene = make_raster(height=900, width=150, nodata=0)
    plan = BandedPrediction.plan(scene, tmp_path / "bands.tif", plan_run(None, SETTINGS),
                                 row_bands=2)
    done = [plan.predict_band(i, PixelwisePredictor(4)) for i in range(2)]
    assert list((tmp_path / ".bands.tif.resume").glob("tile_*"))
    edit_rows_in_place(scene, slice(600, 640))  # in the second band
    resumed = BandedPrediction.plan(scene, tmp_path / "bands.tif",
                                    plan_run(PredictOptions(resume=True), SETTINGS), row_bands=2)
    assert not list((tmp_path / ".bands.tif.resume").glob("tile_*"))
    again = [resumed.predict_band(i, PixelwisePredictor(4)) for i in range(2)]
    assert again[0].rows_resumed == done[0].rows[1] - done[0].rows[0]  # all kept
    assert again[1].rows_resumed < again[1].rows[1] - again[1].rows[0]
    resumed.assemble(again)
    predict_scene(scene, tmp_path / "one.tif", PixelwisePredictor(4), SETTINGS)
    assert digest(tmp_path / "bands.tif") == digest(tmp_path / "one.tif")


def test_a_journal_of_another_format_is_not_resumed(make_raster, tmp_path):
    scene = make_raster(height=1000, width=100)
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, tmp_path / "mask.tif", InterruptedAfter(8), SETTINGS)
    record = tmp_path / ".mask.tif.resume" / "fingerprint.json"
    fields = json.loads(record.read_text())
    del fields["journal"]  # as geoseg wrote it before the windows' digests
    record.write_text(json.dumps(fields))
    with pytest.raises(InputError, match="another version of geoseg; run again without resume"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                      PredictOptions(resume=True))
