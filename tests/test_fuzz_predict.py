"""Property tests of the whole tiled path: random sizes, tiles, overlaps and nodata layouts."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import PixelwisePredictor, write_raster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoseg.errors import InputError
from geoseg.prediction.predict import MASK_NODATA, PredictOptions, predict_scene
from geoseg.settings import ModelSettings


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 150),
    width=st.integers(1, 150),
    tile=st.sampled_from([16, 32, 64]),
    overlap_share=st.floats(0.0, 0.9),
    batch=st.integers(1, 6),
    holes=st.lists(st.tuples(st.integers(0, 149), st.integers(0, 149), st.integers(1, 80),
                             st.integers(1, 80)), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_any_scene_is_covered_and_nodata_is_exact(tmp_path_factory, height, width, tile,
                                                  overlap_share, batch, holes, seed):
    folder = tmp_path_factory.mktemp("fuzz")
    data = np.random.default_rng(seed).integers(1, 255, (3, height, width), dtype=np.uint8)
    for row, col, h, w in holes:
        data[:, row : row + h, col : col + w] = 0
    scene = write_raster(folder / "scene.tif", data, nodata=0)
    model = ModelSettings(image_size=tile, num_layers=3, overlap=int((tile - 1) * overlap_share))
    nodata = (data == 0).all(axis=0)
    if nodata.all():  # the documented refusal, and nothing left behind
        with pytest.raises(InputError, match="every pixel is nodata"):
            predict_scene(scene, folder / "mask.tif", PixelwisePredictor(batch), model)
        assert not (folder / "mask.tif").exists()
        return
    result = predict_scene(scene, folder / "mask.tif", PixelwisePredictor(batch), model,
                           PredictOptions(probability_dtype="float32"),
                           probabilities_path=folder / "prob.tif")
    with rasterio.open(folder / "mask.tif") as mask, rasterio.open(folder / "prob.tif") as prob:
        classes, probs = mask.read(1), prob.read(2)
    assert ((classes == MASK_NODATA) == nodata).all()
    np.testing.assert_allclose(probs[~nodata], data[0][~nodata] / 255.0, atol=1e-5)
    assert result.tiles_predicted <= result.tiles_total
