"""Write the facts of their training imagery into the bundled models, weights untouched.

``geoseg train`` stores in every model it saves the ground size of its training pixels and
the statistics of their values, band by band (:func:`geoseg.raster.imagery.training_facts`), so
that ``geoseg predict`` can warn about scenes unlike them. The bundled models were trained
before it did; this script gives them the same facts, computed the same way, and rewrites
only the settings member of their ``.keras`` files
(:func:`geoseg.model.model_archive.replace_settings`):

- ``hokkaido-iburi``: the band statistics of its 24 training tiles (``train/`` and ``valid/``
  of ``../shared/data/hokkaido-iburi``, read through the tiler with the model's own tile size
  and overlap, white no-data wedges left out, as
  ``sample_data/train_bundled_model.py hokkaido-iburi`` trained on them); pixel size 3 m, the
  figure given for the tiles (the PNG tiles carry no georeference, so ``geoseg train`` would
  need ``[train] pixel_size = 3.0`` for it, as
  ``configs/hokkaido_cpu.config`` now says);
- ``demo``: its four synthetic training scenes (seeds 1-4 of ``train_demo_model.py``),
  generated again; the pixel size from their georeference, which is the sample scene's
  (``iburi_synthetic.tif``: 3 m).

Deterministic: running it again writes the same bytes.

    python sample_data/stamp_imagery_facts.py            # stamps geoseg/data/*.keras
    python sample_data/stamp_imagery_facts.py --dry-run  # prints the facts only
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from train_bundled_model import SHARED
from train_demo_model import TRAIN_SEEDS, synthetic_scenes

from geoseg.config import load_config
from geoseg.model.bundled import resolve_model
from geoseg.model.model_archive import read_settings, replace_settings
from geoseg.raster.imagery import pixel_size_m, training_facts
from geoseg.raster.scene import open_scene
from geoseg.settings import ModelSettings
from geoseg.training.datasets import LabelledScene, TileDataset, reference_split

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SCENE = REPO / "sample_data" / "iburi_synthetic.tif"
HOKKAIDO_RECIPE = REPO / "configs" / "hokkaido_cpu.config"


def facts_of(settings: ModelSettings, scenes: list[LabelledScene],
             rgb_map: dict[tuple[int, int, int], int] | None,
             pixel_size: float | None) -> ModelSettings:
    """``settings`` with the imagery facts ``geoseg train`` would store for ``scenes``."""
    with TileDataset(scenes, settings, rgb_map=rgb_map) as tiles:
        facts = training_facts(tiles, [scene.image for scene in scenes], pixel_size)
    return dataclasses.replace(settings, **facts)


def hokkaido(data: Path) -> ModelSettings:
    """The facts of ``hokkaido-iburi``'s 24 tiles."""
    recipe = load_config(HOKKAIDO_RECIPE)
    tiles = reference_split(data, "train") + reference_split(data, "valid")
    settings = read_settings(resolve_model("hokkaido-iburi"))
    return facts_of(settings, tiles, recipe.mask.rgb_map, recipe.train.pixel_size)


def demo(folder: Path) -> ModelSettings:
    """The facts of the demo model's synthetic training scenes, written into ``folder``."""
    settings = read_settings(resolve_model("demo"))
    stamped = facts_of(settings, synthetic_scenes(folder, TRAIN_SEEDS), None, None)
    with open_scene(SAMPLE_SCENE) as sample:
        found = pixel_size_m(sample)
    if found is None or found[0] != stamped.pixel_size_m:
        raise SystemExit(f"the demo's training scenes have {stamped.pixel_size_m} m pixels, "
                         f"the sample scene {found}: make them agree first")
    return stamped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "hokkaido-iburi",
                        help="the shared Hokkaido folder (train/ and valid/)")
    parser.add_argument("--dry-run", action="store_true", help="print the facts, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        stamped = {"hokkaido-iburi": hokkaido(args.data), "demo": demo(Path(tmp))}
    for name, settings in stamped.items():
        print(f"{name}: pixel_size_m {settings.pixel_size_m}")
        for band, stats in zip(settings.bands, settings.band_stats or [], strict=True):
            print(f"  band {band}: {stats}")
        if not args.dry_run:
            replace_settings(resolve_model(name), settings)
            print(f"  written into {resolve_model(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
