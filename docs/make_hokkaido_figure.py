"""Draw the README's real-imagery figure: image | truth | prediction of a held-out Hokkaido tile.

The model must not have seen the tile: give one trained on the 18 ``train/`` tiles only (for
example ``bench/real_hokkaido.py --recipe configs/hokkaido_cpu.config --out runs/acc`` keeps
``runs/acc/hokkaido_cpu/seed42/model.keras``), not the bundled ``hokkaido-iburi`` model, which
trained on all 24. Every ``valid/`` tile is predicted through the scene path (a GeoTIFF with an
assigned georeference, as in ``bench/real_hokkaido.py``); the figure shows the tile whose
landslide IoU is the median of the six (the lower middle one), so it is neither the best nor
the worst case, and the script prints every tile's IoU.

Data: CAS Landslide Dataset (Xu, Ouyang, Xu, Wang, Zhao & Luo, 2023,
doi:10.5281/zenodo.10294997), Hokkaido Iburi-Tobu tiles, CC BY-NC 4.0.

    python docs/make_hokkaido_figure.py --model runs/acc/hokkaido_cpu/seed42/model.keras

With ``--before-after FILE`` it also draws the tile with the most true landslides (where
objects matter most) predicted without and with the model's post-processing (``geoseg
train`` stores it when it has validation tiles: ``docs/hokkaido_postprocessing.jpg``), each
side with its object F1 on the tile (one-to-one matches at IoU >= 0.5, 8-connected regions).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image  # installed with matplotlib
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from scipy import ndimage

from geoseg.model.predictor import load_predictor
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.prediction.preview import render_preview

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hokkaido-iburi" / "valid"
OUT = REPO / "docs" / "hokkaido_valid_tile.jpg"
CRS = "EPSG:32654"  # assigned for the figure: the tiles carry no georeference
TRANSFORM = from_origin(582000.0, 4734000.0, 3.0, 3.0)
CREDIT = ("CAS Landslide Dataset (Xu et al. 2023, doi:10.5281/zenodo.10294997), CC BY-NC 4.0")


def write_geotiff(path: Path, data: np.ndarray, nodata: int | None = None) -> Path:
    """``data`` (bands, rows, cols) as a GeoTIFF on the assigned grid."""
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs=CRS,
                       transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(data)
    return path


def read_png(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as png:
            return png.read()


def object_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Object F1 of one tile: 8-connected regions matched one to one at IoU >= 0.5."""
    from geoseg.evaluation.object_matching import label_overlaps

    eight = np.ones((3, 3), dtype=bool)
    true_labels, predicted_labels = (ndimage.label(m, structure=eight)[0]
                                     for m in (truth, predicted))
    found = label_overlaps(true_labels, predicted_labels).match(0.5).true_positives
    total = int(true_labels.max()) + int(predicted_labels.max())
    return 2 * found / total if total else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="a model trained on train/ only")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--before-after", type=Path, default=None,
                        help="also draw the tile without | with the model's post-processing")
    args = parser.parse_args(argv)
    predictor = load_predictor(args.model)
    scored = []
    busiest: tuple = (-1,)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for image_path in sorted((DATA / "images").glob("*.png")):
            image = read_png(image_path)
            truth = (read_png(DATA / "masks" / image_path.name)[0] == 255).astype(np.uint8)
            scene = write_geotiff(folder / f"{image_path.stem}.tif", image)
            truth_path = write_geotiff(folder / f"{image_path.stem}_truth.tif", truth[None])
            mask_path = folder / f"{image_path.stem}_mask.tif"
            predict_scene(scene, mask_path, predictor, predictor.settings, model_file=args.model)
            with rasterio.open(mask_path) as mask:
                predicted = mask.read(1) == 1
            iou = (np.count_nonzero(predicted & (truth == 1))
                   / np.count_nonzero(predicted | (truth == 1)))
            print(f"{image_path.name}: landslide IoU {iou:.3f}")
            scored.append((iou, image_path.stem, scene, truth_path, mask_path))
            landslides = int(ndimage.label(truth, structure=np.ones((3, 3), bool))[1])
            busiest = max(busiest, (landslides, image_path.stem, scene, truth_path))
        scored.sort()
        iou, stem, scene, truth_path, mask_path = scored[(len(scored) - 1) // 2]
        png = render_preview(scene, folder / "figure.png", truth_path=truth_path,
                             mask_path=mask_path, title=f"held-out tile {stem}: landslide IoU "
                             f"{iou:.2f}. {CREDIT}")
        Image.open(png).convert("RGB").save(args.out, quality=85)  # a JPEG, 5x smaller
        if args.before_after is not None:
            _, stem, scene, truth_path = busiest
            sides = []
            for name, recipe in (("threshold alone", PostProcessing()),
                                 ("post-processed", None)):
                mask_path = folder / f"{stem}_{len(sides)}.tif"
                predict_scene(scene, mask_path, predictor, predictor.settings,
                              PredictOptions(postprocessing=recipe), model_file=args.model)
                with rasterio.open(mask_path) as mask, rasterio.open(truth_path) as truth_src:
                    f1 = object_f1(truth_src.read(1) == 1, mask.read(1) == 1)
                sides.append(Image.open(render_preview(
                    scene, folder / f"side{len(sides)}.png", truth_path=truth_path,
                    mask_path=mask_path, title=f"{stem}, {name}: object F1 {f1:.2f}"
                )).convert("RGB"))
            both = Image.new("RGB", (sum(side.width for side in sides),
                                     max(side.height for side in sides)), "white")
            both.paste(sides[0], (0, 0))
            both.paste(sides[1], (sides[0].width, 0))
            both.save(args.before_after, quality=85)
            print(f"{args.before_after}: tile {stem}, without | with post-processing")
    print(f"{args.out}: the tile of median IoU of {len(scored)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
