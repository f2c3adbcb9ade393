"""How landslide probabilities become landslide regions: the recipe, its defaults and checks.

A :class:`PostProcessing` says which optional steps :mod:`geoseg.postprocessing.postprocess` runs,
and with which sizes. Light on purpose (no numpy), so that :class:`~geoseg.settings.ModelSettings`
can check a recipe stored in a model, and the command line can take its defaults from here.

>>> PostProcessing(seed_threshold=0.8, min_area_m2=100).describe()
'threshold 0.5, peak >= 0.8, regions >= 100 m²'
>>> PostProcessing(threshold=0.6, seed_threshold=0.5)
Traceback (most recent call last):
...
geoseg.errors.ParameterError: seed_threshold (0.5) must be >= threshold (0.6): a region's peak \
is never below the threshold that grows it
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from numbers import Real
from typing import Any

from geoseg.errors import ConfigError, ParameterError, param

__all__ = ["DEFAULT_THRESHOLD", "MARKERS", "SPLITS", "PostProcessing", "with_overrides"]

DEFAULT_THRESHOLD = 0.5
"""Landslide probability a pixel needs when a recipe gives no threshold."""
SPLITS = ("none", "watershed")
"""Ways to split a region: not at all, or by a seeded watershed."""
MARKERS = ("peaks", "distance")
"""Watershed seeds: peaks of the probability, or of the distance to the region's edge."""


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _probability(name: str, value: object, high_open: bool) -> None:
    """Refuse a probability outside (0, 1) (``high_open``) or (0, 1]."""
    number = float(value) if _is_number(value) else math.nan  # type: ignore[arg-type]
    if 0 < number < 1 or (number == 1 and not high_open):
        return
    raise ParameterError(f"{param(name)} must be a probability in (0, 1{')' if high_open else ']'}"
                         f", got {value!r}")


