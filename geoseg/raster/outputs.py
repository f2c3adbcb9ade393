"""Safe output paths: refuse to clobber, write to a temporary name, rename when complete.

Every file geoseg writes goes through :func:`atomic_output`, so an interrupted or failed run
never leaves a half-written file under the name the user asked for. A full disk, whichever
library met it, is one line naming the file (:func:`output_errors`). The temporary folder of a
run killed outright (nothing could remove it) is removed by the next run writing the same
output, once the run that made it is provably gone (:func:`remove_stale_partials`).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import glob
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from geoseg.errors import (
    DiskFullError,
    GeosegError,
    OutputError,
    OutputExistsError,
    OutputIsInputError,
    param,
)
from geoseg.raster import tiff_messages

__all__ = [
    "PARTIAL_MARKER", "atomic_output", "check_output_path", "displayed_path", "is_same_file",
    "output_errors", "refuse_inputs", "remove_stale_partials", "temporary_sibling",
    "retried_by",
]

PARTIAL_MARKER = ".geoseg-partial"
"""The file in every temporary folder of :func:`atomic_output`: which process writes there."""

_OUT_OF_SPACE = re.compile(r"no space left on device|disk is full|disk full|"
                           r"disk quota exceeded|not enough space on the disk", re.IGNORECASE)
_NEARLY_FULL = 1 << 20
"""Free bytes below which a failed write is taken for a full disk, whatever it said."""
_GDAL_BINDINGS = frozenset({"rasterio", "pyogrio", "fiona"})
"""Packages whose errors, raised while writing, are failed writes."""
_RETRY: contextvars.ContextVar[str | None] = contextvars.ContextVar("retry", default=None)
"""How to run again after a failed write (:func:`retried_by`)."""


def is_same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: through symlinks, ``./``, hard links or letter case.

    GDAL virtual paths (``/vsi...``) are compared as text.

    >>> is_same_file("a/../b.tif", "./b.tif")
    True
    """
    a, b = os.fspath(first), os.fspath(second)
    if a.startswith("/vsi") or b.startswith("/vsi"):
        return a == b
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they lead
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def refuse_inputs(path: str | os.PathLike[str],
                  inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse an output that is one of the run's inputs (whatever ``overwrite`` says).

    Raises
    ------
    OutputIsInputError
        ``path`` names the same file as one of ``inputs``.
    """
    for source in inputs:
        if is_same_file(path, source):
            raise OutputIsInputError(
                f"{path}: is an input of this run ({source}); geoseg never writes over its "
                "inputs: choose another output name"
            )


def check_output_path(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Check that ``path`` can be written, before any work starts.

    Parameters
    ----------
    path : path
        The output file.
    overwrite : bool
        Whether an existing file may be replaced.
    inputs : paths
        The run's input files (and their sidecars): an output that is one of them is refused
        even with ``overwrite``.

    Raises
    ------
    OutputIsInputError
        ``path`` is one of ``inputs``.
    OutputExistsError
        The file exists and ``overwrite`` is False.
    OutputError
        The folder does not exist, is not a folder, or is not writable; or ``path`` is a folder.
    """
    out = Path(path)
    refuse_inputs(out, inputs)
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name for the output")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists already; pass {param('overwrite')} to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{out}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(f"{out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable; choose another output")
    return out


def temporary_sibling(path: Path, tag: str = "partial") -> Path:
    """A unique, hidden temporary folder next to ``path`` (same file system, so renames are atomic).

    >>> temporary_sibling(Path("out/pred.tif")).name.startswith(".pred.tif.partial-")
    True
    """
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Yield a temporary path to write; move it to ``path`` only if the block succeeds.

    The temporary path has the same file name inside a hidden sibling folder, so drivers that
    write several files (a Shapefile's ``.shp/.shx/.dbf/.prj``, GDAL's ``.aux.xml``) keep their
    names: each file is renamed into place, the main file last. ``path`` is checked first
    (:func:`check_output_path`, with ``overwrite`` and ``inputs``), and the temporary folders
    that killed runs left for it are removed (:func:`remove_stale_partials`). On any exception
    (including KeyboardInterrupt) the temporary folder is removed and the exception
    propagates; a failed write, such as a full disk, becomes one
    :class:`~geoseg.errors.OutputError` line (:func:`output_errors`).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "result.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    final = check_output_path(path, overwrite, inputs)
    remove_stale_partials(final)
    workdir = temporary_sibling(final, f"partial-{os.getpid()}")
    try:
        with output_errors(final):
            workdir.mkdir()
            (workdir / PARTIAL_MARKER).write_text(json.dumps(_this_process()))
            yield workdir / final.name
            _move_into_place(workdir, final)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _move_into_place(workdir: Path, final: Path) -> None:
    main = workdir / final.name
    if not main.exists():
        raise OutputError(f"{displayed_path(final)}: nothing was written")
    companions = [p for p in workdir.iterdir() if p not in (main, workdir / PARTIAL_MARKER)]
    for part in companions:
        os.replace(part, final.parent / part.name)
    os.replace(main, final)


def displayed_path(path: Path) -> Path:
    """Where a file being written will be: a file in :func:`atomic_output`'s temporary folder
    (or in one inside another) is shown where it is moved to; any other path as it is."""
    while (path.parent / PARTIAL_MARKER).is_file():
        path = path.parent.parent / path.name
    return path


@contextlib.contextmanager
def retried_by(retry: str) -> Iterator[None]:
    """Tell how to run again (``retry``, such as continuing the run) in the error of every
    failed write in the block that does not say (in this thread)."""
    token = _RETRY.set(retry)
    try:
        yield
    finally:
        _RETRY.reset(token)


@contextlib.contextmanager
def output_errors(path: str | os.PathLike[str], retry: str | None = None) -> Iterator[None]:
    """Report a write into ``path`` that failed as one :class:`~geoseg.errors.OutputError`
    line, a :class:`DiskFullError` when its file system is full.

    A full disk is recognised whatever said so: an ``OSError`` with ``ENOSPC``, rasterio
    after libtiff's ``No space left on device``, pyogrio's ``database or disk is full``, or
    any failed write with almost no space left; its line says where the file would be
    (:func:`displayed_path`), the space left on its file system, to free some space and how
    to run again: ``retry``, by default that of :func:`retried_by`, else "run again". Other
    failures of a write (an ``OSError``, or an error of rasterio or pyogrio) say what the
    library said, the space left and ``retry`` if any. libtiff's printed lines are kept off
    the terminal (:mod:`geoseg.raster.tiff_messages`). Any other exception passes unchanged.
    """
    retry = retry or _RETRY.get()
    tiff_messages.capture()
    since = tiff_messages.mark()
    try:
        yield
    except GeosegError:
        raise
    except Exception as exc:
        shown = displayed_path(Path(path))
        free = _free_bytes(shown.parent)
        left = f"{_in_units(free)} free in {shown.parent}" if free is not None else ""
        if _out_of_space(exc, tiff_messages.messages_since(since), free):
            raise DiskFullError(f"{shown}: disk full ({left or shown.parent}); free some space "
                                f"and {retry or 'run again'}") from exc
        if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _GDAL_BINDINGS:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise OutputError(f"{shown}: could not be written ({detail}"
                              f"{'; ' + left if left else ''}){'; ' + retry if retry else ''}"
                              ) from exc
        raise


def _out_of_space(error: BaseException, messages: list[str], free: int | None) -> bool:
    """Whether ``error``, an exception it comes from, or libtiff's ``messages`` say that the
    file system is full; or a write failed with almost no space left (GDAL's GeoPackage
    writer, for one, only says ``Failed to commit transaction``)."""
    chain = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    full = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    if any(isinstance(exc, OSError) and exc.errno in full for exc in chain):
        return True
    if any(_OUT_OF_SPACE.search(text) for text in [*map(str, chain), *messages]):
        return True
    return free is not None and free < _NEARLY_FULL


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _in_units(count: int) -> str:
    """A number of bytes for people.

    >>> _in_units(0), _in_units(4096), _in_units(3 * 2**30)
    ('0 bytes', '4.0 KiB', '3.0 GiB')
    """
    if count < 1024:
        return f"{count} bytes"
    size, units = count / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the temporary folders of ``path`` that runs killed outright left (nothing else).

    A folder goes only when its name is that of :func:`atomic_output`'s folders for ``path``
    and it holds the :data:`PARTIAL_MARKER` of a process of this machine that no longer runs
    (a process id now used by another process counts as gone when its start time differs).
    Folders without the marker, of another machine, or of a live process are left.

    Returns the folders removed.
    """
    removed = []
    for folder in path.parent.glob(f".{glob.escape(path.name)}.partial-*"):
        marker = folder / PARTIAL_MARKER
        if folder.is_symlink() or not marker.is_file() or _still_running(marker):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _this_process() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": _start_time(os.getpid())}


def _still_running(marker: Path) -> bool:
    """Whether the process a marker names may still be writing (True when unsure)."""
    try:
        owner = json.loads(marker.read_text())
        host, pid, started = owner["host"], int(owner["pid"]), owner.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return True
    if host != socket.gethostname():
        return True
    if os.name != "posix":
        return True  # no signal 0 to ask with (os.kill would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return started is None or _start_time(pid) in (None, started)


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
