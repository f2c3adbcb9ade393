"""Inference backends: conversions cached by digest, each runtime giving Keras' answer,
settings refused early, and the model loading in the background."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import geoseg.model.convert
from geoseg.cli import cli
from geoseg.errors import ModelError, ParameterError
from geoseg.model import predictor as predictor_module
from geoseg.model.convert import converted_model
from geoseg.model.flexunet import build_flexunet, load_model, save_model
from geoseg.model.predictor import (
    ModelPredictor,
    ModelSpec,
    file_digest,
    gpu_likely,
    resolve_backend,
)
from geoseg.model.runtimes import (
    CACHE_FOLDER,
    cached_conversion,
    conversion_name,
    open_runtime,
    record_conversion,
)
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=32, base_filters=4, num_layers=3)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    return save_model(build_flexunet(SETTINGS), SETTINGS, path)


@pytest.fixture(scope="module")
def tiles_and_keras(model_file: Path) -> tuple[np.ndarray, np.ndarray]:
    model, _ = load_model(model_file)
    tiles = np.random.default_rng(5).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    return tiles, np.asarray(model(tiles))


@pytest.mark.parametrize(("backend", "package"), [
    ("onnx", "onnxruntime"), ("openvino", "openvino"), ("tflite", "ai_edge_litert")])
def test_every_backend_gives_the_keras_probabilities(
    model_file: Path, tiles_and_keras: tuple[np.ndarray, np.ndarray], backend: str,
    package: str,
) -> None:
    pytest.importorskip(package)
    tiles, expected = tiles_and_keras
    run = ModelPredictor(ModelSpec(model_file, batch_size=2, backend=backend))  # type: ignore[arg-type]
    probs = run(tiles)  # 5 tiles in batches of 2: the last one padded
    assert probs.shape == expected.shape
    np.testing.assert_allclose(probs, expected, atol=1e-4)


def test_conversion_is_cached_by_digest(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tf2onnx")
    copy = tmp_path / "copy.keras"
    copy.write_bytes(model_file.read_bytes())
    digest = file_digest(copy)
    first = converted_model(copy, "onnx")
    assert first == tmp_path / CACHE_FOLDER / conversion_name(copy, digest, "onnx")
    assert cached_conversion(copy, digest, "openvino") == first  # OpenVINO reads the ONNX file

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(geoseg.model.convert, "_convert", no_conversion)
    assert converted_model(copy, "onnx") == first
    # A conversion changed since it was made is made again, not trusted by its name.
    original = first.read_bytes()
    first.write_bytes(original + b"\0")
    with pytest.raises(ModelError, match="converted again"):
        converted_model(copy, "onnx")
    first.write_bytes(original)
    # Another model in the same file is another conversion: the stale one is not used.
    other = ModelSettings(image_size=32, base_filters=2, num_layers=2)
    save_model(build_flexunet(other), other, copy, overwrite=True)
    assert cached_conversion(copy, file_digest(copy), "onnx") is None
    with pytest.raises(ModelError, match="converted again"):
        converted_model(copy, "onnx")


def test_unwritable_model_folder_falls_back_to_the_user_cache(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tf2onnx")
    folder = tmp_path / "models"
    folder.mkdir()
    copy = folder / "tiny.keras"
    copy.write_bytes(model_file.read_bytes())
    (folder / CACHE_FOLDER).write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    converted = converted_model(copy, "onnx")
    assert converted.parent == tmp_path / "user-cache" / "geoseg"
    assert cached_conversion(copy, file_digest(copy), "onnx") == converted


def test_a_converted_model_runs_without_tensorflow(
    model_file: Path, tiles_and_keras: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    converted_model(model_file, "onnx")
    tiles, expected = tiles_and_keras
    np.save(tmp_path / "tiles.npy", tiles)
    code = textwrap.dedent(f"""
        import sys, numpy as np
        from geoseg.model.predictor import ModelPredictor, ModelSpec
        run = ModelPredictor(ModelSpec({str(model_file)!r}, backend="onnx"))
        run.start()
        probs = run(np.load({str(tmp_path / "tiles.npy")!r}))
        assert not {{"tensorflow", "keras"}} & set(sys.modules), "TensorFlow imported"
        np.save({str(tmp_path / "probs.npy")!r}, probs)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), expected, atol=1e-4)


def test_a_missing_runtime_says_what_to_install(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(ModelError, match=r"pip install 'geoseg\[openvino\]'"):
        open_runtime("openvino", model_file, 1)


def test_settings_a_backend_cannot_run_are_refused(model_file: Path, make_raster) -> None:
    with pytest.raises(ParameterError, match="backend must be one of"):
        ModelSpec(model_file, backend="torch")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="device gpu runs with backend keras only"):
        ModelSpec(model_file, device="gpu", backend="onnx")
    with pytest.raises(ParameterError, match="bfloat16 runs with backend keras or openvino"):
        ModelSpec(model_file, precision="bfloat16", backend="tflite")
    result = CliRunner().invoke(cli, [
        "predict", str(make_raster()), "--model", str(model_file), "--out", "out.tif",
        "--backend", "onnx", "--precision", "bfloat16"])
    assert result.exit_code == 1
    assert "--precision bfloat16 runs with --backend keras or openvino" in result.output


