"""Synthetic landslide scenes: forested hills with shallow landslide scars, and their labels.

A scene imitates a 3 m RGB image of the area struck by the 2018 Hokkaido Eastern Iburi
earthquake: a synthetic DEM (smoothed multi-octave noise, with one valley carrying a river,
fields and a road) gives hillshade to a mottled forest canopy, and hundreds of clustered,
tongue-shaped scars (20-150 m long, pointing down the DEM gradient) expose pale soil. The
labels are exactly the rasterised scar polygons, and the scar colours are painted from the
same polygons, so a model trained on some seeds can find the scars of others.

Everything is vectorised numpy; one ``numpy.random.Generator`` seeded by ``seed`` drives all
randomness, so a seed gives the same bytes on every run (on one platform and numpy version).
Polygons are in pixel coordinates (x = column, y = row, pixel corners on integers);
:meth:`SyntheticScene.map_polygons` moves them onto a map grid.

This module never imports TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pyogrio
import pyogrio.raw
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.features import rasterize
from shapely.geometry import Polygon, box

from geoseg.raster.outputs import atomic_output, check_output_path
from geoseg.vectors.vector_formats import steady_sqlite_header

__all__ = [
    "IBURI_EPICENTRE_UTM54N",
    "SAMPLE_NAME",
    "SAMPLE_SEED",
    "SAMPLE_SIZE",
    "UTM54N",
    "SceneFiles",
    "SyntheticScene",
    "default_transform",
    "make_scene",
    "scene_files",
    "write_sample",
    "write_scene",
]

UTM54N = "EPSG:32654"
#: 42.69 N, 142.01 E (JMA epicentre of 6 Sep 2018) in UTM 54N; pyproj 3.7 gives
#: (582736.4, 4726885.2) for ``Transformer.from_crs("EPSG:4326", UTM54N, always_xy=True)``.
IBURI_EPICENTRE_UTM54N = (582736.0, 4726885.0)
_GSD = 3.0  # ground sampling distance (m) the terrain and scar sizes are designed for
_SCARS_PER_PIXEL = 1100 / 2048**2  # default density: 1100 scars drawn on a 6 x 6 km scene
# Surface colours (reflectance-like, 0-1, RGB) before the bluish haze of the Iburi imagery.
_SOILS = np.array(  # fresh scars: pinkish pumice, whitish grey, light brown, ochre
    [[0.85, 0.76, 0.78], [0.80, 0.80, 0.78], [0.74, 0.62, 0.55], [0.76, 0.66, 0.50]],
    dtype=np.float32)
_FIELDS = np.array(  # ripe paddy, stubble, pasture, bare tilled soil
    [[0.42, 0.45, 0.22], [0.45, 0.38, 0.28], [0.28, 0.40, 0.18], [0.50, 0.45, 0.38]],
    dtype=np.float32)
_CONIFER = np.array([0.08, 0.14, 0.13], dtype=np.float32)
_BROADLEAF = np.array([0.17, 0.25, 0.17], dtype=np.float32)
_WATER = np.array([0.08, 0.12, 0.13], dtype=np.float32)
_GRAVEL = np.array([0.62, 0.60, 0.56], dtype=np.float32)
_HAZE = np.array([0.15, 0.16, 0.20], dtype=np.float32)
_GPKG_DATE = "2018-09-06T00:00:00Z"  # fixed GeoPackage last_change, for reproducible files

SAMPLE_NAME = "iburi_synthetic"
"""Base name of the files of the sample scene (``sample_data/`` of the repository)."""
SAMPLE_SEED = 2018
"""Seed of the sample scene; the demo model was trained on other seeds."""
SAMPLE_SIZE = 2048
"""Side of the sample scene in pixels."""


@dataclass(frozen=True)
class SyntheticScene:
    """A synthetic scene made by :func:`make_scene`.

    Attributes
    ----------
    image : numpy.ndarray
        (3, H, W) uint8, bands red, green, blue.
    labels : numpy.ndarray
        (H, W) uint8, 0 background, 1 landslide: exactly ``polygons`` rasterised (pixel centres).
    polygons : tuple of shapely.Polygon
        Disjoint landslide outlines in pixel coordinates (x = column, y = row, corners on
        integers); :meth:`map_polygons` gives them in map coordinates.
    seed : int
        The seed that made the scene.
    """

    image: np.ndarray
    labels: np.ndarray
    polygons: tuple[Polygon, ...]
    seed: int

    def map_polygons(self, transform: Affine) -> list[Polygon]:
        """The landslide polygons in the map coordinates of ``transform`` (pixel -> map).

        Returns
        -------
        list of shapely.Polygon
            One polygon per landslide, in the same order as :attr:`polygons`.
        """
        a, b, c, d, e, f = transform[:6]
        matrix = np.array([[a, d], [b, e]])
        return list(shapely.transform(np.array(self.polygons, dtype=object),
                                      lambda xy: xy @ matrix + (c, f)))


@dataclass(frozen=True)
class SceneFiles:
    """Paths written by :func:`write_scene`."""

    image: Path
    labels: Path
    landslides: Path


def default_transform(height: int, width: int, pixel_size: float = _GSD) -> Affine:
    """A north-up grid of ``pixel_size`` metres centred on the Iburi epicentre in UTM 54N.

    The upper-left corner is rounded to whole metres. Use it with ``crs=UTM54N``.

    Returns
    -------
    affine.Affine
        Pixel-to-map transform for a ``height`` x ``width`` raster.
    """
    east, north = IBURI_EPICENTRE_UTM54N
    left = round(east - width * pixel_size / 2)
    top = round(north + height * pixel_size / 2)
    return Affine(pixel_size, 0.0, float(left), 0.0, -pixel_size, float(top))


def _noise(rng: np.random.Generator, shape: tuple[int, int], beta: float, cutoff: float,
           stretch: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
    """Unit-variance float32 noise with amplitude spectrum ``k**-beta * exp(-(k / cutoff)**2)``.

    ``k`` is in cycles per pixel; ``stretch = (factor, angle)`` squeezes frequencies along
    ``angle`` (radians) to give streaks.
    """
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    factor, angle = stretch
    k = np.hypot((fx * np.cos(angle) + fy * np.sin(angle)) * factor,
                 fy * np.cos(angle) - fx * np.sin(angle))
    k[0, 0] = np.inf
    # The spectrum of white noise is white complex noise: draw it directly, skipping one FFT.
    white = rng.standard_normal((2, *k.shape), dtype=np.float32)
    spectrum = (white[0] + 1j * white[1]) * (k**-beta * np.exp(-((k / cutoff) ** 2)))
    field = np.fft.irfft2(spectrum.astype(np.complex64), s=shape)
    return ((field - field.mean()) / max(float(field.std()), 1e-12)).astype(np.float32)


def _terrain(rng: np.random.Generator,
             shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DEM in metres (hills creased by V-shaped valleys, cut by one flat-floored valley), the
    signed distance in pixels across the valley from its river, and the floor half-width."""
    hills = (_noise(rng, shape, 0.8, 0.012) + 0.6 * np.abs(_noise(rng, shape, 1.0, 0.025))
             + 0.5 * _noise(rng, shape, 2.0, 0.004))
    drow, dcol = np.gradient(hills)
    hills *= np.tan(np.radians(24.0)) * _GSD / np.median(np.hypot(drow, dcol))  # median 24 deg
    rows = np.arange(shape[0], dtype=np.float32)[:, None] - shape[0] / 2
    cols = np.arange(shape[1], dtype=np.float32)[None, :] - shape[1] / 2
    angle = rng.uniform(0, np.pi)
    u = cols * np.float32(np.cos(angle)) + rows * np.float32(np.sin(angle))
    reach = np.arange(-(sum(shape) // 2) - 1, sum(shape) // 2 + 2)  # u of every pixel
    k = np.fft.rfftfreq(reach.size)
    bends = (rng.standard_normal(k.size) + 1j * rng.standard_normal(k.size)) * np.exp(
        -((k * 700) ** 2))
    path = np.fft.irfft(bends, n=reach.size)
    path = rng.uniform(-0.25, 0.25) * min(shape) + 90 * path / path.std()
    centre = np.interp(u, reach, path).astype(np.float32)
    tilt = np.interp(u, reach, np.gradient(path)).astype(np.float32)
    across = (rows * np.float32(np.cos(angle)) - cols * np.float32(np.sin(angle)) - centre)
    across /= np.sqrt(1 + tilt**2)
    floor = 70 + 30 * np.sin(u / np.float32(200) + np.float32(rng.uniform(0, 2 * np.pi)))
    ramp = np.clip((np.abs(across) - floor) / 80, 0, 1) ** 0.7
    base = np.percentile(hills, 5)
    return base + (hills - base) * ramp, across, floor


def _hillshade(dem: np.ndarray, azimuth: float = 150.0, altitude: float = 45.0) -> np.ndarray:
    """Lambertian illumination (0-1) of ``dem`` by a sun at ``azimuth``/``altitude`` degrees."""
    drow, dcol = np.gradient(dem / _GSD)
    az, alt = np.radians(azimuth), np.radians(altitude)
    sun = np.array([np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt)])
    shade = (-dcol * sun[0] + drow * sun[1] + sun[2]) / np.sqrt(1 + dcol**2 + drow**2)
    return np.clip(shade, 0, 1)


def _scar_outlines(rng: np.random.Generator, dem: np.ndarray, weight: np.ndarray,
                   n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` tongue-shaped scars whose heads are drawn with probability ``weight`` and which
    point down the DEM gradient: polygons in pixel coordinates, and per scar the head
    position, heading (radians) and length as an (n, 4) array ``x0, y0, heading, length``."""
    p = weight.ravel().astype(np.float64)
    flat = rng.choice(dem.size, size=n, p=p / p.sum())
    y0, x0 = flat // dem.shape[1] + rng.random(n), flat % dem.shape[1] + rng.random(n)
    drow, dcol = np.gradient(dem)
    heading = np.arctan2(-drow.ravel()[flat], -dcol.ravel()[flat]) + rng.normal(0, 0.15, n)
    length = np.clip(rng.lognormal(np.log(24), 0.45, n), 7, 50)
    half = np.maximum(length * rng.uniform(0.1, 0.22, n), 1.5)
    s = np.linspace(0, 1, 25)
    a, b = rng.uniform(0.3, 0.55, (n, 1)), rng.uniform(0.5, 1.2, (n, 1))
    profile = s**a * (1 - s) ** b  # blunt head, tapering or blunt toe
    profile /= profile.max(axis=1, keepdims=True)
    k = np.arange(1, 4)[:, None]
    sides = []
    for _ in range(2):  # left, right: independent wobble of the half-width
        wobble = (rng.normal(0, 0.12, (n, 3, 1)) / k * np.sin(
            2 * np.pi * k * s + rng.uniform(0, 2 * np.pi, (n, 3, 1)))).sum(axis=1)
        sides.append(half[:, None] * profile * np.clip(1 + wobble, 0.4, None))
    bend = rng.normal(0, 0.15, (n, 1)) * length[:, None] * (s**2 - s)
    along = length[:, None] * s  # monotonic along both sides, so every ring is simple
    ring = np.concatenate([np.stack([along, bend + sides[1]], -1),
                           np.stack([along, bend - sides[0]], -1)[:, -2:0:-1]], axis=1)
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    xy = np.stack([x0[:, None] + ring[..., 0] * cos - ring[..., 1] * sin,
                   y0[:, None] + ring[..., 0] * sin + ring[..., 1] * cos], -1)
    outlines = cast(np.ndarray, shapely.polygons(xy))  # an array: xy holds many rings
    return outlines, np.stack([x0, y0, heading, length], axis=1)


def make_scene(height: int, width: int, seed: int, *,
               n_landslides: int | None = None) -> SyntheticScene:
    """Generate a synthetic forested scene with shallow landslide scars.

    Parameters
    ----------
    height, width : int
        Scene size in pixels (each >= 16); the terrain is designed for 3 m pixels.
    seed : int
        Seed of the ``numpy.random.Generator``; the same seed gives identical arrays.
    n_landslides : int, optional
        Number of scars to draw before overlapping ones merge and edges clip them
        [default: 1100 per 2048 x 2048 pixels, at least 1].

    Returns
    -------
    SyntheticScene
        The RGB image, the labels and the landslide polygons (pixel coordinates, disjoint).

    Raises
    ------
    ValueError
        A size is below 16 pixels or ``n_landslides`` is negative.
    """
    if height < 16 or width < 16:
        raise ValueError(f"scene size must be at least 16 x 16 pixels, got {height} x {width}")
    if n_landslides is not None and n_landslides < 0:
        raise ValueError(f"n_landslides must be >= 0, got {n_landslides}")
    shape = (height, width)
    n = max(1, round(_SCARS_PER_PIXEL * height * width)) if n_landslides is None else n_landslides
    rng = np.random.default_rng(seed)
    dem, across, floor = _terrain(rng, shape)
    shade = _hillshade(dem)
    drow, dcol = np.gradient(dem / _GSD)
    steep = np.clip((np.hypot(drow, dcol) - 0.3) / 0.4, 0, 1)  # heads on slopes above ~17 deg
    cluster = np.exp(1.5 * _noise(rng, shape, 1.5, 0.01))
    scars, params = _scar_outlines(rng, dem, steep * cluster + 1e-6, n)
    merged = shapely.union_all(shapely.intersection(scars, box(0, 0, width, height)))
    polygons = tuple(p for p in shapely.get_parts(merged)
                     if isinstance(p, Polygon) and p.area >= 2.0)
    labels = _burn(polygons, shape)

    # Forest: conifer/broadleaf stands, crowns with streaky shadows, lit by the hillshade.
    mix = np.clip(0.5 + 0.6 * _noise(rng, shape, 1.2, 0.02), 0, 1)[..., None]
    forest = (1 - mix) * _CONIFER + mix * _BROADLEAF
    crowns = _noise(rng, shape, 0.0, 0.45, stretch=(2.0, rng.uniform(0, np.pi)))
    clumps = _noise(rng, shape, 0.0, 0.12, stretch=(2.0, rng.uniform(0, np.pi)))
    stand = _noise(rng, shape, 1.0, 0.08)
    canopy = np.exp(0.3 * crowns + 0.25 * clumps + 0.12 * stand)
    rgb = forest * (canopy * (0.1 + 1.1 * shade))[..., None]

    # Valley floor: fields in rotated parcels, a river, and a gravel road along one foot.
    turn, size = rng.uniform(0, np.pi / 2), rng.uniform([10, 25], [18, 40])
    row_grid = np.arange(height, dtype=np.float32)[:, None]
    col_grid = np.arange(width, dtype=np.float32)[None, :]
    cell = [
        np.floor((col_grid * np.cos(turn) + row_grid * np.sin(turn)) / size[0]).astype(int) % 64,
        np.floor((row_grid * np.cos(turn) - col_grid * np.sin(turn)) / size[1]).astype(int) % 64,
    ]
    crops = _FIELDS[rng.integers(0, len(_FIELDS), 4096)] * rng.uniform(0.85, 1.15, (4096, 1))
    crops = crops[cell[0] * 64 + cell[1]] * (1 + 0.08 * stand)[..., None]
    rgb = np.where((np.abs(across) < floor)[..., None], crops, rgb)
    rgb = np.where((np.abs(across) < 4)[..., None], _WATER, rgb)
    road = np.abs(across - rng.choice([-1, 1]) * (floor - 6)) < 1.3
    rgb = np.where(road[..., None], _GRAVEL, rgb)

    # Scars: pale soil, brightest at the head scarp, streaked downslope, shaded by the trees on
    # their sunward edge (the sun of _hillshade is to the south-south-east: down and right),
    # vegetation debris on the toe, and edge pixels mixed with the forest.
    index = _burn(scars, shape, values=np.arange(1, len(scars) + 1), dtype=np.int32)
    rows, cols = np.nonzero(labels)
    scar = np.maximum(index[rows, cols] - 1, 0)
    x0, y0, heading, length = params[scar].T
    dx, dy = cols + 0.5 - x0, rows + 0.5 - y0
    down = (dx * np.cos(heading) + dy * np.sin(heading)) / length  # 0 at head, 1 at toe
    side = (dy * np.cos(heading) - dx * np.sin(heading)).astype(int) % 16
    tone = (1.2 - 0.35 * np.clip(down, 0, 1) + 0.1 * crowns[rows, cols]
            + rng.normal(0, 0.08, (len(scars), 16))[scar, side])  # downslope streaks
    tone *= np.where(np.pad(labels, 2)[4:, 3:-1][rows, cols] == 0, 0.55, 1.0)  # tree shadow
    soil = _SOILS[rng.integers(0, len(_SOILS), len(scars))][scar]
    soil = soil * (tone * (0.5 + 0.6 * shade[rows, cols]))[:, None].astype(np.float32)
    alpha = np.maximum(_blur(labels.astype(np.float32))[rows, cols], 0.85)
    alpha[(down > 0.7) & (crowns[rows, cols] > 0.9)] = 0.0  # debris: trees carried down
    rgb[rows, cols] += alpha[:, None] * (soil - rgb[rows, cols])

    out = 255 * (0.85 * np.clip(rgb, 0, 1) ** 0.85 + _HAZE)
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return SyntheticScene(np.ascontiguousarray(image), labels, polygons, seed)


def scene_files(directory: str | os.PathLike[str], name: str) -> SceneFiles:
    """The paths :func:`write_scene` writes for ``name`` in ``directory``.

    Returns
    -------
    SceneFiles
        ``<name>.tif``, ``<name>_labels.tif`` and ``<name>_landslides.gpkg`` in ``directory``.
    """
    folder = Path(directory)
    return SceneFiles(folder / f"{name}.tif", folder / f"{name}_labels.tif",
                      folder / f"{name}_landslides.gpkg")


def write_scene(scene: SyntheticScene, directory: str | os.PathLike[str], name: str,
                transform: Affine | None = None, crs: str | CRS = UTM54N, *,
                overwrite: bool = False) -> SceneFiles:
    """Write a scene as ``<name>.tif``, ``<name>_labels.tif`` and ``<name>_landslides.gpkg``.

    The image is a 3-band RGB uint8 GeoTIFF (JPEG, YCbCr, quality 90, 256 px tiles), the
    labels a uint8 GeoTIFF on the same grid (deflate, 0 background / 1 landslide, no nodata,
    black/red colour table) and the GeoPackage has one polygon per landslide with a ``class``
    column set to ``"landslide"``, all in ``crs``. Each file is written atomically.

    Parameters
    ----------
    scene : SyntheticScene
        The scene to write.
    directory : path
        Existing folder for the three files.
    name : str
        Base name of the files.
    transform : affine.Affine, optional
        Pixel-to-map transform [default: :func:`default_transform` of the scene's size].
    crs : str or rasterio.crs.CRS
        Coordinate reference system of ``transform`` [default: EPSG:32654, UTM 54N].
    overwrite : bool
        Replace existing files instead of refusing.

    Returns
    -------
    SceneFiles
        The paths of the image, labels and landslide files.

    Raises
    ------
    OutputExistsError
        One of the files exists and ``overwrite`` is False (nothing is written then).
    OutputError
        The folder is missing or not writable, or a file cannot be written.
    """
    height, width = scene.labels.shape
    transform = default_transform(height, width) if transform is None else transform
    crs = CRS.from_user_input(crs)
    files = scene_files(directory, name)
    for path in (files.image, files.labels, files.landslides):
        check_output_path(path, overwrite)
    grid = {"driver": "GTiff", "height": height, "width": width, "crs": crs,
            "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256}
    tags = {"source": "geoseg.synthetic", "seed": str(scene.seed)}
    with atomic_output(files.image, overwrite) as tmp, rasterio.open(
        tmp, "w", **grid, count=3, dtype="uint8", compress="JPEG", photometric="YCBCR",
        jpeg_quality=90, interleave="pixel",
    ) as dst:
        dst.write(scene.image)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        dst.update_tags(**tags)
    with atomic_output(files.labels, overwrite) as tmp, rasterio.open(
        tmp, "w", **grid, count=1, dtype="uint8", compress="DEFLATE", nodata=None,
    ) as dst:
        dst.write(scene.labels, 1)
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255)})
        dst.update_tags(**tags, classes="0=background,1=landslide")
    polygons = scene.map_polygons(transform)
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _GPKG_DATE})  # same scene, same bytes
    try:
        with atomic_output(files.landslides, overwrite) as tmp:
            pyogrio.raw.write(tmp, shapely.to_wkb(np.array(polygons, dtype=object)),
                              [np.array(["landslide"] * len(polygons), dtype=object)],
                              ["class"], layer="landslides", driver="GPKG",
                              geometry_type="Polygon", crs=crs.to_wkt())
            steady_sqlite_header(tmp)
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})
    return files


def write_sample(directory: str | os.PathLike[str], *, overwrite: bool = False,
                 size: int = SAMPLE_SIZE) -> tuple[SyntheticScene, SceneFiles]:
    """Write the sample scene of the quick start and its truth into ``directory``.

    The same files as the repository's ``sample_data/``, byte for byte on the platform they
    were made on: ``iburi_synthetic.tif`` (RGB, 3 m pixels, EPSG:32654),
    ``iburi_synthetic_labels.tif`` and ``iburi_synthetic_landslides.gpkg``, generated from
    seed :data:`SAMPLE_SEED` (``size`` smaller than :data:`SAMPLE_SIZE` for tests).

    Returns
    -------
    SyntheticScene, SceneFiles
        The scene and the paths written.

    Raises
    ------
    OutputExistsError
        A file exists and ``overwrite`` is False (checked before the scene is generated).
    OutputError
        The folder is missing or not writable.
    """
    for path in vars(scene_files(directory, SAMPLE_NAME)).values():
        check_output_path(path, overwrite)
    scene = make_scene(size, size, SAMPLE_SEED)
    files = write_scene(scene, directory, SAMPLE_NAME, default_transform(size, size), UTM54N,
                        overwrite=overwrite)
    return scene, files


def _burn(shapes: Iterable[Polygon], shape: tuple[int, int], values: np.ndarray | None = None,
          dtype: type = np.uint8) -> np.ndarray:
    """Rasterise ``shapes`` (pixel coordinates, pixel centres inside) with ``values`` or 1."""
    shapes = list(shapes)
    if not shapes:
        return np.zeros(shape, dtype=dtype)
    pairs = zip(shapes, [1] * len(shapes) if values is None else values.tolist(), strict=True)
    return rasterize(pairs, out_shape=shape, fill=0, dtype=dtype)


def _blur(field: np.ndarray) -> np.ndarray:
    """3 x 3 binomial blur with edge replication."""
    padded = np.pad(field, 1, mode="edge")
    rows = padded[:-2] * 0.25 + padded[1:-1] * 0.5 + padded[2:] * 0.25
    return rows[:, :-2] * 0.25 + rows[:, 1:-1] * 0.5 + rows[:, 2:] * 0.25
