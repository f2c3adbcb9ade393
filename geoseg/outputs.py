"""Safe output paths: refuse to clobber, write to a temporary name, rename when complete.

Every file geoseg writes goes through :func:`atomic_output`, so an interrupted or failed run
never leaves a half-written file under the name the user asked for. The temporary folder of a
run killed outright (nothing could remove it) is removed by the next run writing the same
output, once the run that made it is provably gone (:func:`remove_stale_partials`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from geoseg.errors import OutputError, OutputExistsError, OutputIsInputError, param

__all__ = [
    "PARTIAL_MARKER", "atomic_output", "check_output_path", "is_same_file", "refuse_inputs",
    "remove_stale_partials", "temporary_sibling",
]

PARTIAL_MARKER = ".geoseg-partial"
"""The file in every temporary folder of :func:`atomic_output`: which process writes there."""


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
    propagates; an ``OSError`` such as a full disk becomes an :class:`OutputError`.

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
        workdir.mkdir()
        (workdir / PARTIAL_MARKER).write_text(json.dumps(_this_process()))
        yield workdir / final.name
        _move_into_place(workdir, final)
    except OSError as exc:
        raise OutputError(f"{final}: could not be written ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _move_into_place(workdir: Path, final: Path) -> None:
    main = workdir / final.name
    if not main.exists():
        raise OutputError(f"{final}: nothing was written")
    companions = [p for p in workdir.iterdir() if p not in (main, workdir / PARTIAL_MARKER)]
    for part in companions:
        os.replace(part, final.parent / part.name)
    os.replace(main, final)


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
