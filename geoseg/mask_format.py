"""What geoseg's class masks and probability GeoTIFFs hold: nodata values, scale and tags.

Written by :mod:`geoseg.predict`, read back by :mod:`geoseg.vectorize`, :mod:`geoseg.evaluate`
and any GIS: one definition for both sides.
"""

from __future__ import annotations

__all__ = [
    "CLASS_NAMES_TAG",
    "MASK_NODATA",
    "MODEL_TAG",
    "PROBABILITY_NODATA",
    "PROBABILITY_SCALE",
    "SETTINGS_TAG",
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
