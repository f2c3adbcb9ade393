"""KerasPredictor's options: bfloat16 compute with a float32 output layer, XLA, padding."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from geoseg.errors import InputError
from geoseg.model.flexunet import build_flexunet
from geoseg.model.inference import KerasPredictor, bfloat16_model
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=32, num_layers=3, base_filters=4, base_kernels=3)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return build_flexunet(SETTINGS)


@pytest.fixture(scope="module")
def tiles():
    return np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3)).astype(np.float32)


def test_bfloat16_copy_keeps_weights_and_a_float32_output(model, tiles):
    copy = bfloat16_model(model)
    assert copy.layers[-1].dtype_policy.name == "float32"
    assert {layer.dtype_policy.name for layer in copy.layers[1:-1]} == {"mixed_bfloat16"}
    for a, b in zip(model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    exact = KerasPredictor(model, batch_size=2, device="cpu")(tiles)
    fast = KerasPredictor(model, batch_size=2, device="cpu", precision="bfloat16")(tiles)
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert 0 < np.abs(fast - exact).max() < 0.05  # bfloat16 rounding, nothing more
    np.testing.assert_allclose(fast.sum(-1), 1.0, atol=1e-5)  # the softmax ran in float32


def test_xla_gives_the_float32_answer_and_batches_are_padded(model, tiles):
    plain = KerasPredictor(model, batch_size=2, device="cpu")
    xla = KerasPredictor(model, batch_size=2, device="cpu", jit_compile=True)
    expected = model(tiles, training=False).numpy()
    np.testing.assert_allclose(plain(tiles), expected, atol=1e-5)  # 5 tiles: 2 + 2 + 1 padded
    np.testing.assert_allclose(xla(tiles), expected, atol=1e-4)
    assert plain(tiles[:1]).shape == (1, 32, 32, 2)


def test_bad_options_are_refused(model):
    with pytest.raises(InputError, match="batch_size must be"):
        KerasPredictor(model, batch_size=0)
    with pytest.raises(InputError, match="precision must be"):
        KerasPredictor(model, precision="float16")  # type: ignore[arg-type]
