"""The geoseg settings stored inside a ``.keras`` archive, read and written without TensorFlow.

A ``.keras`` file is a zip archive; geoseg adds one member, ``geoseg.json``, holding the
:class:`~geoseg.settings.ModelSettings`. Keras ignores it; geoseg requires it.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from geoseg.errors import ConfigError, ModelError
from geoseg.outputs import atomic_output
from geoseg.settings import ModelSettings

__all__ = ["SETTINGS_MEMBER", "is_model_file", "read_settings", "replace_settings",
           "write_settings"]

SETTINGS_MEMBER = "geoseg.json"
"""Name of the zip member of a ``.keras`` file that holds the geoseg settings."""


def is_model_file(path: Path) -> bool:
    """True for paths that name a Keras model archive (by extension)."""
    return path.suffix.lower() == ".keras"


def write_settings(path: str | os.PathLike[str], settings: ModelSettings) -> None:
    """Add the settings member to a freshly saved ``.keras`` archive."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(SETTINGS_MEMBER, settings.to_json())


def replace_settings(path: str | os.PathLike[str], settings: ModelSettings) -> None:
    """Rewrite the settings member of a geoseg ``.keras`` file (atomically), weights untouched.

    The members keep their order and dates, so the same settings give the same bytes.

    Raises
    ------
    ModelError
        See :func:`read_settings`.
    """
    read_settings(path)  # a geoseg model, readable
    with atomic_output(Path(path), overwrite=True) as tmp:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w") as target:
            for item in source.infolist():
                target.writestr(item, settings.to_json() if item.filename == SETTINGS_MEMBER
                                else source.read(item))


def read_settings(path: str | os.PathLike[str]) -> ModelSettings:
    """Read the geoseg settings stored in a ``.keras`` file.

    Raises
    ------
    ModelError
        Missing file, not a zip/.keras archive, or a Keras model not saved by geoseg.
    """
    source = Path(path)
    if not source.exists():
        raise ModelError(f"{source}: model file not found")
    if source.is_dir():
        raise ModelError(f"{source}: is a folder; give a .keras model file")
    try:
        with zipfile.ZipFile(source) as archive:
            if SETTINGS_MEMBER not in archive.namelist():
                raise ModelError(
                    f"{source}: not a geoseg model (no {SETTINGS_MEMBER} inside); "
                    "train it with 'geoseg train' or save it with geoseg.flexunet.save_model"
                )
            data = json.loads(archive.read(SETTINGS_MEMBER))
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{source}: not a readable .keras model file ({exc})") from exc
    try:
        return ModelSettings.from_dict(data)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ModelError(f"{source}: invalid geoseg settings inside ({exc})") from exc
