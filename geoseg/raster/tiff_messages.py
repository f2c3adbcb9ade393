"""libtiff's error messages, kept off the terminal and remembered for geoseg's own.

GDAL hears most libtiff errors through its own handler (rasterio raises them), but libtiff
prints some straight to the standard error: a full disk gives lines such as
``_tiffWriteProc: No space left on device.`` before any Python exception, and the exception
only says ``Write failed``. :func:`capture` replaces libtiff's printing handler, once per
process, by one that keeps the last messages (:func:`messages_since`) and logs them at debug
level, so that a failed write becomes one line of geoseg's
(:func:`geoseg.raster.outputs.output_errors`).

The handler is installed in the libtiff that rasterio's GDAL uses (the one in rasterio's
wheel, else the system's); where none is found, nothing changes. This module never imports
TensorFlow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["capture", "mark", "messages_since"]

log = logging.getLogger(__name__)

_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
"""libtiff's ``TIFFErrorHandler``: ``void (*)(const char *module, const char *fmt, va_list)``."""
_MESSAGE_BYTES = 1024

_lock = threading.Lock()
_messages: deque[tuple[int, str]] = deque(maxlen=32)
_count = 0
_installed: list[object] = []  # the handler, kept alive while libtiff may call it


def capture() -> None:
    """Keep libtiff's error messages from the terminal from now on (idempotent)."""
    with _lock:
        if _installed:
            return
        try:
            _installed.append(_install())
        except (OSError, AttributeError, ImportError) as exc:  # no libtiff, C library, rasterio
            log.debug("libtiff's messages stay on the terminal: %s", exc)
            _installed.append(None)


def mark() -> int:
    """A position in the stream of messages, for :func:`messages_since`."""
    return _count


def messages_since(position: int) -> list[str]:
    """The messages libtiff gave after ``position`` (the last few), as ``module: text``."""
    with _lock:
        return [text for number, text in _messages if number >= position]


def _remember(text: str) -> None:
    global _count
    with _lock:
        _messages.append((_count, text))
        _count += 1
    log.debug("libtiff: %s", text)


def _install() -> object:
    path = next(_libtiff_paths(), None)
    if path is None:
        raise OSError("no libtiff found")
    libtiff = ctypes.CDLL(str(path))
    vsnprintf = _vsnprintf()

    @_HANDLER_TYPE
    def handler(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        buffer = ctypes.create_string_buffer(_MESSAGE_BYTES)
        if fmt is not None:
            vsnprintf(buffer, _MESSAGE_BYTES, fmt, args)
        name = (module or b"libtiff").decode(errors="replace")
        _remember(f"{name}: {buffer.value.decode(errors='replace')}")

    libtiff.TIFFSetErrorHandler.argtypes = [_HANDLER_TYPE]
    libtiff.TIFFSetErrorHandler.restype = ctypes.c_void_p
    libtiff.TIFFSetErrorHandler(handler)
    return handler


def _libtiff_paths() -> Iterator[str | Path]:
    """The libtiff rasterio's GDAL loaded: bundled in its wheel, else the system's."""
    import rasterio  # here: geoseg.raster.outputs, which imports this module, stays light

    package = Path(rasterio.__file__).parent
    for pattern in ("rasterio.libs/libtiff*", "rasterio/.dylibs/libtiff*"):
        yield from sorted(package.parent.glob(pattern))
    system = ctypes.util.find_library("tiff")
    if system is not None:
        yield system


def _vsnprintf() -> Any:
    """The C library's ``vsnprintf``, to format a message from libtiff's ``va_list``."""
    libc = ctypes.cdll.msvcrt if os.name == "nt" else ctypes.CDLL(None)
    function = libc._vsnprintf if os.name == "nt" else libc.vsnprintf
    function.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function
