"""Benchmark: a recipe per region, every figure on tiles the model never trained on.

Trains a recipe (a ``.config``) on the ``train/`` tiles of one or more regions of ``../shared``
(``hokkaido-iburi``: 18 tiles of 512 x 512, ~3 m; ``sichuan-aerial``: 18 tiles of 1024 x 1024,
~0.5 m, resampled to ``--sichuan-size`` pixels first, as ``configs/sichuan_cpu.config``
expects), optionally from a trained model's weights (``--init``, fine-tuning), then scores the
model on each region's 6 held-out ``valid/`` tiles (pooled landslide IoU and F1, object F1 at
IoU >= 0.5) through the predict path (:func:`geoseg.evaluation.evaluate.evaluate_dataset`).
``--model`` scores existing models instead (the bundled ones as they are). Each run prints a
``RESULT`` line (JSON) with the training's wall minutes, CPU-seconds and the load average.

    python bench/regions.py configs/sichuan_cpu.config --train sichuan-aerial --seeds 42 43 44
    python bench/regions.py configs/sichuan_cpu.config --train sichuan-aerial --init hokkaido-iburi
    python bench/regions.py configs/sichuan_cpu.config --train sichuan-aerial hokkaido-iburi
    python bench/regions.py --model hokkaido-iburi --valid sichuan-aerial hokkaido-iburi

Data: Hokkaido: CAS Landslide Dataset (Xu et al. 2023, doi:10.5281/zenodo.10294997), CC BY-NC
4.0. Sichuan: Zeng, Cao, Su et al. (2021), doi:10.11922/sciencedb.j00001.00222, CC BY 4.0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from geoseg.config import load_config
from geoseg.training.datasets import LabelledScene, reference_split, resample_reference_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RGB_MAP = {(0, 0, 0): 0, (255, 0, 0): 1, (255, 0, 255): 1}
"""Both regions' mask colours: red (Hokkaido) and magenta (Sichuan) are landslide."""


def region_split(region: str, split: str, work: Path, sichuan_size: int) -> list[LabelledScene]:
    """A region's tiles of ``split``, Sichuan's resampled into ``work``."""
    if region == "sichuan-aerial":
        return resample_reference_split(SHARED / region, split, work / region, sichuan_size,
                                        RGB_MAP)
    return reference_split(SHARED / region, split)


def score(model: str, regions: list[str], work: Path, sichuan_size: int) -> dict[str, dict]:
    """Landslide IoU/F1 and object F1 of ``model`` on each region's ``valid/`` tiles."""
    from geoseg.evaluation.evaluate import evaluate_dataset
    from geoseg.model.bundled import resolve_model
    from geoseg.model.model_archive import read_settings
    from geoseg.model.predictor import load_predictor

    path = resolve_model(model)
    settings, predictor = read_settings(path), load_predictor(path, batch_size=2)
    figures = {}
    for region in regions:
        scenes = region_split(region, "valid", work, sichuan_size)
        folder = scenes[0].image.parent.parent
        report = evaluate_dataset(folder, predictor, settings, rgb_map=RGB_MAP).report
        cm, fg = report.confusion, report.foreground
        figures[region] = {"iou": float(cm.iou[fg]), "f1": float(cm.f1[fg]),
                           "object_f1": report.objects.f1 if report.objects else None}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="a .config to train")
    parser.add_argument("--train", nargs="+", default=["sichuan-aerial"],
                        help="regions whose train/ tiles the recipe trains on")
    parser.add_argument("--valid", nargs="+", default=["sichuan-aerial", "hokkaido-iburi"],
                        help="regions whose valid/ tiles are scored")
    parser.add_argument("--init", default=None, help="fine-tune from this model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--model", default=None, help="score this model instead of training")
    parser.add_argument("--sichuan-size", type=int, default=256)
    args = parser.parse_args()
    from geoseg.training.train import train

    with tempfile.TemporaryDirectory(prefix="geoseg-regions-") as tmp:
        work = Path(tmp)
        if args.model is not None:
            print("RESULT", json.dumps({"model": args.model,
                                        **score(args.model, args.valid, work, args.sichuan_size)}))
            return
        if args.recipe is None:
            parser.error("give a recipe to train, or --model")
        for seed in args.seeds:
            config = load_config(args.recipe)
            config = dataclasses.replace(config, train=dataclasses.replace(
                config.train, seed=seed, epoch_change_infer=False))
            scenes = [scene for region in args.train
                      for scene in region_split(region, "train", work, args.sichuan_size)]
            load = os.getloadavg()[0]
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            result = train(config, out_dir=work / f"run{seed}", train_scenes=scenes,
                           valid_scenes=[], init=args.init, overwrite=True, report=print)
            after = resource.getrusage(resource.RUSAGE_SELF)
            row = {"recipe": args.recipe, "train": args.train, "init": args.init, "seed": seed,
                   "minutes": (time.perf_counter() - started) / 60,
                   "cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
                   "load": [load, os.getloadavg()[0]], "threshold": result.threshold,
                   **score(str(result.model_path), args.valid, work, args.sichuan_size)}
            print("RESULT", json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
