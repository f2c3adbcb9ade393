"""The tiler: grid arithmetic (property tests), windows inside the scene, padded reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import transform as window_transform

from geoseg.raster.tiling import TileGrid, axis_offsets, input_cache_bytes, pad_to_tile, read_tile


@pytest.mark.parametrize(
    ("extent", "size", "overlap", "expected"),
    [
        (512, 512, 64, [0]),
        (300, 512, 64, [0]),
        (1000, 512, 64, [0, 448, 488]),
        (960, 512, 64, [0, 448]),
        (1024, 512, 0, [0, 512]),
        (1025, 512, 0, [0, 512, 513]),
        (1, 512, 0, [0]),
    ],
)
def test_axis_offsets_known_cases(extent: int, size: int, overlap: int, expected: list[int]):
    assert axis_offsets(extent, size, overlap) == expected


@pytest.mark.parametrize(("extent", "size", "overlap"), [(0, 8, 0), (10, 0, 0), (10, 8, 8),
                                                         (10, 8, -1)])
def test_axis_offsets_rejects_impossible_settings(extent: int, size: int, overlap: int):
    with pytest.raises(ValueError):
        axis_offsets(extent, size, overlap)


@settings(max_examples=300, deadline=None)
@given(
    extent=st.integers(1, 3000),
    size=st.integers(1, 600),
    overlap_share=st.floats(0.0, 0.99),
)
def test_axis_offsets_cover_everything_inside_the_scene(extent, size, overlap_share):
    overlap = min(int(size * overlap_share), size - 1)
    offsets = axis_offsets(extent, size, overlap)
    length = min(size, extent)
    covered = np.zeros(extent, dtype=bool)
    for off in offsets:
        assert 0 <= off and off + length <= extent  # inside the scene
        covered[off : off + length] = True
    assert covered.all()  # every pixel
    assert offsets == sorted(set(offsets))
    if extent > size:  # the TorchGeo count: ceil((extent - size) / stride) + 1
        assert len(offsets) == math.ceil((extent - size) / (size - overlap)) + 1
        # neighbours overlap by at least `overlap` pixels
        assert all(b - a <= size - overlap for a, b in zip(offsets, offsets[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 400), width=st.integers(1, 400), size=st.sampled_from([16, 64, 128]),
       overlap=st.integers(0, 15))
def test_grid_tiles_cover_the_scene_with_full_windows(height, width, size, overlap):
    grid = TileGrid(height, width, size, overlap)
    hits = np.zeros((height, width), dtype=np.int32)
    tiles = list(grid)
    assert len(tiles) == len(grid) == grid.shape[0] * grid.shape[1]
    for tile in tiles:
        w = tile.window
        assert w.row_off >= 0 and w.col_off >= 0
        assert w.row_off + w.height <= height and w.col_off + w.width <= width
        assert w.height == min(size, height) and w.width == min(size, width)
        hits[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (hits >= 1).all()


def test_tile_transform_is_the_scene_transform_shifted(make_raster):
    path = make_raster(height=300, width=250)
    with rasterio.open(path) as src:
        grid = TileGrid.for_dataset(src, 128, 32)
        for tile in grid:
            assert tile.transform == window_transform(tile.window, src.transform)
            x, y = tile.transform @ (0, 0)
            assert (x, y) == src.transform @ (tile.window.col_off, tile.window.row_off)


def test_read_tile_returns_band_last_window_pixels(make_raster):
    path = make_raster(height=200, width=150, bands=4)
    with rasterio.open(path) as src:
        whole = src.read()
        grid = TileGrid.for_dataset(src, 64, 8)
        for tile in grid:
            image, valid = read_tile(src, tile, 64, bands=[3, 1])
            w = tile.window
            expected = whole[[2, 0], w.row_off : w.row_off + 64, w.col_off : w.col_off + 64]
            assert image.dtype == np.float32 and image.shape == (64, 64, 2)
            np.testing.assert_array_equal(image, np.moveaxis(expected, 0, -1))
            assert valid.all()


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 5), (30, 50), (64, 10)])
def test_small_scenes_are_reflect_padded_and_padding_is_not_valid(make_raster, height, width):
    path = make_raster(height=height, width=width, bands=1)
    with rasterio.open(path) as src:
        data = src.read(1)
        (tile,) = list(TileGrid.for_dataset(src, 64, 8))
        image, valid = read_tile(src, tile, 64)
    assert image.shape == (64, 64, 1)
    np.testing.assert_array_equal(image[:height, :width, 0], data)
    assert valid[:height, :width].all() and valid.sum() == height * width
    if 1 < height < 64:  # reflect: row `height` mirrors row `height - 2`
        np.testing.assert_array_equal(image[height, :width, 0], data[height - 2])


def test_pad_to_tile_reflects_bottom_and_right():
    array = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    padded = pad_to_tile(array, 4)
    assert padded.shape == (1, 4, 4)
    np.testing.assert_array_equal(padded[0, :, 3], [1, 4, 1, 4])


def test_nodata_pixels_are_invalid_in_read_tile(make_raster):
    data = np.full((3, 40, 40), 9, dtype=np.uint8)
    data[:, :10, :] = 0
    path = make_raster(data=data, nodata=0)
    with rasterio.open(path) as src:
        (tile,) = list(TileGrid.for_dataset(src, 64, 0))
        _, valid = read_tile(src, tile, 64)
    assert not valid[:10, :40].any() and valid[10:40, :40].all()


@pytest.mark.parametrize("tiled", [True, False])
def test_the_input_cache_of_a_tiled_file_does_not_grow_with_the_scene_width(tmp_path, tiled):
    """A tiled file needs a window's blocks and its neighbours' overlap, whatever the width; a
    file in strips as wide as the scene needs a window row of them."""
    needs = []
    for width in (2000, 8000):
        path = tmp_path / f"{width}.tif"
        layout = {"tiled": True, "blockxsize": 256, "blockysize": 256} if tiled else {}
        with rasterio.open(path, "w", driver="GTiff", width=width, height=1200, count=3,
                           dtype="uint8", crs="EPSG:32654",
                           transform=rasterio.transform.from_origin(0, 0, 3, 3), **layout) as dst:
            assert dst.block_shapes[0][1] == (256 if tiled else width)
        with rasterio.open(path) as src:
            needs.append(input_cache_bytes(src, TileGrid(1200, width, 512, 64)))
    if tiled:  # rows and columns of a window and two blocks: 1024 x 1024 x 3 bytes
        assert needs == [1024 * 1024 * 3] * 2
    else:  # a window row and two strips, across the scene
        rows = needs[0] // (2000 * 3)
        assert 512 < rows <= 1200 and needs[1] == rows * 8000 * 3
