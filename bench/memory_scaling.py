"""Benchmark: does ``geoseg predict``'s memory grow with the scene?

Writes synthetic scenes in a temporary folder: one tile (512 pixels square: the process's own
baseline, the runtime and the model loaded), one ``--size`` pixels square, one with twice the
side (four times the area), and with ``--tall`` one four times as tall at the same width; and a
small FlexUNet
saved with :func:`geoseg.model.flexunet.save_model`. Then runs ``geoseg predict`` on each in its own
subprocess, so nothing is shared, after one run that converts the model for the default
backend (later runs find the conversion in the cache and do not load TensorFlow). Each child
reports its own peak resident set size (``VmHWM`` of ``/proc/self/status``) as it exits;
``wait4``'s ``ru_maxrss`` would not do, as Linux carries the parent's peak over into a child
across ``exec``. Each scene runs ``--repeats`` times (3) and its peak is the median: it varies
by a few percent from run to run with the timing of the reading, model and blending threads.

It prints each scene's peak and its growth over the one-tile baseline, the ratio of the
growths of the 4x scenes to the ``--size`` scene's (streaming by rows bounds memory by the
scene's width, not its height), and last the ratio of the twice-as-wide-and-tall scene's
peak RSS to the ``--size`` scene's: 16384² over 8192² by default (target <= 1.05: memory
bounded by the window, not the scene's width).

The window each scene is predicted in is printed beside it: ``auto`` asks for 2048 pixels, but
the windows are fitted to the scene (:func:`geoseg.raster.tiling.inference_window`: as few as 2048
pixels need, made as small as still covers the scene), so 8192² runs in 1696-pixel windows
and 16384² in 1880-pixel ones, and the model's own memory grows with the window's area
(1.23x). ``--exact`` takes sides that 2048-pixel windows cover exactly (8000 and 15936 pixels:
4 and 8 windows of 2048 sharing 64 pixels), so both run in the same windows and the ratio
shows what grows with the scene's width alone.

    python bench/memory_scaling.py               # 8192 and 16384 pixels square
    python bench/memory_scaling.py --exact       # 8000 and 15936: both in 2048-pixel windows
    python bench/memory_scaling.py --size 4096 --tall
    python bench/memory_scaling.py --size 4032 --wide 200000 --repeats 1  # 4032 x 200,000
    python bench/memory_scaling.py --window tile  # the model's tile instead of larger windows
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

from pipeline_efficiency import write_big_scene

PEAK_MARK = "geoseg-bench-peak-kib:"
LAUNCH = f"""
import atexit, sys
def report():
    status = open("/proc/self/status").read()
    peak = status.split("VmHWM:")[1].split()[0]
    print("{PEAK_MARK}", peak, file=sys.stderr)
atexit.register(report)
sys.argv = ["geoseg", *sys.argv[1:]]
from geoseg.cli import main
main()
"""


def peak_rss_mib(arguments: list[str]) -> tuple[float, float]:
    """Run ``geoseg ARGUMENTS`` in a child; return its peak RSS (MiB) and wall time (s)."""
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", LAUNCH, *arguments], capture_output=True,
                           text=True)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"geoseg {' '.join(arguments)} failed:\n{child.stderr}")
    print("   ", child.stdout.strip().splitlines()[-1], flush=True)
    peak = [line for line in child.stderr.splitlines() if line.startswith(PEAK_MARK)]
    return int(peak[-1].split()[1]) / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="side of the small scene")
    parser.add_argument("--tall", action="store_true",
                        help="also a scene four times as tall as --size, as wide")
    parser.add_argument("--exact", action="store_true",
                        help="sides that 2048-pixel windows cover exactly (8000 and 15936)")
    parser.add_argument("--wide", type=int, default=None, metavar="PIXELS",
                        help="also a scene as tall as --size and PIXELS wide, and the memory "
                        "it takes per pixel of width over the --size scene")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each scene; its peak is their median (the peak varies "
                        "by a few percent with the threads' timing)")
    parser.add_argument("--window", default="auto", help="geoseg predict --window (auto, the "
                        "default, fitted to each scene; tile: the model's tile; or pixels)")
    args = parser.parse_args()

    import keras

    from geoseg.model.flexunet import build_flexunet, save_model
    from geoseg.raster.tiling import AUTO_WINDOW, inference_window
    from geoseg.settings import ModelSettings

    keras.utils.set_random_seed(0)
    settings = ModelSettings(image_size=512, base_filters=4, num_layers=4, base_kernels=3)
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        model = save_model(build_flexunet(settings), settings, folder / "model.keras")
        size = args.size
        if args.exact:  # 4 windows of 2048 sharing the overlap, and 8 for twice the side
            size = 4 * (AUTO_WINDOW - settings.overlap) + settings.overlap
        shapes = {"one tile": (512, 512), "scene": (size, size),
                  "4x area, 2x wide": (2 * size - args.exact * settings.overlap,) * 2}
        if args.tall:
            shapes["4x area, same width"] = (4 * size, size)
        if args.wide:
            shapes["wide"] = (size, args.wide)
        peaks: dict[str, float] = {}
        warm_up = True  # the first run converts the model for the default backend, once
        for name, (height, width) in [("conversion", (512, 512)), *shapes.items()]:
            scene = folder / f"scene{height}x{width}.tif"
            write_big_scene(scene, height, seed=1, width=width)
            command = ["predict", str(scene),
                       "--model", str(model), "--out", str(folder / f"mask{height}x{width}.tif"),
                       "--batch-size", str(args.batch_size), "--window", args.window,
                       "--device", "cpu", "-q", "--overwrite"]
            runs = [peak_rss_mib(command) for _ in range(1 if warm_up else args.repeats)]
            peaks[name] = statistics.median(peak for peak, _ in runs)
            seconds = statistics.median(time for _, time in runs)
            if warm_up:
                print(f"(a first run converted the model: peak RSS {peaks[name]:.0f} MiB, "
                      f"{seconds:.1f} s)", flush=True)
                warm_up = False
                continue
            growth = peaks[name] - peaks["one tile"]
            window = (inference_window(int(args.window), settings, height, width,
                                       settings.overlap) if args.window.isdecimal() else
                      inference_window(AUTO_WINDOW, settings, height, width, settings.overlap)
                      if args.window == "auto" else settings.image_size)
            print(f"{name}, {width}x{height} in {window}-pixel windows: peak RSS "
                  f"{peaks[name]:.0f} MiB (median of {args.repeats}: "
                  f"{', '.join(f'{peak:.0f}' for peak, _ in runs)}), {growth:+.0f} MiB over one "
                  f"tile, {seconds:.1f} s",
                  flush=True)
        base = peaks["scene"] - peaks["one tile"]
        for name in [name for name in shapes if name.startswith("4x")]:
            print(f"growth over one tile, {name} / scene: "
                  f"{(peaks[name] - peaks['one tile']) / base:.2f}")
        if args.wide:
            per_pixel = (peaks["wide"] - peaks["scene"]) * 2**20 / (args.wide - size)
            print(f"{size} rows x {args.wide} px: {peaks['wide'] - peaks['scene']:+.0f} MiB "
                  f"over {size}^2, {per_pixel / 1000:.1f} KB per pixel of width")
        wide = shapes["4x area, 2x wide"][0]
        print(f"peak RSS ratio, {wide}^2 / {size}^2 scene (4x area, --window "
              f"{args.window}): {peaks['4x area, 2x wide'] / peaks['scene']:.3f} (target <= 1.05) "
              f"[load {os.getloadavg()[0]:.1f}]")


if __name__ == "__main__":
    main()
