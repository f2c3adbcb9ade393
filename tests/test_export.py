"""Model export round trips: the exported model predicts what the .keras model predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from geoseg.cli import cli
from geoseg.errors import OutputExistsError
from geoseg.model.export import export_model, settings_sidecar
from geoseg.model.flexunet import build_flexunet, load_model, save_model
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=32, base_filters=4, num_layers=3, bands=[3, 2, 1])


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    return save_model(build_flexunet(SETTINGS), SETTINGS, path)


@pytest.fixture(scope="module")
def tile_and_expected(keras_model):
    model, _ = load_model(keras_model)
    tile = np.random.default_rng(3).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    return tile, np.asarray(model(tile))


def test_savedmodel_round_trip(keras_model, tile_and_expected, tmp_path):
    import tensorflow as tf

    out = export_model(keras_model, tmp_path / "saved", "savedmodel")
    tile, expected = tile_and_expected
    loaded = tf.saved_model.load(str(out))  # keep a reference: it owns the variables
    served = loaded.serve(tile).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert json.loads(settings_sidecar(out).read_text())["bands"] == [3, 2, 1]


def test_onnx_round_trip(keras_model, tile_and_expected, tmp_path):
    import onnxruntime

    out = export_model(keras_model, tmp_path / "m.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(out))
    tile, expected = tile_and_expected
    served = session.run(None, {session.get_inputs()[0].name: tile})[0]
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_tflite_round_trip(keras_model, tile_and_expected, tmp_path):
    import tensorflow as tf

    out = export_model(keras_model, tmp_path / "m.tflite", "tflite")
    interpreter = tf.lite.Interpreter(model_path=str(out))
    interpreter.allocate_tensors()
    tile, expected = tile_and_expected
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tile)
    interpreter.invoke()
    served = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(served, expected, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.geoseg.json"]


def test_export_refuses_existing_outputs_and_cli_reports(keras_model, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        export_model(keras_model, tmp_path / "m.onnx", "onnx")
    result = CliRunner().invoke(cli, ["export", str(keras_model), "-f", "onnx", "-o",
                                      str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "exists already" in result.output
    assert (tmp_path / "m.onnx").read_bytes() == b"old"
