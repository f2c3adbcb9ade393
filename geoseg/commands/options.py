"""Options shared by several commands, defined once so they mean the same thing everywhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import click

from geoseg.bundled import BUNDLED_MODELS, DEFAULT_MODEL, resolve_model
from geoseg.model_archive import folder_error, read_settings
from geoseg.postprocess_recipe import PostProcessing, with_overrides
from geoseg.predictor import BACKENDS, DEVICES, PRECISIONS

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
    help="Pixels shared by neighbouring tiles [default: the model's recommended overlap, else "
         "an eighth of the tile].",
)

vectorize_workers_opt = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes polygonising blocks of the mask at the same time [default: all cores]; "
    "the polygons do not depend on it.",
)

batch_size_opt = click.option(
    "--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
    help="Tiles per model call (windows larger than a tile: as many as hold their pixels, at "
    "least one).",
)

device_opt = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="Where the model runs; auto uses a GPU when one is visible.",
)

precision_opt = click.option(
    "--precision", type=click.Choice(PRECISIONS), default="auto",
    show_default=True,
    help="bfloat16: faster on CPUs with bfloat16 instructions and recent GPUs; int8: the "
    "model's int8 version (bundled models ship theirs; geoseg quantize and geoseg train make "
    "one) on openvino and the CPU, ~3x as fast on CPUs with VNNI or AMX; both give "
    "probabilities slightly different from float32's. auto: int8 when the CPU has VNNI or "
    "AMX int8 instructions and the model an int8 version, else float32.",
)

backend_opt = click.option(
    "--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
    help="What runs the model: keras (TensorFlow), openvino, onnx (ONNX Runtime) or tflite "
    "(LiteRT), the last three on a conversion made once and cached next to the model; auto: "
    "openvino (installed with geoseg: same masks, faster, starts without TensorFlow), but "
    "keras when the NVIDIA driver lists a GPU or openvino is missing.",
)


class WindowChoiceType(click.ParamType):
    """``auto``, ``tile`` or a window side in pixels (:data:`geoseg.tiling.WindowChoice`)."""

    name = "auto|tile|PIXELS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value in ("auto", "tile"):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not auto, tile or a number of pixels", param, ctx)


window_opt = click.option(
    "--window",
    type=WindowChoiceType(),
    default="auto",
    show_default=True,
    help="Side of the windows the model predicts, with the model's overlap. auto: 2048 "
    "pixels for models of up to 8 base filters, as many pixels times filters for wider ones "
    "(1024 for 32), or the model's tile if larger (keras and openvino backends; the tile on "
    "the others); tile: the model's tile, the least memory; or pixels, a multiple of the "
    "model's size step. Larger windows predict less of the scene twice; a model call holds "
    "as many pixels as --batch-size tiles, or one window.",
)

resolution_opt = click.option(
    "--resolution",
    metavar="native|auto|METRES",
    default="native",
    show_default=True,
    help="Pixel size the model predicts at. native: the scene's own; auto: the model's "
    "training pixel size when the scene's differs by more than 1.25x (else, or when either is "
    "unknown, native); or metres (at most 16x the scene's pixels). The scene is read "
    "resampled (averaged when coarser, bilinear when finer) and the probabilities resampled "
    "back: the outputs are always on the scene's grid.",
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

display_bands_opt = click.option(
    "--bands",
    type=BandListType(),
    default=None,
    help="Comma-separated 1-based bands to show as red, green and blue, e.g. 4,3,2 for "
    "false colour; one band shows grey [default: the first three bands].",
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


class ModelInputType(click.ParamType):
    """A geoseg ``.keras`` model file, or the name of a bundled model
    (:data:`geoseg.bundled.BUNDLED_MODELS`); converted to the model file's path."""

    name = "MODEL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = resolve_model(str(value))
        if path.is_dir():
            self.fail(str(folder_error(path)), param, ctx)
        if not path.is_file():
            self.fail(f"{value}: no such model file; give a .keras model or the name of a "
                      f"bundled model ({BUNDLED_NAMES})", param, ctx)
        return str(path)


model_input = ModelInputType()
"""A ``--model``: a model file or a bundled model's name."""

BUNDLED_NAMES = ", ".join(BUNDLED_MODELS)

grid_model_opt = click.option(
    "-m", "--model", "model_path",
    type=model_input,
    default=None,
    help=f"Take the tile size and overlap from this geoseg model (a .keras file, or a bundled "
    f"model: {BUNDLED_NAMES}).",
)


