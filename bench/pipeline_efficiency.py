"""Benchmark: how much the tiled pipeline costs beyond the model itself.

Builds a synthetic georeferenced scene (:func:`geoseg.labels.synthetic.make_scene`, mirrored up to
``--size`` pixels, written like :func:`geoseg.labels.synthetic.write_scene`: RGB JPEG GeoTIFF,
256-pixel blocks) in a temporary folder, and a FlexUNet with a smallish configuration. Then,
alternating ``--repeats`` times:

- bare: the same :class:`~geoseg.model.inference.KerasPredictor` on the scene's tiles already in
memory
  (the same tiles, the same batch size), nothing else;
- pipeline: :func:`geoseg.prediction.predict.predict_scene` end to end (read, tile, infer, blend,
classify,
  write the mask GeoTIFF).

Each side keeps its fastest run (the machine is shared; alternating and taking the best of each
cancels most of the noise); the CPU time of the process (all threads) is printed too, as a
figure that other programs on the machine disturb less. The last line is the ratio of
pipeline throughput to bare-model throughput (target >= 0.90).

    python bench/pipeline_efficiency.py                  # 6144 x 6144, ~5 min on 2 cores
    python bench/pipeline_efficiency.py --size 4096 --repeats 1
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from geoseg.labels.synthetic import UTM54N, default_transform, make_scene


@functools.lru_cache(maxsize=1)
def _base_image(size: int, seed: int) -> np.ndarray:
    return make_scene(size, size, seed=seed).image


def write_big_scene(path: Path, size: int, seed: int, *, width: int | None = None) -> None:
    """A ``size`` x ``size`` RGB scene (``size`` rows x ``width`` columns when ``width`` is
    given): a 4096-pixel synthetic scene mirrored to fill it."""
    width = width or size
    base = _base_image(min(max(size, width), 4096), seed)
    across, down = -(-width // base.shape[2]), -(-size // base.shape[1])
    tiled = np.concatenate([base if i % 2 == 0 else base[:, :, ::-1] for i in range(across)], 2)
    tiled = np.concatenate([tiled if i % 2 == 0 else tiled[:, ::-1] for i in range(down)], 1)
    image = np.ascontiguousarray(tiled[:, :size, :width])
    profile = {"driver": "GTiff", "height": size, "width": width, "count": 3, "dtype": "uint8",
               "crs": UTM54N, "transform": default_transform(size, width), "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "JPEG", "photometric": "YCBCR",
               "jpeg_quality": 90, "interleave": "pixel"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6144, help="scene side in pixels")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-filters", type=int, default=8)
    parser.add_argument("--num-layers", type=int, default=5)
    parser.add_argument("--kernels", type=int, default=7, help="first-level kernel size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", type=Path, default=None,
                        help="also write a cProfile of one pipeline run here")
    args = parser.parse_args()

    import keras

    from geoseg.model.flexunet import build_flexunet
    from geoseg.model.inference import KerasPredictor
    from geoseg.prediction.predict import predict_scene
    from geoseg.raster.tiling import TileGrid, read_tile
    from geoseg.settings import ModelSettings

    keras.utils.set_random_seed(0)
    settings = ModelSettings(image_size=512, base_filters=args.base_filters,
                             num_layers=args.num_layers, base_kernels=args.kernels)
    predictor = KerasPredictor(build_flexunet(settings), batch_size=args.batch_size,
                               device="cpu")
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        scene = Path(tmp) / "scene.tif"
        write_big_scene(scene, args.size, seed=1)
        with rasterio.open(scene) as src:
            grid = TileGrid.for_dataset(src, settings.image_size, settings.overlap)
            tiles = [read_tile(src, tile, settings.image_size, settings.bands)
                     for tile in grid]
        images = [image for image, valid in tiles if valid.any()]
        batches = [np.stack(images[i: i + args.batch_size])
                   for i in range(0, len(images), args.batch_size)]
        del tiles, images
        predictor(batches[0])  # trace and warm up once, outside both timings

        def bare() -> tuple[float, float]:
            started, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                predictor(batch)
            return time.perf_counter() - started, time.process_time() - cpu

        def pipeline(run: int) -> tuple[float, float]:
            started, cpu = time.perf_counter(), time.process_time()
            predict_scene(scene, Path(tmp) / f"mask{run}.tif", predictor, settings)
            return time.perf_counter() - started, time.process_time() - cpu

        count = sum(len(b) for b in batches)
        print(f"scene {args.size}x{args.size}, {len(grid)} tiles ({count} with data), "
              f"batch {args.batch_size}, FlexUNet filters={args.base_filters} "
              f"layers={args.num_layers} kernels={args.kernels} "
              f"({predictor.model.count_params()} parameters)", flush=True)
        bare_times, pipe_times = [], []
        for run in range(args.repeats):
            bare_times.append(bare())
            pipe_times.append(pipeline(run))
            (bare_wall, bare_cpu), (pipe_wall, pipe_cpu) = bare_times[-1], pipe_times[-1]
            print(f"run {run}: bare {count / bare_wall:.3f} tiles/s ({bare_cpu:.1f} CPU s), "
                  f"pipeline {count / pipe_wall:.3f} tiles/s ({pipe_cpu:.1f} CPU s)",
                  flush=True)
        if args.profile is not None:
            import cProfile

            cProfile.runctx("pipeline(-1)", globals(), locals(), str(args.profile))
        best_bare, best_pipe = min(t for t, _ in bare_times), min(t for t, _ in pipe_times)
        cpu_bare, cpu_pipe = min(c for _, c in bare_times), min(c for _, c in pipe_times)
        print(f"best: bare {count / best_bare:.3f} tiles/s ({best_bare:.1f} s), "
              f"pipeline {count / best_pipe:.3f} tiles/s ({best_pipe:.1f} s); "
              f"CPU time ratio bare/pipeline {cpu_bare / cpu_pipe:.3f}")
        print(f"pipeline/bare throughput ratio: {best_bare / best_pipe:.3f}")


if __name__ == "__main__":
    main()
