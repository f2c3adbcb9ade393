"""Tests of the synthetic landslide scenes (geoseg.labels.synthetic) and the sample-data script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.image
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.enums import ColorInterp
from rasterio.features import rasterize

from geoseg.errors import OutputExistsError
from geoseg.labels.synthetic import (
    IBURI_EPICENTRE_UTM54N,
    UTM54N,
    SyntheticScene,
    default_transform,
    make_scene,
    write_scene,
)

H, W = 192, 256


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return make_scene(H, W, seed=11)


def test_scene_arrays_have_documented_shapes_and_values(scene: SyntheticScene) -> None:
    assert scene.image.shape == (3, H, W) and scene.image.dtype == np.uint8
    assert scene.labels.shape == (H, W) and scene.labels.dtype == np.uint8
    assert set(np.unique(scene.labels)) == {0, 1}
    assert scene.polygons and all(p.geom_type == "Polygon" and p.is_valid for p in scene.polygons)
    minx, miny, maxx, maxy = shapely.total_bounds(np.array(scene.polygons))
    assert minx >= 0 and miny >= 0 and maxx <= W and maxy <= H
    # Overlapping scars are merged: the polygons are disjoint.
    union = shapely.union_all(np.array(scene.polygons))
    assert union.area == pytest.approx(sum(p.area for p in scene.polygons), rel=1e-9)


def test_same_seed_gives_identical_scene(scene: SyntheticScene) -> None:
    again = make_scene(H, W, seed=11)
    np.testing.assert_array_equal(again.image, scene.image)
    np.testing.assert_array_equal(again.labels, scene.labels)
    assert [p.wkb for p in again.polygons] == [p.wkb for p in scene.polygons]


def test_different_seeds_give_different_scenes(scene: SyntheticScene) -> None:
    other = make_scene(H, W, seed=12)
    assert np.mean(other.image != scene.image) > 0.5
    assert not np.array_equal(other.labels, scene.labels)


def test_labels_are_exactly_the_rasterised_polygons(scene: SyntheticScene) -> None:
    burnt = rasterize(scene.polygons, out_shape=(H, W), fill=0, dtype="uint8")
    np.testing.assert_array_equal(burnt, scene.labels)


@pytest.mark.parametrize("seed", range(5))
def test_landslide_fraction_is_plausible(seed: int) -> None:
    fraction = make_scene(256, 256, seed).labels.mean()
    assert 0.005 < fraction < 0.15


def test_more_scars_cover_more_ground() -> None:
    few = make_scene(128, 128, 3, n_landslides=3).labels.mean()
    many = make_scene(128, 128, 3, n_landslides=60).labels.mean()
    assert many > 3 * few > 0


def test_no_landslides_gives_empty_labels() -> None:
    empty = make_scene(64, 64, 1, n_landslides=0)
    assert empty.polygons == () and not empty.labels.any()


def test_scars_are_pale_soil_against_dark_forest(scene: SyntheticScene) -> None:
    brightness = scene.image.astype(float).mean(axis=0)
    scar, ground = brightness[scene.labels == 1], brightness[scene.labels == 0]
    assert scar.mean() > ground.mean() + 40
    red_minus_green = scene.image[0].astype(float) - scene.image[1]
    assert red_minus_green[scene.labels == 1].mean() > red_minus_green[scene.labels == 0].mean()


def test_single_scars_are_elongated_and_20_to_150_m_long() -> None:
    frame = shapely.box(0, 0, 160, 160)
    scars = [p for seed in range(16) for p in make_scene(160, 160, seed, n_landslides=1).polygons
             if shapely.contains_properly(frame, p)]  # whole scars, not clipped by the edge
    assert len(scars) >= 5
    for scar in scars:
        ring = np.asarray(shapely.oriented_envelope(scar).exterior.coords)
        short, long = sorted(np.hypot(*np.diff(ring[:3], axis=0).T))
        assert 6 <= long <= 51  # 3 m pixels; the outline wobble allows a little slack
        assert long >= 2 * short


@pytest.mark.parametrize("size", [(15, 64), (64, 8)])
def test_tiny_scenes_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        make_scene(*size, seed=0)


def test_default_transform_is_north_up_3m_on_the_iburi_epicentre() -> None:
    transform = default_transform(2048, 1024)
    assert (transform.a, transform.b, transform.d, transform.e) == (3.0, 0.0, 0.0, -3.0)
    assert transform.c == round(transform.c) and transform.f == round(transform.f)
    centre = transform * (512, 1024)
    assert np.abs(np.subtract(centre, IBURI_EPICENTRE_UTM54N)).max() <= 1
    lon, lat = Transformer.from_crs(UTM54N, "EPSG:4326", always_xy=True).transform(*centre)
    assert lon == pytest.approx(142.01, abs=1e-4) and lat == pytest.approx(42.69, abs=1e-4)
    assert default_transform(100, 100, pixel_size=0.5).a == 0.5


def test_map_polygons_apply_the_transform(scene: SyntheticScene) -> None:
    transform = Affine(2.0, 0.0, 1000.0, 0.0, -2.0, 5000.0)
    mapped = scene.map_polygons(transform)
    assert len(mapped) == len(scene.polygons)
    minx, miny, maxx, maxy = scene.polygons[0].bounds
    assert mapped[0].bounds == pytest.approx((1000 + 2 * minx, 5000 - 2 * maxy,
                                              1000 + 2 * maxx, 5000 - 2 * miny))
    assert mapped[0].area == pytest.approx(4 * scene.polygons[0].area)


def test_write_scene_writes_georeferenced_files(scene: SyntheticScene, tmp_path: Path) -> None:
    transform = default_transform(H, W)
    files = write_scene(scene, tmp_path, "demo", transform, UTM54N)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "demo.tif", "demo_labels.tif", "demo_landslides.gpkg"]

    with rasterio.open(files.image) as src:
        assert src.crs.to_epsg() == 32654 and src.transform == transform
        assert (src.count, src.width, src.height, src.dtypes) == (3, W, H, ("uint8",) * 3)
        assert src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert src.compression.name == "jpeg" and src.block_shapes[0] == (256, 256)
        assert src.nodata is None
        image = src.read()
    assert np.abs(image.astype(int) - scene.image).mean() < 4  # JPEG quality 90

    with rasterio.open(files.labels) as src:
        assert src.crs.to_epsg() == 32654 and src.transform == transform
        assert (src.count, src.dtypes, src.nodata) == (1, ("uint8",), None)
        assert src.compression.name == "deflate"
        np.testing.assert_array_equal(src.read(1), scene.labels)

    info = pyogrio.read_info(files.landslides)
    assert info["crs"] == "EPSG:32654" and info["features"] == len(scene.polygons)
    _, _, geometry, fields = pyogrio.raw.read(files.landslides)
    assert set(fields[0]) == {"landslide"}
    burnt = rasterize(shapely.from_wkb(geometry), out_shape=(H, W), transform=transform)
    np.testing.assert_array_equal(burnt, scene.labels)  # polygons lie on the raster grid


def test_write_scene_refuses_existing_files(scene: SyntheticScene, tmp_path: Path) -> None:
    files = write_scene(scene, tmp_path, "demo")
    (tmp_path / "other_landslides.gpkg").write_text("keep")
    with pytest.raises(OutputExistsError, match="other_landslides.gpkg"):
        write_scene(scene, tmp_path, "other")
    assert not (tmp_path / "other.tif").exists()  # nothing written before refusing
    assert (tmp_path / "other_landslides.gpkg").read_text() == "keep"
    stamp = files.image.stat().st_mtime_ns
    with pytest.raises(OutputExistsError):
        write_scene(scene, tmp_path, "demo")
    assert files.image.stat().st_mtime_ns == stamp
    write_scene(make_scene(32, 32, 5), tmp_path, "demo", overwrite=True)
    with rasterio.open(files.image) as src:
        assert (src.width, src.height) == (32, 32)


def test_sample_script_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = Path(__file__).parents[1] / "sample_data" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.SIZE = 128  # the real sample is 2048 px; the code path is the same
    assert script.main(["--output-dir", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["iburi_synthetic.tif", "iburi_synthetic_labels.tif",
                     "iburi_synthetic_landslides.gpkg", "iburi_synthetic_preview.png"]
    preview = matplotlib.image.imread(tmp_path / "iburi_synthetic_preview.png")
    assert preview.shape[:2] == (128, 128) and preview.shape[2] in (3, 4)
    assert script.main(["--output-dir", str(tmp_path)]) == 1
    assert script.main(["--output-dir", str(tmp_path), "--overwrite"]) == 0