model_opt = click.option(
    "-m", "--model", "model_path", type=model_input, default=DEFAULT_MODEL, show_default=True,
    help=f"Trained geoseg .keras model, or a bundled model: {BUNDLED_NAMES} (demo has seen "
    "only synthetic scenes; hokkaido-iburi real 8-bit RGB imagery, see geoseg info "
    "hokkaido-iburi).",
)


def _stderr() -> TextIO:
    """The standard error stream (``CliRunner`` swaps it for its own while it runs)."""
    return sys.stderr


PROGRESS_KEY = "geoseg.progress"
"""Where ``--progress`` leaves its choice in the click context's ``meta``."""


def _remember_progress(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta[PROGRESS_KEY] = value
    return value


progress_opt = click.option(
    "--progress", "progress_format", type=click.Choice(["bar", "json"]), default="bar",
    show_default=True, expose_value=False, callback=_remember_progress,
    help="bar: a progress bar on a terminal; json: one JSON line per step on stderr, "
    '{"progress": 0.42, "done": 21, "total": 50, "message": "windows"}, for programs that run '
    "geoseg (shown even with --quiet), and before an Error: line its message as JSON with the "
    'parameters it names marked, {"error": "... [[bands]]", "parameters": ["bands"]}.',
)
"""``--progress bar|json``, read by :class:`ProgressBar`; commands need no parameter for it."""


class ProgressBar:
    """Progress on stderr: a click progress bar, or JSON lines with ``--progress json``.

    Use as a context manager; pass the instance as the library's
    ``progress(just_done, total)`` callback. The bar is drawn only on a terminal and when
    ``enabled`` (off for ``--quiet``); JSON lines are written whenever the command was given
    ``--progress json``, at most one per thousandth of the total plus the last one.
    """

    def __init__(self, label: str, enabled: bool = True):
        self.label = label
        ctx = click.get_current_context(silent=True)
        self.json = ctx is not None and ctx.meta.get(PROGRESS_KEY) == "json"
        # Off when stderr is not a terminal: a log file would get a bare label, no progress.
        self.enabled = enabled and not self.json and _stderr().isatty()
        self._bar: Any = None
        self._done = 0
        self._step = -1

    def __call__(self, done: int, total: int) -> None:
        if self.json:
            self._emit(done, total)
            return
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self.label, show_pos=True,
                                          show_eta=True, file=_stderr())
            self._bar.__enter__()
        self._bar.update(done)

    def _emit(self, done: int, total: int) -> None:
        self._done += done
        fraction = min(1.0, self._done / total) if total > 0 else 1.0
        step = int(fraction * 1000)
        if step == self._step:
            return
        self._step = step
        line = json.dumps({"progress": round(fraction, 4), "done": self._done, "total": total,
                           "message": self.label})
        click.echo(line, err=True)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def postprocessing_opts(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that change the model's stored post-processing, value by value (read
    with :func:`postprocessing_choice`)."""
    for option in reversed([
        click.option("--seed-threshold", type=click.FloatRange(0.0, 1.0, min_open=True),
                     default=None,
                     help="Keep a landslide region only if its highest probability reaches "
                          "this (hysteresis: regions grow down to --threshold) [default: the "
                          "model's post-processing (geoseg info), else every region]."),
        click.option("--min-region-area", type=click.FloatRange(min=0.0), default=None,
                     help="Drop landslide regions smaller than this many m² from the mask "
                          "[default: the model's post-processing, else 0]."),
        click.option("--fill-region-holes", type=click.FloatRange(min=0.0), default=None,
                     help="Fill holes of up to this many m² in landslide regions of the mask "
                          "[default: the model's post-processing, else 0]."),
        click.option("--no-postprocessing", is_flag=True,
                     help="The mask is the threshold alone, whatever the model stores."),
    ]):
        command = option(command)
    return command


def postprocessing_choice(model_path: str, seed_threshold: float | None,
                          min_region_area: float | None, fill_region_holes: float | None,
                          no_postprocessing: bool) -> PostProcessing | None:
    """The run's post-processing from :func:`postprocessing_opts`: None (the model's own)
    when none is given, the threshold alone with --no-postprocessing, else the model's recipe
    with the values given."""
    if no_postprocessing:
        if (seed_threshold, min_region_area, fill_region_holes) != (None, None, None):
            raise click.UsageError("--no-postprocessing goes without --seed-threshold, "
                                   "--min-region-area and --fill-region-holes")
        return PostProcessing()
    if (seed_threshold, min_region_area, fill_region_holes) == (None, None, None):
        return None
    stored = read_settings(resolve_model(model_path)).postprocessing_recipe()
    return with_overrides(stored, seed_threshold=seed_threshold, min_area_m2=min_region_area,
                          max_hole_m2=fill_region_holes)
