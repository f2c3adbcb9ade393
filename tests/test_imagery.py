"""Models that know their imagery: pixel sizes in metres, training statistics, the guard.

Rasters are made here with rasterio: a copy of rasterio's ``RGB.byte.tif`` (UTM 18N, 300 m
pixels, 3 x uint8, nodata 0), geographic scenes, a CRS in US feet given as WKT without an
EPSG code, 16-bit and reflectance scenes, a large scene with and without overviews.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import write_raster
from pyproj import CRS as ProjCRS
from rasterio.transform import from_origin

from geoseg.raster import imagery
from geoseg.raster.imagery import fit_warnings, pixel_size_m, scene_sample
from geoseg.settings import BandStats, ModelSettings

REPO = Path(__file__).resolve().parents[1]

# rasterio's tests/data/RGB.byte.tif: EPSG:32618, 300.04 m x 300.04 m pixels, nodata 0
RGB_BYTE_CRS = "EPSG:32618"
RGB_BYTE_TRANSFORM = Affine(300.0379266750948, 0.0, 101985.0, 0.0, -300.041782729805, 2826915.0)

# What a model trained on ~3 m 8-bit RGB knows (hokkaido-iburi's own figures).
TRAINED = ModelSettings(image_size=64, num_layers=3, pixel_size_m=3.0, band_stats=[
    BandStats(p1=7, p50=107, p99=244, mean=110.7, std=46.6),
    BandStats(p1=9, p50=126, p99=236, mean=127.6, std=48.1),
    BandStats(p1=11, p50=119, p99=235, mean=119.1, std=43.9)])


def rgb_byte_like(path: Path, height: int = 120, width: int = 100) -> Path:
    """A small RGB.byte.tif: 8-bit RGB of usual values, a nodata (0) frame, 300 m pixels."""
    rng = np.random.default_rng(7)
    data = rng.integers(40, 200, (3, height, width), dtype=np.uint8)
    data[:, :10], data[:, :, -12:] = 0, 0
    return write_raster(path, data, crs=RGB_BYTE_CRS, transform=RGB_BYTE_TRANSFORM, nodata=0)


def warnings_of(path: Path, settings: ModelSettings = TRAINED) -> list[str]:
    with rasterio.open(path) as src:
        return fit_warnings(src, [1, 2, 3], settings, "hokkaido-iburi")


# --------------------------------------------------------------------------------------------
# Pixel sizes in metres
# --------------------------------------------------------------------------------------------


def test_a_projected_pixel_is_measured_in_metres_whatever_the_crs_unit(tmp_path):
    utm = rgb_byte_like(tmp_path / "utm.tif")
    with rasterio.open(utm) as src:
        size, how = pixel_size_m(src)
    assert size == pytest.approx(math.sqrt(300.0379266750948 * 300.041782729805))
    assert how == "from the CRS units"
    # a transverse Mercator in US survey feet, as WKT without an EPSG code: 10 ft = 3.048 m
    feet = ProjCRS.from_proj4("+proj=tmerc +lat_0=40 +lon_0=-74 +k=0.9999 +x_0=0 +y_0=0 "
                              "+datum=NAD83 +units=us-ft +no_defs").to_wkt()
    path = write_raster(tmp_path / "feet.tif", np.ones((3, 8, 8), np.uint8),
                        crs=feet, transform=from_origin(980000, 200000, 10.0, 10.0))
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() is None
        assert pixel_size_m(src)[0] == pytest.approx(3.048006, rel=1e-6)


def test_degrees_become_metres_at_the_scenes_latitude(tmp_path):
    # 1e-4 degrees at 60 N: ~5.58 m across (a degree of longitude halves), ~11.13 m along
    path = write_raster(tmp_path / "geo.tif", np.ones((3, 10, 10), np.uint8), crs="EPSG:4326",
                        transform=from_origin(10.0, 60.0005, 1e-4, 1e-4))
    with rasterio.open(path) as src:
        size, how = pixel_size_m(src)
    across, along = 5.5800, 11.1412  # WGS84 radii of curvature at 60 N, per 1e-4 degree
    assert size == pytest.approx(math.sqrt(across * along), rel=1e-4)
    assert how == "degrees at 60.0 N"
    far_south = write_raster(tmp_path / "south.tif", np.ones((3, 10, 10), np.uint8),
                             crs="EPSG:4326", transform=from_origin(10.0, -59.9995, 1e-4, 1e-4))
    with rasterio.open(far_south) as src:
        assert pixel_size_m(src)[1] == "degrees at 60.0 S"


def test_a_raster_without_crs_has_no_known_pixel_size(tmp_path):
    path = write_raster(tmp_path / "plain.tif", np.full((3, 8, 8), 110, np.uint8), crs=None)
    with rasterio.open(path) as src:
        assert pixel_size_m(src) is None
        assert fit_warnings(src, [1, 2, 3], TRAINED) == []


# --------------------------------------------------------------------------------------------
# The guard
# --------------------------------------------------------------------------------------------


def test_rgb_byte_tif_gets_one_pixel_size_line_naming_both_figures(tmp_path):
    lines = warnings_of(rgb_byte_like(tmp_path / "RGB.byte.tif"))
    assert lines == [
        "RGB.byte.tif: 300 m pixels; hokkaido-iburi was trained on ~3 m pixels: results may "
        "be poor or noise (resample the scene to ~3 m, e.g. gdalwarp -tr, or fine-tune the "
        "model on such imagery; see 'Models that know where they work' in the README)"]


@pytest.mark.parametrize(("pixel", "warned"), [(1.6, False), (5.9, False), (1.4, True),
                                                (6.2, True), (0.5, True)])
def test_pixels_up_to_twice_as_large_or_small_pass(tmp_path, pixel, warned):
    path = write_raster(tmp_path / "s.tif", np.full((3, 16, 16), 110, np.uint8),
                        transform=from_origin(582000, 4734000, pixel, pixel))
    assert bool(warnings_of(path)) == warned


def test_a_geographic_scene_is_judged_in_metres_at_its_latitude(tmp_path):
    near_3m = from_origin(141.98, 42.75, 3.0 / 81_900, 3.0 / 111_080)  # ~3 m at 42.75 N
    fine = write_raster(tmp_path / "wgs84.tif", np.full((3, 16, 16), 110, np.uint8),
                        crs="EPSG:4326", transform=near_3m)
    assert warnings_of(fine) == []
    coarse = write_raster(tmp_path / "coarse.tif", np.full((3, 16, 16), 110, np.uint8),
                          crs="EPSG:4326", transform=from_origin(141.98, 42.75, 0.001, 0.001))
    (line,) = warnings_of(coarse)
    assert line.startswith("coarse.tif: 95 m pixels (degrees at 42.7 N); hokkaido-iburi was "
                           "trained on ~3 m pixels")


def test_16_bit_and_reflectance_scenes_are_outside_the_training_values(tmp_path):
    rng = np.random.default_rng(1)
    uint16 = write_raster(tmp_path / "l8.tif", rng.integers(6000, 14000, (3, 32, 32),
                                                               dtype=np.uint16))
    (line,) = warnings_of(uint16)
    assert line.startswith("l8.tif: pixel values brighter than the middle 98% of "
                           "hokkaido-iburi's training pixels (band 1 median ")
    assert "training 7-244; band 2 median" in line and "gdal_translate -ot Byte -scale" in line
    reflectance = write_raster(tmp_path / "sr.tif",
                               rng.uniform(0.02, 0.4, (3, 32, 32)).astype(np.float32))
    (line,) = warnings_of(reflectance)
    assert "pixel values darker than the middle 98%" in line
    usual = write_raster(tmp_path / "ok.tif", rng.integers(60, 180, (3, 32, 32), dtype=np.uint8))
    assert warnings_of(usual) == []


def test_nodata_pixels_do_not_count_in_the_scene_statistics(tmp_path):
    data = np.zeros((3, 40, 40), np.uint8)  # 0 = nodata over most of the scene
    data[:, 30:, 30:] = 120
    path = write_raster(tmp_path / "edge.tif", data, nodata=0)
    assert warnings_of(path) == []  # the median of every pixel would be 0, below 7


def test_a_model_that_does_not_know_its_imagery_is_never_warned_about(tmp_path):
    unknown = ModelSettings(image_size=64, num_layers=3)
    uint16 = write_raster(tmp_path / "l8.tif", np.full((3, 16, 16), 9000, np.uint16),
                          crs=RGB_BYTE_CRS, transform=RGB_BYTE_TRANSFORM)
    assert warnings_of(uint16, unknown) == []
    assert len(warnings_of(uint16)) == 2  # pixel size and values, with the facts


def test_the_sample_of_a_large_scene_is_a_few_windows_or_its_overviews(tmp_path):
    data = np.full((3, 1500, 1300), 100, np.uint8)
    path = write_raster(tmp_path / "big.tif", data)
    with rasterio.open(path) as src:
        assert scene_sample(src, [1, 2, 3]).shape == (16 * 128 * 128, 3)  # 4 x 4 windows
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4])
    with rasterio.open(path) as src:
        assert scene_sample(src, [1, 2, 3]).shape == (750 * 650, 3)  # 1:2 view, at most 1024
    small = write_raster(tmp_path / "small.tif", data[:, :300, :200])
    with rasterio.open(small) as src:
        assert scene_sample(src, [3, 1]).shape == (300 * 200, 2)  # whole


def test_training_statistics_come_from_a_sample_of_the_valid_pixels():
    class Tiles:
        """Three 8 x 8 tiles: band values 10 + tile number, band 2 doubled; a quarter invalid."""

        def __len__(self) -> int:
            return 3

        def read(self, index: int):
            image = np.empty((8, 8, 2), np.float32)
            image[..., 0], image[..., 1] = 10 + index, 2 * (10 + index)
            valid = np.ones((8, 8), bool)
            valid[:4, :4] = False
            image[~valid] = 9999  # invalid pixels' values must not count
            return image, np.zeros((8, 8), np.uint8), valid

    pixels = imagery.training_pixels(Tiles(), stride=2)
    assert pixels.shape == (3 * 12, 2) and pixels.max() == 24
    stats = imagery.band_stats(pixels)
    assert [s.p50 for s in stats] == [11, 22] and [s.mean for s in stats] == [11, 22]
    assert stats[0].p1 == pytest.approx(10) and stats[1].p99 == pytest.approx(24)
    assert imagery.band_stats(np.empty((0, 2))) is None


# --------------------------------------------------------------------------------------------
# The done-when check of issue #31, through the real command line
# --------------------------------------------------------------------------------------------


def test_geoseg_predict_rgb_byte_with_hokkaido_iburi_prints_the_warning_even_quiet(tmp_path):
    scene = rgb_byte_like(tmp_path / "RGB.byte.tif")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(
        [sys.executable, "-m", "geoseg", "predict", str(scene), "--model", "hokkaido-iburi",
         "--out", str(tmp_path / "mask.tif"), "--backend", "keras", "--device", "cpu", "-q"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr  # never refused
    expected = ("WARNING: RGB.byte.tif: 300 m pixels; hokkaido-iburi was trained on ~3 m "
                "pixels: results may be poor or noise")
    assert [line for line in done.stderr.splitlines() if "pixels;" in line][0].startswith(
        expected), done.stderr
    assert (tmp_path / "mask.tif").is_file()
