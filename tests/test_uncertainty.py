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


def _raster(path, array: np.ndarray, tags: dict[str, str] | None = None,
            scale: float | None = None, nodata: float | None = None):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype=array.dtype.name, crs="EPSG:32654", nodata=nodata,
                       transform=from_origin(500000, 4000000, 10, 10)) as dst:
        dst.write(array, 1)
        if tags:
            dst.update_tags(**tags)
        if scale is not None:
            dst.scales = [scale]
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_polygons_get_the_mean_uncertainty_over_their_pixels(tmp_path, workers: int) -> None:
    """A polygon cut by block edges (merged) and one whole; uint8 with a scale of 1/254 and
    nodata 255 as geoseg predict writes it: nodata pixels do not count."""
    from geoseg.errors import InputError
    from geoseg.vectorize import polygons_from_mask

    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 20:40] = 1  # 800 pixels across the 32-pixel blocks
    mask[2:6, 2:6] = 1  # 16 pixels
    spread = np.zeros((64, 64), np.uint8)
    spread[10:30, 20:40] = 127  # 0.5 on half of the big one...
    spread[30:50, 20:40] = 254  # ...1.0 on the other half
    spread[2:6, 2:6] = 51
    spread[2, 2] = 255  # nodata
    mask_path = _raster(tmp_path / "mask.tif", mask, nodata=255)
    unc = _raster(tmp_path / "unc.tif", spread, {"GEOSEG_UNCERTAINTY": "tta_spread"},
                  scale=1 / 254, nodata=255)
    frame = polygons_from_mask(mask_path, uncertainty_path=unc, block_size=32, workers=workers)
    assert list(frame.columns)[-4:] == ["tta_spread", "lon", "lat", "geometry"]
    assert frame["tta_spread"].tolist() == pytest.approx([(127 + 254) / 2 / 254, 51 / 254])
    untagged = _raster(tmp_path / "plain.tif", spread)
    with pytest.raises(InputError, match="not an uncertainty raster"):
        polygons_from_mask(mask_path, uncertainty_path=untagged)
    with pytest.raises(InputError, match="is the mask itself"):
        polygons_from_mask(mask_path, uncertainty_path=mask_path)
