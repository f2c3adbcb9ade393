"""Options shared by several commands, defined once so they mean the same thing everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

overwrite_opt = click.option(
    "--overwrite",
    is_flag=True,
    default=False,
    help="Replace outputs that exist already (refused by default).",
)

tile_size_opt = click.option(
    "--tile-size",
    type=click.IntRange(min=16),
    default=None,
    help="Tile side in pixels [default: the model's, else 512].",
)

overlap_opt = click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=None,
    help="Pixels shared by neighbouring tiles [default: the model's recommended overlap].",
)

tta_opt = click.option(
    "--tta",
    type=click.Choice(["none", "flips", "d4"]),
    default="none",
    show_default=True,
    help="Test-time augmentation: average each tile's probabilities over its flipped (flips: "
    "4 model calls per tile) or flipped and rotated (d4: 8 calls) copies before blending.",
)


class BandListType(click.ParamType):
    """A comma-separated list of 1-based band indexes, such as ``1,2,3``."""

    name = "BANDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        try:
            bands = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a list of band numbers such as 1,2,3", param, ctx)
        if not bands or min(bands) < 1:
            self.fail(f"{value!r}: band numbers start at 1", param, ctx)
        return bands


bands_opt = click.option(
    "--bands",
    type=BandListType(),
    default=None,
    help="Comma-separated 1-based bands to feed the model, in the model's order, e.g. 1,2,3 "
    "[default: the bands the model was trained on].",
)

existing_file = click.Path(exists=True, dir_okay=False, readable=True)
"""An input file that must exist (click reports a missing one in one line)."""


class RasterInputType(click.ParamType):
    """An existing raster file, or a GDAL virtual path (``/vsizip/...``, ``/vsicurl/...``).

    Virtual paths are passed to GDAL unchecked; it reports them when it opens them.
    """

    name = "RASTER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if text.startswith("/vsi"):
            return text
        return existing_file.convert(value, param, ctx)


raster_input = RasterInputType()
"""A scene argument: an existing file or a GDAL virtual file system path."""


class ProgressBar:
    """A click progress bar on stderr, created when the library first reports a total.

    Use as a context manager; pass the instance as the library's ``progress(done, total)``
    callback. Disabled, it does nothing (for ``--quiet`` and scripts).
    """

    def __init__(self, label: str, enabled: bool = True):
        self.label = label
        # Off when stderr is not a terminal: a log file would get a bare label, no progress.
        self.enabled = enabled and click.get_text_stream("stderr").isatty()
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self.label, show_pos=True,
                                          show_eta=True, file=click.get_text_stream("stderr"))
            self._bar.__enter__()
        self._bar.update(done)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
