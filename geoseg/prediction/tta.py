"""Test-time augmentation: average a model's probabilities over flipped and rotated tiles.

:class:`TTAPredictor` wraps any batch predictor (the
:class:`~geoseg.model.model_protocol.BatchPredictor` protocol: ``(n, size, size, bands)`` float32 ->
``(n, size, size, classes)``, with ``batch_size``) and is one itself, so tiling, blending
and writing do not change. Each batch is predicted once per transform of the dihedral group
D4 that the mode names, every result is turned back onto the tile's own pixel grid, and the
probabilities are averaged; the tiles are then blended as usual. Transforms are applied one
after the other, so memory is that of one batch plus one accumulator: ``d4`` costs 8 model
calls per batch, not 8 times the memory.

Modes (:data:`TTA_MODES`):

``none``
    The model alone.
``flips``
    Identity, left-right flip, up-down flip and both (4 calls).
``d4``
    The 8 symmetries of the square: 4 rotations by 90 degrees, with and without a flip.

With ``spread``, the predictor also returns the standard deviation of the landslide
probability across the transforms (population, computed in float64 with Welford's update, so a
predictor that answers the same for every transform gives exactly 0) as one more channel,
blended like the probabilities and written as the uncertainty raster
(:mod:`geoseg.prediction.uncertainty`).

This module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal, Protocol

import numpy as np

from geoseg.errors import InputError, ParameterError, param
from geoseg.prediction.uncertainty import landslide_channel

__all__ = ["TTA_MODES", "TTAMode", "TTAPredictor", "transforms", "with_tta"]

TTAMode = Literal["none", "flips", "d4"]
TTA_MODES: Final[tuple[str, ...]] = ("none", "flips", "d4")

Transform = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
"""``(forward, inverse)`` on ``(n, rows, cols, channels)`` arrays."""


class _Predictor(Protocol):
    batch_size: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def _d4(turns: int, flip: bool) -> Transform:
    """Rotate by ``turns`` quarter turns, after a left-right flip if ``flip``."""

    def forward(x: np.ndarray) -> np.ndarray:
        return np.rot90(x[:, :, ::-1] if flip else x, turns, axes=(1, 2))

    def inverse(y: np.ndarray) -> np.ndarray:
        back = np.rot90(y, -turns, axes=(1, 2))
        return back[:, :, ::-1] if flip else back

    return forward, inverse


def transforms(mode: str) -> list[Transform]:
    """The ``(forward, inverse)`` pairs of a mode, identity first.

    Raises
    ------
    ParameterError
        Unknown mode.

    Examples
    --------
    >>> [len(transforms(m)) for m in TTA_MODES]
    [1, 4, 8]
    """
    if mode == "none":
        return [_d4(0, False)]
    if mode == "flips":  # identity, left-right, up-down (= left-right then a half turn), both
        return [_d4(0, False), _d4(0, True), _d4(2, True), _d4(2, False)]
    if mode == "d4":
        return [_d4(turns, flip) for flip in (False, True) for turns in range(4)]
    raise ParameterError(f"{param('tta')}: {mode!r} is not one of {', '.join(TTA_MODES)}")


class TTAPredictor:
    """A batch predictor averaging ``predictor`` over the transforms of ``mode``.

    Parameters
    ----------
    predictor : BatchPredictor
        Takes square tiles ``(n, size, size, bands)``.
    mode : {"none", "flips", "d4"}
    spread : bool
        Append the landslide probability's standard deviation across the transforms as a
        last channel.

    Raises
    ------
    ParameterError
        Unknown mode.
    """

    def __init__(self, predictor: _Predictor, mode: str, spread: bool = False) -> None:
        self.transforms = transforms(mode)
        self.predictor = predictor
        self.mode = mode
        self.spread = spread
        self.batch_size = predictor.batch_size
        self.runtime: str | None = getattr(predictor, "runtime", None)
        """The wrapped predictor's runtime (the TTA mode is a prediction option)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Mean probabilities ``(n, size, size, classes)`` float32 over the transforms (with
        ``spread``, ``classes + 1`` channels: the spread last)."""
        if batch.ndim != 4 or batch.shape[1] != batch.shape[2]:
            raise InputError(f"test-time augmentation needs square tiles (n, size, size, "
                             f"bands), got shape {batch.shape}")
        total: np.ndarray | None = None
        spread = _Spread()
        for forward, inverse in self.transforms:
            probs = inverse(np.asarray(self.predictor(np.ascontiguousarray(forward(batch)))))
            if total is None:
                total = probs.astype(np.float32, copy=True)
            else:
                total += probs
            if self.spread:
                spread.add(probs[..., landslide_channel(probs.shape[-1])])
        assert total is not None  # at least the identity
        if len(self.transforms) > 1:
            total /= np.float32(len(self.transforms))
        if self.spread:
            return np.concatenate([total, spread.deviation()[..., None]], axis=-1)
        return total


class _Spread:
    """Running population standard deviation of arrays (Welford's update, float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | float = 0.0
        self.squares: np.ndarray | float = 0.0

    def add(self, values: np.ndarray) -> None:
        """Take one more array of values."""
        self.count += 1
        delta = values.astype(np.float64) - self.mean
        self.mean = self.mean + delta / self.count
        self.squares = self.squares + delta * (values - self.mean)

    def deviation(self) -> np.ndarray:
        """The standard deviation of the arrays taken, float32."""
        return np.sqrt(np.asarray(self.squares) / max(self.count, 1)).astype(np.float32)


def with_tta(predictor: _Predictor, mode: str, spread: bool = False) -> _Predictor:
    """``predictor`` itself for mode ``none``, else a :class:`TTAPredictor` around it (with
    ``spread``: appending the spread across the transforms, :class:`TTAPredictor`).

    Raises
    ------
    ParameterError
        Unknown mode.
    """
    transforms(mode)  # checks the name
    return predictor if mode == "none" else TTAPredictor(predictor, mode, spread)
