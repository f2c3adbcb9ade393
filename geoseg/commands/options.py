"""Options shared by several commands, defined once so they mean the same thing everywhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, TypeVar

import click

from geoseg.model.bundled import BUNDLED_MODELS, DEFAULT_MODEL, resolve_model
from geoseg.model.model_archive import folder_error, read_settings
from geoseg.model.predictor import ModelSpec
from geoseg.postprocessing.postprocess_recipe import PostProcessing, with_overrides
from geoseg.prediction.run_parameters import RunParameter, run_parameter
from geoseg.raster.scene_paths import gdal_path, is_local

if TYPE_CHECKING:
    from geoseg.prediction.predict_options import PredictOptions

F = TypeVar("F", bound=Callable[..., Any])

overwrite_opt = click.option(
    "--overwrite",
    is_flag=True,
    default=False,
    help="Replace outputs that exist already (refused by default).",
)

vectorize_workers_opt = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes polygonising blocks of the mask at the same time [default: all cores]; "
    "the polygons do not depend on it.",
)

class WindowChoiceType(click.ParamType):
    """``auto``, ``tile`` or a window side in pixels (:data:`geoseg.raster.tiling.WindowChoice`)."""

    name = "auto|tile|PIXELS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value in ("auto", "tile"):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not auto, tile or a number of pixels", param, ctx)


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
    """An existing raster file, a URL (``https://``, ``s3://``, ``gs://``) or a GDAL virtual
    path (``/vsizip/...``, ``/vsicurl/...``); a URL becomes GDAL's path for it
    (:func:`geoseg.raster.scene_paths.gdal_path`).

    URLs and virtual paths are passed to GDAL unchecked; opening the scene reports them.
    """

    name = "RASTER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not is_local(text):
            return gdal_path(text)
        return existing_file.convert(value, param, ctx)


raster_input = RasterInputType()
"""A scene argument: an existing file, a URL or a GDAL virtual file system path."""


class ModelInputType(click.ParamType):
    """A geoseg ``.keras`` model file, or the name of a bundled model
    (:data:`geoseg.model.bundled.BUNDLED_MODELS`); converted to the model file's path."""

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


def run_option(name: str) -> Callable[[F], F]:
    """The option of the run parameter ``name``, built from its one description
    (:data:`geoseg.prediction.run_parameters.RUN_PARAMETERS`): flag, type and range, default,
    help."""
    parameter = run_parameter(name)
    return click.option(parameter.flag, type=_click_type(parameter), default=parameter.default,
                        show_default=True if parameter.default is not None else None,
                        help=parameter.help,
                        metavar=parameter.metavar)


def _click_type(parameter: RunParameter) -> click.ParamType:
    """The click type holding a run parameter's values to its range or choices."""
    if parameter.kind == "int":
        return click.IntRange(min=_bound(parameter.minimum), max=_bound(parameter.maximum),
                              min_open=parameter.min_open)
    if parameter.kind == "float":
        return click.FloatRange(min=parameter.minimum, max=parameter.maximum,
                                min_open=parameter.min_open)
    if parameter.kind == "choice":
        return click.Choice(parameter.choices)
    if parameter.kind == "window":
        return WindowChoiceType()
    if parameter.kind == "bands":
        return BandListType()
    return click.STRING


def _bound(value: float | None) -> int | None:
    return None if value is None else int(value)


def run_options(*names: str) -> Callable[[F], F]:
    """The options of the run parameters ``names``, in this order in ``--help``."""
    def decorate(command: F) -> F:
        for name in reversed(names):
            command = run_option(name)(command)
        return command
    return decorate


tile_size_opt = run_option("tile_size")
overlap_opt = run_option("overlap")

PREDICTION_PARAMETERS = ("threshold", "seed_threshold", "min_region_area", "fill_region_holes",
                         "overlap", "batch_size", "bands", "tta", "window", "resolution",
                         "device", "precision", "backend")
"""The run parameters of every command that predicts scenes (``predict``, ``evaluate``)."""


def prediction_opts(command: F) -> F:
    """The options of a command that predicts scenes: :data:`PREDICTION_PARAMETERS` and
    ``--no-postprocessing``, read with :func:`model_spec` and :func:`predict_options`."""
    command = run_options(*PREDICTION_PARAMETERS[4:])(command)
    command = click.option("--no-postprocessing", is_flag=True,
                           help="The mask is the threshold alone, whatever the model "
                                "stores.")(command)
    return run_options(*PREDICTION_PARAMETERS[:4])(command)


def model_spec(model_path: str, values: dict[str, Any]) -> ModelSpec:
    """The model and how it runs, from the values of :func:`prediction_opts`."""
    return ModelSpec(Path(model_path), values["batch_size"], values["device"],
                     values["precision"], values["backend"])


def predict_options(model_path: str, values: dict[str, Any], **more: Any) -> PredictOptions:
    """The request of a run from the values of :func:`prediction_opts` (and ``more`` of
    :class:`~geoseg.prediction.predict.PredictOptions`' fields)."""
    from geoseg.prediction.predict_options import PredictOptions

    bands = values["bands"]
    return PredictOptions(
        overlap=values["overlap"], bands=tuple(bands) if bands else None,
        threshold=values["threshold"], tta=values["tta"], window=values["window"],
        resolution=values["resolution"],
        postprocessing=postprocessing_choice(
            model_path, values["seed_threshold"], values["min_region_area"],
            values["fill_region_holes"], values["no_postprocessing"]),
        **more)


def out_opt(dest: str, help: str, *, holds: Literal["file", "folder", "either"] = "file",
            required: bool = False) -> Callable[[F], F]:
    """``-o/--out``: what a command writes (a file, a folder, or ``either``, as the format
    wants), passed as the parameter ``dest``."""
    kind = {"file": click.Path(dir_okay=False), "folder": click.Path(file_okay=False),
            "either": click.Path()}[holds]
    if required:
        return click.option("-o", "--out", dest, type=kind, required=True, help=help)
    return click.option("-o", "--out", dest, type=kind, default=None, help=help)


def postprocessing_choice(model_path: str, seed_threshold: float | None,
                          min_region_area: float | None, fill_region_holes: float | None,
                          no_postprocessing: bool) -> PostProcessing | None:
    """The run's post-processing from :func:`prediction_opts`: None (the model's own)
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
