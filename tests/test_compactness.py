"""Polsby-Popper compactness (``compact``): 1 for a disc, small for a long thin strip, in every
vector format (a Shapefile keeps the name: 10 characters at most)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from geoseg.vectors.vector_blocks import Pieces
from geoseg.vectors.vector_features import Measure, feature_table
from geoseg.vectors.vectorize import vectorize_mask


def _table(geoms: list[shapely.Geometry], metres_per_unit: float = 1.0) -> gpd.GeoDataFrame:
    pieces = Pieces.without_values(np.array(geoms, dtype=object),
                                   np.ones(len(geoms), dtype=np.int64))
    return feature_table(pieces, Measure(metres_per_unit, None, None), ["bg", "slide"], None,
                         False, 0.0)


def test_disc_is_one_thin_rectangle_is_small() -> None:
    disc = shapely.Point(0, 0).buffer(50.0, quad_segs=256)
    strip = shapely.box(1000, 0, 1400, 4)  # 400 x 4: 4*pi*1600 / 808**2
    frame = _table([disc, strip])
    assert frame["compact"].tolist() == pytest.approx([1.0, 4 * np.pi * 1600 / 808**2],
                                                      abs=1e-4)
    assert frame["compact"].iloc[1] < 0.04


def test_compactness_is_of_true_metres_not_map_units() -> None:
    """A square in a CRS of 0.3048 m feet: a ratio of area and squared length, unitless."""
    frame = _table([shapely.box(0, 0, 10, 10)], metres_per_unit=0.3048)
    assert frame["area_m2"].iloc[0] == pytest.approx(100 * 0.3048**2)
    assert frame["compact"].iloc[0] == pytest.approx(np.pi / 4)


@pytest.mark.parametrize("ext", [".gpkg", ".shp", ".geojson"])
def test_compactness_in_every_vector_format(tmp_path: Path, ext: str) -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[2:4, 2:58] = 1  # a 56 x 2 strip
    mask[10:30, 10:30] = 1  # a 20 x 20 square
    path = tmp_path / "mask.tif"
    with rasterio.open(path, "w", driver="GTiff", width=60, height=40, count=1, dtype="uint8",
                       crs="EPSG:32654", transform=from_origin(500000, 4000000, 10, 10),
                       nodata=255) as dst:
        dst.write(mask, 1)
    out = tmp_path / f"slides{ext}"
    vectorize_mask(path, out)
    back = gpd.read_file(out, layer=0)
    assert "compact" in back.columns
    assert back["compact"].tolist() == pytest.approx([np.pi / 4, 4 * np.pi * 112 / 116**2])
