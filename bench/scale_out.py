"""Benchmark: one scene over 1 and 2 Dask workers, one TensorFlow thread each, and a plain run.

Builds the synthetic scene of ``pipeline_efficiency.py`` (``--size`` pixels square, RGB JPEG
GeoTIFF) and a FlexUNet of the same configuration (8 filters, 5 levels, 7x7 kernels; 512-pixel
tiles, 64-pixel overlap), saved as a model file. Then, for 1 and for 2 workers, it starts a
``LocalCluster`` as geoseg starts one (:func:`geoseg.prediction.distributed.local_cluster`: one task
thread and one TensorFlow thread per worker, Dask's profiler off), loads the model on
every worker and runs one batch through it (outside the timing, as a long run pays that once
per worker), and times :func:`geoseg.prediction.distributed.predict_scenes` on the scene,
alternately, ``--repeats`` times, keeping each side's best. One worker predicts the scene as one
task; two workers split it into two bands of rows (the window row they share is predicted once, half
by each band, and handed over through the work folder) and
one of them writes the outputs from the bands' rows. The two runs' masks must be the same
bytes. ``--probabilities`` also writes uint8 probabilities (so the assembly writes them too).

It prints the machine's load average next to every run (the machine is shared) and the CPU
seconds the workers spent (which other programs disturb much less than wall time: on an idle
machine 2 workers cannot finish before their CPU seconds shared by the cores, which bounds the
speed-up; one worker already uses a little of the second core for reading and blending), the
seconds per scene megapixel of one worker (the figure to extrapolate from, whatever the
windows), how fast the assembly wrote the outputs (the part one worker does alone), that
extrapolation to a 50 gigapixel scene, and last two figures: the speed-up of 2 workers over 1
worker of one thread in wall time, i.e. the parallel efficiency against a 1-thread run (target
>= 1.7), and beside it the speed-up of 2 workers over a *plain run* (``geoseg predict`` without
``--workers``: one process, the runtime's threads on every core), timed in the same rounds.
The second is what a user chooses between: ``--workers`` helps when it is above 1 (a runtime
that leaves cores idle, many scenes, several machines), and not when it is below (one
process already keeps every core busy, and the bands add their shared window row and an
assembly). ``--window`` is passed to the prediction (``auto``, the default, or ``tile`` for the
model's 512-pixel tiles).

    python bench/scale_out.py                     # 8192 x 8192, 81 windows, ~8 min on 2 idle cores
    python bench/scale_out.py --window tile       # 361 tiles of 512 pixels
    python bench/scale_out.py --size 7680 --repeats 1 --probabilities
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from pipeline_efficiency import write_big_scene

GIGAPIXELS = 50
"""The scene of the extrapolation, in gigapixels (a regional orthomosaic)."""


def load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cpu_seconds() -> float:
    """On a worker: the CPU time of its process so far (all threads)."""
    return time.process_time()


def warm_up(spec: object) -> int:
    """On a worker: load the model and run one batch (TensorFlow traces it); the worker's pid."""
    from geoseg.prediction.distributed import process_predictor

    predictor = process_predictor(spec)
    size = predictor.settings.image_size
    predictor(np.zeros((predictor.batch_size, size, size, 3), dtype=np.float32))
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="scene side in pixels")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--kernels", type=int, default=7, help="first-level kernel size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--window", default="auto",
                        help="predict --window: auto (the default), tile or pixels")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write uint8 probabilities")
    args = parser.parse_args()

    import keras
    from distributed import Client

    from geoseg.model.flexunet import build_flexunet, save_model
    from geoseg.model.predictor import ModelPredictor, ModelSpec
    from geoseg.prediction.distributed import Executor, local_cluster, predict_scenes
    from geoseg.prediction.jobs import SceneJob
    from geoseg.prediction.predict import PredictOptions, predict_scene
    from geoseg.settings import ModelSettings

    keras.utils.set_random_seed(0)
    settings = ModelSettings(image_size=512, base_filters=8, num_layers=5,
                             base_kernels=args.kernels)
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "GEOSEG_TF_LOGS": "0"}
    window = int(args.window) if args.window.isdecimal() else args.window
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        scene = folder / "scene.tif"
        write_big_scene(scene, args.size, seed=1)
        spec = ModelSpec(save_model(build_flexunet(settings), settings, folder / "m.keras"),
                         batch_size=args.batch_size, device="cpu")
        best: dict[int, float] = {}
        best_cpu: dict[int, float] = {}
        assembly: list[float] = []
        digests: dict[int, str] = {}
        predicted: dict[int, int] = {}
        plain = ModelPredictor(spec)  # this process: every core, as geoseg predict runs
        plain(np.zeros((1, 512, 512, 3), np.float32))
        best_plain = np.inf
        clusters = {workers: local_cluster(workers, threads=1, env=env) for workers in (1, 2)}
        try:
            for workers, cluster in clusters.items():
                with Client(cluster) as client:
                    pids = client.run(warm_up, spec)
                print(f"{workers} worker(s) ready: pids {sorted(pids.values())}", flush=True)
            for run in range(args.repeats):
                before, started = load(), time.perf_counter()
                predict_scene(scene, folder / "mask_plain.tif", plain, plain.settings,
                              PredictOptions(overwrite=True, window=window),
                              model_file=spec.path)  # as geoseg predict: the model in the tags
                seconds = time.perf_counter() - started
                best_plain = min(best_plain, seconds)
                print(f"run {run}, plain run (no Dask, {os.cpu_count()} cores): {seconds:.1f} s "
                      f"[{before} -> {load()}]", flush=True)
                for workers, cluster in clusters.items():
                    mask = folder / f"mask_{workers}.tif"
                    probabilities = (folder / f"prob_{workers}.tif" if args.probabilities
                                     else None)
                    before = load()
                    with Client(cluster) as client:
                        cpu_before = sum(client.run(cpu_seconds).values())
                    started = time.perf_counter()
                    outcome, = predict_scenes([SceneJob(str(scene), mask, probabilities)], spec,
                                              PredictOptions(overwrite=True, window=window),
                                              Executor(scheduler=cluster.scheduler_address))
                    seconds = time.perf_counter() - started
                    with Client(cluster) as client:
                        cpu = sum(client.run(cpu_seconds).values()) - cpu_before
                    best_cpu[workers] = min(cpu, best_cpu.get(workers, cpu))
                    if outcome.result is None:
                        raise SystemExit(f"failed: {outcome.error}")
                    predicted[workers] = outcome.result.tiles_predicted
                    digests[workers] = hashlib.sha256(mask.read_bytes()).hexdigest()
                    best[workers] = min(seconds, best.get(workers, seconds))
                    bands = [band.result.rows for band in outcome.bands if band.result]
                    band_times = [f"{band.result.seconds:.1f}" for band in outcome.bands
                                  if band.result]
                    if outcome.assembly_seconds is not None:
                        assembly.append(outcome.assembly_seconds)
                    print(f"run {run}, {workers} worker(s): {seconds:.1f} s, "
                          f"ran the model on {predicted[workers]} windows, workers' CPU {cpu:.1f} s"
                          + (f"; bands {bands} took {', '.join(band_times)} s, assembly "
                             f"{outcome.assembly_seconds:.1f} s" if bands else "; one task")
                          + f" [{before} -> {load()}]", flush=True)
        finally:
            for cluster in clusters.values():
                cluster.close()
        if digests[1] != digests[2]:
            raise SystemExit("the 1- and 2-worker masks differ")
        plain_same = hashlib.sha256((folder / "mask_plain.tif").read_bytes()).hexdigest() \
            == digests[1]
        tiles = predicted[1]  # one worker predicts every window of the scene once
        megapixels = args.size**2 / 1e6
        per_megapixel = best[1] / megapixels  # windows of any size: per pixel of the scene
        twice = predicted[2] - tiles  # a shared window one band needed before the other saved it
        print(f"scene {args.size}x{args.size}, {tiles} windows (--window {args.window}); the 2 "
              f"workers' last run predicted {twice} of them in both bands; masks of 1 and 2 "
              f"workers identical: yes; the plain run's: {'yes' if plain_same else 'no'}")
        cpu_per_megapixel = best_cpu[1] / megapixels
        megapixels_per_s = megapixels / min(assembly) if assembly else np.nan  # 1 band: none
        print(f"one worker, one TensorFlow thread: {per_megapixel:.3f} s and "
              f"{cpu_per_megapixel:.3f} CPU s per scene megapixel; assembly "
              f"{megapixels_per_s:.0f} megapixels/s")
        print(f"a {GIGAPIXELS} gigapixel scene: {GIGAPIXELS * 1e3 * per_megapixel / 3600:.1f} "
              f"worker hours at this run's pace, "
              f"{GIGAPIXELS * 1e3 * cpu_per_megapixel / 3600:.1f} on idle cores; assembly "
              f"{GIGAPIXELS * 1e3 / megapixels_per_s / 3600:.1f} h")
        cores = os.cpu_count() or 2
        print(f"workers' CPU seconds: 1 worker {best_cpu[1]:.1f}, 2 workers {best_cpu[2]:.1f}; "
              f"speed-up bound on {cores} idle cores: 1 worker's wall time over the 2 workers' "
              f"CPU shared by the cores, {best[1]:.1f} / ({best_cpu[2]:.1f} / {cores}) = "
              f"{best[1] * cores / best_cpu[2]:.2f}x")
        print(f"best: 1 worker {best[1]:.1f} s, 2 workers {best[2]:.1f} s, plain run "
              f"{best_plain:.1f} s [{load()}]")
        print(f"2 workers over 1 worker of one thread: {best[1] / best[2]:.2f}x (parallel "
              f"efficiency against a 1-thread run {best[1] / best[2] / 2:.0%}; target >= 1.7x); "
              f"2 workers over a plain run on all {cores} cores: {best_plain / best[2]:.2f}x "
              f"(--workers 2 {'helps' if best_plain > best[2] else 'does not help'} here)")


if __name__ == "__main__":
    main()
