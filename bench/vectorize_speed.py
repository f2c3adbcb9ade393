"""Benchmark ``geoseg vectorize`` (block-wise) against a whole-array reference.

Builds a large class mask with random blob "landslides" (deterministic seed), then vectorises
it twice, each in its own subprocess so that peak memory is measured separately:

- geoseg: :func:`geoseg.vectorize.vectorize_mask` (blocks of ``--block-size`` pixels);
- reference: the whole mask read at once, one :func:`rasterio.features.shapes` call, a
  GeoDataFrame written with pyogrio.

Both write a GeoPackage. Prints each run's polygon count, total area, time and peak RSS (the
child's own VmHWM), and, last, one line with the ratios (peak RSS as a whole, and
above the baseline once the libraries are imported).

    python bench/vectorize_speed.py              # 10000 x 10000
    python bench/vectorize_speed.py --size 3000  # a quick run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

PIXEL = 10.0
CRS = "EPSG:32654"


def build_mask(path: Path, size: int, blobs: int, seed: int) -> None:
    """Write a ``size`` x ``size`` uint8 mask with ``blobs`` irregular blobs (each 1-4
    overlapping ellipses, 3-40 px radii) and a nodata (255) corner wedge."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(blobs):
        cy, cx = rng.integers(0, size, 2)
        for _ in range(rng.integers(1, 5)):
            ry, rx = rng.uniform(3, 40, 2)
            oy, ox = rng.normal(0, 10, 2)
            y0, x0 = int(cy + oy), int(cx + ox)
            angle = rng.uniform(0, np.pi)
            reach = int(max(ry, rx)) + 1
            top, left = max(y0 - reach, 0), max(x0 - reach, 0)
            bottom, right = min(y0 + reach + 1, size), min(x0 + reach + 1, size)
            if top >= bottom or left >= right:
                continue
            yy, xx = np.ogrid[top - y0:bottom - y0, left - x0:right - x0]
            u = xx * np.cos(angle) + yy * np.sin(angle)
            v = -xx * np.sin(angle) + yy * np.cos(angle)
            mask[top:bottom, left:right] |= ((u / rx) ** 2 + (v / ry) ** 2 <= 1).astype(np.uint8)
    for row in range(size // 10):  # the wedge, row by row (no size x size temporaries)
        mask[row, : size // 10 - row] = 255
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint8",
        "crs": CRS, "transform": from_origin(500_000, 4_800_000, PIXEL, PIXEL), "nodata": 255,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask, 1)
        dst.update_tags(GEOSEG_CLASS_NAMES=json.dumps(["background", "landslide"]))


def run_geoseg(mask: Path, out: Path, block_size: int) -> tuple[int, float]:
    """The block-wise vectoriser: polygon count and total area."""
    from geoseg.vectorize import vectorize_mask

    summary = vectorize_mask(mask, out, block_size=block_size, overwrite=True)
    return summary.count, summary.total_area_m2


def run_reference(mask: Path, out: Path) -> tuple[int, float]:
    """Whole array, one shapes() call, geopandas + pyogrio: polygon count and total area."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    with rasterio.open(mask) as src:
        data = src.read(1)
        selected = (data != 0) & (data != src.nodata)
        found = [(shape(g), int(v)) for g, v in
                 shapes(data, mask=selected, connectivity=8, transform=src.transform)]
        frame = gpd.GeoDataFrame({"class_id": [v for _, v in found]},
                                 geometry=[g for g, _ in found], crs=src.crs)
    frame["area_m2"] = frame.geometry.area
    frame.to_file(out, driver="GPKG", engine="pyogrio")
    return len(frame), float(frame["area_m2"].sum())


def _peak_mb() -> float:
    """Peak resident memory of this process, in MB.

    Linux's VmHWM belongs to this program only; ``ru_maxrss`` would also count the parent's
    memory at fork (it survives exec), so it is only the fallback on other systems.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def child(args: argparse.Namespace) -> None:
    """Run one method and print its figures as JSON (called in a subprocess).

    The libraries are imported first, so time and the baseline memory exclude them.
    """
    import geopandas  # noqa: F401
    import shapely  # noqa: F401

    import geoseg.vectorize  # noqa: F401

    base_mb = _peak_mb()
    start = time.perf_counter()
    if args.run == "geoseg":
        count, area = run_geoseg(args.mask, args.out, args.block_size)
    else:
        count, area = run_reference(args.mask, args.out)
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "area": area, "seconds": seconds,
                      "peak_mb": _peak_mb(), "base_mb": base_mb}))


def measure(method: str, mask: Path, out: Path, block_size: int) -> dict[str, float]:
    """Run one method in a fresh interpreter and return its figures."""
    command = [sys.executable, __file__, "--run", method, "--mask", str(mask),
               "--out", str(out), "--block-size", str(block_size)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{method:>9}: {figures['count']:>7} polygons, total area {figures['area']:,.0f} m², "
          f"{figures['seconds']:.1f} s, peak RSS {figures['peak_mb']:.0f} MB "
          f"({figures['peak_mb'] - figures['base_mb']:.0f} MB above the "
          f"{figures['base_mb']:.0f} MB after imports)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="mask side in pixels")
    parser.add_argument("--blobs", type=int, default=None,
                        help="number of blobs [default: 4000 per 10000 x 10000 pixels]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--run", choices=["geoseg", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--mask", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(args)
        return
    blobs = args.blobs if args.blobs is not None else max(50, round(4000 * (args.size / 1e4) ** 2))
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        mask = Path(tmp) / "mask.tif"
        start = time.perf_counter()
        build_mask(mask, args.size, blobs, args.seed)
        print(f"mask {args.size}x{args.size}, {blobs} blobs, built in "
              f"{time.perf_counter() - start:.1f} s")
        ours = measure("geoseg", mask, Path(tmp) / "geoseg.gpkg", args.block_size)
        ref = measure("reference", mask, Path(tmp) / "reference.gpkg", args.block_size)
    ours_work = ours["peak_mb"] - ours["base_mb"]
    ref_work = ref["peak_mb"] - ref["base_mb"]
    same = ours["count"] == ref["count"] and abs(ours["area"] - ref["area"]) <= PIXEL * PIXEL
    print(
        f"size {args.size}: {'same' if same else 'DIFFERENT'} result "
        f"({ours['count']:.0f} vs {ref['count']:.0f} polygons, "
        f"{ours['area']:,.0f} vs {ref['area']:,.0f} m²); "
        f"time geoseg/reference {ours['seconds']:.1f}/{ref['seconds']:.1f} s = "
        f"{ours['seconds'] / ref['seconds']:.2f}; "
        f"peak RSS {ours['peak_mb']:.0f}/{ref['peak_mb']:.0f} MB = "
        f"{ours['peak_mb'] / ref['peak_mb']:.2f} "
        f"(above imports {ours_work:.0f}/{ref_work:.0f} MB = {ours_work / ref_work:.2f})"
    )


if __name__ == "__main__":
    main()
