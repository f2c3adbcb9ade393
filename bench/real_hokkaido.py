"""Benchmark: train a small FlexUNet on real Hokkaido imagery and measure it honestly.

Data: the 24 shared 512 x 512 RGB tiles of the 2018 Hokkaido Eastern Iburi earthquake
landslides (``../shared/data/hokkaido-iburi``; 18 ``train/``, 6 ``valid/``), from the CAS
Landslide Dataset (Xu, Y., Ouyang, C., Xu, Q., Wang, D., Zhao, B., & Luo, Y. (2023), Zenodo,
https://doi.org/10.5281/zenodo.10294997), CC BY-NC 4.0.

1. Train a FlexUNet with :func:`geoseg.train.train` on ``train/`` only. ``valid/`` is held
   out: it is used neither for early stopping nor to pick the saved model, so the figures
   below are not tuned on it.
2. Evaluate it on ``valid/`` in the reference layout (:func:`geoseg.evaluate.evaluate_dataset`:
   each PNG a small scene, white pixels no data).
3. Evaluate it in scene mode (:func:`geoseg.evaluate.evaluate_scene`): the 6 valid tiles
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

    python bench/real_hokkaido.py                      # train + evaluate
    python bench/real_hokkaido.py --base-filters 12 --epochs 80 --reducer-patience 8
    python bench/real_hokkaido.py --model out/model.keras   # evaluate an existing model
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train/ and valid/")
    parser.add_argument("--model", type=Path, default=None,
                        help="evaluate this .keras model instead of training one")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the model, training log and reports here (default: temp)")
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
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def config_text(args: argparse.Namespace) -> str:
    """A FlexUNet config for the run (no validation: valid/ stays held out)."""
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
seed = {args.seed}
augmentation = True
epoch_change_infer = False

[mask]
rgb_map = {{(0,0,0):0, (255,0,0):1}}
"""


def train_model(args: argparse.Namespace, out: Path) -> tuple[Path, float, int]:
    """Train on train/ only; returns the model path, training seconds and epochs run."""
    from geoseg.config import parse_config
    from geoseg.datasets import reference_split
    from geoseg.train import train

    config = parse_config(config_text(args), source="real_hokkaido")
    started = time.perf_counter()
    result = train(config, out_dir=out / "training", valid_scenes=[],
                   train_scenes=reference_split(args.data, "train"), report=print)
    return result.model_path, time.perf_counter() - started, result.last_epoch


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


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    print(CREDIT)
    if not (args.data / "train").is_dir() or not (args.data / "valid").is_dir():
        raise SystemExit(f"{args.data}: needs train/ and valid/ (the shared Hokkaido tiles)")

    from geoseg.evaluate import evaluate_dataset, evaluate_scene, write_report
    from geoseg.inference import KerasPredictor
    from geoseg.model import load_model
    from geoseg.predict import PredictOptions

    with tempfile.TemporaryDirectory(prefix="geoseg-hokkaido-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        train_seconds, epochs = None, None
        model_path = args.model
        if model_path is None:
            model_path, train_seconds, epochs = train_model(args, out)
        model, settings = load_model(model_path)
        params = model.count_params()
        predictor = KerasPredictor(model, batch_size=2, device="cpu")

        tiles = evaluate_dataset(args.data / "valid", predictor, settings, rgb_map=RGB_MAP)
        print(f"valid/ tiles (reference layout, {len(tiles.scenes)} PNGs, "
              f"{tiles.seconds:.0f} s): {figures(tiles.report)}")
        for scene in tiles.scenes:
            print(f"  {scene.name}: {figures(scene.report)}")

        image, mask = mosaic(args.data / "valid", out)
        started = time.perf_counter()
        scene = evaluate_scene(image, mask, predictor, settings,
                               options=PredictOptions(overlap=args.overlap), rgb_map=RGB_MAP)
        scene_seconds = time.perf_counter() - started
        print(f"valid/ as one 1024x1536 scene (assigned georeference {MOSAIC_CRS}, {PIXEL:g} m "
              f"pixels, upper-left near 42.75 N 141.98 E; overlap {args.overlap}, "
              f"{scene_seconds:.0f} s): {figures(scene)}")
        if args.out is not None:
            write_report(tiles, out / "report_tiles", overwrite=True)
            write_report(scene, out / "report_scene", overwrite=True)

        trained = (f"trained {epochs} epochs in {train_seconds / 60:.1f} min on this machine"
                   if train_seconds is not None else f"model {model_path.name}")
        cm_t, cm_s = tiles.report.confusion, scene.confusion
        fg = tiles.report.foreground
        print(
            f"SUMMARY FlexUNet {params:,} params, {trained}: valid tiles landslide IoU "
            f"{cm_t.iou[fg]:.3f} F1 {cm_t.f1[fg]:.3f}; valid mosaic scene IoU "
            f"{cm_s.iou[fg]:.3f} F1 {cm_s.f1[fg]:.3f}; reference FlexUNet (127 M params) "
            f"IoU {REFERENCE['iou']} F1 {REFERENCE['f1']}. {CREDIT}"
        )


if __name__ == "__main__":
    main()
