"""Train a bundled model (``hokkaido-iburi`` or ``sichuan-aerial``) on all of its region's tiles.

The recipe is the region's shipped CPU config (``configs/hokkaido_cpu.config``,
``configs/sichuan_cpu.config``: the best rows of ``bench/RESULTS.md``), trained by the same
``geoseg train`` code as users' models, with a fixed seed, on the ``train/`` and ``valid/``
tiles of ``../shared/data/<region>`` together (no validation: the recipes' figures come from
the 18/6 splits in ``bench/real_hokkaido.py`` and ``bench/regions.py``; these models use every
labelled tile). The landslide threshold is chosen on those training tiles and stored in the
model (``[train] tune_threshold``); the post-processing is the one ``geoseg train`` chose for
the recipe on the held-out ``valid/`` tiles (``PEAK``). Sichuan's tiles are first resampled to
256 x 256 (``datasets.resample_reference_split``; ~2 m pixels).

Data: Hokkaido: CAS Landslide Dataset (Xu, Ouyang, Xu, Wang, Zhao & Luo, 2023,
doi:10.5281/zenodo.10294997), CC BY-NC 4.0: those weights are for non-commercial use (see
``geoseg/data/hokkaido_iburi.md``). Sichuan: Zeng, Cao, Su et al. (2021), Science Data Bank,
doi:10.11922/sciencedb.j00001.00222, CC BY 4.0 (``geoseg/data/sichuan_aerial.md``).

    python sample_data/train_bundled_model.py hokkaido-iburi   # geoseg/data/hokkaido_iburi.keras
    python sample_data/train_bundled_model.py sichuan-aerial --epochs 1 --out /tmp/s.keras
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from geoseg.config import load_config
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.training.datasets import reference_split, resample_reference_split
from geoseg.training.train import train
from geoseg.training.tuning import store_postprocessing

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SEED = 42


@dataclasses.dataclass(frozen=True)
class Region:
    """How a bundled model of a region is made."""

    recipe: Path
    out: Path
    resample_to: int | None
    """Resample the region's tiles to this many pixels a side first (None: as they are)."""
    peak: float
    """The post-processing the model carries: a landslide region is kept when its peak
    reaches this (hysteresis, grown down to the model's threshold): what ``geoseg train``
    chose for the recipe trained on the 18 ``train/`` tiles, on the 6 ``valid/`` ones."""


REGIONS = {
    "hokkaido-iburi": Region(REPO / "configs" / "hokkaido_cpu.config",
                             REPO / "geoseg" / "data" / "hokkaido_iburi.keras", None, 0.8),
    "sichuan-aerial": Region(REPO / "configs" / "sichuan_cpu.config",
                             REPO / "geoseg" / "data" / "sichuan_aerial.keras", 256, 0.9),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("region", choices=sorted(REGIONS))
    parser.add_argument("--out", type=Path, default=None,
                        help="model file to write [default: the bundled model's file]")
    parser.add_argument("--data", type=Path, default=None,
                        help="the region's shared folder (train/ and valid/) [default: "
                             "../shared/data/REGION]")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--epochs", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the training run (log, curves) here")
    args = parser.parse_args(argv)
    region = REGIONS[args.region]
    out, data = args.out or region.out, args.data or SHARED / args.region
    config = load_config(region.recipe)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, seed=args.seed, epoch_change_infer=False))
    started, load = time.perf_counter(), os.getloadavg()[0]
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        tiles = [scene for split in ("train", "valid") for scene in (
            reference_split(data, split) if region.resample_to is None else
            resample_reference_split(data, split, Path(tmp) / "tiles", region.resample_to,
                                     config.mask.rgb_map))]
        print(f"training {region.recipe.name} (seed {args.seed}) on {len(tiles)} tiles of {data}")
        result = train(config, out_dir=args.run_dir or Path(tmp) / "run", train_scenes=tiles,
                       valid_scenes=[], epochs=args.epochs, overwrite=True, report=print)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.model_path, out)
    store_postprocessing(out, PostProcessing(threshold=result.threshold,
                                             seed_threshold=region.peak))
    minutes = (time.perf_counter() - started) / 60
    print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB, best epoch "
          f"{result.best_epoch} of {result.last_epoch} ({result.monitor} "
          f"{result.best[result.monitor]:.4f}), threshold {result.threshold}, {minutes:.1f} min, "
          f"{time.process_time() - cpu:.0f} CPU-s, load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
