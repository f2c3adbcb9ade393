"""Run the ``geoseg`` command in a child process and follow it: progress, messages, cancel.

Plain Python, no QGIS and no geoseg: TensorFlow only ever loads in the child, and this module
is tested in geoseg's own test suite. The child is started with ``--progress json`` and writes
one JSON line per step on stderr; everything else it writes is passed on line by line. Its
one-line ``Error: ...`` message becomes a :class:`GeosegError` with that message, and the JSON
line it writes before it, the message with the parameters it names marked, lets the caller
word those parameters its own way (:meth:`GeosegError.worded`).

Cancel sends SIGTERM, which geoseg handles like Ctrl-C: temporary outputs are removed and an
interrupted prediction keeps its journal for ``--resume``. A child still running after a grace
period (or any child on Windows, which has no SIGTERM) is killed, and :func:`remove_partials`
removes what it was writing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SETTING_HELP = ("Settings > Options > Processing > Providers > geoseg (or the Processing "
                "Toolbox's wrench button, then Providers > geoseg)")
"""Where QGIS 3.22 and newer show the plugin's setting (the QGIS tests check it)."""

INSTALL_HINT = (
    "install geoseg into a Python environment of its own (in a clone of geoseg: "
    "python3 -m venv .venv, then .venv/bin/pip install .) and set the path of its geoseg "
    "executable (.venv/bin/geoseg; .venv\\Scripts\\geoseg.exe on Windows) under "
    + SETTING_HELP
)

_PYTHON = re.compile(r"pythonw?(\d+(\.\d+)*)?(\.exe)?", re.IGNORECASE)
"""File names of a Python interpreter (``python3``, ``python3.11``, ``python.exe``)."""
_MISSING_MODULE = re.compile(r"No module named '?[\w.]+'?")
"""What Python says of a module it cannot import (geoseg, or one geoseg needs)."""
_PARAMETER = re.compile(r"\[\[(\w+)\]\]")
"""How geoseg marks a parameter in the message of its JSON error line."""

# Variables QGIS sets for its own Python, GDAL and PROJ; geoseg's environment brings its own
# (a PROJ database of another version breaks every CRS).
_QGIS_ONLY = ("PYTHONHOME", "PYTHONPATH", "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB",
              "PROJ_DATA")


class GeosegError(Exception):
    """geoseg is missing or failed; the message is meant for the user.

    Attributes
    ----------
    template : str or None
        geoseg's message with each parameter it names marked ``[[name]]`` (its JSON error
        line), when it wrote one.
    """

    def __init__(self, message: str, template: str | None = None):
        super().__init__(message)
        self.template = template

    def worded(self, wording: Callable[[str], str | None]) -> str:
        """The message with each parameter named by ``wording(name)``; geoseg's own words
        (the command line's flags) when there is no template or ``wording`` gives None for
        one of its parameters.

        >>> error = GeosegError("x.tif: has 4 bands; choose them with --bands",
        ...                     "x.tif: has 4 bands; choose them with [[bands]]")
        >>> error.worded({"bands": "'Bands'"}.get)
        "x.tif: has 4 bands; choose them with 'Bands'"
        >>> error.worded({}.get)
        'x.tif: has 4 bands; choose them with --bands'
        """
        if self.template is None:
            return str(self)
        words = {name: wording(name) for name in _PARAMETER.findall(self.template)}
        if None in words.values():
            return str(self)
        return _PARAMETER.sub(lambda match: str(words[match.group(1)]), self.template)


class GeosegCancelled(Exception):
    """The run was cancelled and the child has stopped.

    Attributes
    ----------
    forced : bool
        The child had to be killed (it did not stop within the grace period, or the platform
        cannot ask it to stop): its temporary outputs may be left; see :func:`remove_partials`.
    """

    def __init__(self, forced: bool):
        super().__init__("cancelled")
        self.forced = forced


@dataclass(frozen=True)
class Progress:
    """One ``--progress json`` line: ``fraction`` of the work done, ``done`` of ``total``."""

    fraction: float
    done: int
    total: int
    message: str


