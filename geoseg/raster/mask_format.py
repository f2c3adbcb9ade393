"""What geoseg's class masks and probability GeoTIFFs hold: nodata values, scale and tags.

Written by :mod:`geoseg.prediction.predict`, read back by :mod:`geoseg.vectors.vectorize`,
:mod:`geoseg.evaluation.evaluate` and any GIS: one definition for both sides.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CLASS_NAMES_TAG",
    "MASK_NODATA",
    "MODEL_TAG",
    "PROBABILITY_NODATA",
    "PROBABILITY_SCALE",
    "SETTINGS_TAG",
    "classify",
]

MASK_NODATA = 255
"""Class-mask value for pixels without scene data."""
PROBABILITY_NODATA = 255
"""uint8 probability value for pixels without scene data (probabilities use 0..254)."""
PROBABILITY_SCALE = 254
"""uint8 probabilities store ``round(p * 254)``; the GeoTIFF's scale factor undoes it."""
CLASS_NAMES_TAG = "GEOSEG_CLASS_NAMES"
"""Dataset tag holding the JSON list of class names, read back by the vectoriser."""
MODEL_TAG = "GEOSEG_MODEL"
"""Dataset tag naming the model file that made the prediction."""
SETTINGS_TAG = "GEOSEG_MODEL_SETTINGS"
"""Dataset tag holding the model's settings as JSON."""


def classify(probs: np.ndarray, valid: np.ndarray, threshold: float | None) -> np.ndarray:
    """The class mask of probabilities ``(K, h, w)``: the most probable class, or landslide
    (class 1) where its probability is >= ``threshold``; :data:`MASK_NODATA` where not
    ``valid``.

    Comparisons with NaN (from a broken model) are false: class 0 for one- and two-class
    models; for more classes a NaN probability never wins.

    >>> probs = np.array([[[0.6, 0.4, 0.5]], [[0.4, 0.6, 0.5]]])
    >>> valid = np.array([[True, True, False]])
    >>> classify(probs, valid, None), classify(probs, valid, 0.3)
    (array([[  0,   1, 255]], dtype=uint8), array([[  1,   1, 255]], dtype=uint8))
    """
    if not valid.any():  # a part of the scene without data, as most of a sparse one
        return np.full(valid.shape, MASK_NODATA, dtype=np.uint8)
    if probs.shape[0] == 1:
        classes = probs[0] >= (0.5 if threshold is None else threshold)
    elif threshold is not None:
        classes = probs[1] >= threshold
    elif probs.shape[0] == 2:
        classes = probs[1] > probs[0]  # argmax: a tie goes to the first class
    else:
        classes = np.argmax(np.nan_to_num(probs, nan=-np.inf), axis=0)
    mask = classes.astype(np.uint8)
    np.copyto(mask, MASK_NODATA, where=~valid)  # many times faster than mask[~valid] = ...
    return mask
