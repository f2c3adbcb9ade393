"""One exception hierarchy for everything geoseg raises on bad input.

Callers (the CLI, notebooks, other tools) can catch :class:`GeosegError` to handle
"anything geoseg refuses" in one clause; the subclasses say which kind of input was at
fault. Every message is meant to be shown to a user as is: it names the file, says what
is wrong and, where possible, what to do.
"""

from __future__ import annotations

__all__ = [
    "GeosegError",
    "InputError",
    "ConfigError",
    "ModelError",
    "OutputError",
    "OutputExistsError",
]


class GeosegError(Exception):
    """Base class of every error geoseg raises for bad input or settings."""


class InputError(GeosegError):
    """An input file (scene, labels, mask) is missing, unreadable or unsuitable."""


class ConfigError(GeosegError):
    """A configuration file or a setting has an unknown key or an invalid value."""


class ModelError(GeosegError):
    """A model file is missing, corrupted, not a geoseg model, or does not fit the input."""


class OutputError(GeosegError):
    """An output cannot be written (missing or read-only folder, disk full, ...)."""


class OutputExistsError(OutputError):
    """An output exists already and overwriting was not asked for."""
