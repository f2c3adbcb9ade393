"""Test-time augmentation: exact for equivariant models, a known average for others."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geoseg.errors import InputError
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.prediction.tta import TTA_MODES, TTAPredictor, transforms, with_tta
from geoseg.settings import ModelSettings


class LookRight:
    """Not equivariant: p(landslide) at a pixel is band 1 of its right-hand neighbour / 255."""

    batch_size = 2

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        shifted = np.concatenate([batch[:, :, 1:, :1], batch[:, :, -1:, :1]], axis=2)
        p = shifted / 255.0
        return np.concatenate([1.0 - p, p], axis=-1).astype(np.float32)


def tiles(n: int = 2, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("mode", TTA_MODES)
def test_every_transform_is_undone_by_its_inverse_and_they_differ(mode):
    x = tiles()
    moved = [forward(x) for forward, _ in transforms(mode)]
    for (_, inverse), y in zip(transforms(mode), moved, strict=True):
        np.testing.assert_array_equal(inverse(y), x)
    assert len({y.tobytes() for y in moved}) == len(moved)  # all distinct on random tiles


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_tta_of_an_equivariant_model_is_the_model(pixelwise, mode):
    x = tiles(3)
    expected = pixelwise(x)
    got = TTAPredictor(pixelwise, mode)(x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_tta_averages_a_model_that_is_not_equivariant():
    x = tiles(2, 12, seed=3)
    band = x[..., 0] / 255.0
    right, left = np.roll(band, -1, axis=2), np.roll(band, 1, axis=2)
    down, up = np.roll(band, -1, axis=1), np.roll(band, 1, axis=1)
    inner = (slice(None), slice(1, -1), slice(1, -1))
    model = LookRight()
    np.testing.assert_allclose(model(x)[..., 1][inner], right[inner], atol=1e-6)
    flips = TTAPredictor(model, "flips")(x)[..., 1]
    np.testing.assert_allclose(flips[inner], ((right + left) / 2)[inner], atol=1e-6)
    d4 = TTAPredictor(model, "d4")(x)[..., 1]
    np.testing.assert_allclose(d4[inner], ((right + left + up + down) / 4)[inner], atol=1e-6)
    assert not np.allclose(d4[inner], flips[inner], atol=1e-3)


def test_tta_calls_the_model_once_per_transform_with_its_batches():
    model = LookRight()
    wrapped = with_tta(model, "d4")
    assert wrapped.batch_size == model.batch_size
    wrapped(tiles(2))
    assert model.shapes == [(2, 16, 16, 3)] * 8
    assert with_tta(model, "none") is model


def test_unknown_mode_and_non_square_tiles_are_refused():
    with pytest.raises(InputError, match="tta: 'd8' is not one of none, flips, d4"):
        with_tta(LookRight(), "d8")
    with pytest.raises(InputError, match="square tiles"):
        TTAPredictor(LookRight(), "flips")(np.zeros((1, 8, 6, 3), np.float32))


def test_tta_inside_the_blend_keeps_an_equivariant_model_seamless(make_raster, pixelwise,
                                                                  tmp_path):
    scene = make_raster("scene.tif", 70, 90)
    settings = ModelSettings(image_size=32, base_filters=4, num_layers=3, overlap=8)
    plain = predict_scene(scene, tmp_path / "plain.tif", pixelwise, settings,
                          PredictOptions(probability_dtype="float32"),
                          probabilities_path=tmp_path / "plain_p.tif")
    tta = predict_scene(scene, tmp_path / "tta.tif", TTAPredictor(pixelwise, "d4"), settings,
                        PredictOptions(probability_dtype="float32"),
                        probabilities_path=tmp_path / "tta_p.tif")
    assert tta.tiles_predicted == plain.tiles_predicted
    with rasterio.open(plain.probabilities_path) as a, rasterio.open(tta.probabilities_path) as b:
        np.testing.assert_allclose(b.read(), a.read(), atol=1e-6)
