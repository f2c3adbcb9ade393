"""Benchmark ``geoseg vectorize`` (block-wise, on worker processes) against a whole-array reference.

Builds a large class mask with random blob "landslides" (deterministic seed), then vectorises
it with each method in its own subprocess, so that time and memory are measured separately:

- geoseg: :func:`geoseg.vectors.vectorize.vectorize_mask` (blocks of ``--block-size`` pixels) on
  ``--workers`` processes (default: all cores);
- geoseg serial: the same with ``workers=1`` (the blocks one after another, in one process);
- reference: the whole mask read at once, one :func:`rasterio.features.shapes` call, a
  GeoDataFrame written with pyogrio.

Each writes a GeoPackage. Memory is the peak of the summed resident memory (RSS) of the run's
process and all its children (geoseg's worker processes), and the peak of their summed
proportional set size (PSS: a page shared by several processes, such as the libraries a worker
maps like its parent, counted once), sampled every 10 ms from Linux's ``/proc``, the same way
for every method; time is wall-clock, and CPU time counts the
children too. The methods run in turns (reference, geoseg, geoseg serial, reference, ...)
``--repeats`` times so that a machine shared with other jobs loads them alike; the median of
each is compared. The machine's load (``os.getloadavg``) and CPU are printed with the
figures; the last lines give the time and peak-memory ratios against the reference.

    python bench/vectorize_speed.py              # 10000 x 10000
    python bench/vectorize_speed.py --size 3000  # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
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


def run_geoseg(mask: Path, out: Path, block_size: int, workers: int | None) -> tuple[int, float]:
    """The block-wise vectoriser: polygon count and total area."""
    from geoseg.vectors.vectorize import vectorize_mask

    summary = vectorize_mask(mask, out, block_size=block_size, workers=workers, overwrite=True)
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


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux ``/proc/PID/task/TID/children``)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the task has just ended
            continue
        for child_pid in children:
            found += _tree(int(child_pid))
    return found


def _rss(pid: int) -> int:
    """Resident bytes of a process, 0 once it has ended."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size of a process in bytes (its private pages, plus each page it shares
    divided by the processes sharing it), 0 once it has ended."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeMemory:
    """Peaks of the summed RSS and of the summed PSS of this process and its descendants,
    sampled in a thread.

    Summed RSS counts a page that several processes share (the libraries GDAL, GEOS and numpy
    that a worker process maps like its parent) once per process; summed PSS counts it once
    in all, which is what the processes take from the machine. Reads ``/proc`` directly (about
    a millisecond a sample), so the sampling barely loads the machine it measures.
    """

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            pids = _tree(os.getpid())
            self.peak = max(self.peak, sum(_rss(pid) for pid in pids))
            self.peak_pss = max(self.peak_pss, sum(_pss(pid) for pid in pids))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the worker pool)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child(args: argparse.Namespace) -> None:
    """Run one method and print its figures as JSON (called in a subprocess).

    The libraries are imported first, so time and the baseline memory exclude them.
    """
    import geopandas  # noqa: F401
    import shapely  # noqa: F401

    import geoseg.vectors.vectorize  # noqa: F401

    with TreeMemory() as baseline:
        time.sleep(0.05)
    cpu, start = _cpu_seconds(), time.perf_counter()
    with TreeMemory() as memory:
        if args.run == "reference":
            count, area = run_reference(args.mask, args.out)
        else:
            workers = 1 if args.run == "serial" else args.workers
            count, area = run_geoseg(args.mask, args.out, args.block_size, workers)
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "area": area, "seconds": seconds,
                      "cpu": _cpu_seconds() - cpu, "peak_mb": memory.peak / 2**20,
                      "peak_pss_mb": memory.peak_pss / 2**20, "base_mb": baseline.peak / 2**20}))


NAMES = {"geoseg": "geoseg", "serial": "geoseg serial", "reference": "reference"}


def measure(method: str, args: argparse.Namespace, mask: Path, out: Path) -> dict[str, float]:
    """Run one method in a fresh interpreter and return its figures."""
    command = [sys.executable, __file__, "--run", method, "--mask", str(mask),
               "--out", str(out), "--block-size", str(args.block_size)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    load = os.getloadavg()[0]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["load"] = load
    above = figures["peak_mb"] - figures["base_mb"]
    print(f"{NAMES[method]:>13}: {figures['count']:>7} polygons, total area "
          f"{figures['area']:,.0f} m², {figures['seconds']:.2f} s wall, {figures['cpu']:.2f} s "
          f"CPU, peak RSS {figures['peak_mb']:.0f} MB ({above:.0f} MB above the "
          f"{figures['base_mb']:.0f} MB after imports), peak PSS {figures['peak_pss_mb']:.0f} MB, "
          f"load {load:.1f}", flush=True)
    return figures


def cpu_description() -> str:
    """The CPU model and its vector extensions (Linux), for the record."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown CPU")
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    return f"{model}, {os.cpu_count()} CPUs, {' '.join(wide) or 'no AVX2/AVX-512'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="mask side in pixels")
    parser.add_argument("--blobs", type=int, default=None,
                        help="number of blobs [default: 4000 per 10000 x 10000 pixels]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=None,
                        help="geoseg's worker processes [default: all cores]")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method")
    parser.add_argument("--run", choices=list(NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--mask", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(args)
        return
    blobs = args.blobs if args.blobs is not None else max(50, round(4000 * (args.size / 1e4) ** 2))
    print(f"CPU: {cpu_description()}")
    runs: dict[str, list[dict[str, float]]] = {method: [] for method in NAMES}
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        mask = Path(tmp) / "mask.tif"
        start = time.perf_counter()
        build_mask(mask, args.size, blobs, args.seed)
        print(f"mask {args.size}x{args.size}, {blobs} blobs, built in "
              f"{time.perf_counter() - start:.1f} s")
        for _ in range(args.repeats):
            for method in ("reference", "geoseg", "serial"):
                runs[method].append(measure(method, args, mask, Path(tmp) / f"{method}.gpkg"))
    median = {method: {key: float(np.median([r[key] for r in rs])) for key in rs[0]}
              for method, rs in runs.items()}
    ref = median["reference"]
    loads = [r["load"] for rs in runs.values() for r in rs]
    for method in ("geoseg", "serial"):
        ours = median[method]
        workers = 1 if method == "serial" else args.workers or os.cpu_count()
        same = all(r["count"] == ref["count"] and abs(r["area"] - ref["area"]) <= PIXEL * PIXEL
                   for r in runs[method])
        print(
            f"{NAMES[method]} ({workers} worker{'s' if workers != 1 else ''}), "
            f"size {args.size}: {'same' if same else 'DIFFERENT'} result "
            f"({ours['count']:.0f} vs {ref['count']:.0f} polygons); medians of {args.repeats}: "
            f"reference/geoseg time {ref['seconds']:.2f}/{ours['seconds']:.2f} s = "
            f"{ref['seconds'] / ours['seconds']:.2f}x faster "
            f"(CPU {ref['cpu']:.2f}/{ours['cpu']:.2f} s); "
            f"peak RSS geoseg/reference {ours['peak_mb']:.0f}/{ref['peak_mb']:.0f} MB = "
            f"{ours['peak_mb'] / ref['peak_mb']:.2f}, peak PSS "
            f"{ours['peak_pss_mb']:.0f}/{ref['peak_pss_mb']:.0f} MB = "
            f"{ours['peak_pss_mb'] / ref['peak_pss_mb']:.2f}; "
            f"load {min(loads):.1f}-{max(loads):.1f}"
        )


if __name__ == "__main__":
    main()
