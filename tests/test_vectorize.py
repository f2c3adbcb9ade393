"""Tests for geoseg.vectors.vectorize and ``geoseg vectorize``: rasterised shapes come back as
polygons."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.features
import shapely
import shapely.geometry
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from rasterio.transform import from_origin

from geoseg.cli import cli
from geoseg.errors import InputError, OutputError, OutputExistsError, ParameterError
from geoseg.vectors.geometry import repair_polygons
from geoseg.vectors.vector_blocks import _pack, _polygonise, _regions
from geoseg.vectors.vectorize import (
    PolygonOptions,
    VectorizeSummary,
    polygons_from_mask,
    vectorize_mask,
)

UTM = "EPSG:32654"
PIXEL = 10.0  # metres
PIXEL_AREA = PIXEL * PIXEL
NAMES = ["background", "landslide"]
SCHEMA = ["id", "class", "class_id", "area_m2", "perim_m", "compact", "lon", "lat"]


def write_mask(
    path: Path,
    array: np.ndarray,
    *,
    crs: str | None = UTM,
    transform=None,
    nodata: float | None = 255,
    names: list[str] | None = NAMES,
) -> Path:
    """A single-band GeoTIFF mask (10 m pixels, UTM 54N by default)."""
    profile = {
        "driver": "GTiff",
        "width": array.shape[-1],
        "height": array.shape[-2],
        "count": 1 if array.ndim == 2 else array.shape[0],
        "dtype": array.dtype.name,
        "transform": transform or from_origin(500_000, 4_700_000, PIXEL, PIXEL),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array if array.ndim == 3 else array[np.newaxis])
        if names is not None:
            dst.update_tags(GEOSEG_CLASS_NAMES=json.dumps(names))
    return path


def write_probabilities(path: Path, probs: np.ndarray, *, uint8: bool = False) -> Path:
    """Per-class probabilities (classes, h, w) on the default mask grid."""
    count, height, width = probs.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "crs": UTM,
        "transform": from_origin(500_000, 4_700_000, PIXEL, PIXEL),
    }
    if uint8:
        data = np.rint(probs * 254).astype(np.uint8)
        with rasterio.open(path, "w", dtype="uint8", nodata=255, **profile) as dst:
            dst.write(data)
            dst.scales = [1 / 254] * count
            dst.offsets = [0.0] * count
    else:
        with rasterio.open(path, "w", dtype="float32", nodata=float("nan"), **profile) as dst:
            dst.write(probs.astype(np.float32))
    return path


def squares_and_ring() -> np.ndarray:
    """A 6x6 square, a 12x12 ring with a 4x4 hole, and nodata in one corner."""
    mask = np.zeros((64, 64), np.uint8)
    mask[5:11, 5:11] = 1
    mask[20:32, 30:42] = 1
    mask[24:28, 34:38] = 0
    mask[56:, 56:] = 255
    return mask


# --------------------------------------------------------------------------- geometry
def test_squares_and_ring_count_area_holes_crs(tmp_path: Path) -> None:
    frame = polygons_from_mask(write_mask(tmp_path / "m.tif", squares_and_ring()))
    assert list(frame.columns) == [*SCHEMA, "geometry"]
    assert frame.crs == rasterio.crs.CRS.from_string(UTM)
    assert len(frame) == 2
    ring, square = frame.iloc[0], frame.iloc[1]  # largest first
    assert ring.area_m2 == pytest.approx((144 - 16) * PIXEL_AREA, abs=PIXEL_AREA)
    assert square.area_m2 == pytest.approx(36 * PIXEL_AREA, abs=PIXEL_AREA)
    assert ring.perim_m == pytest.approx((48 + 16) * PIXEL)
    assert [shapely.get_num_interior_rings(p) for p in ring.geometry.geoms] == [1]
    assert shapely.get_num_interior_rings(square.geometry.geoms[0]) == 0
    assert square.geometry.bounds == (500_050, 4_700_000 - 110, 500_110, 4_700_000 - 50)
    assert frame["id"].tolist() == [1, 2]
    assert frame["class"].tolist() == ["landslide", "landslide"]
    assert frame["class_id"].tolist() == [1, 1]
    assert set(frame.geom_type) == {"MultiPolygon"}
    assert frame.geometry.is_valid.all()
    # Centroid of the square, in WGS84 (UTM 54N: 141° E central meridian).
    assert square.lon == pytest.approx(141.0, abs=0.01)
    assert 42 < square.lat < 43


def test_polygon_across_block_edges_is_one_feature(tmp_path: Path) -> None:
    mask = np.zeros((100, 90), np.uint8)  # not a multiple of the block size
    mask[10:80, 20:75] = 1  # crosses block edges at 32 and 64 both ways
    mask[40:50, 30:34] = 0  # a hole straddling the edge at 32
    mask[60:70, 60:70] = 0  # and one on the corner (64, 64)
    mask[2:4, 60:62] = 1  # where the last block column (58..90) meets the previous one
    path = write_mask(tmp_path / "m.tif", mask)
    blocks = polygons_from_mask(path, block_size=32)
    whole = polygons_from_mask(path, block_size=2048)
    assert len(blocks) == len(whole) == 2
    assert blocks.area_m2.tolist() == whole.area_m2.tolist()
    assert blocks.area_m2.sum() == pytest.approx((mask == 1).sum() * PIXEL_AREA)
    geom = blocks.geometry[0]
    assert geom.symmetric_difference(whole.geometry[0]).area == 0
    assert len(geom.geoms) == 1 and len(geom.geoms[0].interiors) == 2
    # No seam vertices left on the block edges: a 4-corner outline and two 4-corner holes.
    assert shapely.get_num_coordinates(geom) == 3 * 5


@pytest.mark.parametrize(("connectivity", "expected"), [(4, 4), (8, 2)])
def test_diagonal_contact_merges_only_with_8_connectivity(
    tmp_path: Path, connectivity: int, expected: int
) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[30:32, 30:32] = 1  # ends at the block corner (32, 32)
    mask[32:34, 32:34] = 1  # starts there: diagonal contact across two block edges
    mask[5, 5] = mask[6, 6] = 1  # diagonal contact inside one block
    path = write_mask(tmp_path / "m.tif", mask)
    for block_size in (32, 2048):
        frame = polygons_from_mask(path, PolygonOptions(connectivity=connectivity),
                                   block_size=block_size)
        assert len(frame) == expected
        assert frame.area_m2.sum() == pytest.approx(10 * PIXEL_AREA)
        assert frame.geometry.is_valid.all()


def blobs(shape: tuple[int, int], count: int, seed: int, classes: int = 1) -> np.ndarray:
    """A mask of ``count`` random rectangles and diagonal strokes (classes 1..classes),
    many crossing the edges of 32-pixel blocks, with a nodata (255) corner."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(count):
        top, left = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        value = rng.integers(1, classes + 1)
        kind = rng.random()
        if kind < 0.3:  # a diagonal stroke: corner contacts only
            for step in range(rng.integers(2, 12)):
                mask[min(top + step, shape[0] - 1), min(left + step, shape[1] - 1)] = value
        elif kind < 0.45:  # a ring with an island of another class in its hole
            mask[top : top + 9, left : left + 9] = value
            mask[top + 2 : top + 7, left + 2 : left + 7] = 0
            mask[top + 4 : top + 5, left + 4 : left + 5] = value % classes + 1
        else:
            mask[top : top + rng.integers(1, 14), left : left + rng.integers(1, 14)] = value
        mask[top + 1 : top + 2, left + 1 : left + 2] = 0  # pinholes
    mask[-6:, -6:] = 255
    return mask


