"""The files geoseg ships besides its code, where they are, and how a user gets a copy.

The training configs (``configs/`` in a source checkout) and the QGIS plugin
(``qgis_plugin/geoseg_qgis/``) have one copy in the repository; the wheel carries them as
package data (``geoseg/configs/``, ``geoseg/qgis_plugin/``, mapped in ``pyproject.toml``).
:func:`shipped_folder` finds either. ``geoseg configs DIR`` copies the configs and ``geoseg
qgis-plugin DIR`` writes the plugin zip (:func:`build_plugin_zip`, also behind
``qgis_plugin/build_zip.py``), so an installed geoseg gives the same files as a checkout.

Nothing but the standard library and geoseg's own stdlib-only modules: ``qgis_plugin/
build_zip.py`` imports this module under QGIS's Python, where geoseg's dependencies may be
missing.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from geoseg.raster.outputs import atomic_output, check_output_path

__all__ = ["PLUGIN_NAME", "SHIPPED", "build_plugin_zip", "copy_configs", "plugin_files",
           "shipped_folder"]

PACKAGE = Path(__file__).resolve().parent

SHIPPED: dict[str, tuple[str, str]] = {
    "configs": ("configs", "configs"),
    "qgis_plugin": ("qgis_plugin", "qgis_plugin/geoseg_qgis"),
}
"""What geoseg ships -> (its folder in the installed package, its folder in a checkout)."""

PLUGIN_NAME = "geoseg_qgis"
"""The plugin's folder name in its zip: QGIS knows the plugin by it."""
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def shipped_folder(kind: str) -> Path:
    """The folder of ``kind`` (a key of :data:`SHIPPED`): the installed package's, else the
    source checkout's around it.

    >>> shipped_folder("configs").joinpath("hokkaido_cpu.config").is_file()
    True
    """
    installed, checkout = SHIPPED[kind]
    if (PACKAGE / installed).is_dir():
        return PACKAGE / installed
    return PACKAGE.parent / checkout


def copy_configs(out_dir: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Copy the shipped training configs into ``out_dir`` (created); returns the copies.

    Raises
    ------
    OutputExistsError
        A config of that name is in ``out_dir`` and ``overwrite`` is False (nothing is
        copied then).
    """
    sources = sorted(shipped_folder("configs").glob("*.config"))
    targets = [Path(out_dir) / source.name for source in sources]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for target in targets:
        check_output_path(target, overwrite)
    for source, target in zip(sources, targets, strict=True):
        with atomic_output(target, overwrite) as tmp:
            shutil.copyfile(source, tmp)
    return targets


def plugin_files(root: Path) -> list[Path]:
    """The files of the plugin folder ``root`` that go into its zip (no caches), relative to
    ``root``, sorted."""
    return sorted(
        path.relative_to(root) for path in root.rglob("*")
        if path.is_file() and path.suffix not in _SKIP_SUFFIXES
        and not _SKIP_DIRS.intersection(path.relative_to(root).parts)
    )


def build_plugin_zip(out: str | os.PathLike[str], root: Path | None = None,
                     overwrite: bool = False) -> Path:
    """Write the zip QGIS installs (Plugins > Install from ZIP): one ``geoseg_qgis/`` folder
    with the plugin's files, from ``root`` [default: the shipped plugin]. The zip's folder is
    created; returns ``out``.

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    root = shipped_folder("qgis_plugin") if root is None else root
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_output_path(target, overwrite)
    with atomic_output(target, overwrite) as tmp, \
            zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in plugin_files(root):
            archive.write(root / relative, f"{PLUGIN_NAME}/{relative.as_posix()}")
    return target
