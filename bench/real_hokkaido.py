"""Benchmark: train a small FlexUNet on real Hokkaido imagery and measure it honestly.

Data: the 24 shared 512 x 512 RGB tiles of the 2018 Hokkaido Eastern Iburi earthquake
landslides (``../shared/data/hokkaido-iburi``; 18 ``train/``, 6 ``valid/``), from the CAS
Landslide Dataset (Xu, Y., Ouyang, C., Xu, Q., Wang, D., Zhao, B., & Luo, Y. (2023), Zenodo,
https://doi.org/10.5281/zenodo.10294997), CC BY-NC 4.0.

1. Train each recipe (a ``.config`` file, or the ``flexunet512`` preset set by the options)
   once per seed with :func:`geoseg.training.train.train` on ``train/`` only. ``valid/`` is held
   out: a config's ``[valid]`` folders are ignored, so it is used neither for early stopping nor
   to pick the saved model (the monitor is the training loss), and the figures below are
   not tuned on it. Training wall time, CPU-seconds (user + system, all threads), training
   samples per second and the load average are recorded.
2. Evaluate it on ``valid/`` in the reference layout
(:func:`geoseg.evaluation.evaluate.evaluate_dataset`:
   each PNG a small scene, white pixels no data).
3. Evaluate it in scene mode (:func:`geoseg.evaluation.evaluate.evaluate_scenes`): the 6 valid tiles
   mosaicked 2 x 3 into one 1024 x 1536 GeoTIFF, with a georeference *assigned* for the test
   (EPSG:32654, 3 m pixels, upper-left corner near 42.75 N 141.98 E; the tiles are not really
   neighbours), nodata 255 (the white wedges), the masks mosaicked the same way. It is
   predicted with overlapping, blended 512-pixel tiles that straddle the tile joins, so seams
   count.

Landslide figures are pixel-level, pooled over the tiles (micro), next to the reference
FlexUNet's IoU 0.861 / F1 0.925 (127 M parameters, trained on the full augmented set, scored on
all 24 tiles; not the same protocol). The defaults (490 k parameters, 60 epochs) took 12 min
on 2 shared CPU cores: valid IoU 0.616 / F1 0.762 (tiles), 0.613 / 0.760 (mosaic scene);
``--base-filters 12 --epochs 80 --reducer-patience 8`` (1.1 M) took 36 min: 0.633 / 0.775.

Each run prints a ``RUN`` line; each recipe a ``SUMMARY`` with the mean ± sample standard
deviation (min-max) over its seeds. With ``--out``, every run is appended to
``runs.jsonl`` and its model kept in ``<out>/<recipe>/seed<N>/``.

    python bench/real_hokkaido.py                      # flexunet512 preset, seed 42
    python bench/real_hokkaido.py --recipe configs/hokkaido_cpu.config --seeds 42 43 44
    python bench/real_hokkaido.py --base-filters 12 --epochs 80 --reducer-patience 8
    python bench/real_hokkaido.py --model out/model.keras   # evaluate existing models
    python bench/real_hokkaido.py --model out/model.keras --tta none d4 --thresholds model train
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

CREDIT = (
    "Data: CAS Landslide Dataset (Xu, Ouyang, Xu, Wang, Zhao & Luo, 2023, "
    "doi:10.5281/zenodo.10294997), Hokkaido Iburi-Tobu tiles, CC BY-NC 4.0"
)
REFERENCE = {"iou": 0.861, "f1": 0.925}
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hokkaido-iburi"
RGB_MAP = {(0, 0, 0): 0, (255, 0, 0): 1}
MOSAIC_CRS = "EPSG:32654"
MOSAIC_ORIGIN_LONLAT = (141.98, 42.75)
PIXEL = 3.0

if TYPE_CHECKING:
    from geoseg.config import Config


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: the model and what it cost."""

    model: Path
    seconds: float
    cpu: float
    """User + system CPU-seconds of the process (all threads) during training."""
    samples_per_s: float
    epochs: int
    load: tuple[float, float]
    """1-minute load average before and after."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train/ and valid/")
    parser.add_argument("--recipe", action="append", default=[],
                        help="a .config file, or the preset 'flexunet512' (this script's own "
                             "recipe, set by the options below); repeatable [default: "
                             "flexunet512]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42],
                        help="train each recipe once per seed (e.g. --seeds 42 43 44)")
    parser.add_argument("--model", type=Path, nargs="+", default=None,
                        help="evaluate these .keras models instead of training")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the models, training logs and reports here (default: temp)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--base-filters", type=int, default=8)
    parser.add_argument("--num-layers", type=int, default=5)
    parser.add_argument("--kernel", type=int, default=5, help="first-level kernel size (odd)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--loss", default="ce_dice")
    parser.add_argument("--reducer-patience", type=int, default=6,
                        help="epochs on a training-loss plateau before halving the rate")
    parser.add_argument("--overlap", type=int, default=64, help="scene-mode tile overlap")
    parser.add_argument("--tta", nargs="+", default=["none"], choices=["none", "flips", "d4"],
                        help="test-time augmentation modes to evaluate")
    parser.add_argument("--thresholds", nargs="+", default=["model"],
                        choices=["model", "argmax", "train"],
                        help="decision thresholds to evaluate: the model's own, the most "
                             "probable class, or the best IoU on train/")
    parser.add_argument("--no-scene", action="store_true",
                        help="tile mode only (skip the mosaic scene, e.g. for slow TTA runs)")
    return parser.parse_args()


def config_text(args: argparse.Namespace, seed: int) -> str:
    """The flexunet512 preset: a FlexUNet config for the run (no validation)."""
    return f"""
