"""Real-world raster quirks: every way GDAL marks pixels invalid is honoured everywhere.

Each quirk is a small raster made here with rasterio, as real deliveries come: an internal
GeoTIFF mask, an external ``.msk`` sidecar, RGBA with partial alpha, nodata in only some bands,
a CRS given as WKT without an EPSG code, a strip-organised file, float64 with nodata, and a
scene smaller than one tile. The pixels under the mask hold bright values that the test model
calls landslide, so a pipeline that ignored the mask would draw polygons there. Each quirk goes
through ``geoseg predict`` (mask and probabilities), ``vectorize``, ``evaluate`` and ``tile``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from conftest import TEST_CRS, TEST_TRANSFORM, pixelwise_keras_model
from rasterio.crs import CRS
from rasterio.features import shapes

from geoseg.cli import cli
from geoseg.model.flexunet import save_model
from geoseg.raster.scene import describe_validity, open_scene, read_window
from geoseg.settings import ModelSettings
from geoseg.training.datasets import LabelledScene, TileDataset

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)
HEIGHT, WIDTH = 150, 170

# Transverse Mercator on the Iburi area, written out in WKT with no authority code.
WKT_NO_EPSG = (
    'PROJCS["Iburi local TM",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",42.7],'
    'PARAMETER["central_meridian",142.0],PARAMETER["scale_factor",0.9999],'
    'PARAMETER["false_easting",200000],PARAMETER["false_northing",100000],UNIT["metre",1]]'
)


def scene_pixels(height: int = HEIGHT, width: int = WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """RGB pixels with bright 'landslides', and the invalid area (True = no data).

    The invalid area (left columns, a block at the bottom right) is bright too: the
    pixelwise test model calls it landslide unless it is masked.
    """
    rng = np.random.default_rng(7)
    data = rng.integers(20, 90, size=(3, height, width), dtype=np.uint8)
    data[:, height // 5 : height * 2 // 5, width * 2 // 5 : width * 3 // 5] = 240  # a landslide
    invalid = np.zeros((height, width), dtype=bool)
    invalid[:, : width // 4] = True
    invalid[height * 2 // 3 :, width * 3 // 4 :] = True
    data[:, invalid] = 230
    return data, invalid


def _profile(data: np.ndarray, **extra: object) -> dict[str, object]:
    bands, height, width = data.shape
    return {"driver": "GTiff", "width": width, "height": height, "count": bands,
            "dtype": data.dtype.name, "crs": TEST_CRS, "transform": TEST_TRANSFORM, **extra}


def internal_mask(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), \
            rasterio.open(path, "w", **_profile(data, tiled=True)) as dst:
        dst.write(data)
        dst.write_mask(~invalid)
    return invalid


def msk_sidecar(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), \
            rasterio.open(path, "w", **_profile(data)) as dst:
        dst.write(data)
        dst.write_mask(~invalid)
    assert Path(f"{path}.msk").exists()
    return invalid


def rgba_partial_alpha(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    alpha = np.where(invalid, 0, 255).astype(np.uint8)
    alpha[100:120, 60:100] = 128  # half-transparent: still data
    rgba = np.concatenate([data, alpha[None]])
    with rasterio.open(path, "w", **_profile(rgba, photometric="RGB", alpha="YES")) as dst:
        dst.write(rgba)
    with rasterio.open(path) as src:
        assert src.colorinterp[3].name == "alpha"
    return invalid


def nodata_in_some_bands(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    data[:, invalid] = 0  # nodata in every band: no data
    data[0, 80:100, 120:140] = 0  # nodata in band 1 only: data, as GDAL's dataset mask says
    with rasterio.open(path, "w", **_profile(data, nodata=0)) as dst:
        dst.write(data)
    return invalid


def wkt_crs_without_epsg(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    data[:, invalid] = 0
    with rasterio.open(path, "w", **_profile(data, nodata=0, crs=CRS.from_wkt(WKT_NO_EPSG))) \
            as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() is None
    return invalid


def strip_organised(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    data[:, invalid] = 0
    with rasterio.open(path, "w", **_profile(data, nodata=0, tiled=False, blockysize=7)) \
            as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        assert src.block_shapes[0] == (7, WIDTH)
    return invalid


def float64_with_nodata(path: Path) -> np.ndarray:
    data, invalid = scene_pixels()
    values = data.astype(np.float64)
    values[:, invalid] = -9999.0
    with rasterio.open(path, "w", **_profile(values, nodata=-9999.0)) as dst:
        dst.write(values)
    return invalid


def smaller_than_a_tile(path: Path) -> np.ndarray:
    data, invalid = scene_pixels(40, 50)
    data[:, invalid] = 0
    with rasterio.open(path, "w", **_profile(data, nodata=0)) as dst:
        dst.write(data)
    return invalid


@dataclass(frozen=True)
class Quirk:
    name: str
    make: Callable[[Path], np.ndarray]
    validity: str


QUIRKS = [
    Quirk("internal_mask", internal_mask, "internal mask"),
    Quirk("msk_sidecar", msk_sidecar, ".msk sidecar"),
    Quirk("rgba_partial_alpha", rgba_partial_alpha, "alpha band"),
    Quirk("nodata_in_some_bands", nodata_in_some_bands, "nodata value"),
    Quirk("wkt_crs_without_epsg", wkt_crs_without_epsg, "nodata value"),
    Quirk("strip_organised", strip_organised, "nodata value"),
    Quirk("float64_with_nodata", float64_with_nodata, "nodata value"),
    Quirk("smaller_than_a_tile", smaller_than_a_tile, "nodata value"),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


def geoseg(*args: str) -> str:
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def truth_raster(scene: Path, path: Path) -> Path:
    """Labels on the scene grid: landslide where band 1 is bright (everywhere)."""
    with rasterio.open(scene) as src:
        band = src.read(1)
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1,
                   "dtype": "uint8", "crs": src.crs, "transform": src.transform}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write((band > 128).astype(np.uint8)[None])
    return path


@pytest.mark.parametrize("quirk", QUIRKS, ids=[q.name for q in QUIRKS])
def test_masked_pixels_are_nodata_everywhere(quirk: Quirk, model: Path, tmp_path: Path):
    scene = tmp_path / f"{quirk.name}.tif"
    invalid = quirk.make(scene)
    with open_scene(scene) as src:
        assert describe_validity(src) == quirk.validity
        crs, transform = src.crs, src.transform

    # predict: nodata exactly where the scene has none, in the mask and the probabilities
    mask_path, prob_path = tmp_path / "mask.tif", tmp_path / "prob.tif"
    polygons_path = tmp_path / "landslides.gpkg"
    geoseg("predict", scene, "--model", model, "--out", mask_path, "--probabilities", prob_path,
           "--vector", polygons_path, "-q")
    with rasterio.open(mask_path) as mask_src, rasterio.open(prob_path) as prob_src:
        assert mask_src.crs == crs and mask_src.transform == transform
        assert mask_src.crs.to_wkt() == crs.to_wkt()
        mask = mask_src.read(1)
        np.testing.assert_array_equal(mask == 255, invalid)
        assert (mask[~invalid] == 1).any()  # the valid landslide is found
        np.testing.assert_array_equal((prob_src.read() == 255).all(axis=0), invalid)
    # the default windows (fitted to the scene) read every quirk as the model's
    # tiles do: a per-pixel model gives the same mask either way
    geoseg("predict", scene, "--model", model, "--out", tmp_path / "tiles.tif", "--window",
           "tile", "-q")
    with rasterio.open(tmp_path / "tiles.tif") as tiles_src:
        np.testing.assert_array_equal(tiles_src.read(1), mask)

    # vectorize (through predict --vector and on its own): no polygon over no-data
    geoseg("vectorize", mask_path, "--out", tmp_path / "again.gpkg", "-q")
    masked_area = shapely.union_all([
        shapely.geometry.shape(geom)
        for geom, value in shapes(invalid.astype(np.uint8), transform=transform) if value
    ])
    for path in (polygons_path, tmp_path / "again.gpkg"):
        polygons = gpd.read_file(path)
        assert len(polygons) >= 1
        overlap = shapely.intersection(polygons.union_all(), masked_area).area
        assert overlap == pytest.approx(0.0, abs=1e-6), f"{path.name}: polygons over no-data"

    # evaluate: masked pixels are left out of the scores
    labels = truth_raster(scene, tmp_path / "truth.tif")
    report = tmp_path / "report"
    geoseg("evaluate", scene, "--labels", labels, "--model", model, "--out", report, "-q")
    scored = json.loads((report / "evaluation.json").read_text())
    assert scored["pixels"] == int((~invalid).sum())

    # train: the training reader gives masked pixels no weight in the loss
    with TileDataset([LabelledScene(scene, labels)], SETTINGS) as examples:
        for index, (_, tile) in enumerate(examples.tiles):
            _, _, valid = examples.read(index)
            window = tile.window
            under = invalid[window.row_off : window.row_off + window.height,
                            window.col_off : window.col_off + window.width]
            assert not valid[: under.shape[0], : under.shape[1]][under].any()

    # tile: chips carry the mask, and no chip pixel under the mask counts as data
    chips = tmp_path / "chips"
    geoseg("tile", scene, "--labels", labels, "--out", chips, "--tile-size", "64",
           "--overlap", "16", "-q")
    chip_files = sorted((chips / "images").glob("*.tif"))
    assert chip_files
    for chip in chip_files:
        with rasterio.open(chip) as src:
            assert src.count == 3  # an alpha band is the mask, never a chip band
            rows, cols = rasterio.transform.rowcol(
                transform, *(src.transform * (0.5, 0.5)))
            height = min(src.height, invalid.shape[0] - rows)
            width = min(src.width, invalid.shape[1] - cols)
            chip_valid = src.dataset_mask()[:height, :width] > 0
            under = invalid[rows : rows + height, cols : cols + width]
            assert not (chip_valid & under).any(), chip.name


def test_nodata_rule_is_gdals_all_bands(tmp_path: Path):
    """A pixel is no data when every band read is at nodata (or NaN), as in GDAL's mask."""
    data = np.array([[[0, 0, 5, 9]], [[0, 7, 0, 9]]], dtype=np.uint8)
    path = tmp_path / "two.tif"
    with rasterio.open(path, "w", **_profile(data, nodata=0)) as dst:
        dst.write(data)
    with open_scene(path) as src:
        _, valid = read_window(src, rasterio.windows.Window(0, 0, 4, 1), [1, 2])
        np.testing.assert_array_equal(valid, [[False, True, True, True]])
        _, valid = read_window(src, rasterio.windows.Window(0, 0, 4, 1), [1])
        np.testing.assert_array_equal(valid, [[False, False, True, True]])
        _, valid = read_window(src, rasterio.windows.Window(0, 0, 4, 1), [1, 2], 9)
        np.testing.assert_array_equal(valid, [[False, True, True, False]])
    floats = np.array([[[np.nan, 1.0]], [[np.nan, np.nan]]], dtype=np.float32)
    path = tmp_path / "nan.tif"
    with rasterio.open(path, "w", **_profile(floats)) as dst:
        dst.write(floats)
    with open_scene(path) as src:
        _, valid = read_window(src, rasterio.windows.Window(0, 0, 2, 1), [1, 2])
        np.testing.assert_array_equal(valid, [[False, True]])


