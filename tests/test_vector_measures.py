"""Areas, perimeters, ``min_area`` and ``simplify`` of polygons in true metres on any CRS.

The reference is the geodesic area and perimeter (:meth:`pyproj.Geod.geometry_area_perimeter`)
of the very polygons written, taken to longitude and latitude.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from geoseg.cli import cli
from geoseg.vectors.vector_features import Measure
from geoseg.vectors.vectorize import PolygonOptions, polygons_from_mask

LON, LAT = -122.42, 37.7  # San Francisco: Web Mercator is 1/cos²(37.7°) = 1.60 times too large
CUSTOM_MERCATOR = pyproj.CRS("+proj=merc +lon_0=-100 +datum=WGS84 +units=m").to_wkt()
"""A Mercator written as WKT, with no EPSG code."""


def disks(size: int = 160) -> np.ndarray:
    """Two disks: radius 40 px (5,000 px) and 20 px (1,250 px), apart."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    mask[(yy - 50) ** 2 + (xx - 50) ** 2 < 40**2] = 1
    mask[(yy - 120) ** 2 + (xx - 120) ** 2 < 20**2] = 1
    return mask


def write_mask(path: Path, mask: np.ndarray, crs: str, lon: float = LON, lat: float = LAT
               ) -> Path:
    """The mask with its top-left corner at lon/lat in ``crs``: 5 units a pixel when
    projected, 0.00005° (about 4.4 x 5.6 m here) when geographic."""
    crs_ = pyproj.CRS.from_user_input(crs)
    x, y = pyproj.Transformer.from_crs("EPSG:4326", crs_, always_xy=True).transform(lon, lat)
    pixel = 0.00005 if crs_.is_geographic else 5.0
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0],
                       count=1, dtype="uint8", nodata=255, crs=rasterio.crs.CRS.from_wkt(
                           crs_.to_wkt()), transform=from_origin(x, y, pixel, pixel)) as dst:
        dst.write(mask, 1)
    return path


def geodesic(geoms, crs) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic areas (m²) and perimeters (m) of geometries in ``crs``, on its ellipsoid."""
    crs_ = pyproj.CRS.from_user_input(crs)
    to_lonlat = pyproj.Transformer.from_crs(crs_, crs_.geodetic_crs, always_xy=True)
    geod = crs_.get_geod()
    measured = [geod.geometry_area_perimeter(shapely.transform(
        geom, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))))
        for geom in geoms]
    return np.abs([m[0] for m in measured]), np.array([m[1] for m in measured])


@pytest.mark.parametrize(("crs", "lon"), [
    ("EPSG:3857", LON),
    (CUSTOM_MERCATOR, LON),
    ("EPSG:4326", LON),
    ("EPSG:32610", -114.0),  # UTM 10N 9° east of its central meridian: 0.7 % too large
], ids=["web-mercator", "wkt-mercator-no-epsg", "geographic", "utm-outside-its-zone"])
def test_areas_and_perimeters_are_geodesic_metres(tmp_path, crs, lon):
    path = write_mask(tmp_path / "m.tif", disks(), crs, lon=lon)
    with rasterio.open(path) as src:
        assert (src.crs.to_epsg() is None) == (crs == CUSTOM_MERCATOR)
    frame = polygons_from_mask(path, workers=1)
    area, perimeter = geodesic(frame.geometry, crs)
    assert len(frame) == 2
    np.testing.assert_allclose(frame.area_m2, area, rtol=1e-6)
    np.testing.assert_allclose(frame.perim_m, perimeter, rtol=1e-5)
    if "merc" in crs.lower() or crs == "EPSG:3857":  # the map's own areas are far off
        planar = frame.geometry.area.to_numpy() / frame.area_m2.to_numpy()
        np.testing.assert_allclose(planar, 1 / math.cos(math.radians(LAT)) ** 2, rtol=0.01)


def test_utm_within_its_zone_is_measured_as_it_is(tmp_path):
    mask = disks()
    path = write_mask(tmp_path / "m.tif", mask, "EPSG:32610", lon=-123.0)  # on the meridian
    frame = polygons_from_mask(path, workers=1)
    assert frame.area_m2.sum() == (mask == 1).sum() * 25.0  # 5 m pixels, exactly
    assert frame.area_m2.tolist() == frame.geometry.area.tolist()
    assert frame.perim_m.tolist() == frame.geometry.length.tolist()


def test_min_area_compares_true_square_metres_on_web_mercator(tmp_path):
    path = write_mask(tmp_path / "m.tif", disks(), "EPSG:3857")
    frame = polygons_from_mask(path, workers=1)
    (big, small), _ = geodesic(frame.geometry, "EPSG:3857")
    threshold = small * 1.3  # the small disk's map area is 1.6 times its true area: above it
    kept = polygons_from_mask(path, PolygonOptions(min_area=threshold), workers=1)
    assert kept.area_m2.tolist() == pytest.approx([big])
    # the same with hole filling on, which takes another path through the vectoriser
    kept = polygons_from_mask(path, PolygonOptions(min_area=threshold, fill_holes=1.0),
                              workers=1)
    assert kept.area_m2.tolist() == pytest.approx([big])


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:3857"])
def test_simplify_tolerance_is_in_metres(tmp_path, crs):
    mask = disks()
    path = write_mask(tmp_path / "m.tif", mask, crs)
    stairs = polygons_from_mask(path, workers=1)
    tolerance = 5.0  # metres
    smooth = polygons_from_mask(path, PolygonOptions(simplify=tolerance), workers=1)
    assert smooth.geometry.is_valid.all() and len(smooth) == 2
    before = shapely.get_num_coordinates(stairs.geometry[0])
    after = shapely.get_num_coordinates(smooth.geometry[0])
    assert 12 < after < before / 3  # simplified, not collapsed (1.5 degrees left 5 vertices)
    np.testing.assert_allclose(smooth.area_m2, stairs.area_m2, rtol=0.03)
    # no outline moved further than the tolerance, in metres on the ground
    centre = pyproj.CRS(proj="laea", lat_0=LAT, lon_0=LON, ellps="WGS84")
    to_metres = pyproj.Transformer.from_crs(crs, centre, always_xy=True)
    ground = [shapely.transform(frame.geometry[0], lambda xy: np.column_stack(
        to_metres.transform(xy[:, 0], xy[:, 1]))) for frame in (stairs, smooth)]
    moved = shapely.hausdorff_distance(*ground)
    assert tolerance / 2 < moved <= tolerance * 1.01


@pytest.mark.parametrize(("crs", "metres_per_unit"), [
    ("EPSG:3857", math.cos(math.radians(LAT))),  # at the scene's latitude
    ("EPSG:4326", 110_996.0),  # a degree of latitude at 37.7°, the larger of the two scales
    ("EPSG:32610", 1.0),
])
def test_tolerances_convert_at_the_scenes_centre(tmp_path, crs, metres_per_unit):
    path = write_mask(tmp_path / "m.tif", np.zeros((200, 200), np.uint8), crs, lon=-123.0)
    with rasterio.open(path) as src:
        metric = Measure.for_raster(src)
    assert metric.units(1.0) == pytest.approx(1 / metres_per_unit, rel=2e-3)


def test_simplify_help_says_metres():
    result = CliRunner().invoke(cli, ["vectorize", "--help"])
    assert "tolerance in metres" in result.output