def whole_array_polygons(path: Path, connectivity: int) -> list[shapely.Geometry]:
    """The reference: one rasterio.features.shapes call over the whole mask, in map units."""
    with rasterio.open(path) as src:
        data = src.read(1)
        found = rasterio.features.shapes(data, mask=(data != 0) & (data != 255),
                                         connectivity=connectivity, transform=src.transform)
        return [shapely.geometry.shape(geom) for geom, _ in found]


def same_polygons(ours: list[shapely.Geometry], reference: list[shapely.Geometry]) -> None:
    """Equal count and total area; each polygon of one covers exactly one of the other."""
    assert len(ours) == len(reference)
    assert sum(g.area for g in ours) == sum(g.area for g in reference)

    def key(geom: shapely.Geometry) -> tuple[float, ...]:
        return (geom.area, *geom.bounds)

    for mine, theirs in zip(sorted(ours, key=key), sorted(reference, key=key), strict=True):
        assert shapely.symmetric_difference(mine, theirs).area == 0


@pytest.mark.parametrize("connectivity", [4, 8])
def test_worker_processes_give_the_whole_array_polygons(tmp_path: Path, connectivity: int) -> None:
    mask = blobs((150, 170), 120, seed=connectivity)
    path = write_mask(tmp_path / "m.tif", mask)
    probs = np.stack([1 - (mask == 1) * 0.7, (mask == 1) * 0.7 + np.linspace(0, 0.2, 170)])
    prob_path = write_probabilities(tmp_path / "p.tif", probs.clip(0, 1))
    runs = {workers: polygons_from_mask(path, PolygonOptions(connectivity=connectivity),
                                        probabilities_path=prob_path, block_size=32,
                                        workers=workers)
            for workers in (1, 2)}
    assert len(runs[1]) > 40  # many polygons, many of them cut by the 30 blocks' edges
    # The serial and the parallel runs agree exactly, attributes and vertices alike.
    pd.testing.assert_frame_equal(runs[2].drop(columns="geometry"),
                                  runs[1].drop(columns="geometry"))
    assert shapely.equals_exact(runs[2].geometry.values, runs[1].geometry.values, 0).all()
    reference = whole_array_polygons(path, connectivity)
    if connectivity == 8:  # shapes' 8-connected outlines touch themselves: compare the areas
        reference = list(repair_polygons(reference))
    same_polygons(list(runs[2].geometry), reference)


