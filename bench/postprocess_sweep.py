"""Sweep post-processing recipes over a model's probabilities on labelled tiles.

Each tile is predicted once, the way ``geoseg predict`` predicts (``predict_scene``: the
model's overlap and blending, float32 probabilities; white pixels are no data), then every
recipe (:class:`geoseg.postprocessing.postprocess_recipe.PostProcessing`: each step alone, then
combined) turns the probabilities into landslide regions
(:func:`geoseg.postprocessing.postprocess.postprocess_array`) and is scored on the pixels with data
and a label:

- objects: true landslides are the 8-connected regions of the landslide pixels of each tile,
  predicted ones the recipe's regions (split regions stay apart); a true landslide is found
  when one predicted region (used once) overlaps it with IoU >= 0.5 (F1@0.5, precision and
  recall) or >= 0.25 (F1@0.25); counts are pooled over the tiles;
- pixels: landslide IoU, pooled;
- regions: the number of predicted regions.

Recipes without a threshold take the model's own (else 0.5). Areas and distances are in
metres of ``--pixel-size`` (3 m: the Hokkaido tiles; the evidence in
``../shared/POLYGONS-EVIDENCE.md`` counts 25 px = 225 m², 100 px = 900 m²).

    python bench/postprocess_sweep.py --model hokkaido-iburi \\
        --tiles ../shared/data/hokkaido-iburi/valid --limit 2
    python bench/postprocess_sweep.py --model out/model.keras --tiles data/valid \\
        --recipe '{"seed_threshold": 0.8, "min_area_m2": 900}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from geoseg.evaluation.object_matching import label_overlaps
from geoseg.labels.reader import NO_LABEL, open_labels
from geoseg.model.bundled import resolve_model
from geoseg.model.predictor import load_predictor
from geoseg.postprocessing.components import STRUCTURES
from geoseg.postprocessing.postprocess import postprocess_array
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.raster.scene import open_scene, quiet_georeference
from geoseg.training.datasets import reference_scenes
from geoseg.vectors.vector_blocks import probability_band, read_probability

RGB_MAP = {(0, 0, 0): 0, (255, 0, 0): 1}
"""The reference masks: red is landslide."""

WATERSHED = {"split": "watershed"}
GRID: list[dict[str, object]] = [
    {},
    {"min_area_m2": 225}, {"min_area_m2": 900},
    {"seed_threshold": 0.7}, {"seed_threshold": 0.8},
    {"max_hole_m2": 225},
    {"smooth_m": 3}, {"smooth_m": 6},
    WATERSHED | {"marker_min_height": 0.8, "marker_min_distance_m": 15},
    WATERSHED | {"marker_prominence": 0.1, "marker_min_distance_m": 9},
    WATERSHED | {"marker_prominence": 0.2, "marker_min_distance_m": 9},
    WATERSHED | {"markers": "distance", "marker_min_distance_m": 15},
    WATERSHED | {"markers": "distance", "marker_min_distance_m": 24, "marker_prominence": 3},
    {"seed_threshold": 0.8, "min_area_m2": 225},
    {"seed_threshold": 0.8, "min_area_m2": 225, "max_hole_m2": 225},
    {"seed_threshold": 0.8, "min_area_m2": 225, "max_hole_m2": 225, "smooth_m": 3},
    {"seed_threshold": 0.8, "min_area_m2": 225, "smooth_m": 3}
    | WATERSHED | {"marker_prominence": 0.1, "marker_min_distance_m": 9},
    {"seed_threshold": 0.8, "min_area_m2": 225, "smooth_m": 3}
    | WATERSHED | {"markers": "distance", "marker_min_distance_m": 24, "marker_prominence": 3},
]
"""Each step alone, then combined (recipe fields; areas for 3 m pixels)."""


@dataclass(frozen=True)
class Tile:
    """One tile's landslide probabilities (NaN: no data) and its truth (NO_LABEL: none)."""

    name: str
    prob: np.ndarray
    truth: np.ndarray


