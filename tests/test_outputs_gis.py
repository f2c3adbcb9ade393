"""GIS-facing details of the outputs: colour table, class names, model tags, QGIS styles."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import rasterio
from conftest import PixelwisePredictor

from geoseg.errors import InputError
from geoseg.prediction.predict import (
    CLASS_NAMES_TAG,
    MODEL_TAG,
    SETTINGS_TAG,
    PredictOptions,
    predict_scene,
)
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)


def test_mask_carries_colour_table_class_names_and_model(make_raster, tmp_path):
    scene = make_raster(height=80, width=90)
    model_path = tmp_path / "m.keras"
    model_path.write_bytes(b"stands for a model file")
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  model_file=model_path)
    with rasterio.open(tmp_path / "mask.tif") as src:
        colours = src.colormap(1)
        assert colours[1] == (227, 26, 28, 255)  # (GeoTIFF palettes hold no alpha: the .qml does)
        assert src.tags(1) == {"CLASS_0": "background", "CLASS_1": "landslide"}
        assert src.descriptions[0] == "class: 0=background, 1=landslide"
        tags = src.tags()
        assert json.loads(tags[CLASS_NAMES_TAG]) == ["background", "landslide"]
        assert tags[MODEL_TAG] == "m.keras"
        assert ModelSettings.from_dict(json.loads(tags[SETTINGS_TAG])) == SETTINGS
    style = (tmp_path / "mask.qml").read_text()
    assert 'label="landslide"' in style and "#e31a1c" in style


def test_cog_keeps_the_colour_table(make_raster, tmp_path):
    scene = make_raster(height=300, width=300)
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS,
                  PredictOptions(cog=True))
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert src.colormap(1)[1] == (227, 26, 28, 255)


def test_all_nodata_scene_is_refused_and_leaves_nothing(make_raster, tmp_path):
    scene = make_raster(data=np.zeros((3, 70, 70), dtype=np.uint8), nodata=0)
    with pytest.raises(InputError, match="every pixel is nodata"):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_imagery_far_outside_0_255_is_warned_about(make_raster, tmp_path, caplog):
    data = np.full((3, 60, 60), 12000.0, dtype=np.float32)
    scene = make_raster(data=data)
    with caplog.at_level(logging.WARNING):
        predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), SETTINGS)
    assert "trained on 0-255 imagery" in caplog.text


def test_a_sigmoid_models_mask_has_background_and_landslide_colours(make_raster, tmp_path):
    class Sigmoid(PixelwisePredictor):
        def __call__(self, batch):
            return super().__call__(batch)[..., 1:]

    settings = ModelSettings(image_size=64, num_layers=3, overlap=16, num_classes=1,
                             class_names=["landslide"])
    predict_scene(make_raster(height=80, width=90), tmp_path / "mask.tif", Sigmoid(), settings)
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert src.colormap(1)[1] == (227, 26, 28, 255)  # landslide red, as for two classes
        assert src.colormap(1)[0] != (227, 26, 28, 255)
        assert src.tags(1) == {"CLASS_0": "background", "CLASS_1": "landslide"}
        assert json.loads(src.tags()[CLASS_NAMES_TAG]) == ["background", "landslide"]