def _json_object(line: str) -> dict[str, Any] | None:
    """The JSON object a line holds, or None."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_error(line: str) -> str | None:
    """The message of geoseg's JSON error line, its parameters marked; None for other lines.

    >>> parse_error('{"error": "choose them with [[bands]]", "parameters": ["bands"]}')
    'choose them with [[bands]]'
    >>> parse_error('{"progress": 0.5, "done": 2, "total": 4, "message": "windows"}') is None
    True
    """
    message = (_json_object(line) or {}).get("error")
    return message if isinstance(message, str) else None


def parse_progress(line: str) -> Progress | None:
    """The progress a stderr line reports, or None for any other line.

    >>> parse_progress('{"progress": 0.5, "done": 2, "total": 4, "message": "windows"}')
    Progress(fraction=0.5, done=2, total=4, message='windows')
    >>> parse_progress("WARNING: no CRS") is None
    True
    """
    data = _json_object(line)
    try:  # None, or another JSON line, has no progress
        return Progress(float(data["progress"]), int(data["done"]), int(data["total"]),
                        str(data["message"]))
    except (KeyError, TypeError, ValueError):
        return None


def find_executable(configured: str | None) -> list[str]:
    """The command that runs geoseg: ``configured`` if set, else ``geoseg`` found on PATH.

    A Python interpreter given instead of the geoseg executable (``.venv/bin/python``) runs
    geoseg as ``python -m geoseg``.

    Raises
    ------
    GeosegError
        Not found, with the install command.
    """
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            raise GeosegError(f"{path} is a folder; the geoseg setting under {SETTING_HELP} "
                              "must name the geoseg executable itself")
        if not path.is_file():
            raise GeosegError(f"the geoseg executable {path} does not exist: {INSTALL_HINT}")
        if _PYTHON.fullmatch(path.name):
            return [str(path), "-m", "geoseg"]
        return [str(path)]
    found = shutil.which("geoseg")
    if found is None:
        raise GeosegError(f"the geoseg command was not found on PATH: {INSTALL_HINT}")
    return [found]


def child_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without QGIS's Python, GDAL and PROJ settings, with unbuffered UTF-8 output."""
    env = {key: value for key, value in base.items() if key not in _QGIS_ONLY}
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return env


def failure_message(returncode: int, stderr: Sequence[str], command: Sequence[str] = ()) -> str:
    """What to tell the user about a failed run: geoseg's own ``Error:`` line if it wrote one.

    >>> failure_message(1, ["Usage: geoseg predict", "", "Error: scene.tif: not found"])
    'scene.tif: not found'
    >>> failure_message(-9, ["loading"])
    'geoseg stopped with exit code -9; its last message: loading'
    >>> failure_message(1, ["/venv/bin/python: No module named geoseg"],
    ...                 ["/venv/bin/python", "-m", "geoseg"]).split(":")[0]
    'geoseg is not installed in the Python of /venv/bin/python (No module named geoseg)'
    """
    errors = [line for line in stderr if line.startswith("Error: ")]
    if errors:
        return errors[-1][len("Error: "):]
    matches = (_MISSING_MODULE.search(line) for line in stderr)
    missing = next((match.group(0) for match in matches if match), None)
    if list(command[1:3]) == ["-m", "geoseg"] and missing is not None:
        return (f"geoseg is not installed in the Python of {command[0]} ({missing}): set the "
                f"geoseg executable of an environment that has it under {SETTING_HELP}")
    last = next((line for line in reversed(stderr) if line.strip()), None)
    return f"geoseg stopped with exit code {returncode}" + (
        f"; its last message: {last}" if last else " and no message")


