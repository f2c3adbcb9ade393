"""geoseg.postprocessing.postprocess: known answers for each step, block-streamed results equal to
whole-array results (hypothesis), the raster path's geo metadata and bytes, the recipe and its
storage."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import rasterio
from conftest import TEST_TRANSFORM, write_raster
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from geoseg.errors import ConfigError, OutputExistsError, OutputIsInputError, ParameterError
from geoseg.postprocessing.components import STRUCTURES, ComponentScan
from geoseg.postprocessing.postprocess import (
    POSTPROCESSING_TAG,
    postprocess_array,
    postprocess_raster,
    region_pixel_size,
)
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.raster.mask_format import CLASS_NAMES_TAG, MASK_NODATA, PROBABILITY_SCALE
from geoseg.settings import ModelSettings

PIXEL = 3.0  # metres, as TEST_TRANSFORM
LOCAL_TM = rasterio.crs.CRS.from_wkt(rasterio.crs.CRS.from_proj4(
    "+proj=tmerc +lat_0=0 +lon_0=141.7 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
).to_wkt())
"""A transverse Mercator CRS without EPSG code."""


def cone(shape: tuple[int, int], centre: tuple[float, float], peak: float, slope: float
         ) -> np.ndarray:
    """A probability cone: ``peak`` at ``centre``, falling by ``slope`` a pixel."""
    rows, cols = np.indices(shape)
    return np.clip(peak - slope * np.hypot(rows - centre[0], cols - centre[1]), 0, 1)


def two_discs() -> np.ndarray:
    """Two landslides 28 px apart: peaks 0.95, joined by a saddle at 0.6 (above 0.5)."""
    return np.maximum(cone((40, 70), (20, 20), 0.95, 0.025), cone((40, 70), (20, 48), 0.95, 0.025))


# ------------------------------------------------------------------------------ each step
@pytest.mark.parametrize("markers", ["peaks", "distance"])
def test_two_touching_discs_are_split_into_two_touching_regions(markers):
    prob = two_discs()
    assert postprocess_array(prob).count == 1  # joined by the saddle
    recipe = PostProcessing(split="watershed", markers=markers, marker_min_distance_m=10 * PIXEL)
    regions = postprocess_array(prob, recipe, pixel_size=PIXEL)
    assert regions.count == 2
    assert regions.labels[20, 20] != regions.labels[20, 48]
    assert np.array_equal(regions.labels > 0, prob >= 0.5)  # no pixel lost or added
    # the regions touch: labels meet between the two peaks
    row = regions.labels[20, 20:49]
    assert set(row) == {1, 2} and np.all(np.diff(row) >= 0)
    # the split follows the saddle (column 34), the mask stays one blob
    assert abs(int(np.argmax(row == 2)) + 20 - 34) <= 1
    assert np.array_equal(regions.mask, (prob >= 0.5).astype(np.uint8))


def test_markers_need_height_spacing_and_prominence():
    prob = two_discs()
    split = dict(split="watershed", marker_min_distance_m=10 * PIXEL)
    assert postprocess_array(prob, PostProcessing(**split, marker_prominence=0.3),
                             pixel_size=PIXEL).count == 2  # saddle 0.35 below the peaks
    assert postprocess_array(prob, PostProcessing(**split, marker_prominence=0.4),
                             pixel_size=PIXEL).count == 1
    assert postprocess_array(prob, PostProcessing(**split, marker_min_height=0.96),
                             pixel_size=PIXEL).count == 1
    far = PostProcessing(split="watershed", marker_min_distance_m=30 * PIXEL)  # peaks 28 apart
    assert postprocess_array(prob, far, pixel_size=PIXEL).count == 1


def test_speckle_below_min_area_disappears():
    prob = np.zeros((30, 30))
    prob[2:12, 2:12] = 0.9  # 100 px = 900 m²
    prob[20:23, 20:23] = 0.9  # 9 px = 81 m²
    recipe = PostProcessing(min_area_m2=100)
    regions = postprocess_array(prob, recipe, pixel_size=PIXEL)
    assert regions.count == 1 and regions.labels[21, 21] == 0 and regions.labels[5, 5] == 1
    assert regions.mask[21, 21] == 0
    # 81 m² is kept when that is the minimum (drop only smaller)
    assert postprocess_array(prob, PostProcessing(min_area_m2=81), pixel_size=PIXEL).count == 2


def test_hysteresis_keeps_a_region_whose_peak_passes_and_drops_one_whose_peak_does_not():
    prob = np.maximum(cone((30, 60), (15, 15), 0.9, 0.04), cone((30, 60), (15, 45), 0.7, 0.02))
    plain = postprocess_array(prob, PostProcessing(threshold=0.5))
    assert plain.count == 2
    kept = postprocess_array(prob, PostProcessing(threshold=0.5, seed_threshold=0.8))
    assert kept.count == 1
    assert kept.labels[15, 15] == 1 and kept.labels[15, 45] == 0
    # the kept region is grown to the threshold, not cut at the seed
    assert np.array_equal(kept.labels > 0, (prob >= 0.5) & (np.indices(prob.shape)[1] < 30))


def test_small_hole_filled_big_hole_kept_open_ones_never():
    prob = np.zeros((40, 60))
    prob[2:18, 2:18] = 0.9
    prob[8:10, 8:10] = 0.1  # 4 px hole = 36 m²
    prob[22:38, 2:18] = 0.9
    prob[24:36, 4:16] = 0.1  # 144 px hole = 1296 m²
    prob[2:38, 30:60] = 0.9
    prob[10:12, 58:60] = 0.1  # a notch closed by the raster's edge: not a hole
    prob[20:22, 40:42] = np.nan  # no data inside a landslide: not a hole to fill either
    recipe = PostProcessing(max_hole_m2=100)
    regions = postprocess_array(prob, recipe, pixel_size=PIXEL)
    assert regions.labels[8, 8] == regions.labels[3, 3] > 0  # filled, same region
    assert regions.labels[30, 10] == 0  # big hole kept
    assert regions.labels[11, 59] == 0  # closed by the edge
    assert regions.labels[21, 41] == 0 and regions.mask[21, 41] == MASK_NODATA
    assert regions.count == 3


def test_filling_a_hole_joins_a_ring_and_its_island():
    prob = np.zeros((20, 20))
    prob[2:18, 2:18] = 0.9
    prob[4:16, 4:16] = 0.0
    prob[8:12, 8:12] = 0.9  # an island in a hole of 144 - 16 = 128 px
    assert postprocess_array(prob).count == 2
    filled = postprocess_array(prob, PostProcessing(max_hole_m2=128))
    assert filled.count == 1 and filled.labels[5, 5] == 1


def test_smoothing_keeps_area_and_removes_spurs():
    prob = cone((80, 80), (40, 40), 0.95, 0.45 / 20)  # >= 0.5 within radius 20
    prob[40, 60:75] = 0.9  # a one-pixel spur
    prob[10:12, 10:12] = 0.9  # a 4-pixel speckle
    raw = postprocess_array(prob)
    smooth = postprocess_array(prob, PostProcessing(smooth_m=2 * PIXEL), pixel_size=PIXEL)
    disc = np.hypot(*(np.indices(prob.shape) - 40)) <= 20
    assert smooth.labels[40, 70] == 0 and smooth.labels[11, 11] == 0
    # a convex region loses about pi * sigma² (12.6 px of 1257): within 2 %
    kept = int(np.count_nonzero(smooth.labels))
    assert abs(kept - disc.sum()) <= 0.02 * disc.sum()
    assert raw.count == 2 and smooth.count == 1
    # a straight edge does not move
    square = np.zeros((40, 40))
    square[10:30, 10:30] = 0.9
    smoothed_square = postprocess_array(square, PostProcessing(smooth_m=PIXEL), pixel_size=PIXEL)
    assert np.count_nonzero(smoothed_square.labels[:, 20]) == 20
    assert np.count_nonzero(smoothed_square.labels[20]) == 20


# ------------------------------------------------------------------------------ streaming
def snake(height: int, width: int) -> np.ndarray:
    """A one-pixel-wide serpentine over every other row, 8-connected only at its turns."""
    mask = np.zeros((height, width), bool)
    mask[::2, 1:-1] = True
    for row in range(0, height - 2, 2):
        turn = width - 2 if (row // 2) % 2 == 0 else 1
        mask[row + 1, turn] = True
    return mask


def test_a_snake_is_one_region_however_it_is_cut():
    """Its peak is at the end, hundreds of pixels along from its start: with 1-row blocks every
    decision (hysteresis, area) needs the whole component."""
    mask = snake(41, 12)
    prob = np.where(mask, 0.6, 0.0)
    prob[40, 5] = 0.95
    other = snake(21, 12)  # a second snake below, without a peak
    prob = np.vstack([prob, np.zeros((1, 12)), np.where(other, 0.6, 0.0)])
    area = int(mask.sum())
    recipe = PostProcessing(seed_threshold=0.9, min_area_m2=area - 1, max_hole_m2=4)
    whole = postprocess_array(prob, recipe, block_rows=len(prob))
    assert whole.count == 1 and np.count_nonzero(whole.labels) == area
    for block_rows in (1, 2, 3, 7):
        streamed = postprocess_array(prob, recipe, block_rows=block_rows)
        assert np.array_equal(streamed.labels, whole.labels), block_rows


RECIPES = st.builds(
    PostProcessing,
    threshold=st.sampled_from([0.3, 0.5, 0.6]),
    seed_threshold=st.sampled_from([None, 0.7, 0.85]),
    min_area_m2=st.sampled_from([0, 4, 20]),
    max_hole_m2=st.sampled_from([0, 3, 12]),
    smooth_m=st.sampled_from([0, 0.7, 1.5]),
    split=st.sampled_from(["none", "watershed"]),
    markers=st.sampled_from(["peaks", "distance"]),
    marker_min_distance_m=st.sampled_from([0, 3]),
    marker_prominence=st.sampled_from([0, 0.05]),
)


def random_map(seed: int, height: int, width: int, blur: float, nodata: float) -> np.ndarray:
    """Smooth random probabilities, or speckle (0.9 or 0.1) without ``blur``."""
    rng = np.random.default_rng(seed)
    if blur:
        prob = ndimage.gaussian_filter(rng.random((height, width)), blur)
        prob = (prob - prob.min()) / max(float(np.ptp(prob)), 1e-9)
    else:
        prob = np.where(rng.random((height, width)) < 0.5, 0.9, 0.1)
    prob[rng.random(prob.shape) < nodata] = np.nan
    return prob


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), height=st.integers(1, 40), width=st.integers(1, 30),
       blur=st.sampled_from([0, 0.5, 1.5, 3.0]), nodata=st.sampled_from([0.0, 0.03]),
       recipe=RECIPES, block_rows=st.integers(1, 12))
def test_block_streamed_equals_whole_array(seed, height, width, blur, nodata, recipe,
                                           block_rows):
    prob = random_map(seed, height, width, blur, nodata)
    whole = postprocess_array(prob, recipe, block_rows=height)
    streamed = postprocess_array(prob, recipe, block_rows=block_rows)
    assert np.array_equal(streamed.labels, whole.labels)
    assert np.array_equal(streamed.mask, whole.mask)
    # labels are 1..count, each region's number first met in raster order
    numbers = whole.labels[whole.labels > 0]
    assert set(np.unique(numbers)) == set(range(1, whole.count + 1))
    if recipe.split == "none":
        reference, _ = ndimage.label(whole.labels > 0, STRUCTURES[8])
        assert np.array_equal(reference, whole.labels)


@pytest.mark.parametrize("seed, smooth", [(26, 0.9), (112, 1.0), (34, 1.2)])
def test_smoothing_in_blocks_reads_a_halo_of_the_kernel_radius(seed, smooth):
    """Speckle whose smoothed mask depends on the kernel's last taps (a halo one row short
    changes these maps)."""
    prob = random_map(seed, 16, 16, 0, 0.0)
    recipe = PostProcessing(smooth_m=smooth)
    whole = postprocess_array(prob, recipe, block_rows=16)
    for block_rows in (1, 2, 3):
        assert np.array_equal(postprocess_array(prob, recipe, block_rows=block_rows).labels,
                              whole.labels)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), height=st.integers(1, 30), width=st.integers(1, 30),
       density=st.floats(0.05, 0.95), connectivity=st.sampled_from([4, 8]),
       block_rows=st.integers(1, 10))
def test_component_scan_equals_whole_labelling(seed, height, width, density, connectivity,
                                               block_rows):
    rng = np.random.default_rng(seed)
    mask = rng.random((height, width)) < density
    values = rng.random((height, width))
    reference, count = ndimage.label(mask, STRUCTURES[connectivity])
    scan = ComponentScan(height, width, connectivity)
    for start in range(0, height, block_rows):
        scan.add(mask[start : start + block_rows], values[start : start + block_rows])
    found = scan.finish()
    labels = np.concatenate([found.label(block, mask[start : start + block_rows])
                             for block, start in enumerate(range(0, height, block_rows))])
    assert found.count == count and np.array_equal(labels, reference)
    if count:
        index = np.arange(1, count + 1)
        assert found.area.tolist() == ndimage.sum_labels(mask, reference, index).tolist()
        assert found.maximum.tolist() == ndimage.maximum(values, reference, index).tolist()
        boxes = ndimage.find_objects(reference)
        assert found.top.tolist() == [rows.start for rows, _ in boxes]
        assert found.right.tolist() == [cols.stop - 1 for _, cols in boxes]


# ------------------------------------------------------------------------------ rasters
@pytest.fixture
def probability_raster(tmp_path):
    """uint8 probabilities as geoseg predict writes them (scale 1/254, nodata 255), two
    bands, in strips, with a WKT CRS without EPSG code, and a nodata corner."""
    prob = np.maximum(np.tile(two_discs(), (3, 2)), random_map(5, 120, 140, 2.0, 0.0) * 0.7)
    encoded = np.rint(prob * PROBABILITY_SCALE).astype(np.uint8)
    encoded[:6, :9] = 255
    path = tmp_path / "probabilities.tif"
    with rasterio.open(path, "w", driver="GTiff", width=140, height=120, count=2, dtype="uint8",
                       crs=LOCAL_TM, transform=TEST_TRANSFORM, nodata=255,
                       blockysize=8) as dst:
        dst.write(np.stack([PROBABILITY_SCALE - encoded, encoded]))
        dst.scales, dst.offsets = [1 / PROBABILITY_SCALE] * 2, [0.0] * 2
        dst.update_tags(**{CLASS_NAMES_TAG: json.dumps(["background", "landslide"])})
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() is None and src.block_shapes[0] == (8, 140)
    decoded = np.where(encoded == 255, np.nan, encoded / PROBABILITY_SCALE)
    return path, decoded


RASTER_RECIPE = PostProcessing(seed_threshold=0.8, min_area_m2=50, max_hole_m2=40,
                               smooth_m=PIXEL, split="watershed", marker_min_distance_m=30)


def test_raster_outputs_keep_the_grid_and_equal_the_array_result(tmp_path, probability_raster):
    path, prob = probability_raster
    result = postprocess_raster(path, tmp_path / "mask.tif", RASTER_RECIPE,
                                labels_path=tmp_path / "labels.tif", block_rows=5)
    expected = postprocess_array(prob, RASTER_RECIPE, pixel_size=PIXEL)
    assert result.regions == expected.count > 1
    with rasterio.open(path) as src, rasterio.open(result.mask_path) as mask, \
            rasterio.open(result.labels_path) as labels:
        for out in (mask, labels):
            assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        assert (mask.dtypes[0], mask.nodata, labels.dtypes[0], labels.nodata) == (
            "uint8", MASK_NODATA, "int32", 0)
        assert np.array_equal(mask.read(1), expected.mask)
        assert np.array_equal(labels.read(1), expected.labels)
        assert mask.read(1)[0, 0] == MASK_NODATA and mask.read_masks(1)[0, 0] == 0
        assert json.loads(mask.tags()[POSTPROCESSING_TAG]) == RASTER_RECIPE.to_dict()
        assert json.loads(mask.tags()[CLASS_NAMES_TAG]) == ["background", "landslide"]
        assert mask.colormap(1)[1][:3] == (227, 26, 28)
    assert result.landslide_pixels == np.count_nonzero(expected.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "labels.tif", "mask.tif", "probabilities.tif"]  # no temporary files left


@pytest.mark.parametrize("recipe", [
    PostProcessing(seed_threshold=0.8), PostProcessing(min_area_m2=50),
    PostProcessing(seed_threshold=0.8, min_area_m2=50, smooth_m=PIXEL),
    PostProcessing(seed_threshold=0.8, max_hole_m2=40)], ids=str)
def test_a_mask_alone_equals_the_mask_written_with_labels(tmp_path, probability_raster, recipe):
    """Without labels (and no hole filled, which may merge regions) the regions are not
    numbered in a third pass: the mask and the count of regions must not change."""
    path, prob = probability_raster
    alone = postprocess_raster(path, tmp_path / "alone.tif", recipe, block_rows=5)
    numbered = postprocess_raster(path, tmp_path / "mask.tif", recipe,
                                  labels_path=tmp_path / "labels.tif", block_rows=5)
    assert (alone.regions, alone.landslide_pixels) == (numbered.regions,
                                                       numbered.landslide_pixels)
    assert alone.regions == postprocess_array(prob, recipe, pixel_size=PIXEL).count > 1
    assert (tmp_path / "alone.tif").read_bytes() == (tmp_path / "mask.tif").read_bytes()


def test_raster_outputs_are_the_same_bytes_whatever_the_blocks(tmp_path):
    """On float32 probabilities in 256-pixel deflated tiles, as geoseg predict writes them."""
    prob = random_map(9, 300, 280, 3.0, 0.01).astype(np.float32)
    path = tmp_path / "probabilities.tif"
    with rasterio.open(path, "w", driver="GTiff", width=280, height=300, count=1,
                       dtype="float32", crs=LOCAL_TM, transform=TEST_TRANSFORM,
                       nodata=float("nan"), tiled=True, blockxsize=256, blockysize=256,
                       compress="deflate") as dst:
        dst.write(prob[None])
    digests = set()
    for number, block_rows in enumerate((1, 7, 256, 256)):
        out = tmp_path / f"mask{number}.tif"
        labels = tmp_path / f"labels{number}.tif"
        postprocess_raster(path, out, RASTER_RECIPE, labels_path=labels, block_rows=block_rows)
        digests.add((hashlib.sha256(out.read_bytes()).hexdigest(),
                     hashlib.sha256(labels.read_bytes()).hexdigest()))
    assert len(digests) == 1


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_pixel_size_of_geographic_and_plain_rasters(tmp_path):
    plain = write_raster(tmp_path / "plain.tif", np.zeros((1, 4, 4), np.uint8), crs=None,
                         transform=rasterio.Affine.identity())
    utm = write_raster(tmp_path / "utm.tif", np.zeros((1, 4, 4), np.uint8))
    degrees = write_raster(tmp_path / "geo.tif", np.zeros((1, 4, 4), np.uint8), crs="EPSG:4326",
                           transform=rasterio.transform.from_origin(141.0, 43.0, 1e-4, 1e-4))
    with rasterio.open(plain) as a, rasterio.open(utm) as b, rasterio.open(degrees) as c:
        assert region_pixel_size(a) == pytest.approx(1.0)
        assert region_pixel_size(b) == pytest.approx(3.0)
        # 1e-4 degree: 11.1 m north-south, 8.1 m east-west at 43 N
        assert region_pixel_size(c) == pytest.approx(np.sqrt(11.1 * 8.14), rel=0.01)


def test_raster_mistakes_are_refused_before_writing(tmp_path, probability_raster):
    path, _ = probability_raster
    mask = tmp_path / "mask.tif"
    with pytest.raises(OutputIsInputError):
        postprocess_raster(path, path)
    with pytest.raises(ParameterError, match="labels_path"):
        postprocess_raster(path, mask, labels_path=mask)
    with pytest.raises(ParameterError, match="band must be one of the bands 1..2"):
        postprocess_raster(path, mask, band=3)
    with pytest.raises(ParameterError, match="block_rows"):
        postprocess_raster(path, mask, block_rows=0)
    assert not mask.exists()
    postprocess_raster(path, mask)
    with pytest.raises(OutputExistsError):
        postprocess_raster(path, mask)
    with pytest.raises(ParameterError, match="probabilities in"):
        postprocess_array(np.full((3, 3), 1.5))
    with pytest.raises(ParameterError, match="valid"):
        postprocess_array(np.zeros((3, 3)), valid=np.ones((2, 2), bool))


# ------------------------------------------------------------------------------ the recipe
@pytest.mark.parametrize("fields, message", [
    ({"threshold": 1.0}, "threshold must be a probability in \\(0, 1\\)"),
    ({"threshold": 0.6, "seed_threshold": 0.5}, "seed_threshold \\(0.5\\) must be >= threshold"),
    ({"min_area_m2": -1}, "min_area_m2 must be a number >= 0"),
    ({"smooth_m": float("nan")}, "smooth_m must be a number >= 0"),
    ({"split": "random walker"}, "split must be one of none, watershed"),
    ({"markers": "edges"}, "markers must be one of peaks, distance"),
    ({"marker_min_height": 2.0}, "marker_min_height of probability peaks must be <= 1"),
])
def test_recipe_refuses_impossible_values(fields, message):
    with pytest.raises(ParameterError, match=message) as raised:
        PostProcessing(**fields)
    assert raised.value.parameters  # worded with param(), so the CLI can name its flags


def test_recipe_round_trips_and_travels_in_model_settings():
    recipe = PostProcessing(threshold=0.4, seed_threshold=0.8, min_area_m2=100,
                            split="watershed", marker_min_height=0.6)
    assert PostProcessing.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    with pytest.raises(ConfigError, match="unknown post-processing settings \\['seed'\\]"):
        PostProcessing.from_dict({"seed": 0.8})
    settings_ = ModelSettings(postprocessing=recipe.to_dict())
    assert ModelSettings.from_dict(json.loads(settings_.to_json())) == settings_
    assert settings_.postprocessing_recipe() == recipe
    with pytest.raises(ConfigError, match="postprocessing: seed_threshold"):
        ModelSettings(postprocessing={"seed_threshold": 2})
    # a model without a recipe is read and written as before
    plain = ModelSettings()
    assert plain.postprocessing is None and plain.postprocessing_recipe() is None
    assert "postprocessing" not in plain.to_dict()
