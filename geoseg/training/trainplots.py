"""Pictures of a training run: per-epoch preview panels and the loss and metric curves.

Both are PNG files drawn with matplotlib's Agg canvas (no display, no pyplot state) and
written through :func:`geoseg.raster.outputs.atomic_output`. This module never imports TensorFlow.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from geoseg.raster.display import display_image
from geoseg.raster.outputs import atomic_output
from geoseg.raster.styles import class_colours

__all__ = ["INVALID_COLOUR", "panel_colours", "plot_history", "save_preview"]

INVALID_COLOUR = (128, 128, 128)
"""Colour of pixels that do not count (no data, padding, no label) in the truth panels."""

PathLike = str | os.PathLike[str]


def panel_colours(
    class_names: Sequence[str], rgb_map: Mapping[tuple[int, int, int], int] | None = None
) -> np.ndarray:
    """One RGB colour per class for the truth and prediction panels.

    A class gets its first ``rgb_map`` colour, so truth looks like the dataset's own RGB
    masks; else the colour the mask GeoTIFF and QGIS give it
    (:func:`geoseg.raster.styles.class_colours`), its transparent background painted black.

    Parameters
    ----------
    class_names : sequence of str
        Classes of the masks, background first (:attr:`ModelSettings.mask_class_names`).
    rgb_map : mapping of (R, G, B) -> int, optional
        Mask colour of each class (``[mask] rgb_map``).

    Returns
    -------
    ndarray of uint8, shape (len(class_names), 3)

    Examples
    --------
    >>> panel_colours(["background", "landslide"]).tolist()
    [[0, 0, 0], [227, 26, 28]]
    >>> panel_colours(["background", "landslide"], {(255, 255, 255): 1}).tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    rgba = class_colours(class_names)
    colours = np.array([rgba[i][:3] for i in range(len(class_names))], dtype=np.uint8)
    seen: set[int] = set()
    for colour, cls in (rgb_map or {}).items():
        if 0 <= cls < len(colours) and cls not in seen:
            colours[cls] = colour
            seen.add(cls)
    return colours


def _painted(classes: np.ndarray, valid: np.ndarray | None, colours: np.ndarray) -> np.ndarray:
    picture = colours[np.clip(classes, 0, len(colours) - 1)]
    if valid is not None:
        picture[~valid] = INVALID_COLOUR
    return picture


def save_preview(
    path: PathLike,
    images: np.ndarray,
    truths: np.ndarray,
    predictions: np.ndarray,
    valid: np.ndarray,
    colours: np.ndarray,
    *,
    titles: Sequence[str] | None = None,
    notes: Sequence[str] | None = None,
    heading: str = "",
) -> None:
    """Write a panel of tiles, one row each: image | truth | prediction.

    Parameters
    ----------
    path : path
        PNG to write (replaced if it exists).
    images : ndarray, shape (n, size, size, bands)
        Raw pixel values.
    truths, predictions : ndarray of int, shape (n, size, size)
        Class ids.
    valid : ndarray of bool, shape (n, size, size)
        Pixels that count; grey in the truth column.
    colours : ndarray of uint8, shape (classes, 3)
        See :func:`panel_colours`.
    titles : sequence of str, optional
        One name per tile, shown over its image.
    notes : sequence of str, optional
        One note per tile, shown over its prediction (e.g. its IoU).
    heading : str
        Figure title (e.g. the epoch).

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(images)
    fig = Figure(figsize=(9, 3 * count + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(count, 3, squeeze=False)
    for row in range(count):
        name = titles[row] if titles is not None else f"tile {row + 1}"
        panels = [(display_image(images[row], valid[row]), f"{name}: image"),
                  (_painted(truths[row], valid[row], colours), "truth"),
                  (_painted(predictions[row], None, colours),
                   f"prediction {notes[row]}" if notes is not None else "prediction")]
        for ax, (picture, label) in zip(axes[row], panels, strict=True):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.set_axis_off()
    if heading:
        fig.suptitle(heading)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=80)


def plot_history(rows: Sequence[Mapping[str, float]], path: PathLike) -> None:
    """Plot the loss and every metric per epoch, training and validation, and the learning rate.

    Parameters
    ----------
    rows : sequence of mappings
        One per epoch with ``epoch`` and the logged values (``loss``, ``val_loss``,
        ``landslide_iou``, ..., ``learning_rate``); missing or NaN values leave gaps.
    path : path
        PNG to write (replaced if it exists).

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = list(dict.fromkeys(key for row in rows for key in row))
    names = [k for k in keys if not k.startswith("val_") and k not in ("epoch", "seconds")]
    columns = min(3, max(1, len(names)))
    fig = Figure(figsize=(4.2 * columns, 3.2 * math.ceil(len(names) / columns)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(math.ceil(len(names) / columns), columns, squeeze=False).ravel()
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
    for ax, name in zip(axes, names, strict=False):
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            if key in keys:
                values = [row.get(key, math.nan) for row in rows]
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if name == "learning_rate":
            ax.set_yscale("log")
        elif f"val_{name}" in keys:
            ax.legend(fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
