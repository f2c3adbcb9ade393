"""A user's inputs are never written over, resumed runs continue only the same inputs, and
mistakes knowable from the arguments and headers are refused before TensorFlow loads."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import InterruptedAfter, PixelwisePredictor, pixelwise_keras_model

from geoseg.cli import cli
from geoseg.errors import InputError, OutputIsInputError
from geoseg.model.flexunet import save_model
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


def one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_output_equal_to_the_scene_is_refused_even_with_overwrite(make_raster, model, tmp_path,
                                                                   monkeypatch):
    scene = make_raster("s.tif", height=70, width=80)
    before = digest(scene)
    (tmp_path / "link.tif").symlink_to(scene)
    monkeypatch.chdir(tmp_path)
    for out in ("s.tif", "./s.tif", str(scene), "link.tif", "sub/../s.tif"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        for extra in ([], ["--overwrite"]):
            result = CliRunner().invoke(cli, ["predict", "s.tif", "--model", str(model),
                                              "--out", out, "-q", *extra])
            error = one_error_line(result)
            assert "is an input of this run" in error and "--overwrite" not in error, error
    assert digest(scene) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.tif", "s.tif", "sub"]


@pytest.mark.parametrize("target", ["model", "probabilities", "vector", "preview"])
def test_no_output_may_replace_the_model_or_the_scene(make_raster, model, tmp_path, target):
    scene = make_raster("s.tif", height=70, width=80)
    copy = tmp_path / "m.keras"
    copy.write_bytes(model.read_bytes())
    outputs = {"model": ["--out", str(copy)],
               "probabilities": ["--out", str(tmp_path / "m.tif"), "--probabilities", str(scene)],
               "vector": ["--out", str(tmp_path / "m.tif"), "--vector", str(scene)],
               "preview": ["--out", str(tmp_path / "m.tif"), "--preview", str(copy)]}
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(copy), "-q",
                                      "--overwrite", *outputs[target]])
    assert "is an input of this run" in one_error_line(result)
    assert digest(copy) == digest(model)
    assert not (tmp_path / "m.tif").exists()


def test_vectorize_and_mask_sidecar_inputs_are_protected(make_raster, tmp_path):
    scene = make_raster("s.tif", height=70, width=80)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  probabilities_path=tmp_path / "prob.tif")
    before = digest(tmp_path / "prob.tif")
    result = CliRunner().invoke(cli, ["vectorize", str(tmp_path / "mask.tif"), "--probabilities",
                                      str(tmp_path / "prob.tif"), "--out",
                                      str(tmp_path / "prob.tif"), "--overwrite", "-q"])
    assert "is an input of this run" in one_error_line(result)
    assert digest(tmp_path / "prob.tif") == before
    with pytest.raises(OutputIsInputError):  # the scene's own sidecars count as inputs
        (tmp_path / "s.tif.aux.xml").write_text("<PAMDataset/>")
        predict_scene(scene, tmp_path / "s.tif.aux.xml", PixelwisePredictor(), SETTINGS,
                      PredictOptions(overwrite=True))


def test_resume_on_a_replaced_scene_of_the_same_grid_is_refused(make_raster, tmp_path):
    scene = make_raster("s.tif", height=1000, width=100, seed=1)
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, tmp_path / "mask.tif", InterruptedAfter(8), SETTINGS)
    journal = tmp_path / ".mask.tif.resume"
    assert journal.is_dir()
    make_raster("s.tif", height=1000, width=100, seed=2)  # same size and grid, new pixels
    with pytest.raises(InputError, match="another scene, model or options"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                      PredictOptions(resume=True))
    assert not (tmp_path / "mask.tif").exists()


def test_resume_with_a_changed_model_file_is_refused(make_raster, tmp_path):
    scene = make_raster("s.tif", height=1000, width=100)
    model_file = tmp_path / "m.keras"
    model_file.write_bytes(b"first weights")
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, tmp_path / "mask.tif", InterruptedAfter(8), SETTINGS,
                      model_file=model_file)
    model_file.write_bytes(b"other weights")
    with pytest.raises(InputError, match="another scene, model or options"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                      PredictOptions(resume=True),
                      model_file=model_file)


def test_ctrl_c_exits_130_and_keeps_the_journal(make_raster, tmp_path, monkeypatch):
    from geoseg.model import predictor as predictor_module

    scene = make_raster("s.tif", height=1000, width=100)
    interrupted = InterruptedAfter(4)
    monkeypatch.setattr(predictor_module.ModelPredictor, "ready", lambda self: interrupted)
    model_file = tmp_path / "m.keras"
    save_model(pixelwise_keras_model(SETTINGS), SETTINGS, model_file)
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model_file),
                                      "--out", str(tmp_path / "mask.tif"), "-q"])
    assert result.exit_code == 130, result.output
    assert "--resume" in result.output and "Traceback" not in result.output
    assert (tmp_path / ".mask.tif.resume").is_dir()
    assert not (tmp_path / "mask.tif").exists()


@pytest.mark.parametrize(("case", "message"), [
    ("missing scene", "does not exist"),
    ("existing output", "exists already; pass --overwrite"),
    ("band mismatch", "has 5 bands but the model takes 3"),
    ("output is input", "is an input of this run"),
    ("bad overlap", "--overlap must be at least 0 and less than the tile size"),
    ("not a geoseg model", "not a geoseg model"),
])
def test_mistakes_are_refused_before_tensorflow_loads(make_raster, model, tmp_path, case,
                                                      message):
    """A subprocess, as a user runs it: the error comes without importing TensorFlow."""
    scene = make_raster("s.tif", height=40, width=40, bands=5 if case == "band mismatch" else 3)
    out = tmp_path / "out.tif"
    args = [str(scene), "--model", str(model), "--out", str(out)]
    if case == "missing scene":
        args[0] = str(tmp_path / "missing.tif")
    elif case == "existing output":
        out.write_bytes(b"x")
    elif case == "output is input":
        args[-1] = str(scene)
    elif case == "bad overlap":
        args += ["--overlap", "600"]
    elif case == "not a geoseg model":
        plain = tmp_path / "plain.keras"
        plain.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip
        args[2] = str(plain)
    probe = ("import sys, runpy; sys.argv = ['geoseg', 'predict', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('geoseg', run_name='__main__')\n"
             "finally:\n    print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED',"
             " file=sys.stderr)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                          timeout=120)
    seconds = time.perf_counter() - started
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "TF_NOT_LOADED" in done.stderr, f"{case}: TensorFlow was imported first"
    assert seconds < 2, f"{case}: {seconds:.1f} s"  # about 0.3 s on an idle 2-core machine


def test_band_messages(make_raster, model, tmp_path, caplog):
    scene = make_raster("s.tif", height=40, width=40)
    out = str(tmp_path / "out.tif")
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out", out,
                                      "--bands", "5", "-q"])
    assert "band 5 does not exist" in one_error_line(result)
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out", out,
                                      "--bands", "1", "-q"])
    assert "--bands lists 1 band but the model takes 3" in one_error_line(result)
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out", out,
                                      "--bands", "1,1,1", "-q"])
    assert result.exit_code == 0, result.output
    assert caplog.text.count("fed to the model more than once") == 1


def test_evaluate_with_an_impossible_overlap_is_one_line(make_raster, model, tmp_path):
    scene = make_raster("s.tif", height=40, width=40)
    labels = make_raster("labels.tif", height=40, width=40, bands=1,
                         data=np.zeros((1, 40, 40), np.uint8))
    result = CliRunner().invoke(cli, ["evaluate", str(scene), "--labels", str(labels),
                                      "--model", str(model), "--overlap", "600", "-q"])
    assert "--overlap must be at least 0" in one_error_line(result)


def test_a_warning_is_said_once_in_geosegs_words(make_raster, model, tmp_path):
    scene = make_raster("s.tif", height=70, width=80, crs=None)
    done = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(scene), "--model",
                           str(model), "--out", str(tmp_path / "m.tif"), "--vector",
                           str(tmp_path / "p.gpkg"), "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert done.stderr.count("outputs will be in pixel coordinates") == 1, done.stderr
    assert len(set(lines)) == len(lines), done.stderr  # nothing said twice
    assert "'crs' was not provided" not in done.stderr  # pyogrio's repeat of it is silenced
    assert ".py:" not in done.stderr, done.stderr  # no third-party warning's file and line
    assert all(line.startswith("WARNING: ") for line in done.stderr.splitlines()), done.stderr


def test_export_never_replaces_the_model(model, tmp_path):
    copy = tmp_path / "m.keras"
    copy.write_bytes(model.read_bytes())
    result = CliRunner().invoke(cli, ["export", str(copy), "--format", "tflite", "--out",
                                      str(copy), "--overwrite"])
    assert "is an input of this run" in one_error_line(result)
    assert digest(copy) == digest(model)
