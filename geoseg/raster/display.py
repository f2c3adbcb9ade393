"""Imagery for people: pixel values of any type as an RGB picture of 0-1 values.

Scene previews (:mod:`geoseg.prediction.preview`) and training panels
(:mod:`geoseg.training.trainplots`) show images the same way: 8-bit data as they are, anything else
stretched between the 2nd and 98th percentiles of its valid pixels; one band grey, the first three
of more bands as RGB.

This module never imports TensorFlow, matplotlib or click.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["display_image"]

STRETCH_PERCENTILES = (2, 98)
"""Percentiles of the valid pixels shown as black and white when data are not 8-bit."""


def display_image(
    image: NDArray[np.number],
    valid: NDArray[np.bool_] | None = None,
    *,
    eight_bit: bool | None = None,
) -> NDArray[np.float32]:
    """An image as 0-1 RGB for display.

    8-bit data are divided by 255; other data are stretched between the 2nd and 98th
    percentiles of the valid pixels (of all shown bands together, so colours keep their
    balance) and clipped. One or two bands show the first band grey; more than three bands
    show the first three.

    Parameters
    ----------
    image : ndarray, shape (rows, cols, bands)
        Raw pixel values, band last.
    valid : ndarray of bool, shape (rows, cols), optional
        Pixels holding data; the stretch is taken from them (from every pixel when none is
        valid). All pixels by default.
    eight_bit : bool, optional
        Whether the data are 8-bit. By default they are when every valid value lies within
        0-255: the way to tell once the source type is gone (tiles read as float32). A caller
        that knows the type (a scene's dtype) says it, so that e.g. 0-1 reflectances are
        stretched rather than shown black.

    Returns
    -------
    ndarray of float32, shape (rows, cols, 3)

    Examples
    --------
    >>> import numpy as np
    >>> display_image(np.array([[[0], [51], [255]]]))[0, :, 0].tolist()
    [0.0, 0.20000000298023224, 1.0]
    >>> reflectance = np.linspace(0.0, 0.5, 101).reshape(1, 101, 1)
    >>> picture = display_image(reflectance, eight_bit=False)
    >>> picture.dtype, [round(float(v), 3) for v in picture[0, [1, 50, 99], 0]]
    (dtype('float32'), [0.0, 0.5, 1.0])
    """
    rgb = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    data: NDArray[np.float32] = np.asarray(rgb, dtype=np.float32)
    pixels = data[valid] if valid is not None and valid.any() else data.reshape(-1, 3)
    if not pixels.size:  # an empty image
        return data
    if eight_bit is None:
        eight_bit = bool(pixels.min() >= 0 and pixels.max() <= 255)
    if eight_bit:
        return np.clip(data / 255.0, 0.0, 1.0)
    low, high = (float(v) for v in np.percentile(pixels, STRETCH_PERCENTILES))
    return np.clip((data - low) / max(high - low, 1e-12), 0.0, 1.0)
