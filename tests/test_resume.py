"""Interrupted predictions continue with --resume and end identical to uninterrupted ones."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys

import pytest
from conftest import InterruptedAfter, PixelwisePredictor, signal_once_rows_are_saved

from geoseg.errors import InputError
from geoseg.flexunet import build_flexunet, save_model
from geoseg.predict import PredictOptions, predict_scene
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
    from geoseg import predict as predict_module

    scene = make_raster(height=300, width=150, nodata=0)
    reference = predict_scene(scene, tmp_path / "ref.tif", PixelwisePredictor(4), SETTINGS)
    finish = predict_module._finish_outputs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_module, "_finish_outputs", interrupted)
    out = tmp_path / "mask.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, out, PixelwisePredictor(4), SETTINGS)
    monkeypatch.setattr(predict_module, "_finish_outputs", finish)
    resumed = predict_scene(scene, out, PixelwisePredictor(4), SETTINGS,
                            PredictOptions(resume=True))
    assert resumed.tiles_predicted == 0
    assert resumed.foreground_pixels == reference.foreground_pixels
    assert digest(out) == digest(tmp_path / "ref.tif")

