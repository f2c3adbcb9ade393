"""The ``geoseg`` command line: a thin click layer over the library.

Each subcommand lives in :mod:`geoseg.commands` (one module per command, like rasterio's
``rio``); this module builds the group and turns library errors into one-line messages with a
non-zero exit. No geospatial logic lives here.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import warnings
from typing import Any

import click

from geoseg import __version__
from geoseg.errors import GeosegError, param

# Subcommand name -> module under geoseg.commands that defines a click command of that name
# (a hyphen in the name is an underscore in the module).
COMMANDS: dict[str, str] = {
    "predict": "predict",
    "vectorize": "vectorize",
    "info": "info",
    "models": "models",
    "preview": "preview",
    "export": "export",
    "quantize": "quantize",
    "tile": "tile",
    "train": "train",
    "evaluate": "evaluate",
    "sample": "shipped",
    "configs": "shipped",
    "qgis-plugin": "shipped",
}


FLAGS: dict[str, str] = {
    "probabilities_path": "--probabilities",
    "uncertainty_path": "--uncertainty",
    "vector_path": "--vector",
    "preview_path": "--preview",
    "out_path": "--out",
    "scheduler": "--dask-scheduler",
    "chip_format": "--format",
}
"""Library parameter names whose command-line flag is not ``--`` plus the name in kebab case."""


def flag(name: str) -> str:
    """The command-line flag of a library parameter: ``require_crs`` -> ``--require-crs``.

    >>> flag("require_crs"), flag("probabilities_path")
    ('--require-crs', '--probabilities')
    """
    return FLAGS.get(name, "--" + name.replace("_", "-"))


class _SayOnce(logging.Filter):
    """Lets each distinct warning through once per run (one scene, several outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def _warning_as_log(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, file: object = None, line: str | None = None) -> None:
    """Python warnings of other libraries (pyogrio, rasterio) as one geoseg warning line."""
    logging.getLogger("geoseg").warning("%s", str(message).splitlines()[0])


def _report_for_programs(ctx: click.Context, error: GeosegError) -> None:
    """With ``--progress json``, a JSON line before the ``Error:`` line: the message with the
    parameters it names marked (:func:`geoseg.errors.param`) and their names, so a program
    running geoseg (the QGIS plugin) can name them its own way."""
    from geoseg.commands.options import PROGRESS_KEY

    if ctx.meta.get(PROGRESS_KEY) == "json":
        click.echo(json.dumps({"error": error.worded(param), "parameters": error.parameters}),
                   err=True)


class GeosegGroup(click.Group):
    """A group that loads its subcommands lazily and reports library errors in one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"geoseg.commands.{module_name}")
        command: click.Command = getattr(module, cmd_name.replace("-", "_"))
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeosegError as exc:
            _report_for_programs(ctx, exc)
            raise click.ClickException(exc.worded(flag)) from exc
        except KeyboardInterrupt:
            click.echo("Interrupted: no complete output was written (geoseg predict continues "
                       "with --resume)", err=True)
            ctx.exit(130)


@click.group(name="geoseg", cls=GeosegGroup,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoseg")
@click.option("-v", "--verbose", count=True, help="More log messages (repeat for debug).")
def cli(verbose: int) -> None:
    """Find landslides in whole georeferenced scenes.

    Tile GeoTIFFs, predict with a FlexUNet, stitch the tiles back into a GeoTIFF aligned with
    the scene, and vectorise the mask into polygons for GIS.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, _SayOnce)]:
            handler.removeFilter(old)
        handler.addFilter(_SayOnce())  # new each run: an earlier run's warnings may be repeated
    warnings.showwarning = _warning_as_log
    if verbose < 2:
        # TensorFlow's C++ start-up chatter is not for users.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _interrupt(signum: int, frame: object) -> None:
    """Handle SIGTERM as Ctrl-C, so the same cleanup runs.

    A Cancel in QGIS, ``kill`` or a job scheduler's stop then removes the temporary outputs
    and keeps the predict journal for ``--resume``. Further signals are ignored so they cannot
    break that cleanup off half way.
    """
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGTERM, _interrupt)
    cli()
