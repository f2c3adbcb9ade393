"""Does this scene fit this model? The imagery a model knows, and the check before predicting.

A model trained with geoseg carries two facts about its training imagery in its settings
(:class:`~geoseg.settings.ModelSettings`): the ground size of its pixels (``pixel_size_m``)
and what its valid pixels looked like, band by band (``band_stats``: 1st, 50th and 99th
percentiles, mean, standard deviation). :func:`fit_warnings` compares a scene with them
before every prediction and says, in one line each, when the scene is not the imagery the
model knows; it never refuses a scene:

- **pixel size**: the scene's pixels are more than :data:`PIXEL_SIZE_FACTOR` (2) times
  larger or smaller than the training pixels. A convolutional network learns the size of
  things in pixels: at 2x, a landslide spans another level of the UNet's pyramid (each
  level halves the resolution), and geoseg's training does not zoom tiles by default
  (``[train] augment_scale`` 0). Measured with ``hokkaido-iburi`` on its 6 ``valid/``
  tiles resampled (tiles it trained on, so the level is high; the losses are what counts):
  landslide IoU 0.636 at its 3 m; 0.626, 0.604 and 0.552 with pixels 1.4, 2 and 3 times
  larger; 0.608, 0.561 and 0.451 with pixels 1.4, 2 and 3 times smaller. Within 2x the
  loss stays a few hundredths; beyond, it grows fast. A geographic CRS (degrees) is
  converted to metres at the scene's centre latitude, on the CRS's ellipsoid, and warned
  about only when that is off.
- **brightness**: the median of a band over a cheap sample of the scene (:func:`scene_sample`)
  lies outside the range of the middle 98% of the training pixels of that band ([1st, 99th]
  percentile): the scene's typical pixel is one the model saw in fewer than 1 in 100 of its
  training pixels, as with 16-bit imagery, reflectances of 0-1, a black or a saturated
  scene. Milder differences of brightness are left to the model, which trained with
  brightness and contrast changes (``[train] augment_brightness``, ``augment_contrast``).

The band order (BGR imagery given to an RGB model) is not guessed from the statistics: the
colour balance of a landscape varies as much as a swap of bands changes it. Compared by the
bands' medians, 18 of the 24 shared Sichuan aerial tiles, in the right order, match
``hokkaido-iburi``'s training colours better with their bands reordered, about as often as
its own training tiles given as BGR do (20 of 24).

The sample reads a scene of up to :data:`SAMPLE_SIDE` pixels a side whole, a larger scene
with overviews through one decimated read of them, and a larger scene without overviews in
4 x 4 windows of 128 pixels: never the whole of a large scene.

This module never imports TensorFlow.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyproj
import rasterio
from rasterio.windows import Window

from geoseg.model.bundled import bundled_name
from geoseg.raster.scene import open_scene, read_window
from geoseg.settings import BandStats, ModelSettings

__all__ = [
    "PIXEL_SIZE_FACTOR",
    "SAMPLE_SIDE",
    "band_stats",
    "fit_warnings",
    "format_metres",
    "images_pixel_size",
    "model_label",
    "pixel_size_m",
    "scene_sample",
    "training_facts",
    "training_pixels",
    "warn_if_unfit",
]

log = logging.getLogger(__name__)

PIXEL_SIZE_FACTOR = 2.0
"""A scene's pixels may be this many times larger or smaller than the training pixels
before :func:`fit_warnings` says so."""

SAMPLE_SIDE = 1024
"""A scene up to this many pixels a side is sampled whole; a larger one through a decimated
view of at most this side (with overviews) or in :data:`SAMPLE_WINDOWS` x SAMPLE_WINDOWS
windows of :data:`SAMPLE_WINDOW` pixels."""

SAMPLE_WINDOWS = 4
SAMPLE_WINDOW = 128

TRAINING_TILES = 64
"""Training tiles, spread evenly over them, whose pixels :func:`training_pixels` samples."""

TRAINING_STRIDE = 4
"""Every this many rows and columns of a training tile are sampled (1 pixel in 16)."""


def format_metres(value: float) -> str:
    """A ground distance as people say it: ``3 m``, ``0.5 m``, ``300 m``, ``2.5 km``.

    >>> format_metres(3.0), format_metres(0.5), format_metres(299.99), format_metres(2500)
    ('3 m', '0.5 m', '300 m', '2.5 km')
    """
    if value >= 1000:
        return f"{value / 1000:.3g} km"
    return f"{value:.2g} m" if value < 10 else f"{value:.0f} m"


def model_label(model_file: str | os.PathLike[str] | None) -> str:
    """How the warnings name a model: a bundled model's name, else its file's name.

    >>> model_label(None), model_label("runs/x/model.keras")
    ('the model', 'model.keras')
    """
    if model_file is None:
        return "the model"
    return bundled_name(model_file) or Path(model_file).name


def pixel_size_m(dataset: rasterio.io.DatasetReader) -> tuple[float, str] | None:
    """The ground size of a raster's pixels in metres, and how it was found; None without a
    CRS (plain images: PNG tiles) or with a CRS of no known unit.

    One figure: the side of a square pixel of the same area (the geometric mean of the
    pixel's width and height). A projected CRS converts its units to metres; a geographic
    CRS (degrees) is measured on its ellipsoid at the scene's centre, where a degree of
    longitude shrinks with the cosine of the latitude.

    Returns
    -------
    (float, str) or None
        The size and ``"from the CRS units"`` or e.g. ``"degrees at 42.7 N"``.
    """
    crs, transform = dataset.crs, dataset.transform
    if crs is None:
        return None
    width = math.hypot(transform.a, transform.d)
    height = math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        lon, lat = transform * (dataset.width / 2, dataset.height / 2)
        lat = max(-89.9, min(89.9, lat))
        geod = pyproj.CRS.from_wkt(crs.to_wkt()).get_geod()
        if geod is None:
            return None
        across = geod.inv(lon - width / 2, lat, lon + width / 2, lat)[2]
        along = geod.inv(lon, lat - height / 2, lon, lat + height / 2)[2]
        where = f"degrees at {abs(lat):.1f} {'N' if lat >= 0 else 'S'}"
        return math.sqrt(across * along), where
    try:
        factor = crs.linear_units_factor[1]
    except rasterio.errors.CRSError:
        return None
    size = math.sqrt(width * height) * factor
    scale = _areal_scale(crs, transform * (dataset.width / 2, dataset.height / 2))
    if abs(scale - 1.0) <= TRUE_SCALE_TOLERANCE:
        return size, "from the CRS units"
    # A projection that is not true to scale there (Web Mercator: 1/cos² of the latitude).
    return size / math.sqrt(scale), f"from the CRS units at its scale {scale:.3g} there"


TRUE_SCALE_TOLERANCE = 0.01
"""Areal scale of a projection within which its units are taken as ground metres (UTM's
0.9992 inside its zones; state planes alike)."""


def _areal_scale(crs: rasterio.crs.CRS, centre: tuple[float, float]) -> float:
    """How many times a small area at ``centre`` (in ``crs``'s coordinates) is larger on the
    map than on the ground (1 for an equal-area projection; pyproj's ``areal_scale``); 1 when
    pyproj cannot tell."""
    try:
        proj = pyproj.Proj(pyproj.CRS.from_wkt(crs.to_wkt()))
        lon, lat = proj(*centre, inverse=True)
        scale = float(proj.get_factors(lon, lat).areal_scale)
    except (pyproj.exceptions.CRSError, pyproj.exceptions.ProjError, ValueError):
        return 1.0
    return scale if math.isfinite(scale) and scale > 0 else 1.0


def scene_sample(dataset: rasterio.io.DatasetReader, bands: Sequence[int],
                 extra_nodata: float | None = None) -> np.ndarray:
    """A cheap sample of a scene's valid pixels: (pixels, bands) float64 raw values.

    Never reads a large scene whole (see the module's notes); validity as
    :func:`geoseg.raster.scene.read_window` says.
    """
    height, width = dataset.height, dataset.width
    whole = Window(0, 0, width, height)
    if max(height, width) <= SAMPLE_SIDE:
        reads = [read_window(dataset, whole, bands, extra_nodata)]
    elif dataset.overviews(bands[0]):
        factor = math.ceil(max(height, width) / SAMPLE_SIDE)
        shape = (math.ceil(height / factor), math.ceil(width / factor))
        reads = [read_window(dataset, whole, bands, extra_nodata, out_shape=shape)]
    else:
        side = min(SAMPLE_WINDOW, height, width)
        rows = np.linspace(0, height - side, SAMPLE_WINDOWS).round().astype(int)
        cols = np.linspace(0, width - side, SAMPLE_WINDOWS).round().astype(int)
        reads = [read_window(dataset, Window(int(c), int(r), side, side), bands, extra_nodata)
                 for r in rows for c in cols]
    return np.concatenate([data[:, valid].T.astype(np.float64) for data, valid in reads])


class _Examples(Protocol):
    """Training examples: :class:`geoseg.training.datasets.TileDataset` or ``MemoryTiles``."""

    def __len__(self) -> int: ...

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _spread(total: int, count: int) -> list[int]:
    """Up to ``count`` indexes spread evenly over ``range(total)``, first and last included.

    >>> _spread(10, 3), _spread(2, 5), _spread(0, 3)
    ([0, 4, 9], [0, 1], [])
    """
    if total == 0:
        return []
    return sorted(set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()))


def training_pixels(tiles: _Examples, count: int = TRAINING_TILES,
                    stride: int = TRAINING_STRIDE) -> np.ndarray:
    """A sample of the valid pixels of training tiles: (pixels, bands) float64.

    Reads ``count`` tiles spread evenly over them (all when fewer), one at a time, and keeps
    every ``stride``-th row and column of their valid pixels: at most ``count`` tiles' worth
    divided by ``stride**2`` in memory, however many tiles there are.
    """
    pixels = []
    for index in _spread(len(tiles), count):
        image, _, valid = tiles.read(index)
        image, valid = image[::stride, ::stride], valid[::stride, ::stride]
        pixels.append(image[valid].astype(np.float64))
    return np.concatenate(pixels)


def images_pixel_size(images: Sequence[str | os.PathLike[str]],
                      count: int = TRAINING_TILES) -> float | None:
    """The ground pixel size of training images in metres: the median of
    :func:`pixel_size_m` over up to ``count`` of them spread evenly (their headers only);
    None when none of those has a CRS (PNG tiles)."""
    sizes = []
    for index in _spread(len(images), count):
        with open_scene(images[index], expect_crs=False) as dataset:
            found = pixel_size_m(dataset)
        if found is not None:
            sizes.append(found[0])
    return round(float(np.median(sizes)), 4) if sizes else None


def band_stats(pixels: np.ndarray) -> list[BandStats] | None:
    """Per band, the 1st, 50th and 99th percentiles, mean and standard deviation of
    ``pixels`` ((pixels, bands)); None when there is no pixel.

    >>> band_stats(np.arange(101.0)[:, None])
    [BandStats(p1=1.0, p50=50.0, p99=99.0, mean=50.0, std=29.15...)]
    """
    if len(pixels) == 0:
        return None
    quantiles = np.quantile(pixels, [0.01, 0.5, 0.99], axis=0)
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return [BandStats(p1=round(float(q1), 4), p50=round(float(q50), 4), p99=round(float(q99), 4),
                      mean=round(float(m), 4), std=round(float(s), 4))
            for q1, q50, q99, m, s in zip(*quantiles, mean, std, strict=True)]


def training_facts(tiles: _Examples, images: Sequence[str | os.PathLike[str]],
                   pixel_size: float | None = None) -> dict[str, Any]:
    """The imagery facts ``geoseg train`` stores in a model's settings, as keyword arguments
    of :class:`~geoseg.settings.ModelSettings`: ``pixel_size_m`` (``pixel_size`` when given,
    else :func:`images_pixel_size` of the training ``images``) and ``band_stats`` (of
    :func:`training_pixels` of the training ``tiles``)."""
    if pixel_size is None:
        pixel_size = images_pixel_size(images)
    return {"pixel_size_m": pixel_size, "band_stats": band_stats(training_pixels(tiles))}


def fit_warnings(
    dataset: rasterio.io.DatasetReader,
    bands: Sequence[int],
    settings: ModelSettings,
    model: str = "the model",
    extra_nodata: float | None = None,
) -> list[str]:
    """What does not fit between a scene (its ``bands``, in model order) and the imagery the
    model was trained on: one line per problem, empty when all fits or the model knows
    nothing of its imagery. See the module's notes for the rules.

    ``model`` names the model in the lines (:func:`model_label`).
    """
    name = Path(dataset.name).name
    lines = []
    if settings.pixel_size_m is not None:
        found = pixel_size_m(dataset)
        if found is not None:
            size, how = found
            ratio = size / settings.pixel_size_m
            if not 1 / PIXEL_SIZE_FACTOR <= ratio <= PIXEL_SIZE_FACTOR:
                words = f" ({how})" if how.startswith("degrees") else ""
                lines.append(
                    f"{name}: {format_metres(size)} pixels{words}; {model} was trained on "
                    f"~{format_metres(settings.pixel_size_m)} pixels: results may be poor or "
                    "noise "
                    f"(resample the scene to ~{format_metres(settings.pixel_size_m)}, e.g. "
                    "gdalwarp -tr, or fine-tune the model on such imagery; see 'Models that "
                    "know where they work' in the README)")
    if settings.band_stats is not None:
        pixels = scene_sample(dataset, bands, extra_nodata)
        if len(pixels):
            medians = np.median(pixels, axis=0)
            lines += _brightness(name, medians, settings.band_stats, bands, model)
    return lines


def warn_if_unfit(dataset: rasterio.io.DatasetReader, bands: Sequence[int],
                  settings: ModelSettings, model_file: str | os.PathLike[str] | None,
                  extra_nodata: float | None = None) -> None:
    """Log each of :func:`fit_warnings`'s lines as a warning (the CLI prints them on
    stderr, QGIS shows them in its log); the run goes on."""
    for line in fit_warnings(dataset, bands, settings, model_label(model_file), extra_nodata):
        log.warning("%s", line)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _brightness(name: str, medians: np.ndarray, stats: Sequence[BandStats],
                bands: Sequence[int], model: str) -> list[str]:
    outside = [k for k, (m, s) in enumerate(zip(medians, stats, strict=True))
               if not s.p1 <= m <= s.p99]
    if not outside:
        return []
    brighter = all(medians[k] > stats[k].p99 for k in outside)
    darker = all(medians[k] < stats[k].p1 for k in outside)
    kind = ("brighter than" if brighter else "darker than" if darker else "outside")
    listed = "; ".join(f"band {bands[k]} median {_number(medians[k])}, training "
                       f"{_number(stats[k].p1)}-{_number(stats[k].p99)}" for k in outside)
    return [f"{name}: pixel values {kind} the middle 98% of {model}'s training pixels "
            f"({listed}): results may be poor or noise (16-bit, 0-1 reflectance or "
            "unstretched imagery? stretch the scene to the training range, e.g. "
            "gdal_translate -ot Byte -scale)"]
