"""Write the bundled sample scene of the quick start, deterministically.

Writes, into this script's folder unless ``--output-dir`` says otherwise:

- ``iburi_synthetic.tif``: 2048 x 2048 RGB scene, 3 m pixels, EPSG:32654 (UTM 54N), centred on
  the epicentre of the 2018 Hokkaido Eastern Iburi earthquake;
- ``iburi_synthetic_labels.tif``: its labels (0 background, 1 landslide) on the same grid;
- ``iburi_synthetic_landslides.gpkg``: the landslide polygons (``class`` = ``landslide``);
- ``iburi_synthetic_preview.png``: a 512 px quicklook with the landslide outlines.

The scene and its truth are :func:`geoseg.labels.synthetic.write_sample`'s (seed 2018, as ``geoseg
sample DIR`` writes them); the demo model is trained on other seeds. Existing files are
refused unless ``--overwrite`` is given.

Usage::

    python sample_data/make_sample.py [--output-dir DIR] [--overwrite]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from geoseg.errors import GeosegError  # noqa: E402
from geoseg.labels.synthetic import (  # noqa: E402
    SAMPLE_NAME,
    SAMPLE_SEED,
    SAMPLE_SIZE,
    SyntheticScene,
    write_sample,
)
from geoseg.raster.outputs import atomic_output, check_output_path  # noqa: E402

SIZE = SAMPLE_SIZE
PREVIEW_WIDTH = 512


def write_preview(scene: SyntheticScene, path: Path, overwrite: bool = False) -> Path:
    """Write a ``PREVIEW_WIDTH`` px wide PNG of the scene with the landslide outlines in red."""
    step = max(1, scene.labels.shape[1] // PREVIEW_WIDTH)
    height, width = (n // step for n in scene.labels.shape)
    image = scene.image[:, : height * step, : width * step].reshape(3, height, step, width, step)
    small = image.mean(axis=(2, 4)).round().astype(np.uint8).transpose(1, 2, 0)
    outlines = [np.asarray(ring.coords) / step for polygon in scene.polygons
                for ring in (polygon.exterior, *polygon.interiors)]
    figure = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(small, extent=(0, width, height, 0), interpolation="nearest")
    axes.add_collection(LineCollection(outlines, colors="red", linewidths=0.6))
    axes.set_axis_off()
    with atomic_output(path, overwrite) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    """Write the sample files; return the exit status (0 done, 1 refused or failed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for the sample files [default: this script's folder]")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace sample files that exist already")
    args = parser.parse_args(argv)
    preview = args.output_dir / f"{SAMPLE_NAME}_preview.png"
    try:
        check_output_path(preview, args.overwrite)
        start = time.perf_counter()
        scene, files = write_sample(args.output_dir, overwrite=args.overwrite, size=SIZE)
        seconds = time.perf_counter() - start
        write_preview(scene, preview, args.overwrite)
    except GeosegError as exc:
        print(f"make_sample: {exc}", file=sys.stderr)
        return 1
    print(f"generated and wrote the {SIZE} x {SIZE} scene (seed {SAMPLE_SEED}) in "
          f"{seconds:.1f} s: "
          f"{len(scene.polygons)} landslides, {100 * scene.labels.mean():.1f} % of the pixels")
    for path in (files.image, files.labels, files.landslides, preview):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
