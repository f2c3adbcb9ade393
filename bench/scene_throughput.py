"""Benchmark: scene throughput of ``predict_scene`` against the model's own limits.

A limit is the bare model on non-overlapping windows that cover the scene (read and stacked
in memory first, so only the model is timed). Two are measured for each window choice:

- the *window limit*: non-overlapping windows of the choice's own size (edge windows padded
  as the run pads them). The run computes its overlap on top (2048-pixel windows sharing 64
  pixels compute each pixel about 1.06 times), so its figure stays below 1: this is the
  pipeline's own efficiency (read, infer, blend, classify, write), overlap included.
- the *tile limit*: non-overlapping tiles of the model's own size (512 pixels for the demo),
  the fewest pixels a tile-by-tile run computes. Larger windows run the network on larger
  arrays, which can be faster per pixel, so a window run can score above 1 here: a speed-up
  over tiles, not an efficiency.

For each window choice (``tile``, ``auto``: the default, or pixels) this prints the scene's
pixels per second over each limit's (same model, predictor, batch and device, the model
already loaded: library calls) and how far the mask is from the tile-size mask (share of
differing pixels, landslide IoU between them). Each round times, for every choice, both limits
and then the choice; a choice's figure is the median over ``--repeats`` rounds of its ratio to
the limits timed just before it, so that a change in the machine's load weighs on both sides
(the best times are printed too). The last line is the default's figures.

    python bench/scene_throughput.py                    # the demo model, a 6144² scene
    python bench/scene_throughput.py --model hokkaido-iburi --windows tile auto 1024 2048
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
    parser.add_argument("--windows", nargs="+", default=["tile", "auto", "2048"],
                        help="window choices to try (tile, auto or pixels); the first is the "
                        "reference the masks are compared with")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-postprocessing", action="store_true",
                        help="the threshold alone, not the model's stored post-processing "
                             "(whose second pass over the probabilities the limits do not "
                             "include)")
    args = parser.parse_args()

    from geoseg.model.predictor import load_predictor
    from geoseg.postprocessing.postprocess_recipe import PostProcessing
    from geoseg.prediction.predict import PredictOptions, plan_run, predict_scene
    from geoseg.raster.tiling import TileGrid, read_tile

    predictor = load_predictor(args.model, batch_size=args.batch_size)
    settings = predictor.settings
    side = settings.image_size
    choices = [int(w) if w.isdecimal() else w for w in args.windows]
    plain = PostProcessing()  # the threshold alone
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        scene = folder / "scene.tif"
        write_big_scene(scene, args.size, seed=3)
        pixels = args.size**2
        with rasterio.open(scene) as src:
            sides = {choice: plan_run(PredictOptions(window=choice), settings,
                                      predictor).grid(src).tile_size
                     for choice in choices}
            # The non-overlapping windows of each size the runs use, and of the model's tile.
            windows = {size: np.stack([read_tile(src, tile, size, settings.bands)[0]
                                       for tile in TileGrid.for_dataset(src, size, 0)])
                       for size in {side, *sides.values()}}
        print(f"{args.model} ({predictor.backend}, batch {args.batch_size}, {side}-pixel tiles, "
              f"overlap {settings.overlap}); scene {args.size}²; non-overlapping windows: "
              + ", ".join(f"{len(stack)} of {size} px" for size, stack in windows.items())
              + f"; load {os.getloadavg()[0]:.2f}", flush=True)
        for stack in windows.values():  # load, trace and compile each size outside the timing
            predictor(stack[:1])
        limit_seconds = dict.fromkeys(windows, np.inf)
        best: dict[int | str, float] = {}
        ratios: dict[int | str, list[float]] = {choice: [] for choice in choices}
        tile_ratios: dict[int | str, list[float]] = {choice: [] for choice in choices}
        counts: dict[int | str, int] = {}

        def bare(size: int) -> float:
            """Time the bare model on the non-overlapping windows of ``size``."""
            started = time.perf_counter()
            predictor(windows[size])
            seconds = time.perf_counter() - started
            limit_seconds[size] = min(limit_seconds[size], seconds)
            return seconds

        for run in range(args.repeats):
            for choice in choices:
                tile_limit = bare(side)
                window_limit = tile_limit if sides[choice] == side else bare(sides[choice])
                options = PredictOptions(window=choice, overwrite=True,
                                         postprocessing=plain if args.no_postprocessing else None)
                started = time.perf_counter()
                result = predict_scene(scene, folder / f"mask{choice}.tif", predictor, settings,
                                       options)
                seconds = time.perf_counter() - started
                best[choice] = min(best.get(choice, np.inf), seconds)
                ratios[choice].append(window_limit / seconds)
                tile_ratios[choice].append(tile_limit / seconds)
                counts[choice] = result.tiles_predicted
                print(f"run {run}, window {choice} ({sides[choice]} px): {seconds:.1f} s, "
                      f"{result.tiles_predicted} windows; {window_limit / seconds:.3f} of the "
                      f"window limit ({window_limit:.1f} s), {tile_limit / seconds:.3f} of the "
                      f"tile limit ({tile_limit:.1f} s), timed before it "
                      f"[load {os.getloadavg()[0]:.2f}]", flush=True)
        for size, seconds in limit_seconds.items():
            print(f"limit: the bare model on {len(windows[size])} non-overlapping {size}-pixel "
                  f"windows, {seconds:.1f} s, {pixels / seconds / 1e6:.2f} megapixels/s")
        limit = pixels / limit_seconds[side]
        with rasterio.open(folder / f"mask{choices[0]}.tif") as src:
            reference = src.read(1)
        for choice in choices:
            with rasterio.open(folder / f"mask{choice}.tif") as src:
                mask = src.read(1)
            differ = float(np.mean(mask != reference))
            both = np.count_nonzero((mask == 1) & (reference == 1))
            either = np.count_nonzero((mask == 1) | (reference == 1))
            window_limit = pixels / limit_seconds[sides[choice]]
            print(f"window {choice} ({sides[choice]} px): best {pixels / best[choice] / 1e6:.2f} "
                  f"megapixels/s = {pixels / best[choice] / window_limit:.3f} of the best "
                  f"window limit, {pixels / best[choice] / limit:.3f} of the best tile limit; "
                  f"median of the rounds' ratios {np.median(ratios[choice]):.3f} and "
                  f"{np.median(tile_ratios[choice]):.3f} "
                  f"({counts[choice]} windows); mask vs window {choices[0]}: {differ:.4%} of "
                  f"pixels differ, landslide IoU {both / max(either, 1):.4f}")
        default = "auto" if "auto" in best else choices[0]
        print(f"default window ({default}, {sides[default]} px), median of {args.repeats} "
              f"rounds: scene throughput / the bare model on non-overlapping windows of that "
              f"size {np.median(ratios[default]):.3f} (pipeline efficiency, overlap included; "
              f"target >= 0.90); / on non-overlapping {side}-pixel tiles "
              f"{np.median(tile_ratios[default]):.3f} (above 1: faster than the bare model on "
              f"tiles)")


if __name__ == "__main__":
    main()
