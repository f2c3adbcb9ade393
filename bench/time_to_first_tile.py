"""Benchmark: how soon ``geoseg predict`` says something, and how soon its first tiles are done.

Times the whole command-line process (``geoseg predict SCENE --out ... --progress json``, a
fresh interpreter each run, as a user starts it) on the sample scene, once per backend, in
turns, ``--repeats`` times. From the moment the process is started it records:

- first line: the first line on stderr (``Loading <model> (<backend> backend)...``);
- first tiles: the first ``--progress json`` line, written when the first batch of tiles has
  been predicted (the model loaded: TensorFlow imported, or a cached conversion opened);
- end: the process's exit, all outputs written.

The first run of a converted backend converts the model into the cache (once, with
TensorFlow); one untimed run per backend comes first so that the timed runs find it there, as
every run after the first does. The machine's load and CPU are printed with the figures.

    python bench/time_to_first_tile.py
    python bench/time_to_first_tile.py --backends keras openvino --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "iburi_synthetic.tif"


def geoseg_command() -> list[str]:
    """The ``geoseg`` console script next to this interpreter, else ``python -m geoseg``."""
    script = Path(sys.executable).with_name("geoseg")
    return [str(script)] if script.exists() else [sys.executable, "-m", "geoseg"]


def one_run(scene: Path, backend: str, out: Path) -> dict[str, float]:
    """Start ``geoseg predict`` and time its first stderr line, first progress line, exit."""
    command = [*geoseg_command(), "predict", str(scene), "--out", str(out), "--overwrite",
               "--backend", backend, "--progress", "json"]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    assert child.stderr is not None
    first_line = first_tiles = float("nan")
    for line in child.stderr:
        now = time.perf_counter() - start
        if first_line != first_line:  # NaN: nothing yet
            first_line = now
        if line.startswith("{") and first_tiles != first_tiles:
            first_tiles = now
    if child.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {child.returncode}")
    return {"first_line": first_line, "first_tiles": first_tiles,
            "end": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--backends", nargs="+", default=["keras", "openvino", "onnx"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    print(f"CPU: {os.cpu_count()} cores, {' '.join(wide) or 'no AVX2/AVX-512'}; scene {args.scene}")
    runs: dict[str, list[dict[str, float]]] = {backend: [] for backend in args.backends}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mask.tif"
        for backend in args.backends:  # conversions into the cache, untimed
            one_run(args.scene, backend, out)
        for _ in range(args.repeats):
            for backend in args.backends:
                loads.append(os.getloadavg()[0])
                figures = one_run(args.scene, backend, out)
                runs[backend].append(figures)
                print(f"{backend:>9}: first line {figures['first_line']:5.2f} s, first tiles "
                      f"{figures['first_tiles']:5.2f} s, end {figures['end']:5.2f} s, "
                      f"load {loads[-1]:.1f}", flush=True)
    for backend, figures in runs.items():
        median = {key: statistics.median(f[key] for f in figures) for key in figures[0]}
        print(f"{backend} (median of {args.repeats}, whole CLI process, load "
              f"{min(loads):.1f}-{max(loads):.1f}): first line {median['first_line']:.2f} s, "
              f"first tiles predicted {median['first_tiles']:.2f} s, end {median['end']:.2f} s")


if __name__ == "__main__":
    main()
