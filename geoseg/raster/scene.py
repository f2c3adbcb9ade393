"""The one way geoseg opens and reads input rasters: checked, mask-aware, band-aware.

:func:`open_scene` opens a raster and turns GDAL's complaints into one-line errors;
:func:`read_window` reads pixels together with their validity; :func:`select_bands` picks the
bands a model reads; :func:`describe_validity` says where validity comes from. Every command
(predict, evaluate, tile, train, preview, info) reads scenes through them, so a pixel is
valid or not in the same way everywhere.

Validity follows GDAL's mask rules (RFC 15, ``GDALGetMaskBand``), as rasterio's
``read_masks``/``dataset_mask`` expose them:

- a **per-dataset mask** (an internal GeoTIFF mask, an external ``.msk`` sidecar) or an
  **alpha band** masks every band: a pixel is valid where the mask (alpha) is non-zero, so a
  partly transparent pixel is valid;
- a **nodata value** (or a per-band mask) marks pixels of each band; a pixel is invalid when
  *every* band read for the model is invalid there, as in GDAL's dataset mask. A pixel with
  nodata in only some bands is kept, with those bands' values as they are;
- **NaN** counts as nodata in every band (GDAL only does so when the nodata value is NaN);
- an optional extra no-data value (``extra_nodata``: the white wedges of the reference PNG
  tiles) is read as a second nodata value of each band.

The bands read are the model's; an alpha band is never fed to a model unless asked for: it is
the mask. A read that GDAL reports as failed never becomes data: a mosaic (VRT) missing a source
is refused when opened, and any failure to read a source fails the read. This module never
imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.errors import InputError, param
from geoseg.raster.scene_paths import gdal_path, is_local, is_remote, server_facts

__all__ = [
    "Validity",
    "data_bands",
    "describe_validity",
    "open_scene",
    "quiet_georeference",
    "read_window",
    "scene_fingerprint",
    "select_bands",
]

log = logging.getLogger(__name__)

Validity = Literal["internal mask", ".msk sidecar", "alpha band", "nodata value", "none"]
"""Where a scene's validity comes from (NaN in float bands always counts too)."""


def _plural(count: int, noun: str) -> str:
    """``1 band``, ``3 bands``.

    >>> _plural(1, "band"), _plural(3, "band")
    ('1 band', '3 bands')
    """
    return f"{count} {noun}{'' if count == 1 else 's'}"


def open_scene(
    path: str | os.PathLike[str], require_crs: bool = False, expect_crs: bool = True
) -> rasterio.io.DatasetReader:
    """Open a raster for reading, checking it is one GDAL can read and that it has a size.

    A URL (``https://``, ``s3://``, ``gs://``) is opened through GDAL's virtual file system
    for it (:func:`geoseg.raster.scene_paths.gdal_path`); GDAL virtual paths (``/vsizip/...``,
    ``/vsicurl/...``) are passed as they are.

    Parameters
    ----------
    path : path or URL
        The raster.
    require_crs : bool
        Refuse a raster without a CRS.
    expect_crs : bool
        Warn (once, in geoseg's words) when the raster has no CRS. False for plain images such
        as the reference PNG tiles, which have none by nature: nothing is said.

    Raises
    ------
    InputError
        Missing file, a folder, not a raster, a URL that cannot be read, a mosaic (VRT,
        nested ones too) with a source missing or not readable as a raster, or no CRS while
        ``require_crs``.
    """
    text = gdal_path(path)
    if is_local(text):
        source = Path(text)
        if not source.exists():
            raise InputError(f"{source}: file not found")
        if source.is_dir():
            raise InputError(f"{source}: is a folder; give a raster file such as scene.tif")
    try:
        with warnings.catch_warnings():
            # rasterio's warning names its own source line; geoseg says it below, once.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(text)
    except RasterioIOError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if is_remote(text):
            raise InputError(
                f"{os.fspath(path)}: cannot be read as a raster ({reason}); check the address, "
                "that the server answers and holds a GeoTIFF there (object stores: the GDAL "
                "settings in docs/remote_inputs.md)"
            ) from exc
        raise InputError(
            f"{text}: not a raster GDAL can read ({reason}); "
            "check the file is a complete GeoTIFF"
        ) from exc
    try:
        _check_sources(dataset, text)
    except InputError:
        dataset.close()
        raise
    if dataset.crs is None:
        if require_crs:
            dataset.close()
            raise InputError(f"{text}: has no CRS; assign one (gdal_edit.py -a_srs) or drop "
                             f"{param('require_crs')}")
        if expect_crs:
            log.warning("%s has no CRS: outputs will be in pixel coordinates", text)
    return dataset