def test_error_in_a_worker_process_is_raised(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), np.float32)
    mask[40:50, 40:50] = 1.5  # only in the last of four blocks
    path = write_mask(tmp_path / "m.tif", mask, nodata=None)
    with pytest.raises(InputError, match="non-integer values such as 1.5"):
        polygons_from_mask(path, block_size=32, workers=2)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 30),
    noise=st.sampled_from([0.0, 0.001, 0.05]),
    connectivity=st.sampled_from([4, 8]),
    shape=st.tuples(st.integers(5, 160), st.integers(5, 160)),
    dtype=st.sampled_from(["uint8", "int16", "uint16", "int32"]),
)
def test_atlas_polygons_equal_those_of_the_whole_block(
    seed: int, count: int, noise: float, connectivity: int, shape: tuple[int, int], dtype: str
) -> None:
    rng = np.random.default_rng(seed)
    ids = blobs(shape, count, seed, classes=3)
    ids[rng.random(shape) < noise] = 2
    ids = np.where(ids == 255, 0, ids).astype(dtype)
    selected = ids != 0
    geoms, values = _polygonise(ids, selected, connectivity, row_off=64, col_off=32)
    found = rasterio.features.shapes(ids, mask=selected, connectivity=connectivity,
                                     transform=rasterio.Affine.translation(32, 64))
    expected = sorted((int(v), shapely.normalize(shapely.geometry.shape(g)).wkb)
                      for g, v in found)
    assert sorted(zip(values.tolist(), (shapely.normalize(g).wkb for g in geoms),
                      strict=True)) == expected


def test_sparse_blocks_are_polygonised_in_a_smaller_atlas() -> None:
    selected = blobs((256, 256), 12, seed=3, classes=3) == 1
    regions = _regions(selected)
    _, height = _pack(regions, 256)
    assert sum(region.own.sum() for region in regions) == selected.sum()
    assert height < 128  # under half the block: the atlas path, not the whole block