def test_auto_backend_falls_back_to_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictor_module, "AUTO_BACKEND", "openvino")
    monkeypatch.setattr(predictor_module, "gpu_likely", lambda: False)
    monkeypatch.setattr(predictor_module.importlib.util, "find_spec", lambda name: None)
    assert resolve_backend("auto") == "keras"  # openvino not installed
    assert resolve_backend("onnx") == "onnx"
    monkeypatch.setattr(predictor_module.importlib.util, "find_spec", lambda name: object())
    assert resolve_backend("auto") == "openvino"
    assert resolve_backend("auto", device="gpu") == "keras"
    assert resolve_backend("auto", precision="bfloat16") == "openvino"
    monkeypatch.setattr(predictor_module, "gpu_likely", lambda: True)
    assert resolve_backend("auto") == "keras"  # Keras runs on the GPU it sees
    assert resolve_backend("auto", device="cpu") == "openvino"


def test_a_gpu_is_guessed_from_the_nvidia_driver(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not gpu_likely(tmp_path / "missing")  # no driver
    assert not gpu_likely(tmp_path)  # a driver without GPUs
    (tmp_path / "0000:01:00.0").mkdir()
    assert gpu_likely(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # all hidden from TensorFlow
    assert not gpu_likely(tmp_path)


def test_auto_backend_needs_a_converter_or_a_conversion(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tf2onnx")
    copy = tmp_path / "copy.keras"
    copy.write_bytes(model_file.read_bytes())
    monkeypatch.setattr(predictor_module, "AUTO_BACKEND", "openvino")
    found = predictor_module.importlib.util.find_spec
    monkeypatch.setattr(predictor_module.importlib.util, "find_spec",
                        lambda name: None if name == "tf2onnx" else object())
    assert resolve_backend("auto", model_path=copy) == "keras"  # cannot convert it here
    monkeypatch.setattr(predictor_module.importlib.util, "find_spec", found)
    converted_model(copy, "openvino")
    monkeypatch.setattr(predictor_module.importlib.util, "find_spec",
                        lambda name: None if name == "tf2onnx" else object())
    assert resolve_backend("auto", model_path=copy) == "openvino"  # converted before


def test_a_converted_model_loads_in_the_background_and_fails_when_needed(
    model_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    copy = tmp_path / "copy.keras"
    copy.write_bytes(model_file.read_bytes())
    keras_run = ModelPredictor(ModelSpec(copy, backend="keras"))
    keras_run.start()  # TensorFlow is not imported in the background (see start)
    assert keras_run._loader is None
    onnx_run = ModelPredictor(ModelSpec(copy, backend="onnx"))
    onnx_run.start()  # no conversion yet: it is made on the first batch
    assert onnx_run._loader is None
    conversion = converted_model(copy, "onnx")
    conversion.write_bytes(b"not an ONNX model")  # recorded as made, yet broken
    record_conversion(conversion, file_digest(copy))
    broken = ModelPredictor(ModelSpec(copy, backend="onnx"))
    broken.start()
    assert broken._loader is not None
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        broken.ready()


@pytest.mark.parametrize("backend", ["keras", "onnx"])
def test_a_mistake_found_while_the_model_loads_is_printed(
    model_file: Path, make_raster, tmp_path: Path, backend: str
) -> None:
    pytest.importorskip("onnxruntime")
    converted_model(model_file, "onnx")
    result = subprocess.run(
        [sys.executable, "-m", "geoseg", "predict", str(make_raster()), "--model",
         str(model_file), "--out", str(tmp_path / "mask.tif"), "--bands", "1,2",
         "--backend", backend], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Loading tiny.keras ({backend} backend)...",
        "Error: --bands lists 2 bands but the model takes 3"]


def test_predict_names_the_model_it_loads_first(make_raster, model_file: Path,
                                                tmp_path: Path) -> None:
    scene = make_raster("scene.tif", 40, 40)
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model_file),
                                      "--out", str(tmp_path / "mask.tif"), "--backend", "keras"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Loading tiny.keras (keras backend)..."
    assert lines[-1].startswith(f"{tmp_path / 'mask.tif'}: ")
    quiet = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model_file),
                                     "--out", str(tmp_path / "m2.tif"), "-q"])
    assert "Loading" not in quiet.output


def test_user_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from geoseg.model.runtimes import user_cache_folder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.platform != "win32":
        assert user_cache_folder() == tmp_path / "geoseg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert user_cache_folder().name == "geoseg" and os.fspath(user_cache_folder())