def _check_sources(dataset: rasterio.io.DatasetReader, scene: str,
                   listed_in: str | None = None, checked: set[str] | None = None) -> None:
    """Refuse a VRT (a mosaic) one of whose sources is missing or cannot be opened, nested
    VRTs included.

    GDAL opens a VRT without opening its sources; reading over a missing one reports an error
    once (printed by a thread of its own when it reads sources in parallel) and reads zeros
    from then on, in the source's area and in other bands' too: a mask of the mosaic would look
    complete and be wrong. Sources over a network are not opened here (a request each): a
    failure to read them fails the read (:func:`read_window`).
    """
    if dataset.driver != "VRT":
        return
    checked = set() if checked is None else checked
    for source in dataset.files:
        if source == dataset.name or source in checked or source.endswith(".aux.xml"):
            continue
        checked.add(source)
        where = f" (listed in {listed_in})" if listed_in is not None else ""
        advice = "restore it, or rebuild the mosaic without it (gdalbuildvrt)"
        if is_local(source) and not Path(source).exists():
            raise InputError(f"{scene}: its source {source}{where} does not exist; {advice}")
        if is_remote(source):
            continue
        try:
            with quiet_georeference(), rasterio.open(source) as inner:
                _check_sources(inner, scene, source, checked)
        except RasterioIOError as exc:
            raise InputError(f"{scene}: its source {source}{where} cannot be read "
                             f"({_gdal_reason(exc)}); {advice}") from exc