@pytest.mark.parametrize("validity", ["nodata value", "internal mask"])
def test_a_single_pixel_of_data_is_found_in_a_sparse_scene(tmp_path: Path, validity: str):
    """Windows without data are told cheaply (a sparse GeoTIFF's missing blocks, nodata or
    masked), and a window with one valid pixel is still found exactly."""
    side = 1024
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8",
               "crs": TEST_CRS, "transform": TEST_TRANSFORM, "tiled": True, "blockxsize": 256,
               "blockysize": 256, "sparse_ok": True,
               "nodata": 0 if validity == "nodata value" else None}
    path = tmp_path / "sparse.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((3, 1, 1), 7, np.uint8), window=rasterio.windows.Window(700, 300, 1, 1))
        if validity == "internal mask":
            mask = np.zeros((side, side), np.uint8)
            mask[300, 700] = 255
            dst.write_mask(mask)
    with open_scene(path) as src:
        assert describe_validity(src) == validity
        for col in range(0, side, 512):
            for row in range(0, side, 512):
                window = rasterio.windows.Window(col, row, 512, 512)
                data, valid = read_window(src, window, [1, 2, 3])
                expected = np.zeros((512, 512), bool)
                if (row, col) == (0, 512):
                    expected[300, 700 - 512] = True
                np.testing.assert_array_equal(valid, expected)
                assert data.shape == (3, 512, 512)
                assert int(data.sum()) == 21 * expected.sum()
