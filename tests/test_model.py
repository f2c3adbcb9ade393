"""FlexUNet builder, settings validation and the .keras round trip with settings inside."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest

from geoseg.config import load_config
from geoseg.errors import ConfigError, ModelError, OutputExistsError
from geoseg.model.flexunet import build_flexunet, load_model, save_model
from geoseg.model.model_archive import SETTINGS_MEMBER, read_settings, replace_settings
from geoseg.settings import ModelSettings

TINY = ModelSettings(image_size=32, base_filters=4, num_layers=3, base_kernels=(5, 5),
                     dropout_rate=0.1, class_names=["background", "scar"], bands=[3, 2, 1])


def test_flexunet_shapes_kernels_and_dropout():
    settings = ModelSettings(image_size=64, base_filters=4, num_layers=4, base_kernels=(9, 7),
                             dropout_rate=0.1, image_channels=5, num_classes=3)
    model = build_flexunet(settings)
    assert model.input_shape == (None, 64, 64, 5)
    assert model.output_shape == (None, 64, 64, 3)
    convs = {layer.name: layer for layer in model.layers}
    assert convs["enc0_conv1"].kernel_size == (9, 7)
    assert convs["enc1_conv1"].kernel_size == (7, 5)
    assert convs["enc3_conv1"].kernel_size == (3, 3)  # never below 3
    assert convs["dec1_conv1"].kernel_size == (7, 5)  # mirrored in the decoder
    assert convs["enc3_conv1"].filters == 32  # base_filters * 2**level
    assert convs["enc0_dropout"].rate == pytest.approx(0.1)
    assert convs["enc2_dropout"].rate == pytest.approx(0.3)  # grows with depth
    assert convs["probabilities"].activation.__name__ == "softmax"
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 5)).astype("float32")
    probs = np.asarray(model(x))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_reference_sized_flexunet_matches_the_published_parameter_count():
    """The reference Hokkaido FlexUNet (kernels 11, 8 layers, 16 filters) has ~127 M params."""
    config = load_config("tests/data/hokkaido.config")
    settings = ModelSettings(**config.model_kwargs())
    assert build_flexunet(settings).count_params() == pytest.approx(127e6, rel=0.01)


def test_options_batch_norm_dilation_single_class():
    settings = ModelSettings(image_size=32, base_filters=4, num_layers=3, batch_norm=True,
                             dilation=(2, 2), num_classes=1, input_normalize=False)
    model = build_flexunet(settings)
    names = [layer.name for layer in model.layers]
    assert "enc0_bn1" in names and "normalize" not in names
    assert model.get_layer("enc0_conv1").dilation_rate == (2, 2)
    assert model.get_layer("probabilities").activation.__name__ == "sigmoid"


def test_no_lambda_layers_normalisation_is_a_rescaling_layer():
    model = build_flexunet(TINY)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert isinstance(model.get_layer("normalize"), keras.layers.Rescaling)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 500, "num_layers": 8}, "not divisible by 2\\*\\*\\(8-1\\)=128; use 512"),
        ({"base_kernels": (4, 4)}, "odd"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"num_classes": 3, "class_names": ["a", "b"]}, "class_names"),
        ({"image_channels": 2, "bands": [1, 2, 3]}, "bands"),
        ({"image_size": 64, "num_layers": 3, "overlap": 64}, "overlap"),
        ({"threshold": 1.0}, "threshold 1.0 must be in \\(0, 1\\)"),
        ({"num_classes": 3, "threshold": 0.4}, "at most two classes"),
    ],
)
def test_impossible_settings_are_rejected_clearly(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelSettings(**kwargs)


def test_save_load_round_trip_keeps_settings_and_weights(tmp_path):
    model = build_flexunet(TINY)
    path = save_model(model, TINY, tmp_path / "m.keras")
    loaded, settings = load_model(path)
    assert settings == TINY
    assert settings.bands == [3, 2, 1] and settings.class_names == ["background", "scar"]
    x = np.random.default_rng(1).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert read_settings(path) == TINY
    with pytest.raises(OutputExistsError):
        save_model(model, TINY, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary left behind


def test_a_replaced_threshold_keeps_the_weights_and_old_settings_still_load(tmp_path):
    model = build_flexunet(TINY)
    path = save_model(model, TINY, tmp_path / "m.keras")
    old = zipfile.ZipFile(path).read(SETTINGS_MEMBER)
    assert b"threshold" in old  # written as null now; files from before it lack the key
    legacy = {k: v for k, v in TINY.to_dict().items() if k != "threshold"}
    assert ModelSettings.from_dict(legacy).threshold is None
    replace_settings(path, ModelSettings(**{**TINY.to_dict(), "threshold": 0.35}))
    loaded, settings = load_model(path)
    assert settings.threshold == 0.35 and settings.bands == TINY.bands
    assert zipfile.ZipFile(path).namelist().count(SETTINGS_MEMBER) == 1
    x = np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_plain_keras_file_is_not_a_geoseg_model(tmp_path):
    path = tmp_path / "plain.keras"
    build_flexunet(TINY).save(path)
    with pytest.raises(ModelError, match="not a geoseg model"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_corrupted_model_files_are_model_errors(tmp_path, content):
    path = tmp_path / "bad.keras"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="bad.keras"):
        load_model(path)


def test_model_with_settings_but_broken_weights(tmp_path):
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(SETTINGS_MEMBER, TINY.to_json())
        archive.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="could not be loaded"):
        load_model(path)


def test_missing_and_misnamed_model_paths(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.keras")
    with pytest.raises(ModelError, match="end in .keras"):
        save_model(build_flexunet(TINY), TINY, tmp_path / "model.h5")
