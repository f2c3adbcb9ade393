"""Training chips: the windows prediction reads, labels in place, and a split that cannot leak."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from conftest import SHARED_DATA, TEST_CRS, TEST_TRANSFORM, write_raster
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import array_bounds
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box

from geoseg import cli as cli_module
from geoseg.commands.tile import tile as tile_command
from geoseg.errors import ConfigError, InputError, OutputError, OutputExistsError, ParameterError
from geoseg.labels.reader import open_labels, read_mask_png
from geoseg.raster.tiling import TileGrid, read_tile
from geoseg.training import chip_files
from geoseg.training.chips import PNG_RGB_MAP, SPLITS, write_chips

# Landslide rectangles in pixel coordinates of TEST_TRANSFORM: (row0, row1, col0, col1).
RECTANGLES = [(10, 30, 20, 50), (90, 130, 100, 118), (150, 160, 200, 255)]


def labels_layer(path: Path, rectangles=RECTANGLES, crs: str = TEST_CRS) -> Path:
    """A GeoPackage of pixel-aligned rectangles on the TEST_TRANSFORM grid."""
    polygons = [box(*(TEST_TRANSFORM * (c0, r1)), *(TEST_TRANSFORM * (c1, r0)))
                for r0, r1, c0, c1 in rectangles]
    gpd.GeoDataFrame({"kind": ["scar"] * len(polygons)}, geometry=polygons,
                     crs=TEST_CRS).to_crs(crs).to_file(path)
    return path


def expected_labels(height: int, width: int, rectangles=RECTANGLES) -> np.ndarray:
    labels = np.zeros((height, width), dtype=np.uint8)
    for r0, r1, c0, c1 in rectangles:
        labels[r0:r1, c0:c1] = 1
    return labels


def random_scene(path: Path, height: int, width: int, *, bands: int = 3, dtype="uint8",
                 seed: int = 0, **kwargs) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 250, size=(bands, height, width)).astype(dtype)
    return write_raster(path, data, **kwargs)


def read_index(out: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(out / "index.gpkg")


def read_png(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read()


# ------------------------------------------------------------------------------ pixels, georef


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint16", 0), ("float32", float("nan"))], ids=["uint16", "float-nan"]
)
def test_chips_are_the_windows_prediction_reads(tmp_path, dtype, nodata):
    # 40 rows < tile 64: every window is padded (reflect) at the bottom, like prediction pads.
    rng = np.random.default_rng(1)
    data = rng.integers(1, 4000, size=(4, 40, 150)).astype(dtype)
    data[:, 5:12, 30:90] = nodata  # a nodata patch inside the windows
    scene = write_raster(tmp_path / "scene.tif", data, nodata=nodata)
    labels = labels_layer(tmp_path / "ls.gpkg")
    out = tmp_path / "chips"

    summary = write_chips(scene, labels, out, tile_size=64, overlap=16, bands=[3, 1])

    index = read_index(out)
    with rasterio.open(scene) as src, open_labels(labels, src) as source:
        grid = TileGrid.for_dataset(src, 64, 16)
        assert summary.total == len(index) == len(grid) == 3
        for tile in grid:
            name = f"scene_r{tile.row:03d}_c{tile.col:03d}"
            row = index.set_index("chip").loc[name]
            assert (row.row_off, row.col_off, row.width, row.height) == (0, tile.window.col_off,
                                                                         64, 40)
            assert row.geometry.equals(box(*window_bounds(tile.window, src.transform)))
            image, valid = read_tile(src, tile, 64, [3, 1])
            with rasterio.open(out / "images" / f"{name}.tif") as chip:
                assert chip.crs == src.crs and chip.transform == tile.transform
                assert chip.shape == (64, 64) and chip.count == 2 and chip.dtypes[0] == dtype
                assert chip.nodata == src.nodata or (np.isnan(chip.nodata) and np.isnan(nodata))
                np.testing.assert_array_equal(chip.read(), np.moveaxis(image, -1, 0))
                mask = chip.dataset_mask() > 0
                np.testing.assert_array_equal(mask, valid)
                assert mask[:40].any() and not mask[40:].any()  # padding is masked
            with rasterio.open(out / "labels" / f"{name}.tif") as chip:
                assert chip.transform == tile.transform and chip.dtypes[0] == "uint8"
                np.testing.assert_array_equal(chip.read(1), source.read(tile.window, 64))
            assert row.nodata_fraction == pytest.approx(1 - valid[:40].mean())


def test_labels_are_burnt_where_the_polygons_are(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 200, 260)
    # Labels in another CRS: they must still land on the same pixels.
    labels = labels_layer(tmp_path / "ls.gpkg", crs="EPSG:4326")
    out = tmp_path / "chips"
    write_chips(scene, labels, out, tile_size=64, overlap=16, split=(1, 0, 0))

    truth = expected_labels(200, 260)
    index = read_index(out)
    assert len(index) == len(TileGrid(200, 260, 64, 16))
    for row in index.itertuples():
        with rasterio.open(out / "labels" / f"{row.chip}.tif") as chip:
            labels_chip = chip.read(1)
        window = truth[row.row_off:row.row_off + 64, row.col_off:row.col_off + 64]
        np.testing.assert_array_equal(labels_chip, window, err_msg=row.chip)
        assert row.landslide_fraction == pytest.approx(window.mean())
    assert index.landslide_fraction.max() > 0.1


# ------------------------------------------------------------------------------ spatial split

SPLIT_ARGS = {"tile_size": 32, "overlap": 8, "split_block": 96, "split": (0.6, 0.2, 0.2)}


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    """A 288 x 384 scene cut into 32-pixel chips, 12 blocks of 96 pixels, seed 0."""
    folder = tmp_path_factory.mktemp("split")
    scene = random_scene(folder / "scene.tif", 288, 384)
    labels = labels_layer(folder / "ls.gpkg")
    summary = write_chips(scene, labels, folder / "chips", seed=0, **SPLIT_ARGS)
    return scene, labels, summary, read_index(folder / "chips")


def cross_split_hits(index: gpd.GeoDataFrame) -> int:
    """Pairs of chips of different splits whose footprints intersect (touching included)."""
    pairs = gpd.sjoin(index, index, predicate="intersects")
    return int((pairs.split_left != pairs.split_right).sum())


def test_spatial_split_never_lets_valid_or_test_touch_train(split_run):
    _, _, summary, index = split_run
    counts = index.split.value_counts().to_dict()
    assert all(counts.get(name, 0) > 0 for name in SPLITS), counts
    assert counts == {name: n for name, n in summary.chips.items() if n}
    assert summary.dropped_leakage > 0  # chips straddling block edges existed, and went
    assert summary.total + summary.dropped_leakage == summary.windows == 12 * 16
    train = index[index.split == "train"]
    held_out = index[index.split != "train"]
    assert gpd.sjoin(held_out, train, predicate="intersects").empty
    assert cross_split_hits(index) == 0
    # Every chip has the split of the block holding its window centre.
    block_rows, block_cols = (index.row_off + 16) // 96, (index.col_off + 16) // 96
    blocks = block_rows.astype(str) + "," + block_cols.astype(str)
    assert (index.groupby(blocks).split.nunique() == 1).all()
    assert blocks.nunique() == 12


def test_split_files_match_the_index(split_run):
    scene, _, _, index = split_run
    folder = scene.parent / "chips"
    for sub in ("images", "labels"):
        assert sorted(p.stem for p in (folder / sub).iterdir()) == sorted(index.chip)
    assert sorted(p.name for p in folder.iterdir()) == ["images", "index.gpkg", "labels"]


def test_split_is_deterministic_with_the_seed(split_run, tmp_path):
    scene, labels, _, index = split_run
    write_chips(scene, labels, tmp_path / "again", seed=0, **SPLIT_ARGS)
    write_chips(scene, labels, tmp_path / "other", seed=7, **SPLIT_ARGS)
    again, other = read_index(tmp_path / "again"), read_index(tmp_path / "other")
    assert again[["chip", "split"]].equals(index[["chip", "split"]])
    # and the same bytes: GDAL's write dates and SQLite's change counter are fixed
    chips = scene.parent / "chips"
    assert (tmp_path / "again" / "index.gpkg").read_bytes() == (chips / "index.gpkg").read_bytes()
    assert not other[["chip", "split"]].equals(index[["chip", "split"]])
    assert cross_split_hits(other) == 0


@pytest.mark.parametrize("seed", range(4))
def test_blocks_without_data_get_no_split(tmp_path, seed):
    # The right half is nodata: only the 4 blocks of the left half are dealt (2, 1, 1), so
    # valid and test always get one; dealing all 8 blocks would often waste them on nodata.
    data = np.random.default_rng(0).integers(1, 255, (3, 192, 384), dtype=np.uint8)
    data[:, :, 192:] = 0
    scene = write_raster(tmp_path / "scene.tif", data, nodata=0)
    summary = write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                          tile_size=32, overlap=8, split_block=96, split=(0.5, 0.25, 0.25),
                          seed=seed)
    assert all(summary.chips[name] > 0 for name in SPLITS), summary.chips
    assert cross_split_hits(read_index(tmp_path / "chips")) == 0


def test_several_scenes_share_one_index_and_do_not_leak(tmp_path):
    # Scene b overlaps scene a on the ground (shifted 100 pixels east): their blocks coincide
    # and chips of different splits must not touch across scenes either.
    shifted = TEST_TRANSFORM * TEST_TRANSFORM.translation(100, 0)
    a = random_scene(tmp_path / "a.tif", 192, 256, seed=1)
    b = random_scene(tmp_path / "b.tif", 192, 256, seed=2, transform=shifted)
    labels = labels_layer(tmp_path / "ls.gpkg")
    out = tmp_path / "chips"
    summary = write_chips([a, b], [labels, labels], out, tile_size=32, overlap=8,
                          split_block=64, split=(0.5, 0.25, 0.25), seed=3)
    index = read_index(out)
    assert set(index.scene) == {str(a), str(b)}
    assert index.chip.str.match(r"^(a|b)_r\d{3}_c\d{3}$").all()
    assert index[index.scene == str(b)].chip.str.startswith("b_").all()
    assert summary.windows == 2 * len(TileGrid(192, 256, 32, 8))
    assert set(index.split) == set(SPLITS)
    assert cross_split_hits(index) == 0
    assert index.crs == TEST_CRS


def test_scenes_in_different_crs_are_compared_in_the_first_ones(tmp_path):
    bounds = array_bounds(192, 256, TEST_TRANSFORM)
    transform, width, height = calculate_default_transform(TEST_CRS, "EPSG:32653", 256, 192,
                                                           *bounds)
    a = random_scene(tmp_path / "a.tif", 192, 256, seed=1)
    b = random_scene(tmp_path / "b.tif", height, width, seed=2, crs="EPSG:32653",
                     transform=transform)
    labels = labels_layer(tmp_path / "ls.gpkg")
    out = tmp_path / "chips"
    write_chips([a, b], [labels, labels], out, tile_size=32, overlap=8, split_block=64,
                split=(0.5, 0.25, 0.25))
    index = read_index(out)
    assert index.crs == TEST_CRS and set(index.scene) == {str(a), str(b)}
    assert cross_split_hits(index) == 0
    row = index[index.scene == str(b)].iloc[0]
    window = Window(row.col_off, row.row_off, row.width, row.height)
    own = gpd.GeoSeries([box(*window_bounds(window, transform))], crs="EPSG:32653")
    expected = shapely.normalize(own.to_crs(TEST_CRS).iloc[0])
    assert expected.equals_exact(shapely.normalize(row.geometry), tolerance=1e-6)


def test_scene_without_crs_with_a_label_raster(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 100, 100, crs=None)
    classes = expected_labels(100, 100)
    classes[60:, 60:] = 255  # unlabelled
    labels = write_raster(tmp_path / "labels.tif", classes[None], crs=None, nodata=255)
    out = tmp_path / "chips"
    summary = write_chips(scene, labels, out, tile_size=64, overlap=16)
    index = read_index(out)
    assert index.crs is None and summary.total == 4
    with rasterio.open(out / "labels" / "scene_r001_c001.tif") as chip:
        assert chip.crs is None and chip.nodata == 255
        np.testing.assert_array_equal(chip.read(1), classes[36:, 36:])
    with pytest.raises(InputError, match="unlabelled pixels.*chip_format tif"):
        write_chips(scene, labels, tmp_path / "png", tile_size=64, overlap=16,
                    chip_format="png")


# ------------------------------------------------------------------------------ selection


def test_nodata_only_windows_are_skipped(tmp_path):
    data = np.random.default_rng(0).integers(1, 255, (3, 100, 200), dtype=np.uint8)
    data[:, :, :80] = 0
    scene = write_raster(tmp_path / "scene.tif", data, nodata=0)
    calls: list[tuple[int, int]] = []
    summary = write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                          tile_size=32, overlap=8, split=(1, 0, 0),
                          progress=lambda done, total: calls.append((done, total)))
    # Column offsets 0, 24, 48 end by column 80: 3 columns x 4 rows of windows are all nodata.
    assert summary.skipped_nodata == 12
    index = read_index(tmp_path / "chips")
    assert len(index) == summary.windows - 12
    assert ((index.col_off + index.width) > 80).all()
    assert index[index.col_off == 72].nodata_fraction.tolist() == pytest.approx([0.25] * 4)
    assert sum(done for done, _ in calls) == 2 * summary.windows
    assert {total for _, total in calls} == {2 * summary.windows}


def test_min_foreground_and_keep_empty(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 200, 260)
    labels = labels_layer(tmp_path / "ls.gpkg")
    args = {"tile_size": 32, "overlap": 0, "split": (1, 0, 0)}
    everything = read_index(write_chips(scene, labels, tmp_path / "all", **args).out_dir)
    empty = everything[everything.landslide_fraction == 0]
    assert 0 < len(empty) < len(everything)

    write_chips(scene, labels, tmp_path / "fg", min_foreground=0.05, keep_empty=0.0, **args)
    fg = read_index(tmp_path / "fg")
    wanted = everything[everything.landslide_fraction >= 0.05]
    assert len(wanted) < (everything.landslide_fraction > 0).sum()  # some thin slivers go
    assert sorted(fg.chip) == sorted(wanted.chip)

    half = [read_index(write_chips(scene, labels, tmp_path / f"half{i}", min_foreground=0.05,
                                   keep_empty=0.5, seed=4, **args).out_dir) for i in range(2)]
    kept_empty = half[0][half[0].landslide_fraction == 0]
    assert len(kept_empty) == round(0.5 * len(empty))
    assert set(kept_empty.chip) <= set(empty.chip)
    assert sorted(half[0].chip) == sorted(half[1].chip)
    assert (half[0][half[0].landslide_fraction > 0].landslide_fraction >= 0.05).all()


# ------------------------------------------------------------------------------ PNG


def test_png_chips_match_the_reference_layout(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 100, 150)
    labels = labels_layer(tmp_path / "ls.gpkg")
    out = tmp_path / "chips"
    write_chips(scene, labels, out, tile_size=64, overlap=16, chip_format="png",
                split=(1, 0, 0))
    index = read_index(out)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{c}.png" for c in index.chip)
    with rasterio.open(scene) as src, open_labels(labels, src) as source:
        for row in index.itertuples():
            window = Window(row.col_off, row.row_off, row.width, row.height)
            tile = next(t for t in TileGrid.for_dataset(src, 64, 16) if t.window == window)
            image = read_png(out / "images" / f"{row.chip}.png")
            np.testing.assert_array_equal(image, np.moveaxis(read_tile(src, tile, 64)[0], -1, 0))
            mask_path = out / "labels" / f"{row.chip}.png"
            mask = read_png(mask_path)
            assert mask.shape == (3, 64, 64) and mask.dtype == np.uint8
            colours = {tuple(c) for c in mask.reshape(3, -1).T.tolist()}
            assert colours <= {(0, 0, 0), (255, 0, 0)}
            np.testing.assert_array_equal(read_mask_png(mask_path, PNG_RGB_MAP),
                                          source.read(window, 64))
    assert any((out / "labels").glob("*.png")) and not list(out.rglob("*.aux.xml"))
    reference = sorted((SHARED_DATA / "train" / "masks").glob("*.png"))
    if reference:  # same file kind as the reference dataset's masks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(reference[0]) as ref, rasterio.open(mask_path) as mine:
                assert (mine.driver, mine.count, mine.dtypes) == (ref.driver, ref.count,
                                                                  ref.dtypes)


@pytest.mark.parametrize(("bands", "dtype", "chosen"), [(3, "uint16", None), (4, "uint8", None),
                                                        (4, "uint8", [1, 2])])
def test_png_refuses_scenes_that_are_not_8bit_rgb(tmp_path, bands, dtype, chosen):
    scene = random_scene(tmp_path / "scene.tif", 80, 80, bands=bands, dtype=dtype)
    with pytest.raises(InputError, match="8-bit RGB"):
        write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                    tile_size=64, overlap=16, chip_format="png", bands=chosen)
    assert not (tmp_path / "chips").exists()


def test_png_accepts_three_chosen_bands_of_a_larger_scene(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 80, 80, bands=4)
    summary = write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                          tile_size=64, overlap=16, chip_format="png", bands=[4, 2, 1])
    assert summary.total == 4
    assert read_png(next((tmp_path / "chips" / "images").iterdir())).shape == (3, 64, 64)


# ------------------------------------------------------------------------------ errors


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 100, 100)
    labels = labels_layer(tmp_path / "ls.gpkg")
    out = tmp_path / "chips"
    (out / "images").mkdir(parents=True)
    stale = out / "images" / "stale_r000_c000.tif"
    stale.write_text("old")
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_chips(scene, labels, out, tile_size=64, overlap=16)
    assert stale.exists() and not (out / "index.gpkg").exists()

    summary = write_chips(scene, labels, out, tile_size=64, overlap=16, overwrite=True)
    assert not stale.exists()
    assert len(list((out / "images").iterdir())) == summary.total == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"split": (0.8, 0.3, 0.1)}, ConfigError, "summing to 1"),
        ({"split_block": 32}, ConfigError, "split block"),
        ({"overlap": 64}, ParameterError, "overlap"),
        ({"keep_empty": 1.5}, ConfigError, "keep empty"),
        ({"bands": [1, 5]}, InputError, "band 5 does not exist"),
    ],
)
def test_bad_settings_are_refused(tmp_path, kwargs, error, message):
    scene = random_scene(tmp_path / "scene.tif", 100, 100)
    with pytest.raises(error, match=message):
        write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                    **{"tile_size": 64, "overlap": 16, **kwargs})


def test_scene_and_labels_problems_are_input_errors(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 100, 100)
    labels = labels_layer(tmp_path / "ls.gpkg")
    with pytest.raises(InputError, match="2 scene.*1 labels"):
        write_chips([scene, scene], [labels], tmp_path / "a")
    other = tmp_path / "sub"
    other.mkdir()
    twin = random_scene(other / "scene.tif", 100, 100)
    with pytest.raises(InputError, match="several scenes are named 'scene'"):
        write_chips([scene, twin], [labels, labels], tmp_path / "b")
    with pytest.raises(InputError, match="file not found"):
        write_chips(tmp_path / "missing.tif", labels, tmp_path / "c")
    far = labels_layer(tmp_path / "far.gpkg", rectangles=[(5000, 5010, 5000, 5010)])
    with pytest.raises(InputError, match="does not overlap"):
        write_chips(scene, far, tmp_path / "d", tile_size=64, overlap=16)
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_nothing_left_to_write_is_an_input_error(tmp_path):
    scene = write_raster(tmp_path / "scene.tif", np.zeros((3, 80, 80), np.uint8), nodata=0)
    with pytest.raises(InputError, match="no chip to write: of 4 windows, 4 are nodata"):
        write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                    tile_size=64, overlap=16)
    assert not (tmp_path / "chips").exists()


def test_a_failed_write_leaves_no_partial_chips(tmp_path, monkeypatch):
    scene = random_scene(tmp_path / "scene.tif", 100, 100)
    written = []

    def failing(staging, *args):
        written.append(staging)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return real(staging, *args)

    real = chip_files._write_tif_chip
    monkeypatch.setattr(chip_files, "_write_tif_chip", failing)
    with pytest.raises(OutputError, match="No space left on device"):
        write_chips(scene, labels_layer(tmp_path / "ls.gpkg"), tmp_path / "chips",
                    tile_size=64, overlap=16)
    assert len(written) == 3 and not written[0].exists()
    assert not (tmp_path / "chips").exists()


# ------------------------------------------------------------------------------ CLI


@pytest.fixture
def geoseg_cli(monkeypatch):
    """geoseg's click group with the tile command registered."""
    monkeypatch.setitem(cli_module.COMMANDS, "tile", "tile")
    return cli_module.cli


