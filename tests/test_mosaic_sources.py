"""A mosaic (VRT) whose source is missing, unreadable or corrupt is refused, never read as data.

GDAL opens a VRT without its sources. A missing one is reported once (by a thread of GDAL's own
when it reads sources in parallel, GDAL 3.10) and then read as zeros: a mask of the mosaic would
look complete and be wrong. Opening a scene checks every source; reading one fails on any source
GDAL cannot read, whatever path reads it (predict, evaluate, tile, bands of rows on Dask).
"""

from __future__ import annotations

import pytest
import rasterio
from conftest import PixelwisePredictor
from rasterio.windows import Window
from test_bad_inputs import striped_mosaic

from geoseg.errors import InputError
from geoseg.prediction.predict import BandedPrediction, PredictOptions, plan_run
from geoseg.raster.scene import open_scene, read_window
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)
ACROSS_SOURCES = Window(0, 900, 2048, 600)  # 1.2 million pixels over all four tiles


def test_complete_mosaic_reads_its_sources(tmp_path):
    vrt = striped_mosaic(tmp_path)
    with open_scene(vrt) as src, rasterio.open(tmp_path / "tile_11.tif") as tile:
        data, valid = read_window(src, ACROSS_SOURCES, [1, 2, 3])
        assert valid.all()
        assert (data[:, 1024 - 900:, 1024:] == tile.read(window=Window(0, 0, 1024, 476))).all()


def test_a_source_gone_after_opening_fails_the_read(tmp_path):
    vrt = striped_mosaic(tmp_path)
    with open_scene(vrt) as src:
        (tmp_path / "tile_11.tif").unlink()
        with pytest.raises(InputError, match=r"mosaic.vrt: pixels at rows 900-1500, columns "
                                             r"0-2048 cannot be read \(.*tile_11.tif: No such "
                                             r"file or directory\)"):
            read_window(src, ACROSS_SOURCES, [1, 2, 3])


def test_a_corrupt_source_fails_the_read(tmp_path):
    vrt = striped_mosaic(tmp_path)
    tile = tmp_path / "tile_11.tif"
    tile.write_bytes(tile.read_bytes()[: tile.stat().st_size // 2])  # the header opens
    with open_scene(vrt) as src:
        with pytest.raises(InputError, match=r"tile_11.tif, band 1: IReadBlock failed.*"
                                             "truncated or corrupted"):
            read_window(src, Window(0, 1024, 2048, 1024), [1, 2, 3])


def test_a_source_that_is_no_raster_is_refused_at_open(tmp_path):
    vrt = striped_mosaic(tmp_path, side=64)
    (tmp_path / "tile_01.tif").write_text("not a raster")
    with pytest.raises(InputError, match=r"mosaic.vrt: its source .*tile_01.tif cannot be read "
                                         r"\(.*\); restore it, or rebuild the mosaic without "
                                         r"it \(gdalbuildvrt\)"):
        open_scene(vrt)


def test_a_nested_mosaic_names_the_mosaic_that_lists_the_missing_source(tmp_path):
    inner = striped_mosaic(tmp_path, side=64)
    outer = tmp_path / "outer.vrt"
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{band}"><SimpleSource>'
                    f'<SourceFilename relativeToVRT="1">mosaic.vrt</SourceFilename><SourceBand>'
                    f"{band}</SourceBand></SimpleSource></VRTRasterBand>" for band in (1, 2, 3))
    outer.write_text('<VRTDataset rasterXSize="128" rasterYSize="128"><SRS>EPSG:32654</SRS>'
                     "<GeoTransform>582000, 3, 0, 4734000, 0, -3</GeoTransform>"
                     f"{bands}</VRTDataset>")
    with open_scene(outer):
        pass
    (tmp_path / "tile_10.tif").unlink()
    with pytest.raises(InputError) as refused:
        open_scene(outer)
    assert str(refused.value) == (
        f"{outer}: its source {tmp_path / 'tile_10.tif'} (listed in {inner}) does not exist; "
        "restore it, or rebuild the mosaic without it (gdalbuildvrt)")


def test_bands_of_rows_refuse_a_mosaic_missing_a_source(tmp_path):
    """The path of Dask workers: the plan, and each band's task when a source went since."""
    vrt = striped_mosaic(tmp_path, side=256)
    out = tmp_path / "mask.tif"
    plan = BandedPrediction.plan(vrt, out, plan_run(PredictOptions(), SETTINGS), row_bands=2)
    assert len(plan.row_bands) == 2
    (tmp_path / "tile_00.tif").unlink()
    for band in range(2):
        with pytest.raises(InputError, match="tile_00.tif does not exist"):
            plan.predict_band(band, PixelwisePredictor())
    with pytest.raises(InputError, match="tile_00.tif does not exist"):
        BandedPrediction.plan(vrt, out, plan_run(PredictOptions(overwrite=True), SETTINGS),
                              row_bands=2)
    assert not out.exists()