def remove_partials(outputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Remove the hidden ``.<name>.partial-*`` folders a killed geoseg left next to ``outputs``.

    Returns the folders removed. The ``.<name>.resume`` journal of a prediction is kept.
    """
    removed = []
    for output in outputs:
        out = Path(output)
        for stale in out.parent.glob(f".{out.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _pump(stream: Iterable[str], name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    for line in stream:
        lines.put((name, line.rstrip("\r\n")))
    lines.put((name, None))


def _ask_to_stop(child: subprocess.Popen[str]) -> bool:
    """Send SIGTERM; False where there is none (Windows), so the child must be killed."""
    if sys.platform == "win32":
        return False
    child.send_signal(signal.SIGTERM)
    return True


def _follow(
    child: subprocess.Popen[str],
    on_progress: Callable[[Progress], None],
    on_output: Callable[[str], None],
    on_message: Callable[[str], None],
    is_canceled: Callable[[], bool],
    grace: float,
    poll: float,
) -> tuple[list[str], str | None, bool, bool]:
    """Pass the child's lines on until it closes its output; stop it when cancelled.

    Returns its stderr lines (not the progress or JSON error ones), the message of its JSON
    error line, whether it was asked to stop, and whether it had to be killed.
    """
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    for stream, name in ((child.stdout, "stdout"), (child.stderr, "stderr")):
        threading.Thread(target=_pump, args=(stream, name, lines), daemon=True).start()
    stderr: list[str] = []
    template: str | None = None
    open_streams = 2
    stop_deadline: float | None = None
    forced = False
    while open_streams:
        if stop_deadline is None and is_canceled():
            stop_deadline = time.monotonic() + (grace if _ask_to_stop(child) else 0.0)
        if stop_deadline is not None and not forced and time.monotonic() >= stop_deadline:
            child.kill()
            forced = True
        try:
            name, line = lines.get(timeout=poll)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
        elif name == "stdout":
            on_output(line)
        else:
            progress = parse_progress(line)
            if progress is not None:
                on_progress(progress)
            elif (error := parse_error(line)) is not None:
                template = error
            else:
                stderr.append(line)
                if not line.startswith("Error: "):
                    on_message(line)
    return stderr, template, stop_deadline is not None, forced


def read_geoseg(command: Sequence[str], *, timeout: float = 60.0,
                env: Mapping[str, str] | None = None) -> str:
    """Run a short geoseg command that reports (``geoseg models --json``) and return what it
    wrote on standard output.

    Raises
    ------
    GeosegError
        It could not start, failed (with geoseg's own message) or took over ``timeout``
        seconds.
    """
    try:
        done = subprocess.run(
            list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            encoding="utf-8", errors="replace", timeout=timeout,
            env=child_environment(os.environ if env is None else env),
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0), check=False)
    except OSError as exc:
        raise GeosegError(f"{command[0]} could not be started ({exc}): {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise GeosegError(f"{' '.join(command)} did not answer in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise GeosegError(failure_message(done.returncode, done.stderr.splitlines()))
    return done.stdout


def run_geoseg(
    command: Sequence[str],
    *,
    on_progress: Callable[[Progress], None],
    on_output: Callable[[str], None],
    on_message: Callable[[str], None],
    is_canceled: Callable[[], bool],
    grace: float = 60.0,
    poll: float = 0.1,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``command`` (a geoseg command line with ``--progress json``) to its end.

    Parameters
    ----------
    command : sequence of str
        The executable and its arguments.
    on_progress : callable
        Receives each :class:`Progress` line.
    on_output : callable
        Receives each line of standard output (geoseg's results).
    on_message : callable
        Receives each other line of standard error (warnings, notes), but not the ``Error:``
        line, which the exception carries.
    is_canceled : callable
        Polled every ``poll`` seconds; when it turns true the child is asked to stop.
    grace : float
        Seconds a child asked to stop may take to clean up before it is killed.
    poll : float
        Seconds between checks of ``is_canceled``.
    env : mapping, optional
        Environment of the child before :func:`child_environment` [default: this process's].

    Raises
    ------
    GeosegError
        The child could not start or exited with an error (the message is geoseg's own, its
        ``template`` the message of geoseg's JSON error line).
    GeosegCancelled
        ``is_canceled`` turned true and the child has stopped.
    """
    try:
        child = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1,
            env=child_environment(os.environ if env is None else env),
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except OSError as exc:
        raise GeosegError(f"{command[0]} could not be started ({exc}): {INSTALL_HINT}") from None
    with child:  # closes the pipes and waits for the child
        try:
            stderr, template, stopped, forced = _follow(
                child, on_progress, on_output, on_message, is_canceled, grace, poll)
        except BaseException:  # a callback failed: do not leave the child running
            child.kill()
            raise
    returncode = child.returncode
    if stopped and returncode != 0:  # a run that ended before it could stop is complete
        raise GeosegCancelled(forced)
    if returncode != 0:
        raise GeosegError(failure_message(returncode, stderr, command), template)