def test_cli_tiles_and_reports_one_line(tmp_path, geoseg_cli):
    scene = random_scene(tmp_path / "scene.tif", 100, 150)
    labels = labels_layer(tmp_path / "ls.gpkg")
    args = ["tile", str(scene), "--labels", str(labels), "--out", str(tmp_path / "chips"),
            "--tile-size", "32", "--overlap", "8", "--split", "0.5,0.25,0.25",
            "--split-block", "64", "--seed", "2", "-q"]
    result = CliRunner().invoke(geoseg_cli, args)
    assert result.exit_code == 0, result.output
    index = read_index(tmp_path / "chips")
    assert f"{len(index)} chips (train" in result.output
    assert len(result.output.strip().splitlines()) == 1

    again = CliRunner().invoke(geoseg_cli, args)
    assert again.exit_code == 1
    assert "is not empty" in again.output and "--overwrite" in again.output
    assert "Traceback" not in again.output


def test_cli_refuses_mismatched_scenes_and_labels(tmp_path, geoseg_cli):
    scene = random_scene(tmp_path / "scene.tif", 100, 100)
    labels = labels_layer(tmp_path / "ls.gpkg")
    result = CliRunner().invoke(geoseg_cli, ["tile", str(scene), str(scene), "--labels",
                                             str(labels), "--out", str(tmp_path / "chips")])
    assert result.exit_code == 1
    assert "2 scene(s) but 1 labels file(s)" in result.output


def test_cli_command_object_parses_png_and_split(tmp_path):
    scene = random_scene(tmp_path / "scene.tif", 100, 100)
    labels = labels_layer(tmp_path / "ls.gpkg")
    base = [str(scene), "-l", str(labels), "-o", str(tmp_path / "chips"), "--tile-size", "64",
            "--overlap", "16"]
    bad = CliRunner().invoke(tile_command, [*base, "--split", "0.8,0.2"])
    assert bad.exit_code == 2 and "three shares" in bad.output
    ok = CliRunner().invoke(tile_command, [*base, "--format", "png", "--min-foreground",
                                           "0.01", "--keep-empty", "0", "-q"])
    assert ok.exit_code == 0, ok.output
    index = read_index(tmp_path / "chips")
    assert (index.landslide_fraction >= 0.01).all()
    assert sorted((tmp_path / "chips" / "labels").iterdir())[0].suffix == ".png"
