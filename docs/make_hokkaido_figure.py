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

from geoseg.predict import predict_scene
from geoseg.predictor import load_predictor
from geoseg.preview import render_preview

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="a model trained on train/ only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    predictor = load_predictor(args.model)
    scored = []
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
        scored.sort()
        iou, stem, scene, truth_path, mask_path = scored[(len(scored) - 1) // 2]
        png = render_preview(scene, folder / "figure.png", truth_path=truth_path,
                             mask_path=mask_path, title=f"held-out tile {stem}: landslide IoU "
                             f"{iou:.2f}. {CREDIT}")
        Image.open(png).convert("RGB").save(args.out, quality=85)  # a JPEG, 5x smaller
    print(f"{args.out}: tile {stem} (median IoU of {len(scored)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
