"""Splitting one landslide region into the landslides it holds: a seeded watershed.

A region that the probability map joins (two landslides side by side, bridged by pixels above
the threshold) is flooded from markers, and each marker's basin becomes a region of its own.
The flooded surface is the probability (``markers="peaks"``: landslides are separated along the
probability's valleys) or the distance to the region's edge (``markers="distance"``: along
its narrow necks). Markers are the plateaus of local maxima of that surface that are higher
than a minimum, spaced by a minimum distance (:func:`skimage.feature.peak_local_max`, the
highest first) and, optionally, prominent: standing a given height above the saddle to a
higher (or as high) maximum. Markers that are not are merged with it, or dropped: the markers
are grouped by the regional maxima of the surface lowered by the prominence and rebuilt under
itself (the h-maxima, by :func:`skimage.morphology.reconstruction`).

Everything here works on the region's bounding box alone, so a region is split the same way
whether the raster is processed whole or in blocks (:mod:`geoseg.postprocessing.postprocess`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

from geoseg.postprocessing.components import STRUCTURES
from geoseg.postprocessing.postprocess_recipe import PostProcessing

__all__ = ["split_region"]


def _surface(inside: NDArray[np.bool_], prob: NDArray[np.float64], recipe: PostProcessing,
             pixel_size: float) -> NDArray[np.float64]:
    """What the watershed floods (from its maxima down), 0 outside the region."""
    if recipe.markers == "peaks":
        return np.where(inside, prob, 0.0)
    # Padded so that the box's edge counts as outside the region, as the raster's edge does.
    distance = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
    return np.asarray(distance, dtype=np.float64) * pixel_size


def _markers(surface: NDArray[np.float64], inside: NDArray[np.bool_], recipe: PostProcessing,
             pixel_size: float) -> tuple[NDArray[np.int32], int]:
    """The markers (1..n, 0 elsewhere): whole plateaus of the maxima kept, grouped by
    prominence."""
    plateaus = _maxima(surface, inside)
    spacing = max(1, round(recipe.marker_min_distance_m / pixel_size))
    peaks = peak_local_max(surface, min_distance=spacing, threshold_abs=recipe.marker_min_height,
                           exclude_border=False, labels=inside.astype(np.uint8))
    chosen = np.zeros(plateaus.max() + 1, dtype=bool)
    chosen[plateaus[tuple(peaks.T)]] = True
    chosen[0] = False
    seeds = np.where(chosen[plateaus], plateaus, 0)
    if recipe.marker_prominence > 0:
        lowered = reconstruction(surface - recipe.marker_prominence, surface, method="dilation",
                                 footprint=STRUCTURES[8])
        seeds = np.where(seeds > 0, _maxima(lowered, inside), 0)
    groups, inverse = np.unique(seeds, return_inverse=True)
    markers: NDArray[np.int32] = inverse.reshape(seeds.shape).astype(np.int32)
    if groups[0] != 0:  # no pixel outside the markers (a region of one plateau): all one
        markers += 1
    return markers, int(np.count_nonzero(groups))


def _maxima(surface: NDArray[np.float64], inside: NDArray[np.bool_]) -> NDArray[np.int32]:
    """The plateaus of the local maxima of ``surface`` in the region, numbered 1..n."""
    found = local_maxima(surface, connectivity=2, allow_borders=True) & inside
    plateaus: NDArray[np.int32] = ndimage.label(found, STRUCTURES[8])[0]
    return plateaus


def split_region(inside: NDArray[np.bool_], prob: NDArray[np.float64], recipe: PostProcessing,
                 pixel_size: float) -> tuple[NDArray[np.int32], int]:
    """Split the region ``inside`` (its bounding box) by a watershed from markers.

    Parameters
    ----------
    inside : ndarray of bool
        The region's pixels in its bounding box (one 8-connected region).
    prob : ndarray of float
        Landslide probabilities on the same box.
    recipe : PostProcessing
        The markers' kind, height, spacing and prominence.
    pixel_size : float
        Metres per pixel (distances of the recipe are in metres).

    Returns
    -------
    parts : ndarray of int32
        1..count inside the region (numbered as their markers, in raster order of the
        markers' first pixels), 0 outside it.
    count : int
        Number of parts: 1 when the region has fewer than two markers (it stays whole).
    """
    surface = _surface(inside, prob, recipe, pixel_size)
    markers, count = _markers(surface, inside, recipe, pixel_size)
    if count < 2:
        return inside.astype(np.int32), 1
    # 8-connected flooding reaches every pixel of an 8-connected region.
    parts = watershed(-surface, markers, mask=inside, connectivity=2)
    return parts.astype(np.int32), count