def _gdal_reason(error: BaseException) -> str:
    """GDAL's own words for a failure: its last error, which names the file (rasterio wraps a
    failed read in "Read failed. See previous exception for details.", caused by it)."""
    text = str(error.__cause__ or error)
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def quiet_georeference() -> Iterator[None]:
    """Silence rasterio's and pyogrio's missing-georeference warnings.

    For data that needs no georeference (PNG tiles), or whose missing CRS geoseg has already
    reported once in its own words (:func:`open_scene`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
        yield


def _is_alpha(dataset: rasterio.io.DatasetReader, band: int) -> bool:
    return dataset.colorinterp[band - 1] == ColorInterp.alpha


def data_bands(dataset: rasterio.io.DatasetReader) -> list[int]:
    """The 1-based bands that hold data: every band but an alpha band."""
    return [b for b in dataset.indexes if not _is_alpha(dataset, b)]


def select_bands(
    dataset: rasterio.io.DatasetReader,
    model_bands: Sequence[int],
    user_bands: Sequence[int] | None = None,
) -> list[int]:
    """The 1-based bands to read for a model, checked against the scene.

    Without ``user_bands``: a scene with exactly the model's bands besides an alpha band
    (RGBA into an RGB model) gives those bands, alpha becoming the validity mask; otherwise
    the scene must have exactly as many bands as the model takes, and the model's own band
    list is used. With ``user_bands``, every band must exist and their count match the model's.

    Raises
    ------
    InputError
        Band count mismatch or a band number beyond the scene's.
    """
    name = dataset.name
    wanted = len(model_bands)
    if user_bands is not None:
        bands = list(user_bands)
        beyond = [b for b in bands if not 1 <= b <= dataset.count]
        if beyond:
            raise InputError(f"{name}: has {_plural(dataset.count, 'band')}; band {beyond[0]} "
                             f"does not exist ({param('bands')})")
        if len(bands) != wanted:
            raise InputError(f"{param('bands')} lists {_plural(len(bands), 'band')} but the "
                             f"model takes {wanted}")
        if len(set(bands)) < len(bands):
            log.warning("%s: band %s is fed to the model more than once (bands %s)", name,
                        next(b for b in bands if bands.count(b) > 1), ",".join(map(str, bands)))
        alpha = [b for b in bands if _is_alpha(dataset, b)]
        if alpha:
            log.warning("%s: band %d is an alpha band, fed to the model as data", name, alpha[0])
        return bands
    data = data_bands(dataset)
    if len(data) == wanted and dataset.count != wanted:
        return list(model_bands) if set(model_bands) <= set(data) else data
    if dataset.count != wanted:
        alpha_note = " (and an alpha band)" if len(data) < dataset.count else ""
        raise InputError(
            f"{name}: has {_plural(len(data), 'band')}{alpha_note} but the model takes {wanted} "
            f"(bands {','.join(map(str, model_bands))}); choose them with {param('bands')}"
        )
    return list(model_bands)


def _dataset_mask_band(dataset: rasterio.io.DatasetReader) -> int | None:
    """A band whose GDAL mask is the per-dataset mask or alpha, if the scene has one."""
    for band, flags in zip(dataset.indexes, dataset.mask_flag_enums, strict=True):
        if MaskFlags.per_dataset in flags and not _is_alpha(dataset, band):
            return band
    return None


def read_window(
    dataset: rasterio.io.DatasetReader,
    window: Window,
    bands: Sequence[int],
    extra_nodata: float | None = None,
    out_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bands`` in ``window`` with the validity of each pixel (see the module's rules).

    ``out_shape`` (rows, columns) reads a decimated view of the window instead (nearest
    neighbour, through overviews where the file has them), values and masks alike.

    Returns
    -------
    data : ndarray, shape (bands, height, width)
        The raw values, in the raster's dtype.
    valid : ndarray of bool, shape (height, width)

    Raises
    ------
    InputError
        The window's pixels cannot be read (a truncated or corrupted file, or a source of a
        mosaic missing or corrupted): any error GDAL reports fails the read, never becomes data.
    """
    indexes = list(bands)
    try:
        with _failing_reads(dataset):
            data = dataset.read(indexes, window=window,
                                out_shape=(len(indexes), *out_shape) if out_shape else None)
            mask_band = _dataset_mask_band(dataset)
            mask = (dataset.read_masks(mask_band, window=window, out_shape=data.shape[1:]) > 0
                    if mask_band is not None else None)
            if (mask is not None and not mask.any()) or _only_nodata(dataset, indexes, data):
                return data, np.zeros(data.shape[1:], dtype=bool)  # no data: told cheaply
            band_valid = np.zeros(data.shape[1:], dtype=bool)
            for position, band in enumerate(indexes):
                band_valid |= _band_valid(dataset, band, data[position], window, extra_nodata)
    except RasterioIOError as exc:
        w = window
        raise InputError(
            f"{dataset.name}: pixels at rows {w.row_off}-{w.row_off + w.height}, columns "
            f"{w.col_off}-{w.col_off + w.width} cannot be read ({_gdal_reason(exc)}); the file "
            "or a source of it is truncated or corrupted: copy it again or repair it with "
            "gdal_translate"
        ) from exc
    if mask is not None:
        band_valid &= mask
    return data, band_valid


def _failing_reads(dataset: rasterio.io.DatasetReader
                   ) -> contextlib.AbstractContextManager[object]:
    """Make every failure of GDAL to read a VRT's source fail the read.

    GDAL 3.10 reads the sources of a VRT in threads of its own when a read covers several of
    them and over a million pixels (the VRT driver's ``VRT_NUM_THREADS``); a failure there is
    printed (``ERROR 4: tile.tif: No such file or directory``) and dropped, and the read
    returns the source's pixels as zeros (GDAL 3.11 hands the error back, OSGeo/gdal#11915).
    Read in the calling thread, the failure fails the read: rasterio raises. The option is
    GDAL's thread-local setting outside the main thread (the reader thread, Dask workers).
    """
    if dataset.driver != "VRT":
        return contextlib.nullcontext()
    return rasterio.Env(VRT_NUM_THREADS=1)