@dataclass
class Scores:
    """Counts pooled over tiles for one recipe."""

    truth: int = 0
    predicted: int = 0
    found_strict: int = 0
    found_loose: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, truth: np.ndarray, regions: np.ndarray, valid: np.ndarray) -> None:
        truth_regions, _ = ndimage.label((truth == 1) & valid, STRUCTURES[8])
        evaluated = np.where(valid, regions, 0)
        numbers = np.unique(evaluated[evaluated > 0])
        renumber = np.zeros(int(regions.max(initial=0)) + 1, dtype=np.int64)
        renumber[numbers] = np.arange(1, numbers.size + 1)
        predicted = renumber[evaluated]  # 1..n where evaluated, 0 elsewhere
        overlaps = label_overlaps(truth_regions, predicted)
        self.truth += overlaps.n_truth
        self.predicted += overlaps.n_pred
        self.found_strict += overlaps.match(0.5).true_positives
        self.found_loose += overlaps.match(0.25).true_positives
        landslide, positive = (truth == 1) & valid, (predicted > 0)
        self.tp += int(np.count_nonzero(landslide & positive))
        self.fp += int(np.count_nonzero(~landslide & positive))
        self.fn += int(np.count_nonzero(landslide & ~positive))

    def row(self) -> dict[str, float]:
        objects = self.truth + self.predicted
        return {
            "F1@0.5": 2 * self.found_strict / objects if objects else float("nan"),
            "F1@0.25": 2 * self.found_loose / objects if objects else float("nan"),
            "precision": self.found_strict / self.predicted if self.predicted else float("nan"),
            "recall": self.found_strict / self.truth if self.truth else float("nan"),
            "pixel IoU": self.tp / max(1, self.tp + self.fp + self.fn),
            "regions": self.predicted,
        }


def predict_tiles(model: str, tiles: Path, limit: int | None, batch_size: int
                  ) -> tuple[list[Tile], float | None]:
    """Predict each tile once through geoseg's predict path; the tiles and model threshold."""
    predictor = load_predictor(resolve_model(model), batch_size=batch_size, device="cpu")
    settings = predictor.settings
    scenes = reference_scenes(tiles / "images", tiles / "masks")[:limit]
    options = PredictOptions(probability_dtype="float32", style=False)
    found = []
    with tempfile.TemporaryDirectory(prefix="geoseg-sweep-") as work, quiet_georeference():
        for scene in scenes:
            probabilities = Path(work) / f"{scene.image.stem}.prob.tif"
            predict_scene(scene.image, Path(work) / f"{scene.image.stem}.mask.tif", predictor,
                          settings, replace(options, extra_nodata=scene.image_nodata),
                          probabilities_path=probabilities)
            with rasterio.open(probabilities) as src:
                whole = Window(0, 0, src.width, src.height)
                prob = read_probability(src, probability_band(src, 1), whole)
            with open_scene(scene.image, expect_crs=False) as src, open_labels(
                    scene.labels, src, num_classes=2, rgb_map=RGB_MAP) as labels:
                truth = labels.read(whole, max(src.width, src.height))[: src.height, : src.width]
            found.append(Tile(scene.image.name, prob, truth))
    return found, settings.threshold


def sweep(tiles: list[Tile], recipes: list[PostProcessing], pixel_size: float
          ) -> list[tuple[PostProcessing, dict[str, float], float]]:
    """Every recipe's pooled scores and the seconds it took."""
    results = []
    for recipe in recipes:
        scores = Scores()
        started = time.perf_counter()
        for tile in tiles:
            regions = postprocess_array(tile.prob, recipe, pixel_size=pixel_size)
            valid = ~np.isnan(tile.prob) & (tile.truth != NO_LABEL)
            scores.add(tile.truth, regions.labels, valid)
        results.append((recipe, scores.row(), time.perf_counter() - started))
    return results


def table(results: list[tuple[PostProcessing, dict[str, float], float]]) -> str:
    """Results as a plain-text table, one recipe a row."""
    columns = ["F1@0.5", "F1@0.25", "precision", "recall", "pixel IoU", "regions"]
    lines = [" | ".join(f"{c:>9}" for c in columns) + " | seconds | recipe"]
    for recipe, row, seconds in results:
        cells = [f"{row[c]:>9.3f}" if c != "regions" else f"{row[c]:>9d}" for c in columns]
        lines.append(" | ".join(cells) + f" | {seconds:>7.1f} | {recipe.describe()}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras model or a bundled name")
    parser.add_argument("--tiles", type=Path, required=True,
                        help="folder holding images/ and masks/ (red = landslide)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N tiles")
    parser.add_argument("--pixel-size", type=float, default=3.0, help="metres per pixel")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--recipe", action="append", default=[], type=json.loads,
                        help="a recipe as JSON fields of PostProcessing (repeatable); with "
                             "--only-given, these alone, else after the built-in grid")
    parser.add_argument("--only-given", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    tiles, threshold = predict_tiles(args.model, args.tiles, args.limit, args.batch_size)
    print(f"{len(tiles)} tiles predicted in {time.perf_counter() - started:.0f} s "
          f"({', '.join(t.name for t in tiles)}); model threshold {threshold}")
    fields = args.recipe if args.only_given else [*GRID, *args.recipe]
    recipes = [PostProcessing(**({"threshold": threshold} if threshold else {}) | f)
               for f in fields]
    print(table(sweep(tiles, recipes, args.pixel_size)))


if __name__ == "__main__":
    main()
