"""Tests of geoseg.labels.reader: labels land on the scene grid exactly where the tiler reads
images.

Scenes are tiny GeoTIFFs written to tmp_path in EPSG:32654 (UTM 54N) with 3 m pixels near
42.75 N 141.98 E, where the reference Hokkaido Iburi tiles lie (they carry no georeference
themselves). The reference masks are read from ../shared when present.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.windows import Window

from geoseg.errors import ConfigError, InputError
from geoseg.labels.reader import (
    NO_LABEL,
    LabelSource,
    RasterLabels,
    VectorLabels,
    decode_index_mask,
    decode_rgb_mask,
    label_fraction,
    open_labels,
    read_mask_png,
    validate_rgb_map,
)
from geoseg.raster.tiling import TileGrid, pad_to_tile, read_tile

UTM = "EPSG:32654"
PIXEL = 3.0
X0, Y0 = 580_000.0, 4_734_000.0  # EPSG:32654, near 42.75 N 141.98 E
TRANSFORM = Affine(PIXEL, 0.0, X0, 0.0, -PIXEL, Y0)
RGB_MAP = {(0, 0, 0): 0, (255, 0, 0): 1}
REFERENCE = Path(__file__).parents[1] / ".." / "shared" / "data" / "hokkaido-iburi"
REFERENCE_MASKS = sorted(REFERENCE.glob("*/masks/*.png"))

# Test PNGs carry no georeference on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = UTM,
    transform: Affine = TRANSFORM,
    nodata: float | None = None,
    driver: str = "GTiff",
) -> Path:
    """Write (bands, h, w) or (h, w) ``data`` as a raster and return its path."""
    data = data[None] if data.ndim == 2 else data
    profile = {
        "driver": driver,
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "nodata": nodata,
    }
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def pixel_box(row0: float, row1: float, col0: float, col1: float) -> shapely.Polygon:
    """The map-coordinate box covering rows [row0, row1) and columns [col0, col1)."""
    return shapely.box(X0 + col0 * PIXEL, Y0 - row1 * PIXEL, X0 + col1 * PIXEL, Y0 - row0 * PIXEL)


def write_vector(path: Path, geoms: list, crs: str | None = UTM, **columns: list) -> Path:
    gpd.GeoDataFrame(columns, geometry=geoms, crs=crs).to_file(path)
    return path


def whole(source: LabelSource) -> np.ndarray:
    """The labels of the whole scene in one window (test scenes are small)."""
    size = max(source.height, source.width)
    return source.read(Window(0, 0, source.width, source.height), size)[
        : source.height, : source.width
    ]


@pytest.fixture
def make_scene(tmp_path: Path):
    """Open a zero-valued scene of the given size; closed after the test."""
    opened = []

    def make(height: int = 50, width: int = 130, *, crs: str | None = UTM, data=None):
        data = np.zeros((height, width), np.uint8) if data is None else data
        path = write_raster(tmp_path / f"scene{len(opened)}.tif", data, crs=crs)
        opened.append(rasterio.open(path))
        return opened[-1]

    yield make
    for dataset in opened:
        dataset.close()


# ------------------------------------------------------------------------------------------
# Vector labels
# ------------------------------------------------------------------------------------------


def test_square_lands_on_expected_pixels_by_pixel_centre(tmp_path, make_scene):
    scene = make_scene()
    # Edges on pixel edges, and edges 0.4 pixel inside columns 30 and 39: only pixels whose
    # centre is inside are burnt (all_touched=True would also burn columns 30 and 39).
    path = write_vector(
        tmp_path / "labels.gpkg", [pixel_box(5, 15, 10, 22), pixel_box(20, 30, 30.6, 39.4)]
    )
    with open_labels(path, scene) as labels:
        assert isinstance(labels, VectorLabels)
        got = whole(labels)
    expected = np.zeros((50, 130), np.uint8)
    expected[5:15, 10:22] = 1
    expected[20:30, 31:39] = 1
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8


def test_vector_in_another_crs_is_reprojected(tmp_path, make_scene):
    scene = make_scene(60, 60)
    square = shapely.segmentize(pixel_box(10, 40, 15, 45), PIXEL)  # vertices every pixel
    to_wgs84 = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(square, lambda xy: np.column_stack(to_wgs84.transform(*xy.T)))
    assert 141.9 < lonlat.centroid.x < 142.1 and 42.7 < lonlat.centroid.y < 42.8
    path = write_vector(tmp_path / "wgs84.geojson", [lonlat], crs="EPSG:4326")
    with open_labels(path, scene) as labels:
        got = whole(labels)
    # The round trip UTM -> WGS84 -> UTM moves vertices by float round-off only, but a pixel
    # whose centre were that close to an edge could flip: allow differences on the one-pixel
    # ring along the square's edges, and nowhere else.
    inside = np.zeros((60, 60), bool)
    inside[11:39, 16:44] = True
    around = np.ones((60, 60), bool)
    around[9:41, 14:46] = False
    assert got[inside].min() == 1
    assert got[around].max() == 0
    assert abs(int(got.sum()) - 30 * 30) <= 4 * 30  # at most the ring differs


def test_window_reads_equal_whole_scene_slices_and_image_padding(tmp_path, make_scene):
    shapes = [
        shapely.Point(X0 + 40 * PIXEL, Y0 - 20 * PIXEL).buffer(14 * PIXEL),
        shapely.Polygon(
            [
                (X0 + 70 * PIXEL, Y0 - 2 * PIXEL),
                (X0 + 125 * PIXEL, Y0 - 10 * PIXEL),
                (X0 + 90 * PIXEL, Y0 - 48 * PIXEL),
            ]
        ),
        pixel_box(-5, 60, 120.3, 140).difference(pixel_box(20, 30, 124, 127)),  # hole
    ]
    path = write_vector(tmp_path / "labels.gpkg", shapes, kind=[1, 2, 1])
    # Whole-scene rasterisation in one go, higher class burnt last.
    reference = rasterize(
        [(shapes[0], 1), (shapes[2], 1), (shapes[1], 2)], out_shape=(50, 130), transform=TRANSFORM
    )
    assert set(np.unique(reference)) == {0, 1, 2}
    # A scene whose image is its own labels: read_tile's padded image must equal the labels.
    scene = make_scene(50, 130, data=reference)
    grid = TileGrid.for_dataset(scene, 64, 8)
    assert grid.shape == (1, 3)  # 50 rows < 64: every window is padded at the bottom
    with open_labels(path, scene, class_column="kind", num_classes=3) as labels:
        for tile in grid:
            window = tile.window
            got = labels.read(window, 64)
            rows = slice(window.row_off, window.row_off + window.height)
            cols = slice(window.col_off, window.col_off + window.width)
            np.testing.assert_array_equal(got, pad_to_tile(reference[rows, cols], 64))
            image, valid = read_tile(scene, tile, 64)
            np.testing.assert_array_equal(got, image[..., 0].astype(np.uint8))
            assert not valid[50:].any()


def test_class_column_names_ids_and_precedence(tmp_path, make_scene):
    scene = make_scene()
    path = write_vector(
        tmp_path / "labels.gpkg",
        [pixel_box(0, 10, 0, 10), pixel_box(5, 15, 5, 15), pixel_box(20, 30, 50, 60)],
        kind=["scarp", "landslide", "2"],
    )
    names = ["background", "landslide", "scarp"]
    with open_labels(path, scene, class_column="kind", class_names=names, num_classes=3) as lab:
        got = whole(lab)
    assert got[2, 2] == 2 and got[12, 12] == 1
    assert got[7, 7] == 2  # overlap of scarp (2) and a later landslide (1): higher id wins
    assert (got[20:30, 50:60] == 2).all()

    with pytest.raises(InputError, match=r"'debris'.*not class ids 0..2 or names"):
        bad = write_vector(tmp_path / "bad.gpkg", [pixel_box(0, 5, 0, 5)], kind=["debris"])
        open_labels(bad, scene, class_column="kind", class_names=names, num_classes=3)
    with pytest.raises(InputError, match="give class_names"):
        open_labels(path, scene, class_column="kind", num_classes=3)
    with pytest.raises(InputError, match="has no column 'class'; columns: kind"):
        open_labels(path, scene, class_column="class", num_classes=3)
    with pytest.raises(ConfigError, match="class_names"):
        open_labels(path, scene, class_column="kind", class_names=names[:2], num_classes=3)


def test_integer_class_column(tmp_path, make_scene):
    scene = make_scene()
    path = write_vector(
        tmp_path / "labels.gpkg", [pixel_box(0, 4, 0, 4), pixel_box(0, 4, 10, 14)], cls=[0, 1]
    )
    with open_labels(path, scene, class_column="cls") as labels:
        got = whole(labels)
    assert got.sum() == 16 and (got[0:4, 10:14] == 1).all()
    with pytest.raises(InputError, match="values 5 that are not class ids 0..1"):
        bad = write_vector(tmp_path / "bad.gpkg", [pixel_box(0, 4, 0, 4)], cls=[5])
        open_labels(bad, scene, class_column="cls")


def test_invalid_polygons_repaired_and_other_geometries_ignored(tmp_path, make_scene):
    scene = make_scene()
    bowtie = shapely.Polygon(
        [(X0, Y0), (X0 + 30 * PIXEL, Y0 - 30 * PIXEL), (X0 + 30 * PIXEL, Y0), (X0, Y0 - 30 * PIXEL)]
    )
    assert not bowtie.is_valid
    line = shapely.LineString(
        [(X0 + 60 * PIXEL, Y0 - 5 * PIXEL), (X0 + 100 * PIXEL, Y0 - 45 * PIXEL)]
    )
    point = shapely.Point(X0 + 110.5 * PIXEL, Y0 - 10.5 * PIXEL)
    path = write_vector(tmp_path / "labels.gpkg", [bowtie, line, point])
    with (
        pytest.warns(UserWarning, match="repaired 1 invalid"),
        pytest.warns(UserWarning, match=r"ignored 2 .*1 LineString, 1 Point"),
    ):
        labels = open_labels(path, scene)
    with labels:
        got = whole(labels)
    expected = rasterize(
        [(shapely.make_valid(bowtie), 1)], out_shape=(50, 130), transform=TRANSFORM
    )
    np.testing.assert_array_equal(got, expected)
    assert got[14, 3] == 1 and got[14, 26] == 1  # both lobes of the bow tie
    assert got[:, 40:].sum() == 0  # neither the line nor the point burnt a pixel


@pytest.mark.parametrize(
    "shape",
    [
        shapely.box(X0 + 1e5, Y0, X0 + 1e5 + 30, Y0 + 30),  # 100 km east
        shapely.box(141.98, 42.75, 141.99, 42.76),  # lon/lat coordinates labelled as UTM
    ],
)
def test_vector_not_overlapping_scene(tmp_path, make_scene, shape):
    scene = make_scene()
    path = write_vector(tmp_path / "labels.gpkg", [shape])
    with pytest.raises(
        InputError, match=r"labels.gpkg does not overlap .*scene0.tif: check the CRS"
    ):
        open_labels(path, scene)


def test_vector_without_crs(tmp_path, make_scene):
    scene = make_scene()
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 5, 0, 5)], crs=None)
    assert gpd.read_file(path).crs is None
    with pytest.raises(InputError, match="labels.gpkg: has no CRS"):
        open_labels(path, scene)


def test_scene_without_crs_with_vector_labels(tmp_path, make_scene):
    scene = make_scene(crs=None)
    path = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 5, 0, 5)])
    with pytest.raises(InputError, match=r"scene0.tif: has no CRS, so the polygons"):
        open_labels(path, scene)


def test_vector_without_polygons(tmp_path, make_scene):
    scene = make_scene()
    path = write_vector(tmp_path / "points.gpkg", [shapely.Point(X0 + 3, Y0 - 3)])
    with pytest.warns(UserWarning, match="1 Point"), pytest.raises(InputError, match="no polygons"):
        open_labels(path, scene)


# ------------------------------------------------------------------------------------------
# Label rasters
# ------------------------------------------------------------------------------------------


def random_labels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (height, width), dtype=np.uint8)


def test_label_raster_on_scene_grid(tmp_path, make_scene):
    scene = make_scene()
    data = random_labels(50, 130)
    data[40:, :20] = 9  # nodata: no label
    path = write_raster(tmp_path / "labels.tif", data, nodata=9)
    expected = np.where(data == 9, NO_LABEL, data)
    with open_labels(path, scene) as labels:
        assert isinstance(labels, RasterLabels)
        for tile in TileGrid.for_dataset(scene, 64, 8):
            w = tile.window
            part = expected[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
            np.testing.assert_array_equal(labels.read(w, 64), pad_to_tile(part, 64))


def test_label_raster_on_other_grid_refused_unless_resampled(tmp_path, make_scene):
    scene = make_scene(40, 40)
    coarse = random_labels(15, 15, seed=1)  # 6 m pixels, starting 12 m east of the scene
    origin_x = X0 + 12.0
    path = write_raster(
        tmp_path / "coarse.tif", coarse, transform=Affine(6.0, 0, origin_x, 0, -6.0, Y0)
    )
    with pytest.raises(InputError, match=r"coarse.tif: is not on the grid .*size 15x15 vs 40x40"):
        open_labels(path, scene)
    with pytest.raises(InputError, match="resample=True"):
        open_labels(path, scene)

    # Nearest neighbour by hand: the coarse pixel under each scene pixel centre.
    centres = (np.arange(40) + 0.5) * PIXEL
    cols = np.floor((centres - 12.0) / 6.0).astype(int)
    rows = np.floor(centres / 6.0).astype(int)
    inside = (rows[:, None] < 15) & (cols[None, :] >= 0) & (cols[None, :] < 15)
    expected = np.full((40, 40), NO_LABEL, np.uint8)
    rr, cc = np.nonzero(inside)
    expected[rr, cc] = coarse[rows[rr], cols[cc]]
    with open_labels(path, scene, resample=True) as labels:
        got = whole(labels)
        np.testing.assert_array_equal(got, expected)
        assert (got[:, :4] == NO_LABEL).all() and (got[30:] == NO_LABEL).all()
        for tile in TileGrid.for_dataset(scene, 16, 4):
            w = tile.window
            part = got[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
            np.testing.assert_array_equal(labels.read(w, 16), part)


def test_resampled_label_raster_outside_scene(tmp_path, make_scene):
    scene = make_scene()
    path = write_raster(
        tmp_path / "far.tif", random_labels(10, 10), transform=Affine(6, 0, X0 + 1e5, 0, -6, Y0)
    )
    with pytest.raises(InputError, match="far.tif does not overlap .*check the CRS"):
        open_labels(path, scene, resample=True)


def test_label_raster_bad_values_listed(tmp_path, make_scene):
    scene = make_scene()
    data = random_labels(50, 130)
    data[0, :3] = [3, 7, 7]
    data[1, 0] = 200  # nodata: ignored
    path = write_raster(tmp_path / "labels.tif", data, nodata=200)
    with pytest.raises(InputError, match=r"labels.tif: values 3, 7 are not class ids 0..1 nor"):
        open_labels(path, scene)
    with open_labels(path, scene, num_classes=8) as labels:  # fine with 8 classes
        assert whole(labels)[0, 1] == 7


def test_binary_0_255_label_raster(tmp_path, make_scene):
    scene = make_scene()
    data = random_labels(50, 130) * 255
    path = write_raster(tmp_path / "labels.tif", data)
    with open_labels(path, scene) as labels:
        np.testing.assert_array_equal(whole(labels), data // 255)
    with pytest.raises(InputError, match="values 255 are not class ids 0..2"):
        open_labels(path, scene, num_classes=3)


def test_rgb_label_raster(tmp_path, make_scene):
    scene = make_scene()
    classes = random_labels(50, 130)
    rgb = np.stack([classes * 255, np.zeros_like(classes), np.zeros_like(classes)])
    path = write_raster(tmp_path / "labels.tif", rgb)
    with open_labels(path, scene, rgb_map=RGB_MAP) as labels:
        np.testing.assert_array_equal(whole(labels), classes)
    with pytest.raises(ConfigError, match="labels.tif: is an RGB mask; give rgb_map"):
        open_labels(path, scene)


def test_missing_labels_file(tmp_path, make_scene):
    with pytest.raises(InputError, match="nothing.gpkg: does not exist"):
        open_labels(tmp_path / "nothing.gpkg", make_scene())


def test_window_outside_scene_or_larger_than_tile(tmp_path, make_scene):
    scene = make_scene()
    path = write_raster(tmp_path / "labels.tif", random_labels(50, 130))
    with open_labels(path, scene) as labels:
        with pytest.raises(ValueError, match="beyond"):
            labels.read(Window(100, 0, 64, 50), 64)
        with pytest.raises(ValueError, match="larger than the tile"):
            labels.read(Window(0, 0, 64, 50), 32)


# ------------------------------------------------------------------------------------------
# RGB-coded and single-band masks
# ------------------------------------------------------------------------------------------

needs_reference = pytest.mark.skipif(
    len(REFERENCE_MASKS) != 24, reason="reference masks (../shared/data/hokkaido-iburi) absent"
)


@needs_reference
def test_reference_masks_decode_to_exact_red_match():
    fractions = []
    for path in REFERENCE_MASKS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # reading a PNG mask is silent
            classes = read_mask_png(path, RGB_MAP)
        with rasterio.open(path) as dataset:
            rgb = dataset.read()
        exact = (rgb[0] == 255) & (rgb[1] == 0) & (rgb[2] == 0)
        assert classes.dtype == np.uint8 and classes.shape == (512, 512)
        assert set(np.unique(classes)) <= {0, 1}
        np.testing.assert_array_equal(classes, exact.astype(np.uint8))
        fractions.append(label_fraction(classes, np.ones_like(exact)))
    # Seen: landslides on all 24 tiles, 0.5% to 31.5% of their pixels.
    assert sum(f > 0 for f in fractions) >= 20
    assert max(fractions) < 0.5


@needs_reference
def test_reference_pair_read_per_window():
    """A PNG image and its RGB mask (no CRS, same size) share a grid: windows line up."""
    image = REFERENCE_MASKS[0].parents[1] / "images" / REFERENCE_MASKS[0].name
    expected = read_mask_png(REFERENCE_MASKS[0], RGB_MAP)
    with (
        pytest.warns(rasterio.errors.NotGeoreferencedWarning),
        rasterio.open(image) as scene,
        open_labels(REFERENCE_MASKS[0], scene, rgb_map=RGB_MAP) as labels,
    ):
        for tile in TileGrid.for_dataset(scene, 256, 32):
            w = tile.window
            part = expected[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
            np.testing.assert_array_equal(labels.read(w, 256), part)


def synthetic_mask(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    classes = np.zeros((64, 64), np.uint8)
    classes[10:40, 5:30] = 1
    classes[50:, 40:] = 1
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[classes == 1] = (255, 0, 0)
    return classes, rgb


def test_nearest_colour_absorbs_jpeg_like_noise():
    classes, rgb = synthetic_mask()
    noise = np.random.default_rng(0).normal(0.0, 10.0, rgb.shape)
    noisy = np.clip(rgb + noise, 0, 255).astype(np.uint8)
    assert len(np.unique(noisy.reshape(-1, 3), axis=0)) > 1000
    np.testing.assert_array_equal(decode_rgb_mask(noisy, RGB_MAP), classes)


def test_far_colours_refused_with_count_and_colours():
    _, rgb = synthetic_mask()
    rgb[0, :37] = (0, 255, 0)
    rgb[1, :3] = (128, 0, 0)  # halfway between black and red: 127.5 from both
    with pytest.raises(InputError, match=r"m.png: 40 of 4096 pixels are farther than 60") as err:
        decode_rgb_mask(rgb, RGB_MAP, source="m.png")
    assert "(0, 255, 0) x37, (128, 0, 0) x3" in str(err.value)
    assert decode_rgb_mask(rgb, RGB_MAP, tolerance=400)[1, 0] == 1  # nearest: red


def test_rgb_map_validation():
    assert validate_rgb_map({(0, 0, 0): 0, (255, np.uint8(0), 0): 1}, 2) == RGB_MAP
    for bad in ({}, {(0, 0): 0}, {(0, 0, 256): 0}, {(0, 0, 0): 2}, {(0, 0, 0): "1"}):
        with pytest.raises(ConfigError, match="rgb_map"):
            validate_rgb_map(bad, 2)
    with pytest.raises(ConfigError, match="tolerance"):
        decode_rgb_mask(np.zeros((2, 2, 3), np.uint8), RGB_MAP, tolerance=-1)


def test_rgba_mask_alpha_is_no_label(tmp_path):
    classes, rgb = synthetic_mask()
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, :3] = 0
    path = write_raster(
        tmp_path / "m.png",
        np.concatenate([np.moveaxis(rgb, -1, 0), alpha[None]]),
        crs=None,
        driver="PNG",
    )
    got = read_mask_png(path, RGB_MAP)
    assert (got[:, :3] == NO_LABEL).all()
    np.testing.assert_array_equal(got[:, 3:], classes[:, 3:])


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0, 1], [0, 1]), ([0, 255], [0, 1]), ([0, 0], [0, 0])],
)
def test_single_band_masks(tmp_path, values, expected):
    data = np.repeat(np.array(values, np.uint8), 8).reshape(4, 4)
    path = write_raster(tmp_path / "m.png", data, crs=None, driver="PNG")
    got = read_mask_png(path)
    np.testing.assert_array_equal(got, np.repeat(np.array(expected, np.uint8), 8).reshape(4, 4))


def test_palette_mask(tmp_path):
    data = np.array([[0, 1], [1, 0]], np.uint8)
    path = tmp_path / "palette.png"
    with rasterio.open(path, "w", driver="PNG", width=2, height=2, count=1, dtype="uint8") as dst:
        dst.write(data, 1)
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255)})
    np.testing.assert_array_equal(read_mask_png(path), data)


def test_single_band_mask_with_other_values_refused():
    with pytest.raises(InputError, match=r"mask: values 2 are not class ids 0..1"):
        decode_index_mask(np.array([[0, 1], [2, 1]], np.uint8))
    with pytest.raises(InputError, match=r"values 0.5"):
        decode_index_mask(np.array([[0.0, 0.5]], np.float32))


def test_label_fraction_counts_valid_labelled_pixels():
    labels = np.array([[0, 1, 1, NO_LABEL], [2, 0, 0, 1]], np.uint8)
    valid = np.array([[True, True, False, True], [True, True, True, True]])
    assert label_fraction(labels, valid) == pytest.approx(3 / 6)
    assert label_fraction(labels, np.zeros_like(valid)) == 0.0


def test_one_band_class_rasters_ignore_an_rgb_map(tmp_path):
    """Chips from `geoseg tile` are one band of class ids, even where a config has an rgb_map."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from geoseg.labels.reader import open_labels

    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32654", "transform": from_origin(0, 80, 10, 10)}
    classes = np.zeros((8, 8), dtype=np.uint8)
    classes[2:5, 3:6] = 1
    with rasterio.open(tmp_path / "scene.tif", "w", **profile) as dst:
        dst.write(classes, 1)
    with rasterio.open(tmp_path / "labels.tif", "w", **profile) as dst:
        dst.write(classes, 1)
    with rasterio.open(tmp_path / "scene.tif") as scene, open_labels(
        tmp_path / "labels.tif", scene, rgb_map={(0, 0, 0): 0, (255, 0, 0): 1}
    ) as labels:
        np.testing.assert_array_equal(labels.read(Window(0, 0, 8, 8), 8), classes)
