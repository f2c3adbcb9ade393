"""Safe output paths: refuse to clobber, write to a temporary name, rename when complete.

Every file geoseg writes goes through :func:`atomic_output`, so an interrupted or failed run
never leaves a half-written file under the name the user asked for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from geoseg.errors import OutputError, OutputExistsError, OutputIsInputError, param

__all__ = [
    "atomic_output", "check_output_path", "is_same_file", "refuse_inputs", "temporary_sibling",
]


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
    (:func:`check_output_path`, with ``overwrite`` and ``inputs``). On any exception (including
    KeyboardInterrupt) the temporary folder is removed and the exception propagates; an
    ``OSError`` such as a full disk becomes an :class:`OutputError`.

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
    workdir = temporary_sibling(final)
    try:
        workdir.mkdir()
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
    companions = [p for p in workdir.iterdir() if p != main]
    for part in companions:
        os.replace(part, final.parent / part.name)
    os.replace(main, final)
