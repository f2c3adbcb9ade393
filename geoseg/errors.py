"""One exception hierarchy for everything geoseg raises on bad input.

Callers (the CLI, notebooks, QGIS, other tools) can catch :class:`GeosegError` to handle
"anything geoseg refuses" in one clause; the subclasses say which kind of input was at
fault. Every message is meant to be shown to a user as is: it names the file, says what
is wrong and, where possible, what to do.

A message that gives advice about a parameter names it with :func:`param`, never with a
command-line flag: shown by ``str()`` it reads as Python (``overwrite=True``, ``bands``);
the CLI shows the same error with its own flags (``--overwrite``, ``--bands``) through
:meth:`GeosegError.worded`.

>>> error = OutputExistsError(f"out.tif: exists already; pass {param('overwrite')} to replace it")
>>> str(error)
'out.tif: exists already; pass overwrite=True to replace it'
>>> error.worded(lambda name: "--" + name)
'out.tif: exists already; pass --overwrite to replace it'
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "GeosegError",
    "InputError",
    "ParameterError",
    "ConfigError",
    "ModelError",
    "OutputError",
    "DiskFullError",
    "OutputExistsError",
    "OutputIsInputError",
    "param",
]

SWITCHES = frozenset({"overwrite", "resume", "require_crs"})
"""Boolean parameters: advice to use one reads ``name=True`` in Python."""

_MARK = re.compile(r"\[\[(\w+)\]\]")


def param(name: str) -> str:
    """Name the parameter ``name`` in a message; shown in the caller's own terms.

    >>> param("bands")
    '[[bands]]'
    """
    return f"[[{name}]]"


def python_wording(name: str) -> str:
    """How a Python caller is told about a parameter: ``overwrite=True``, ``bands``."""
    return f"{name}=True" if name in SWITCHES else name


class GeosegError(Exception):
    """Base class of every error geoseg raises for bad input or settings."""

    def worded(self, wording: Callable[[str], str]) -> str:
        """The message with each :func:`param` spelled by ``wording(name)``."""
        return _MARK.sub(lambda match: wording(match.group(1)), super().__str__())

    @property
    def parameters(self) -> list[str]:
        """The parameters the message names, in order."""
        return _MARK.findall(super().__str__())

    def __str__(self) -> str:
        return self.worded(python_wording)


class InputError(GeosegError):
    """An input file (scene, labels, mask) is missing, unreadable or unsuitable."""


class ParameterError(InputError, ValueError):
    """A parameter's value is impossible (an overlap as large as the tile, a bad threshold).

    Also a :class:`ValueError`, as Python callers expect of a bad argument.
    """


class ConfigError(GeosegError):
    """A configuration file or a setting has an unknown key or an invalid value."""


class ModelError(GeosegError):
    """A model file is missing, corrupted, not a geoseg model, or does not fit the input."""


class OutputError(GeosegError):
    """An output cannot be written (missing or read-only folder, disk full, ...)."""


class DiskFullError(OutputError):
    """An output could not be written: its file system is full (or the user's quota used up)."""


class OutputExistsError(OutputError):
    """An output exists already and overwriting was not asked for."""


class OutputIsInputError(OutputError):
    """An output would replace one of the run's own inputs (refused even with overwrite)."""
