"""Benchmark: does ``geoseg predict``'s memory grow with the scene?

Writes two synthetic scenes in a temporary folder, one ``--size`` pixels square and one with
twice the side (four times the area), and a small FlexUNet saved with
:func:`geoseg.model.save_model`. Then runs ``geoseg predict`` on each in its own subprocess,
so nothing is shared. Each child reports its own peak resident set size (``VmHWM`` of
``/proc/self/status``) as it exits; ``wait4``'s ``ru_maxrss`` would not do, as Linux carries
the parent's peak over into a child across ``exec``. The last line is the ratio of the large
scene's peak RSS to the small one's (target <= 1.10).

    python bench/memory_scaling.py               # 4096 and 8192 pixels square
    python bench/memory_scaling.py --size 2048
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--size", type=int, default=4096, help="side of the small scene")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    import keras

    from geoseg.model import build_flexunet, save_model
    from geoseg.settings import ModelSettings

    keras.utils.set_random_seed(0)
    settings = ModelSettings(image_size=512, base_filters=4, num_layers=4, base_kernels=3)
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        model = save_model(build_flexunet(settings), settings, folder / "model.keras")
        peaks = []
        for side in (args.size, 2 * args.size):
            scene = folder / f"scene{side}.tif"
            write_big_scene(scene, side, seed=1)
            command = ["predict", str(scene),
                       "--model", str(model), "--out", str(folder / f"mask{side}.tif"),
                       "--batch-size", str(args.batch_size), "--device", "cpu", "-q"]
            peak, seconds = peak_rss_mib(command)
            peaks.append(peak)
            print(f"{side}x{side}: peak RSS {peak:.0f} MiB, {seconds:.1f} s", flush=True)
        print(f"peak RSS ratio, {2 * args.size}^2 / {args.size}^2 scene (4x area): "
              f"{peaks[1] / peaks[0]:.3f}")


if __name__ == "__main__":
    main()
