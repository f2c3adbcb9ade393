"""The geoseg settings stored inside a ``.keras`` archive, read and written without TensorFlow.

A ``.keras`` file is a zip archive; geoseg adds one member, ``geoseg.json``, holding the
:class:`~geoseg.settings.ModelSettings`. Keras ignores it; geoseg requires it.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

from geoseg.errors import ConfigError, ModelError
from geoseg.raster.outputs import atomic_output
from geoseg.settings import ModelSettings

__all__ = ["SETTINGS_MEMBER", "file_digest", "folder_error", "is_model_file", "read_settings",
           "replace_settings", "write_settings"]

SETTINGS_MEMBER = "geoseg.json"
"""Name of the zip member of a ``.keras`` file that holds the geoseg settings."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (the identity of a model file in a resume journal and in the
    conversion cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def folder_error(folder: Path) -> ModelError:
    """The error for a folder given where a model file is expected: what a model file is, and
    the ones the folder holds (a training run's folder holds ``model.keras``)."""
    models = sorted(path.name for path in folder.glob("*.keras") if path.is_file())
    held = f"; {folder} holds {', '.join(models)}" if models else ""
    return ModelError(f"{folder}: is a folder; give a model file: the .keras file geoseg train "
                      f"writes{held}")


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
        raise folder_error(source)
    try:
        with zipfile.ZipFile(source) as archive:
            if SETTINGS_MEMBER not in archive.namelist():
                raise ModelError(
                    f"{source}: not a geoseg model (no {SETTINGS_MEMBER} inside); "
                    "train it with 'geoseg train' or save it with geoseg.model.flexunet.save_model"
                )
            data = json.loads(archive.read(SETTINGS_MEMBER))
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{source}: not a readable .keras model file ({exc})") from exc
    try:
        return ModelSettings.from_dict(data)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ModelError(f"{source}: invalid geoseg settings inside ({exc})") from exc