def test_geographic_crs_measures_in_square_metres(tmp_path: Path) -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[2:12, 2:12] = 1  # 100 px
    mask[20:28, 20:28] = 1  # 64 px
    step = 0.0001  # degrees: about 11 m north-south, 5.6 m east-west at 60° N
    path = write_mask(tmp_path / "m.tif", mask, crs="EPSG:4326",
                      transform=from_origin(10.0, 60.0, step, step))
    frame = polygons_from_mask(path)
    geod = Geod(ellps="WGS84")
    for _, row in frame.iterrows():
        area, perimeter = geod.geometry_area_perimeter(row.geometry)
        assert row.area_m2 == pytest.approx(abs(area), rel=1e-3)
        assert row.perim_m == pytest.approx(perimeter, rel=1e-3)
    big, small = frame.area_m2
    threshold = (big + small) / 2  # between them in m²; far above either in square degrees
    kept = polygons_from_mask(path, PolygonOptions(min_area=threshold))
    assert kept.area_m2.tolist() == [big]
    assert kept.crs == rasterio.crs.CRS.from_epsg(4326)
    assert kept.lon[0] == pytest.approx(10.0007, abs=1e-6)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_mask_without_crs_warns_and_measures_pixels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_mask(tmp_path / "m.tif", squares_and_ring(), crs=None,
                      transform=rasterio.Affine.identity())
    with caplog.at_level(logging.WARNING, logger="geoseg.vectors.vectorize"):
        frame = polygons_from_mask(path)
    assert "no CRS" in caplog.text and "pixels" in caplog.text
    assert frame.crs is None
    assert frame.area_m2.tolist() == [128, 36]
    assert frame.lon.isna().all()


