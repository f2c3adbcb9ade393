"""Shared fixtures: tiny georeferenced rasters and tiny models, built in tmp_path."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin

if TYPE_CHECKING:
    import keras

    from geoseg.settings import ModelSettings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hokkaido-iburi"

# A UTM 54N grid near the 2018 Eastern Iburi epicentre, 3 m pixels (assigned for tests).
TEST_CRS = "EPSG:32654"
TEST_TRANSFORM = from_origin(582000.0, 4734000.0, 3.0, 3.0)

RasterFactory = Callable[..., Path]


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = TEST_CRS,
    transform: Affine = TEST_TRANSFORM,
    nodata: float | None = None,
) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF."""
    bands, height, width = data.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": bands,
        "dtype": data.dtype.name, "transform": transform, "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    if bands == 4:  # four bands of data, not RGBA (GDAL's default reading of 4 x uint8)
        profile["photometric"] = "MINISBLACK"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def make_raster(tmp_path: Path) -> RasterFactory:
    """Factory: ``make_raster(name, height, width, bands=3, seed=0, **write_raster kwargs)``.

    The pixel values are random uint8 unless ``data`` is given.
    """

    def factory(
        name: str = "scene.tif",
        height: int = 100,
        width: int = 120,
        bands: int = 3,
        seed: int = 0,
        data: np.ndarray | None = None,
        **kwargs: object,
    ) -> Path:
        if data is None:
            rng = np.random.default_rng(seed)
            data = rng.integers(1, 255, size=(bands, height, width), dtype=np.uint8)
        return write_raster(tmp_path / name, data, **kwargs)  # type: ignore[arg-type]

    return factory


class PixelwisePredictor:
    """A 'model' that is a fixed per-pixel function: probability = band 1 / 255.

    Translation-equivariant by construction, so a stitched prediction must equal the same
    function applied to the whole array, everywhere: the no-seams reference.
    """

    def __init__(self, batch_size: int = 3):
        self.batch_size = batch_size
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        p = np.clip(batch[..., :1] / 255.0, 0.0, 1.0)
        return np.concatenate([1.0 - p, p], axis=-1).astype(np.float32)


class InterruptedAfter(PixelwisePredictor):
    """Raises KeyboardInterrupt (Ctrl-C) on its n-th call."""

    def __init__(self, calls: int):
        super().__init__(batch_size=4)
        self.limit = calls

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.calls + 1 == self.limit:
            raise KeyboardInterrupt
        return super().__call__(batch)


@pytest.fixture
def pixelwise() -> PixelwisePredictor:
    return PixelwisePredictor()


def pixelwise_keras_model(settings: ModelSettings) -> keras.Model:
    """A Keras model computing p(landslide) = softmax of 0.05 * (band1 - 128) per pixel.

    Translation-equivariant, so stitched predictions must equal whole-array ones; keras is
    imported here, not at module level, so tests without TensorFlow stay light.
    """
    return _band1_keras_model(settings, kernel_size=1, row=0, col=0)


def look_right_keras_model(settings: ModelSettings) -> keras.Model:
    """A Keras model computing p(landslide) = softmax of 0.05 * (band1 - 128) of each pixel's
    right-hand neighbour (a 3 x 3 convolution, zero beyond the window's edge).

    Not flip-equivariant, so test-time augmentation changes its probabilities, and its
    output depends on the pixels around: tiling and batching errors show in it.
    """
    return _band1_keras_model(settings, kernel_size=3, row=1, col=2)


def _band1_keras_model(settings: ModelSettings, kernel_size: int, row: int,
                       col: int) -> keras.Model:
    """A one-convolution Keras model: softmax of (0, 0.05 * (band1 - 128)) at kernel cell
    (``row``, ``col``)."""
    import keras

    inputs = keras.Input((settings.image_size, settings.image_size, settings.image_channels))
    conv = keras.layers.Conv2D(2, kernel_size, padding="same", activation="softmax",
                               name="probabilities")
    outputs = conv(inputs)
    kernel = np.zeros((kernel_size, kernel_size, settings.image_channels, 2), dtype="float32")
    kernel[row, col, 0, 1] = 0.05
    conv.set_weights([kernel, np.array([0.0, -0.05 * 128], dtype="float32")])
    return keras.Model(inputs, outputs)


def signal_once_rows_are_saved(run: subprocess.Popen, journal: Path, signum: int) -> None:
    """Send ``signum`` to a running ``geoseg predict`` once its journal holds a finished row."""
    deadline = time.monotonic() + 120
    while not list(journal.glob("rows_*.npz")) and time.monotonic() < deadline:
        if run.poll() is not None:
            pytest.fail("the run ended before it could be stopped; make the scene larger")
        time.sleep(0.02)
    run.send_signal(signum)
