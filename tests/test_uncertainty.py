"""The uncertainty raster's measures: predictive entropy and the spread across TTA, with known
answers."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.tta import TTAPredictor
from geoseg.uncertainty import predictive_entropy, uncertainty_style
from tests.test_tta import LookRight, tiles


def test_entropy_is_one_at_even_odds_and_zero_when_sure() -> None:
    two = np.array([[[0.5, 0.0, 1.0, 0.1]], [[0.5, 1.0, 0.0, 0.9]]])
    expected_01 = -(0.1 * np.log(0.1) + 0.9 * np.log(0.9)) / np.log(2)
    assert predictive_entropy(two)[0].tolist() == pytest.approx([1.0, 0.0, 0.0, expected_01])
    # a one-output (sigmoid) model reads as two classes; three classes normalise by log 3
    assert predictive_entropy(two[1:])[0].tolist() == pytest.approx(
        predictive_entropy(two)[0].tolist())
    three = np.full((3, 1, 2), 1 / 3)
    three[:, 0, 1] = [1.0, 0.0, 0.0]
    assert predictive_entropy(three)[0].tolist() == pytest.approx([1.0, 0.0])
    assert predictive_entropy(two).dtype == np.float32


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_spread_of_an_equivariant_model_is_zero(pixelwise, mode: str) -> None:
    x = tiles(3)
    got = TTAPredictor(pixelwise, mode, spread=True)(x)
    plain = TTAPredictor(pixelwise, mode)(x)
    assert got.shape == (*plain.shape[:-1], plain.shape[-1] + 1)
    np.testing.assert_array_equal(got[..., :-1], plain)  # the probabilities do not change
    assert np.all(got[..., -1] == 0.0)


def test_spread_of_a_model_that_looks_aside_is_half_its_disagreement() -> None:
    """LookRight under the 4 flips answers its right, left, right and left neighbours: a
    population standard deviation of |right - left| / 2."""
    x = tiles(2, 12, seed=3)
    band = x[..., 0] / 255.0
    right, left = np.roll(band, -1, axis=2), np.roll(band, 1, axis=2)
    inner = (slice(None), slice(1, -1), slice(1, -1))
    spread = TTAPredictor(LookRight(), "flips", spread=True)(x)[..., -1]
    np.testing.assert_allclose(spread[inner], (np.abs(right - left) / 2)[inner], atol=1e-6)
    assert spread[inner].max() > 0.1


def test_uncertainty_style_ramps_to_the_measures_strong_value() -> None:
    entropy, spread = uncertainty_style("entropy"), uncertainty_style("tta_spread")
    assert 'type="singlebandpseudocolor"' in entropy and 'band="1"' in entropy
    assert 'maximumValue="1"' in entropy and 'maximumValue="0.25"' in spread
    assert 'value="0" color="#ffffcc" alpha="0"' in entropy  # certain: transparent
