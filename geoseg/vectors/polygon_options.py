"""How a class mask becomes polygons: the one owner of those choices, their defaults and checks.

Light on purpose (no GDAL, shapely or geopandas), so the command line can take its defaults
from here.

>>> PolygonOptions(min_area=100).connectivity
8
>>> PolygonOptions(connectivity=6)
Traceback (most recent call last):
...
geoseg.errors.ParameterError: connectivity must be 4 or 8, got 6
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from geoseg.errors import ParameterError, param

__all__ = ["PolygonOptions"]


@dataclass(frozen=True)
class PolygonOptions:
    """Which pixels become which polygons, and how they are cleaned.

    Parameters
    ----------
    min_area : float
        Drop features smaller than this, in m² (of the geometry as written).
    simplify : float
        Douglas-Peucker tolerance in metres (0: keep the pixel outlines), converted to the
        CRS's units at the scene's centre (degrees on a geographic CRS; map units for a mask
        without CRS); every ring stays valid, invalid results are repaired.
    fill_holes : float
        Fill holes smaller than this, in m²; features of the same class inside a filled hole
        are absorbed (their pixels added to the probability statistics).
    connectivity : {4, 8}
        Pixel connectivity: with 8, pixels touching at a corner belong to one feature
        (a MultiPolygon whose parts touch at points).
    classes : sequence of int, optional
        Class ids to vectorise; all non-zero ids by default.

    Raises
    ------
    ParameterError
        A negative or non-finite size, a connectivity other than 4 or 8, or class ids that
        are empty, negative or not integers.
    """

    min_area: float = 0.0
    simplify: float = 0.0
    fill_holes: float = 0.0
    connectivity: int = 8
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("min_area", "simplify", "fill_holes"):
            value = getattr(self, name)
            if not isinstance(value, Real) or not math.isfinite(value) or value < 0:
                raise ParameterError(f"{param(name)} must be a number >= 0, got {value!r}")
        if self.connectivity not in (4, 8):
            raise ParameterError(f"{param('connectivity')} must be 4 or 8, got "
                                 f"{self.connectivity}")
        if self.classes is None:
            return
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ParameterError(f"{param('classes')}: give at least one class id, or none "
                                 "for all non-zero ids")
        for class_id in self.classes:
            if isinstance(class_id, bool) or not isinstance(class_id, Integral):
                raise ParameterError(f"{param('classes')}: {class_id!r} is not an integer "
                                     "class id")
            if class_id < 0:
                raise ParameterError(f"{param('classes')}: {class_id} is negative; class ids "
                                     "start at 0")