def _only_nodata(dataset: rasterio.io.DatasetReader, bands: Sequence[int], data: np.ndarray
                 ) -> bool:
    """Whether every band read holds its nodata value and nothing else: a window without data,
    told by a minimum and a maximum per band (no arrays made), as on a sparse scene. False when
    in doubt (a band without a nodata value, or masked by a mask of its own): the validity is
    then worked out pixel by pixel."""
    for position, band in enumerate(bands):
        nodata = dataset.nodatavals[band - 1]
        flags = dataset.mask_flag_enums[band - 1]
        if nodata is None or math.isnan(nodata) or not (
                MaskFlags.nodata in flags or MaskFlags.per_dataset in flags):
            return False
        values = data[position]
        if values.size and not values.min() == nodata == values.max():
            return False
    return True


def _band_valid(
    dataset: rasterio.io.DatasetReader,
    band: int,
    values: np.ndarray,
    window: Window,
    extra_nodata: float | None,
) -> np.ndarray:
    """Pixels of one band that hold data, by the band's own mask (nodata, per-band mask)."""
    flags = dataset.mask_flag_enums[band - 1]
    if MaskFlags.nodata in flags or MaskFlags.all_valid in flags or MaskFlags.per_dataset in flags:
        valid = np.ones(values.shape, dtype=bool)
        nodata = dataset.nodatavals[band - 1]
        if nodata is not None and not math.isnan(nodata):
            valid &= values != nodata
    else:  # a mask of this band alone
        valid = dataset.read_masks(band, window=window, out_shape=values.shape) > 0
    if np.issubdtype(values.dtype, np.floating):
        valid &= ~np.isnan(values)
    if extra_nodata is not None:
        valid &= values != extra_nodata
    return valid


def describe_validity(dataset: rasterio.io.DatasetReader) -> Validity:
    """Where the scene's validity comes from: its mask, alpha band, nodata value, or none."""
    if any(_is_alpha(dataset, b) for b in dataset.indexes):
        return "alpha band"
    mask_band = _dataset_mask_band(dataset)
    if mask_band is not None:
        files = [Path(f).name.lower() for f in dataset.files]
        return ".msk sidecar" if any(f.endswith(".msk") for f in files) else "internal mask"
    if any(v is not None for v in dataset.nodatavals):
        return "nodata value"
    return "none"


def scene_fingerprint(dataset: rasterio.io.DatasetReader, sample_bytes: int = 1 << 20) -> str:
    """A cheap fingerprint of a raster's content: its files' sizes, times and sampled bytes.

    Hashes, for each file of the dataset (the raster and its sidecars), its size, modification
    time and up to
    ``sample_bytes`` at its start, middle and end: a replaced or rewritten scene gets another
    fingerprint without reading gigabytes. Virtual paths (``/vsicurl/...``) hash a few pixel
    windows instead, and a scene on a web server what the server says of it
    (:func:`geoseg.raster.scene_paths.server_facts`: size, ETag, Last-Modified; one request, also
    for a mosaic of a thousand remote sources, whose changes the journal's window digests catch).
    """
    digest = hashlib.sha256()
    files = [Path(f) for f in dataset.files if Path(f).is_file()]
    if not files:
        digest.update(repr((dataset.shape, dataset.dtypes, dataset.transform)).encode())
        for window in (Window(0, 0, min(256, dataset.width), min(256, dataset.height)),):
            digest.update(dataset.read(window=window).tobytes())
    if is_remote(dataset.name):
        digest.update(repr(sorted(server_facts(dataset.name).items())).encode())
    for path in files:
        stat = path.stat()
        size = stat.st_size
        digest.update(f"{path.name}:{size}:{stat.st_mtime_ns}".encode())
        with path.open("rb") as handle:
            for start in sorted({0, max(0, size // 2 - sample_bytes // 2),
                                 max(0, size - sample_bytes)}):
                handle.seek(start)
                digest.update(handle.read(sample_bytes))
    return digest.hexdigest()

