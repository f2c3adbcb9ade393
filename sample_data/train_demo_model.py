"""Train the bundled demo model on synthetic Iburi-like scenes (not the sample scene's seed).

Deterministic inputs: the scenes come from :mod:`geoseg.labels.synthetic` with fixed seeds (training
seeds 1-4, validation seed 5; the sample scene is seed 2018), the training uses the same
``geoseg train`` path as users (the one tiler, the same augmentation and losses). The model is
small (a few hundred kB) so that it can ship inside the package:

    python sample_data/train_demo_model.py               # writes geoseg/data/demo_model.keras
    python sample_data/train_demo_model.py --epochs 2 --out /tmp/demo.keras   # a quick try

The demo model is for showing the pipeline end to end on the synthetic sample; it has never
seen real imagery.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from geoseg.config import parse_config
from geoseg.labels.synthetic import make_scene, write_scene
from geoseg.training.datasets import LabelledScene
from geoseg.training.train import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "geoseg" / "data" / "demo_model.keras"
TRAIN_SEEDS = (1, 2, 3, 4)
VALID_SEEDS = (5,)
SCENE_SIZE = 1536

CONFIG = """
[model]
image_width     = 512
image_height    = 512
image_channels  = 3
num_classes     = 2
base_filters    = 8
base_kernels    = (5,5)
num_layers      = 5
dropout_rate    = 0.05
learning_rate   = 0.002
loss            = "ce_dice"
overlap         = 64

[train]
epochs                = {epochs}
batch_size            = 4
patience              = 5
learning_rate_reducer = True
reducer_factor        = 0.5
reducer_patience      = 2
epoch_change_infer    = True
num_infer_images      = 3
seed                  = 7
augmentation          = True
"""


def synthetic_scenes(folder: Path, seeds: tuple[int, ...]) -> list[LabelledScene]:
    """Write one synthetic scene per seed; return them with their label rasters."""
    scenes = []
    for seed in seeds:
        files = write_scene(make_scene(SCENE_SIZE, SCENE_SIZE, seed), folder, f"synthetic_{seed}")
        scenes.append(LabelledScene(files.image, files.labels))
    return scenes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model file to write")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the training run (logs, curves, previews) here")
    args = parser.parse_args(argv)
    config = parse_config(CONFIG.format(epochs=args.epochs), source="train_demo_model.py")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "scenes"
        data.mkdir()
        run_dir = args.run_dir or Path(tmp) / "run"
        result = train(config, out_dir=run_dir, train_scenes=synthetic_scenes(data, TRAIN_SEEDS),
                       valid_scenes=synthetic_scenes(data, VALID_SEEDS), overwrite=True,
                       report=print)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.model_path, args.out)
    print(f"{args.out}: best epoch {result.best_epoch} of {result.last_epoch}, "
          f"{result.monitor} {result.best}, {result.seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
