"""The per-pixel uncertainty raster of a prediction: what it holds, how it is computed, styled.

Two measures, one raster (``uncertainty_path``, ``geoseg predict --uncertainty``), on the
scene's grid and written like the probabilities (:mod:`geoseg.raster.mask_format`: uint8 storing
``round(u * 254)`` with a GDAL scale of 1/254 and nodata 255, or float32 with nodata NaN):

``entropy`` (without test-time augmentation)
    The predictive entropy of the blended class probabilities, ``-sum p log p / log K`` (a
    one-output model's ``p`` is read as the two classes ``1 - p, p``): 0 where the model is
    sure of a class, 1 where every class is equally likely (p = 0.5 for two classes). It is
    computed from the same blended probabilities the mask is classified from.
``tta_spread`` (with test-time augmentation, :mod:`geoseg.prediction.tta`)
    The standard deviation of the landslide probability across the augmented predictions of
    a tile (population, over the 4 or 8 transforms), blended across overlapping windows with
    the probabilities' weights: 0 where every flip and rotation agrees, at most 0.5. It tells
    where the model's answer depends on the orientation of the image, which a real feature's
    should not.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np

from geoseg.raster.styles import ramp_style

__all__ = [
    "UNCERTAINTY_KINDS",
    "UNCERTAINTY_TAG",
    "UncertaintyKind",
    "landslide_channel",
    "predictive_entropy",
    "uncertainty_kind",
    "uncertainty_style",
]

UncertaintyKind = Literal["entropy", "tta_spread"]
UNCERTAINTY_KINDS: Final[tuple[str, ...]] = ("entropy", "tta_spread")
UNCERTAINTY_TAG = "GEOSEG_UNCERTAINTY"
"""Dataset tag of an uncertainty raster naming its measure (one of :data:`UNCERTAINTY_KINDS`);
the vectoriser names the polygons' attribute after it."""

_RAMP_TOP: Final[dict[str, float]] = {"entropy": 1.0, "tta_spread": 0.25}
"""The value drawn at full colour: entropy's maximum; a spread of 0.25 (transforms answering
0.25 and 0.75 as often) is already a strong disagreement (the maximum, 0.5, needs answers of
0 and 1 as often)."""


def uncertainty_kind(tta: str) -> UncertaintyKind:
    """The measure a run's uncertainty raster holds: the spread across its test-time
    augmentation, else the predictive entropy."""
    return "entropy" if tta == "none" else "tta_spread"


def landslide_channel(num_classes: int) -> int:
    """The probability channel of the landslide class: the one output of a sigmoid model,
    else class 1 (as :func:`geoseg.raster.mask_format.classify` reads them)."""
    return 0 if num_classes == 1 else 1


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Normalised predictive entropy (0..1, float32) of probabilities ``(K, h, w)``.

    >>> predictive_entropy(np.array([[[0.5, 1.0, 0.0]], [[0.5, 0.0, 1.0]]])).tolist()
    [[1.0, 0.0, 0.0]]
    >>> predictive_entropy(np.array([[[0.5, 1.0]]])).tolist()  # a one-output model
    [[1.0, 0.0]]
    """
    p = np.clip(np.nan_to_num(probs.astype(np.float64), nan=0.0), 0.0, 1.0)
    if p.shape[0] == 1:
        p = np.concatenate([1.0 - p, p])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -terms.sum(axis=0) / np.log(p.shape[0])
    return (np.clip(entropy, 0.0, 1.0) + 0.0).astype(np.float32)  # + 0.0: no -0.0


def uncertainty_style(kind: UncertaintyKind) -> str:
    """The QGIS style of an uncertainty raster: transparent where certain, then yellow to
    purple, opaque at the measure's strong value (entropy 1, spread 0.25 and beyond)."""
    top = _RAMP_TOP[kind]
    return ramp_style([
        (0.0, (255, 255, 204, 0)),
        (0.1 * top, (255, 255, 204, 0)),
        (0.4 * top, (254, 178, 76, 150)),
        (0.7 * top, (227, 74, 51, 200)),
        (top, (122, 1, 119, 235)),
    ])
