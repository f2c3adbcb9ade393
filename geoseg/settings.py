"""A model's own settings: what it was built with and what prediction needs to run it.

:class:`ModelSettings` travels inside every saved ``.keras`` file (see
:mod:`geoseg.model.flexunet`), so ``geoseg predict`` needs nothing but the model: tile size, bands,
normalisation, class names and the recommended overlap all come with it. This module does not import
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from geoseg.errors import ConfigError, GeosegError
from geoseg.postprocessing.postprocess_recipe import PostProcessing

__all__ = ["ARCHITECTURE", "AUTO_WINDOW", "AUTO_WINDOW_FILTERS", "DEFAULT_TILE_SIZE", "BandStats",
           "ModelParent", "ModelSettings", "default_class_names", "default_overlap",
           "overlap_fits"]


def default_class_names(num_classes: int) -> list[str]:
    """Names used when none are given: background/landslide for two classes.

    >>> default_class_names(2)
    ['background', 'landslide']
    >>> default_class_names(3)
    ['class_0', 'class_1', 'class_2']
    """
    if num_classes == 2:
        return ["background", "landslide"]
    if num_classes == 1:
        return ["landslide"]
    return [f"class_{i}" for i in range(num_classes)]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ConfigError(f"{name}: expected one integer or a pair such as (3,3), got {value!r}")
    return (pair[0], pair[1])


DEFAULT_TILE_SIZE = 512
"""Tile side when neither a model nor the user says otherwise."""

AUTO_WINDOW = 2048
"""The automatic window's side (:func:`geoseg.raster.tiling.resolve_window`), for models of up to
:data:`AUTO_WINDOW_FILTERS` base filters."""
AUTO_WINDOW_FILTERS = 8
"""Wider models get automatic windows of as many pixels times base filters, which their
activations, and so a model call's memory, grow with: 1440 pixels for 16 filters, 1024 for 32
and about 700 for 64."""


def default_overlap(tile_size: int) -> int:
    """The overlap geoseg uses unless told otherwise: an eighth of the tile (64 for 512).

    The one rule for every path that needs a default overlap (model settings, configs,
    ``geoseg tile`` and ``geoseg info`` without a model).

    >>> default_overlap(512), default_overlap(256), default_overlap(64)
    (64, 32, 8)
    """
    return tile_size // 8


def overlap_fits(overlap: int, tile_size: int) -> bool:
    """The one rule of an overlap, wherever it is checked (model settings, configs, the tile
    grid, a run's parameters): at least 0 and less than the tile.

    >>> overlap_fits(64, 512), overlap_fits(512, 512), overlap_fits(-1, 512)
    (True, False, False)
    """
    return 0 <= overlap < tile_size


@dataclass(frozen=True)
class BandStats:
    """What the valid training pixels of one model band looked like (raw values, before the
    model's own normalisation): quantiles, mean and standard deviation of a sample of them.

    >>> BandStats(p1=10, p50=80, p99=200, mean=85.5, std=40.25).p50
    80.0
    """

    p1: float
    """1st percentile."""
    p50: float
    """Median."""
    p99: float
    """99th percentile."""
    mean: float
    std: float

    def __post_init__(self) -> None:
        for name in ("p1", "p50", "p99", "mean", "std"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ConfigError(f"band_stats: {name} must be a finite number, got {value}")
            object.__setattr__(self, name, value)
        if not self.p1 <= self.p50 <= self.p99 or self.std < 0:
            raise ConfigError(f"band_stats: need p1 <= p50 <= p99 and std >= 0, got {self}")


@dataclass(frozen=True)
class ModelParent:
    """The model another one was fine-tuned from: its name (a bundled model's, or the file
    as given) and the SHA-256 of its file."""

    name: str
    digest: str


ARCHITECTURE: tuple[str, ...] = (
    "image_size", "image_channels", "num_classes", "base_filters", "base_kernels",
    "num_layers", "dilation", "input_normalize", "batch_norm")
"""The settings that define a FlexUNet's weights and what its inputs mean: a model is
fine-tuned only from a parent with the same ones."""


@dataclass(frozen=True)
class ModelSettings:
    """Architecture and input settings of a FlexUNet.

    Parameters
    ----------
    image_size : int
        Side of the square tiles the model takes (the tiler's ``tile_size``).
    image_channels : int
        Number of input bands.
    num_classes : int
        Output classes; softmax when > 1, sigmoid for a single class.
    base_filters : int
        Filters of the first level; doubled at each level down.
    base_kernels : (int, int)
        Kernel of the first level; shrinks by 2 per level down to 3, mirrored in the decoder.
    num_layers : int
        Levels including the bridge; ``image_size`` must be divisible by ``2**(num_layers-1)``.
    dropout_rate : float
        Dropout of the first level, growing linearly with depth (capped at 0.5).
    dilation : (int, int)
        Dilation rate of the convolutions.
    input_normalize : bool
        Divide inputs by 255 inside the model (a Rescaling layer), so 8-bit imagery goes in raw.
    batch_norm : bool
        Batch normalisation after each convolution.
    class_names : list of str
        One name per class; defaults to background/landslide for two classes.
    bands : list of int
        1-based band indexes of the scene the model was trained on, in model order.
    overlap : int
        Recommended tile overlap for prediction (at least the model's receptive-field margin);
        default ``image_size // 8`` (64 pixels for 512-pixel tiles).
    threshold : float or None
        Landslide probability threshold that prediction uses unless told otherwise: a pixel
        is landslide when its probability is >= it (two-class and sigmoid models). Chosen
        on the training tiles when training with ``[train] tune_threshold``; None (models
        saved before it existed, too) = the most probable class.
    postprocessing : dict or None
        How the model's probabilities become landslide regions: a
        :class:`~geoseg.postprocessing.postprocess_recipe.PostProcessing` as a dict (every field,
        once checked). None (models saved before it existed, too) = the threshold alone.
    pixel_size_m : float or None
        Ground size of the training pixels in metres (the side of a square pixel of the same
        area); None when unknown (models saved before geoseg recorded it, too).
    band_stats : list of BandStats or None
        Per model band, what its valid training pixels looked like (sampled); None when
        unknown. With ``pixel_size_m``, what :mod:`geoseg.raster.imagery` checks a scene against.
    parent : ModelParent or None
        The model this one was fine-tuned from (``geoseg train --init``); None when trained
        from scratch.
    """

    image_size: int = 512
    image_channels: int = 3
    num_classes: int = 2
    base_filters: int = 16
    base_kernels: tuple[int, int] = (7, 7)
    num_layers: int = 6
    dropout_rate: float = 0.05
    dilation: tuple[int, int] = (1, 1)
    input_normalize: bool = True
    batch_norm: bool = False
    class_names: list[str] = field(default_factory=list)
    bands: list[int] = field(default_factory=list)
    overlap: int | None = None
    threshold: float | None = None
    postprocessing: dict[str, Any] | None = None
    pixel_size_m: float | None = None
    band_stats: list[BandStats] | None = None
    parent: ModelParent | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        if self.band_stats is not None:
            set_(self, "band_stats", [stats if isinstance(stats, BandStats) else
                                      BandStats(**stats) for stats in self.band_stats])
        if isinstance(self.parent, Mapping):
            set_(self, "parent", ModelParent(**self.parent))
        set_(self, "base_kernels", _pair(self.base_kernels, "base_kernels"))
        set_(self, "dilation", _pair(self.dilation, "dilation"))
        if not self.class_names:
            set_(self, "class_names", default_class_names(self.num_classes))
        else:
            set_(self, "class_names", [str(n) for n in self.class_names])
        if self.overlap is None:
            set_(self, "overlap", default_overlap(self.image_size))
        if not self.bands:
            set_(self, "bands", list(range(1, self.image_channels + 1)))
        else:
            set_(self, "bands", [int(b) for b in self.bands])
        recipe = self.postprocessing_recipe()
        if recipe is not None:
            set_(self, "postprocessing", recipe.to_dict())
        self.validate()

    def validate(self) -> None:
        """Reject impossible settings with a message that says what to change.

        Raises
        ------
        ConfigError
        """
        positive = ("image_size", "image_channels", "num_classes", "base_filters", "num_layers")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        factor = self.size_step
        if self.image_size % factor:
            raise ConfigError(
                f"tile size {self.image_size} is not divisible by 2**({self.num_layers}-1)"
                f"={factor}; use {-(-self.image_size // factor) * factor} or fewer layers"
            )
        if any(k < 1 or k % 2 == 0 for k in self.base_kernels):
            raise ConfigError(f"base_kernels: {self.base_kernels} must be odd sizes, e.g. (7,7)")
        if any(d < 1 for d in self.dilation):
            raise ConfigError(f"dilation must be >= 1, got {self.dilation}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        names = self.class_names
        if len(names) != self.num_classes or len(set(names)) != len(names) or not all(
            name.strip() for name in names
        ):
            raise ConfigError(
                f"class_names {names} must be {self.num_classes} different non-empty names "
                "(one per class)"
            )
        if len(self.bands) != self.image_channels or min(self.bands) < 1:
            raise ConfigError(
                f"bands {self.bands} must list {self.image_channels} band numbers starting at 1"
            )
        if self.threshold is not None and (self.num_classes > 2
                                           or not 0.0 < self.threshold < 1.0):
            raise ConfigError(f"threshold {self.threshold} must be in (0, 1), for a model of "
                              "at most two classes")
        if self.overlap is None or not overlap_fits(self.overlap, self.image_size):
            raise ConfigError(
                f"overlap must be in [0, {self.image_size}) for {self.image_size}-pixel tiles, "
                f"got {self.overlap}"
            )
        if self.pixel_size_m is not None and not (math.isfinite(self.pixel_size_m)
                                                  and self.pixel_size_m > 0):
            raise ConfigError(f"pixel_size_m must be a number of metres > 0, got "
                              f"{self.pixel_size_m}")
        if self.band_stats is not None and len(self.band_stats) != self.image_channels:
            raise ConfigError(f"band_stats: {len(self.band_stats)} given for "
                              f"{self.image_channels} bands")

    def differences(self, other: ModelSettings, names: Sequence[str] = ARCHITECTURE
                    ) -> dict[str, tuple[Any, Any]]:
        """The settings among ``names`` that differ from ``other``'s: name -> (ours, theirs).

        >>> ModelSettings(base_filters=8).differences(ModelSettings(base_filters=16))
        {'base_filters': (8, 16)}
        """
        return {name: (getattr(self, name), getattr(other, name)) for name in names
                if getattr(self, name) != getattr(other, name)}

    def without_facts(self) -> ModelSettings:
        """These settings without the facts of the training imagery (``pixel_size_m``,
        ``band_stats``) and the parent: the network and how it reads scenes."""
        return dataclasses.replace(self, pixel_size_m=None, band_stats=None, parent=None)

    def postprocessing_recipe(self) -> PostProcessing | None:
        """The post-processing recipe the model carries, if any.

        Raises
        ------
        ConfigError
            The stored recipe is invalid.
        """
        if self.postprocessing is None:
            return None
        try:
            return PostProcessing.from_dict(self.postprocessing)
        except (GeosegError, TypeError) as exc:
            raise ConfigError(f"postprocessing: {exc}") from exc

    def kernel_sizes(self) -> list[tuple[int, int]]:
        """Kernel of each level, first to bridge: shrinking by 2 per level, never below 3.

        >>> ModelSettings(base_kernels=(11, 11), num_layers=6).kernel_sizes()[:5]
        [(11, 11), (9, 9), (7, 7), (5, 5), (3, 3)]
        """
        return [
            (max(3, self.base_kernels[0] - 2 * i), max(3, self.base_kernels[1] - 2 * i))
            for i in range(self.num_layers)
        ]

    @property
    def size_step(self) -> int:
        """What a window's side must be a multiple of: the model halves it ``num_layers - 1``
        times.

        >>> ModelSettings(num_layers=5).size_step
        16
        """
        return 2 ** (self.num_layers - 1)

    @property
    def mask_class_names(self) -> list[str]:
        """Classes of the masks: a sigmoid model's single class gets a background class 0.

        >>> ModelSettings(num_classes=1).mask_class_names
        ['background', 'landslide']
        """
        names = self.class_names
        return ["background", names[0]] if self.num_classes == 1 else list(names)

    def dropout_rates(self) -> list[float]:
        """Dropout of each level: ``dropout_rate * (level + 1)``, capped at 0.5."""
        return [min(0.5, self.dropout_rate * (i + 1)) for i in range(self.num_layers)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists; without ``postprocessing`` when there is
        none, so that the model stays readable by geoseg versions before it)."""
        data = asdict(self)
        data["base_kernels"] = list(self.base_kernels)
        data["dilation"] = list(self.dilation)
        if data["postprocessing"] is None:
            del data["postprocessing"]
        return data

    def to_json(self) -> str:
        """The settings as JSON text (stored inside saved models)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSettings:
        """Settings from a dict such as :meth:`to_dict` wrote; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model settings {unknown}; valid ones: {sorted(known)}")
        return cls(**dict(data))