[model]
image_width = 512
image_height = 512
image_channels = 3
num_classes = 2
base_filters = {args.base_filters}
base_kernels = ({args.kernel},{args.kernel})
num_layers = {args.num_layers}
dropout_rate = 0.05
learning_rate = {args.learning_rate}
loss = "{args.loss}"
overlap = {args.overlap}

[train]
epochs = {args.epochs}
batch_size = {args.batch_size}
patience = {args.epochs}
reducer_patience = {args.reducer_patience}
seed = {seed}
augmentation = True
epoch_change_infer = False

[mask]
rgb_map = {{(0,0,0):0, (255,0,0):1}}
"""


def recipe_config(recipe: str, args: argparse.Namespace, seed: int) -> Config:
    """The config of a recipe with ``seed``; valid/ never takes part in training."""
    from geoseg.config import load_config, parse_config

    if recipe == "flexunet512":
        return parse_config(config_text(args, seed), source="flexunet512")
    config = load_config(recipe)
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, seed=seed, epoch_change_infer=False))


def train_model(config: Config, data: Path, out: Path) -> Run:
    """Train on train/ only (no validation, so valid/ picks nothing) and measure it."""
    from geoseg.training.datasets import reference_split
    from geoseg.training.train import train

    load = os.getloadavg()[0]
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = train(config, out_dir=out, valid_scenes=[], overwrite=True,
                   train_scenes=reference_split(data, "train"), report=print)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = config.train.steps_per_epoch or -(-result.train_tiles // config.train.batch_size)
    samples = steps * config.train.batch_size * result.last_epoch
    return Run(model=result.model_path, seconds=seconds,
               cpu=after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
               samples_per_s=samples / seconds, epochs=result.last_epoch,
               load=(load, os.getloadavg()[0]))


def mosaic(folder: Path, out: Path) -> tuple[Path, Path]:
    """The 6 valid tiles as one 2 x 3 georeferenced scene and its RGB mask, same grid."""
    import warnings

    names = sorted(p.name for p in (folder / "images").glob("*.png"))[:6]
    if len(names) != 6:
        raise SystemExit(f"{folder}: expected 6 valid tiles, found {len(names)}")
    parts: dict[str, list[np.ndarray]] = {"images": [], "masks": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        for kind in parts:
            for name in names:
                with rasterio.open(folder / kind / name) as src:
                    parts[kind].append(src.read([1, 2, 3]))
    east, north = Transformer.from_crs("EPSG:4326", MOSAIC_CRS, always_xy=True).transform(
        *MOSAIC_ORIGIN_LONLAT)
    transform = from_origin(round(east), round(north), PIXEL, PIXEL)
    paths = {"images": out / "valid_mosaic.tif", "masks": out / "valid_mosaic_mask.tif"}
    for kind, tiles in parts.items():
        rows = [np.concatenate(tiles[r * 3 : r * 3 + 3], axis=2) for r in range(2)]
        data = np.concatenate(rows, axis=1)
        profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
                   "count": 3, "dtype": "uint8", "crs": MOSAIC_CRS, "transform": transform,
                   "nodata": 255 if kind == "images" else None, "tiled": True,
                   "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        with rasterio.open(paths[kind], "w", **profile) as dst:
            dst.write(data)
    return paths["images"], paths["masks"]


def figures(report) -> str:
    cm, fg = report.confusion, report.foreground
    line = (f"landslide IoU {cm.iou[fg]:.3f}  F1 {cm.f1[fg]:.3f}  precision "
            f"{cm.precision[fg]:.3f}  recall {cm.recall[fg]:.3f}  ({cm.total} pixels)")
    if report.objects is not None:
        line += f"; objects F1 {report.objects.f1:.3f}"
    return line


def train_threshold(model, settings, data: Path) -> float | None:
    """The threshold ``[train] tune_threshold`` would store: best IoU on the train/ tiles."""
    from geoseg.training.datasets import MemoryTiles, TileDataset, reference_split
    from geoseg.training.train import choose_threshold

    with TileDataset(reference_split(data, "train"), settings, rgb_map=RGB_MAP) as tiles:
        return choose_threshold(model, MemoryTiles(tiles), 4)


def at_threshold(report, threshold: float | None) -> tuple[float, float]:
    """Landslide IoU and F1 of a report at ``threshold``: its own (argmax) for None, else read
    from its threshold sweep (exact pixel counts of ``p >= threshold`` on the 0.01 grid)."""
    if threshold is None:
        fg = report.foreground
        return float(report.confusion.iou[fg]), float(report.confusion.f1[fg])
    sweep = report.sweep
    index = int(np.argmin(np.abs(sweep.thresholds - threshold)))
    if abs(sweep.thresholds[index] - threshold) > 1e-9:
        raise SystemExit(f"threshold {threshold} is not on the sweep's 0.01 grid")
    return float(sweep.iou[index]), float(sweep.f1[index])


def evaluate_model(path: Path, data: Path, work: Path, overlap: int, tta: list[str],
                   thresholds: list[str], scene_mode: bool = True) -> dict[str, dict[str, float]]:
    """Landslide IoU/F1 on valid/, tile mode and scene mode, per TTA mode and threshold.

    Each TTA mode is predicted once (most probable class); the figures at the other
    thresholds come from the same predictions' threshold sweeps. Thresholds: ``model`` (the
    model's own; the most probable class if it has none), ``argmax`` and ``train`` (the best
    IoU on the train/ tiles, as ``[train] tune_threshold`` chooses it, for models trained
    without it). Variants are named ``<tta>/<threshold>``; scene figures are NaN without
    ``scene_mode``.
    """
    from geoseg.evaluation.evaluate import evaluate_dataset, evaluate_scenes
    from geoseg.model.flexunet import load_model
    from geoseg.model.inference import KerasPredictor
    from geoseg.prediction.predict import PredictOptions
    from geoseg.prediction.tta import with_tta

    model, settings = load_model(path)
    plain = KerasPredictor(model, batch_size=2, device="cpu")
    image, mask = mosaic(data / "valid", work)
    values = {"model": settings.threshold, "argmax": None}
    if "train" in thresholds:
        values["train"] = train_threshold(model, settings, data)
        print(f"  threshold chosen on train/: {values['train']}")
    scores: dict[str, dict[str, float]] = {}
    for mode in tta:
        predictor = with_tta(plain, mode)
        tiles = evaluate_dataset(data / "valid", predictor, settings, rgb_map=RGB_MAP)
        print(f"  [{mode}] valid/ tiles ({len(tiles.scenes)} PNGs, {tiles.seconds:.0f} s, load "
              f"{os.getloadavg()[0]:.1f}): {figures(tiles.report)}", flush=True)
        scene, scene_seconds = None, math.nan
        if scene_mode:
            started = time.perf_counter()
            scene = evaluate_scenes([(image, mask)], predictor, settings,
                                    options=PredictOptions(overlap=overlap),
                                    rgb_map=RGB_MAP).report
            scene_seconds = time.perf_counter() - started
            print(f"  [{mode}] valid/ as one 1024x1536 scene (assigned georeference "
                  f"{MOSAIC_CRS}, {PIXEL:g} m pixels; overlap {overlap}, {scene_seconds:.0f} s)"
                  f": {figures(scene)}", flush=True)
        for name in thresholds:
            tile_iou, tile_f1 = at_threshold(tiles.report, values[name])
            scene_iou, scene_f1 = (at_threshold(scene, values[name]) if scene is not None
                                   else (math.nan, math.nan))
            scores[f"{mode}/{name}"] = {
                "params": model.count_params(), "threshold": values[name],
                "tile_iou": tile_iou, "tile_f1": tile_f1, "scene_iou": scene_iou,
                "scene_f1": scene_f1, "tile_seconds": tiles.seconds,
                "scene_seconds": scene_seconds}
    return scores


def spread(values: list[float], digits: int = 3) -> str:
    """``mean ± sample sd (min-max)`` of a list; just the value for one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    print(CREDIT)
    if not (args.data / "train").is_dir() or not (args.data / "valid").is_dir():
        raise SystemExit(f"{args.data}: needs train/ and valid/ (the shared Hokkaido tiles)")
    with tempfile.TemporaryDirectory(prefix="geoseg-hokkaido-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        if args.model is not None:
            for path in args.model:
                print(f"{path}:")
                scores = evaluate_model(path, args.data, out, args.overlap, args.tta,
                                        args.thresholds, not args.no_scene)
                for variant, got in scores.items():
                    print(f"SUMMARY {path} [{variant}]: {got['params']:,} params; valid tiles "
                          f"IoU {got['tile_iou']:.3f} F1 {got['tile_f1']:.3f} "
                          f"({got['tile_seconds']:.0f} s); mosaic scene IoU "
                          f"{got['scene_iou']:.3f} F1 {got['scene_f1']:.3f} "
                          f"({got['scene_seconds']:.0f} s); load {os.getloadavg()[0]:.1f}. "
                          f"{CREDIT}", flush=True)
            return
        for recipe in args.recipe or ["flexunet512"]:
            name = Path(recipe).stem
            rows = []
            for seed in args.seeds:
                print(f"== {name}, seed {seed}")
                run = train_model(recipe_config(recipe, args, seed), args.data,
                                  out / name / f"seed{seed}")
                scores = evaluate_model(run.model, args.data, out, args.overlap, args.tta,
                                        args.thresholds, not args.no_scene)
                row = {"recipe": name, "seed": seed, **dataclasses.asdict(run),
                       "scores": scores, "model": str(run.model)}
                rows.append(row)
                for variant, got in scores.items():
                    print(f"RUN {name} seed {seed} [{variant}]: {got['params']:,} params, "
                          f"{run.epochs} epochs in {run.seconds / 60:.1f} min, {run.cpu:.0f} "
                          f"CPU-s, {run.samples_per_s:.2f} samples/s, load {run.load[0]:.1f}->"
                          f"{run.load[1]:.1f}; valid tiles IoU {got['tile_iou']:.3f} F1 "
                          f"{got['tile_f1']:.3f}; mosaic scene IoU {got['scene_iou']:.3f} F1 "
                          f"{got['scene_f1']:.3f}", flush=True)
                with (out / "runs.jsonl").open("a") as log:
                    log.write(json.dumps(row, default=str) + "\n")
            loads = [load for row in rows for load in row["load"]]
            for variant in rows[0]["scores"]:
                got = [row["scores"][variant] for row in rows]
                print(
                    f"SUMMARY {name} [{variant}], seeds {' '.join(map(str, args.seeds))}: valid "
                    f"tiles IoU {spread([g['tile_iou'] for g in got])}, F1 "
                    f"{spread([g['tile_f1'] for g in got])}; mosaic scene IoU "
                    f"{spread([g['scene_iou'] for g in got])}; training "
                    f"{spread([r['seconds'] / 60 for r in rows], 1)} min, "
                    f"{spread([r['cpu'] for r in rows], 0)} CPU-s, "
                    f"{spread([r['samples_per_s'] for r in rows], 2)} samples/s; load "
                    f"{min(loads):.1f}-{max(loads):.1f}; reference FlexUNet (127 M params) IoU "
                    f"{REFERENCE['iou']} F1 {REFERENCE['f1']}. {CREDIT}", flush=True)

if __name__ == "__main__":
    main()
