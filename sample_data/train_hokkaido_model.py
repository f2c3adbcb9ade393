"""Train the bundled ``hokkaido-iburi`` model on all 24 shared Hokkaido tiles.

The recipe is the shipped CPU config (``configs/hokkaido_cpu.config``: the best row of the
recipe table in ``bench/RESULTS.md``), trained by the same ``geoseg train`` code as users'
models, with a fixed seed, on the 18 ``train/`` and 6 ``valid/`` tiles of
``../shared/data/hokkaido-iburi`` together (no validation: the recipe's figures come from the
18/6 split in ``bench/real_hokkaido.py``; this model uses every labelled tile). The landslide
threshold is chosen on those training tiles and stored in the model (``[train]
tune_threshold``). The config's ``[valid]`` folders are ignored.

Data: CAS Landslide Dataset (Xu, Ouyang, Xu, Wang, Zhao & Luo, 2023,
doi:10.5281/zenodo.10294997), Hokkaido Iburi-Tobu tiles, CC BY-NC 4.0: the weights are derived
from it and are for non-commercial use (see ``geoseg/data/hokkaido_iburi.md``).

    python sample_data/train_hokkaido_model.py          # writes geoseg/data/hokkaido_iburi.keras
    python sample_data/train_hokkaido_model.py --epochs 1 --out /tmp/h.keras   # a quick try
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
from geoseg.datasets import reference_split
from geoseg.postprocess_recipe import PostProcessing
from geoseg.train import train
from geoseg.tuning import store_postprocessing

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "geoseg" / "data" / "hokkaido_iburi.keras"
DEFAULT_RECIPE = REPO / "configs" / "hokkaido_cpu.config"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hokkaido-iburi"
SEED = 42
PEAK = 0.8
"""The post-processing the model carries: a landslide region is kept when its peak reaches
this (hysteresis, grown down to the model's threshold). With no validation tiles left, it is
what ``geoseg train`` chose for the recipe trained on the 18 ``train/`` tiles, on the 6
``valid/`` ones (bench/RESULTS.md)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model file to write")
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="training config")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the shared Hokkaido folder (train/ and valid/)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--epochs", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the training run (log, curves) here")
    args = parser.parse_args(argv)
    config = load_config(args.recipe)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, seed=args.seed, epoch_change_infer=False))
    tiles = reference_split(args.data, "train") + reference_split(args.data, "valid")
    print(f"training {args.recipe.name} (seed {args.seed}) on {len(tiles)} tiles of {args.data}")
    started, load = time.perf_counter(), os.getloadavg()[0]
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, out_dir=args.run_dir or Path(tmp) / "run", train_scenes=tiles,
                       valid_scenes=[], epochs=args.epochs, overwrite=True, report=print)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.model_path, args.out)
    store_postprocessing(args.out, PostProcessing(threshold=result.threshold, seed_threshold=PEAK))
    minutes = (time.perf_counter() - started) / 60
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB, best epoch "
          f"{result.best_epoch} of {result.last_epoch} ({result.monitor} "
          f"{result.best[result.monitor]:.4f}), threshold {result.threshold}, {minutes:.1f} min, "
          f"{time.process_time() - cpu:.0f} CPU-s, load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