@dataclass(frozen=True)
class PostProcessing:
    """Post-processing of a landslide probability map into landslide regions.

    The steps, in order (each one optional but the first):

    1. **threshold**: a pixel with data is a landslide candidate where ``p >= threshold``.
    2. **smooth** (``smooth_m > 0``): the candidate mask is blurred with a Gaussian of standard
       deviation ``smooth_m`` and thresholded at one half (a soft majority filter). Straight
       outlines stay where they are, so areas are kept: a convex region loses about
       ``pi * smooth_m²`` (1 % of a 20-pixel-radius disc with a 2-pixel deviation); spurs and
       gaps narrower than about ``smooth_m`` go.
    3. **regions**: 8-connected components of the mask. A region is dropped when its peak
       probability is below ``seed_threshold`` (hysteresis: regions grow down to
       ``threshold`` from a peak of at least ``seed_threshold``) or its area is below
       ``min_area_m2``.
    4. **holes** (``max_hole_m2 > 0``): a hole (a 4-connected component of the other pixels
       that touches neither the raster's edge nor a pixel without data) of at most
       ``max_hole_m2`` becomes landslide. Filling may join a region and an island inside it.
    5. **split** (``split="watershed"``): each region is cut by a watershed of the probability
       (``markers="peaks"``) or of the distance to its edge (``markers="distance"``) from
       markers: the local maxima of that surface, at least ``marker_min_height`` high (a
       probability, or metres from the edge), ``marker_min_distance_m`` apart and standing
       ``marker_prominence`` above the saddle to a higher one. A region with fewer than two
       markers stays whole.

    Areas and distances are in metres (of the raster's CRS; for an image without
    georeference, of the pixel size a caller gives, as a prediction gives its model's training
    pixels, else pixels).

    Parameters
    ----------
    threshold : float or None
        Landslide probability that makes a candidate, in (0, 1); None: 0.5
        (:data:`DEFAULT_THRESHOLD`), or the threshold of the prediction when a caller fills it.
    seed_threshold : float or None
        Peak probability a region needs to be kept, >= ``threshold``; None: no hysteresis.
    min_area_m2 : float
        Smallest region kept, in m² (0: all).
    max_hole_m2 : float
        Largest hole filled, in m² (0: none).
    smooth_m : float
        Standard deviation of the smoothing, in metres (0: none).
    split : {"none", "watershed"}
        Whether regions are split.
    markers : {"peaks", "distance"}
        The surface the watershed floods and whose maxima are its markers.
    marker_min_height : float
        A marker's smallest value: a probability for ``peaks``, metres from the region's edge
        for ``distance``.
    marker_min_distance_m : float
        Smallest distance between two markers, in metres (0: adjacent pixels).
    marker_prominence : float
        How far a marker stands above the saddle joining it to a higher one (in the
        surface's units; 0: any local maximum).

    Raises
    ------
    ParameterError
        A value out of range, a seed below the threshold, an unknown split or marker kind.
    """

    threshold: float | None = None
    seed_threshold: float | None = None
    min_area_m2: float = 0.0
    max_hole_m2: float = 0.0
    smooth_m: float = 0.0
    split: str = "none"
    markers: str = "peaks"
    marker_min_height: float = 0.0
    marker_min_distance_m: float = 0.0
    marker_prominence: float = 0.0

    def __post_init__(self) -> None:
        if self.threshold is not None:
            _probability("threshold", self.threshold, high_open=True)
        if self.seed_threshold is not None:
            _probability("seed_threshold", self.seed_threshold, high_open=False)
            if self.threshold is not None and self.seed_threshold < self.threshold:
                raise ParameterError(
                    f"{param('seed_threshold')} ({self.seed_threshold:g}) must be >= "
                    f"{param('threshold')} ({self.threshold:g}): a region's peak is never "
                    "below the threshold that grows it"
                )
        for name in ("min_area_m2", "max_hole_m2", "smooth_m", "marker_min_height",
                     "marker_min_distance_m", "marker_prominence"):
            value = getattr(self, name)
            if not (_is_number(value) and value >= 0):
                raise ParameterError(f"{param(name)} must be a number >= 0, got {value!r}")
        for name, choices in (("split", SPLITS), ("markers", MARKERS)):
            if getattr(self, name) not in choices:
                raise ParameterError(f"{param(name)} must be one of {', '.join(choices)}; got "
                                     f"{getattr(self, name)!r}")
        if self.markers == "peaks" and self.marker_min_height > 1:
            raise ParameterError(f"{param('marker_min_height')} of probability peaks must be "
                                 f"<= 1, got {self.marker_min_height:g}")

    @property
    def grow_threshold(self) -> float:
        """The candidate threshold: ``threshold``, else :data:`DEFAULT_THRESHOLD`."""
        return DEFAULT_THRESHOLD if self.threshold is None else self.threshold

    @property
    def drops_regions(self) -> bool:
        """Whether step 3 drops regions (hysteresis or a minimum area)."""
        return self.seed_threshold is not None or self.min_area_m2 > 0

    @property
    def measures_metres(self) -> bool:
        """Whether a step measures areas or distances in metres (and so needs the pixel size).

        >>> PostProcessing(seed_threshold=0.8).measures_metres
        False
        >>> PostProcessing(min_area_m2=100).measures_metres
        True
        """
        distance_markers = self.split != "none" and (self.marker_min_distance_m > 0
                                                      or self.markers == "distance")
        return (self.min_area_m2 > 0 or self.max_hole_m2 > 0 or self.smooth_m > 0
                or distance_markers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (stored in a model's settings)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostProcessing:
        """A recipe from a dict such as :meth:`to_dict` wrote; missing keys take defaults.

        Raises
        ------
        ConfigError
            An unknown key.
        ParameterError
            A value out of range.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"post-processing settings must map names to values, got {data!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown post-processing settings {unknown}; valid ones: {known}")
        return cls(**dict(data))

    def describe(self) -> str:
        """The steps in a few words, for logs and tables."""
        parts = [f"threshold {self.grow_threshold:g}"]
        if self.smooth_m:
            parts.append(f"smoothed {self.smooth_m:g} m")
        if self.seed_threshold is not None:
            parts.append(f"peak >= {self.seed_threshold:g}")
        if self.min_area_m2:
            parts.append(f"regions >= {self.min_area_m2:g} m²")
        if self.max_hole_m2:
            parts.append(f"holes <= {self.max_hole_m2:g} m² filled")
        if self.split == "watershed":
            unit = "" if self.markers == "peaks" else " m"
            parts.append(
                f"watershed on {self.markers} (>= {self.marker_min_height:g}{unit}, "
                f"{self.marker_min_distance_m:g} m apart, prominence "
                f"{self.marker_prominence:g}{unit})"
            )
        return ", ".join(parts)


def with_overrides(base: PostProcessing | None, **values: Any) -> PostProcessing:
    """``base`` (the threshold alone when None) with the ``values`` that are not None: a
    model's stored recipe with some of its steps given by the user.

    >>> stored = PostProcessing(seed_threshold=0.8, min_area_m2=100)
    >>> with_overrides(stored, min_area_m2=0, seed_threshold=None).describe()
    'threshold 0.5, peak >= 0.8'
    """
    given = {name: value for name, value in values.items() if value is not None}
    unknown = sorted(set(given) - {f.name for f in fields(PostProcessing)})
    if unknown:
        raise ParameterError(f"unknown post-processing values {unknown}")
    return replace(base or PostProcessing(), **given)