# --------------------------------------------------------------------------- options
def test_min_area_fill_holes_and_islands(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[2:22, 2:22] = 1
    mask[5:8, 5:8] = 0  # 9 px hole: filled below 10 px
    mask[10:18, 10:18] = 0  # 64 px hole with a 2x2 island: kept below 10 px
    mask[13:15, 13:15] = 1
    mask[40, 40] = 1  # a speck
    mask[50:55, 50:55] = 1  # 24 px around a 1 px hole: 25 px once filled
    mask[52, 52] = 0
    path = write_mask(tmp_path / "m.tif", mask)
    plain = polygons_from_mask(path)
    assert sorted(plain.area_m2 / PIXEL_AREA) == [1, 4, 24, 400 - 9 - 64]
    filled = polygons_from_mask(
        path, PolygonOptions(fill_holes=10 * PIXEL_AREA, min_area=2 * PIXEL_AREA))
    assert (filled.area_m2 / PIXEL_AREA).tolist() == [400 - 64, 25, 4]
    assert len(filled.geometry[0].geoms[0].interiors) == 1
    # min_area applies to the filled polygons.
    large = polygons_from_mask(
        path, PolygonOptions(fill_holes=10 * PIXEL_AREA, min_area=25 * PIXEL_AREA))
    assert (large.area_m2 / PIXEL_AREA).tolist() == [400 - 64, 25]
    everything = polygons_from_mask(path, PolygonOptions(fill_holes=100 * PIXEL_AREA))
    assert (everything.area_m2 / PIXEL_AREA).tolist() == [400, 25, 1]  # island absorbed


def test_simplify_keeps_valid_geometry_and_area(tmp_path: Path) -> None:
    yy, xx = np.mgrid[:80, :80]
    mask = (((yy - 40) ** 2 + (xx - 40) ** 2) < 30**2).astype(np.uint8)
    mask[(yy - 40) ** 2 + (xx - 40) ** 2 < 10**2] = 0  # a round hole
    path = write_mask(tmp_path / "m.tif", mask)
    stairs = polygons_from_mask(path, block_size=32)
    smooth = polygons_from_mask(path, PolygonOptions(simplify=PIXEL), block_size=32)
    assert len(smooth) == 1 and smooth.geometry.is_valid.all()
    assert shapely.get_num_coordinates(smooth.geometry[0]) < (
        shapely.get_num_coordinates(stairs.geometry[0]) / 3
    )
    assert smooth.area_m2[0] == pytest.approx(stairs.area_m2[0], rel=0.03)
    assert len(smooth.geometry[0].geoms[0].interiors) == 1


def test_classes_and_names(tmp_path: Path) -> None:
    mask = np.zeros((32, 32), np.uint8)
    mask[2:6, 2:6] = 1
    mask[10:20, 10:20] = 2
    mask[12:14, 12:14] = 1  # class 1 island inside class 2: its own feature
    named = write_mask(tmp_path / "named.tif", mask, names=["bg", "debris", "rockfall"])
    frame = polygons_from_mask(named)
    assert frame[["class", "class_id"]].values.tolist() == [
        ["rockfall", 2], ["debris", 1], ["debris", 1]]
    assert polygons_from_mask(named, PolygonOptions(classes=(2,)))["class_id"].tolist() == [2]
    with pytest.raises(ParameterError, match="no class 3"):
        polygons_from_mask(named, PolygonOptions(classes=(3,)))
    foreign = write_mask(tmp_path / "foreign.tif", mask, names=None)
    assert set(polygons_from_mask(foreign)["class"]) == {"class_1", "class_2"}


def test_probability_statistics(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 1  # straddles the block corner (32, 32)
    mask[5:7, 5:7] = 1
    fg = np.full((64, 64), 0.1, np.float32)
    fg[24:32, 24:40] = 0.6
    fg[32:40, 24:40] = 0.8
    fg[39, 39] = 0.95
    fg[5:7, 5:7] = [[0.5, 0.7], [0.9, 1.0]]
    probs = np.stack([1 - fg, fg])
    path = write_mask(tmp_path / "m.tif", mask)
    expected_mean = (128 * 0.6 + 127 * 0.8 + 0.95) / 256
    # float32 and scaled uint8 with one band per class; the single band of a binary model.
    for bands, uint8 in ((probs, False), (probs, True), (probs[1:], False)):
        prob_path = write_probabilities(tmp_path / f"p{uint8}{len(bands)}.tif", bands,
                                        uint8=uint8)
        frame = polygons_from_mask(path, probabilities_path=prob_path, block_size=32)
        assert list(frame.columns)[-5:] == ["mean_prob", "max_prob", "lon", "lat", "geometry"]
        tol = 0.5 / 254 if uint8 else 1e-6
        assert frame.mean_prob.tolist() == pytest.approx([expected_mean, 0.775], abs=tol)
        assert frame.max_prob.tolist() == pytest.approx([0.95, 1.0], abs=tol)


def test_unsuitable_probabilities_are_refused(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "m.tif", squares_and_ring())
    other = write_probabilities(tmp_path / "p.tif", np.zeros((2, 32, 32)))
    with pytest.raises(InputError, match="grid"):
        polygons_from_mask(path, probabilities_path=other)
    with pytest.raises(InputError, match="is the mask itself"):
        polygons_from_mask(path, probabilities_path=path)
    percent = np.full((2, 64, 64), 80.0)
    percent[:, 0, 0] = 0.1
    percent_path = write_probabilities(tmp_path / "pct.tif", percent)
    with pytest.raises(InputError, match="values from 0.1 to 80, not 0..1"):
        polygons_from_mask(path, probabilities_path=percent_path)


# --------------------------------------------------------------------------- bad input
def test_float_masks(tmp_path: Path) -> None:
    integral = squares_and_ring().astype(np.float32)
    integral[integral == 255] = np.nan
    frame = polygons_from_mask(write_mask(tmp_path / "ok.tif", integral, nodata=np.nan))
    assert len(frame) == 2
    fractional = integral.copy()
    fractional[0, 0] = 0.37
    bad = write_mask(tmp_path / "bad.tif", fractional, nodata=np.nan)
    with pytest.raises(InputError, match=r"bad\.tif.*non-integer values such as 0\.37"):
        polygons_from_mask(bad)


def test_multiband_raster_is_refused(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "rgb.tif", np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(InputError, match="3 bands; pass a single-band class mask"):
        polygons_from_mask(path)


def test_bad_settings(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "m.tif", squares_and_ring())
    with pytest.raises(ParameterError, match="connectivity"):
        PolygonOptions(connectivity=6)
    with pytest.raises(ParameterError, match="min_area"):
        PolygonOptions(min_area=-1)
    with pytest.raises(ParameterError, match="classes: give at least one"):
        PolygonOptions(classes=())
    with pytest.raises(ParameterError, match="workers must be a whole number >= 1"):
        polygons_from_mask(path, workers=0)


# --------------------------------------------------------------------------- writing
@pytest.mark.parametrize("ext", [".gpkg", ".shp", ".geojson", ".fgb", ".parquet"])
def test_output_formats_round_trip(tmp_path: Path, ext: str) -> None:
    path = write_mask(tmp_path / "pred.tif", squares_and_ring())
    out = tmp_path / f"slides{ext}"
    if ext == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(OutputError, match="pip install pyarrow"):
            vectorize_mask(path, out)
        assert not out.exists()
        return
    summary = vectorize_mask(path, out)
    assert summary == VectorizeSummary(2, 164 * PIXEL_AREA, 128 * PIXEL_AREA, out)
    back = gpd.read_parquet(out) if ext == ".parquet" else gpd.read_file(out, layer=0)
    assert back.crs.to_epsg() == 32654
    assert len(back) == 2
    assert back["area_m2"].tolist() == [128 * PIXEL_AREA, 36 * PIXEL_AREA]
    assert set(SCHEMA) <= set(back.columns)
    assert back.geometry.area.tolist() == pytest.approx(back["area_m2"].tolist())
    assert not list(tmp_path.glob(".*partial*"))
    if ext == ".gpkg":  # the polygons' layer, and QGIS's table of styles
        assert pyogrio.list_layers(out)[:, 0].tolist() == ["pred", "layer_styles"]


def test_empty_mask_writes_empty_layer_with_schema(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "pred.tif", np.zeros((40, 40), np.uint8))
    summary = vectorize_mask(path, tmp_path / "none.gpkg")
    assert (summary.count, summary.total_area_m2, summary.largest_area_m2) == (0, 0.0, 0.0)
    info = pyogrio.read_info(tmp_path / "none.gpkg", layer="pred")
    assert info["features"] == 0
    assert info["geometry_type"] == "MultiPolygon"
    assert info["crs"] == "EPSG:32654"
    assert info["fields"].tolist() == SCHEMA
    assert info["dtypes"].tolist()[:4] == ["int64", "object", "int64", "float64"]


def test_unknown_extension_and_existing_output(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "pred.tif", squares_and_ring())
    with pytest.raises(OutputError, match=r"\.kml.*\.gpkg, \.shp, \.geojson, \.fgb, \.parquet"):
        vectorize_mask(path, tmp_path / "out.kml")
    out = tmp_path / "out.gpkg"
    out.write_text("keep me")
    with pytest.raises(OutputExistsError):
        vectorize_mask(path, out)
    assert out.read_text() == "keep me"
    vectorize_mask(path, out, overwrite=True)
    assert len(gpd.read_file(out, layer="pred")) == 2
    assert vectorize_mask(path, tmp_path / "bare").path == tmp_path / "bare.gpkg"


# --------------------------------------------------------------------------- CLI
def test_cli_vectorize(tmp_path: Path) -> None:
    mask = squares_and_ring()
    mask[40:44, 5:9] = 2
    path = write_mask(tmp_path / "pred.tif", mask, names=[*NAMES, "rockfall"])
    out = tmp_path / "slides.gpkg"
    runner = CliRunner()
    args = ["vectorize", str(path), "--out", str(out), "-q", "--classes", "1",
            "--min-area", str(40 * PIXEL_AREA), "--connectivity", "4", "--workers", "1"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"1 polygon, total area 12,800 m², largest 12,800 m² -> {out}"
    )
    assert gpd.read_file(out, layer="pred")["class"].tolist() == ["landslide"]
    again = runner.invoke(cli, args)
    assert again.exit_code == 1
    assert "exists already" in again.output and "--overwrite" in again.output
    forced = runner.invoke(cli, [*args[:5], "--overwrite"])
    assert forced.exit_code == 0, forced.output
    assert forced.output.startswith("3 polygons")
    bad = runner.invoke(cli, ["vectorize", str(path), "--out", str(out), "--classes", "x"])
    assert bad.exit_code == 2 and "class ids" in bad.output
    none = runner.invoke(cli, ["vectorize", str(path), "--out", str(out), "--workers", "0"])
    assert none.exit_code == 2 and "--workers" in none.output


def test_vectoriser_does_not_import_tensorflow() -> None:
    code = ("import sys, geoseg.vectors.vectorize; "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), 'TensorFlow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
