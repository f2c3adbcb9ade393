"""Benchmark: scene throughput of ``predict_scene`` against the model's own limit.

The limit is the bare model on the non-overlapping tiles that cover the scene (read and stacked
in memory first, so only the model is timed): the fewest pixels the model must compute. The
pipeline (read, tile, infer, blend, classify, write the mask) computes more, because tiles
overlap: 512-pixel tiles sharing 64 pixels compute every pixel (512/448)² = 1.31 times.
Larger inference windows (``window``) keep the overlap and cut that. For each window this
prints the scene's pixels per second over the limit's (same model, predictor, batch and device,
the model already loaded: library calls), best of ``--repeats`` alternating runs, and how far
the mask is from the tile-size mask (share of differing pixels, landslide IoU between them).

    python bench/scene_throughput.py                    # the demo model, a 6144² scene
    python bench/scene_throughput.py --model hokkaido-iburi --windows 512 1024 2048
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from pipeline_efficiency import write_big_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="model file or bundled name")
    parser.add_argument("--size", type=int, default=6144, help="scene side in pixels")
    parser.add_argument("--windows", type=int, nargs="+", default=[0, 1024, 2048],
                        help="windows to try; 0 = the model's tile")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from geoseg.predict import PredictOptions, predict_scene
    from geoseg.predictor import load_predictor
    from geoseg.tiling import TileGrid, read_tile

    predictor = load_predictor(args.model, batch_size=args.batch_size)
    settings = predictor.settings
    side = settings.image_size
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        scene = folder / "scene.tif"
        write_big_scene(scene, args.size, seed=3)
        pixels = args.size**2
        with rasterio.open(scene) as src:
            tiles = np.stack([read_tile(src, tile, side, settings.bands)[0]
                              for tile in TileGrid.for_dataset(src, side, 0)])
        print(f"{args.model} ({predictor.backend}, batch {args.batch_size}, {side}-pixel tiles, "
              f"overlap {settings.overlap}); scene {args.size}²; {len(tiles)} non-overlapping "
              f"tiles; load {os.getloadavg()[0]:.2f}", flush=True)
        predictor(tiles[: args.batch_size])  # load and trace outside the timing
        best: dict[int, float] = {}
        counts: dict[int, int] = {}
        for run in range(args.repeats):
            started = time.perf_counter()
            predictor(tiles)
            best[-1] = min(best.get(-1, np.inf), time.perf_counter() - started)
            for window in args.windows:
                options = PredictOptions(window=window or None, overwrite=True)
                started = time.perf_counter()
                result = predict_scene(scene, folder / f"mask{window}.tif", predictor, settings,
                                       options)
                seconds = time.perf_counter() - started
                best[window] = min(best.get(window, np.inf), seconds)
                counts[window] = result.tiles_predicted
                print(f"run {run}, window {window or side}: {seconds:.1f} s, "
                      f"{result.tiles_predicted} windows [load {os.getloadavg()[0]:.2f}]",
                      flush=True)
        limit = pixels / best[-1]
        print(f"limit: the bare model on {len(tiles)} non-overlapping tiles, {best[-1]:.1f} s, "
              f"{limit / 1e6:.2f} megapixels/s")
        with rasterio.open(folder / f"mask{args.windows[0]}.tif") as src:
            reference = src.read(1)
        for window in args.windows:
            with rasterio.open(folder / f"mask{window}.tif") as src:
                mask = src.read(1)
            differ = float(np.mean(mask != reference))
            both = np.count_nonzero((mask == 1) & (reference == 1))
            either = np.count_nonzero((mask == 1) | (reference == 1))
            print(f"window {window or side}: {pixels / best[window] / 1e6:.2f} megapixels/s = "
                  f"{pixels / best[window] / limit:.3f} of the limit ({counts[window]} windows); "
                  f"mask vs window {args.windows[0] or side}: {differ:.4%} of pixels differ, "
                  f"landslide IoU {both / max(either, 1):.4f}")
        fastest = min(args.windows, key=lambda w: best[w])
        print(f"scene throughput / non-overlapping model limit: "
              f"{pixels / best[fastest] / limit:.3f} (window {fastest or side}; target >= 0.90)")


if __name__ == "__main__":
    main()
