"""Build the plugin zip that QGIS installs with Plugins > Install from ZIP.

    python qgis_plugin/build_zip.py --out dist/geoseg_qgis.zip

The zip holds one top-level folder, ``geoseg_qgis/``, with the plugin's files (no caches, no
tests); it needs neither geoseg nor QGIS to build.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "geoseg_qgis"
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def plugin_files(root: Path = PLUGIN) -> list[Path]:
    """The files that go into the zip, relative to ``root``, sorted."""
    return sorted(
        path.relative_to(root) for path in root.rglob("*")
        if path.is_file() and path.suffix not in SKIP_SUFFIXES
        and not SKIP_DIRS.intersection(path.relative_to(root).parts)
    )


def build_zip(out: Path, root: Path = PLUGIN) -> Path:
    """Write the plugin zip to ``out`` (its folder is created) and return ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in plugin_files(root):
            archive.write(root / relative, f"{root.name}/{relative.as_posix()}")
    return out


def main() -> None:
    """Command line: ``--out`` names the zip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/geoseg_qgis.zip"),
                        help="zip to write [default: dist/geoseg_qgis.zip]")
    args = parser.parse_args()
    print(build_zip(args.out))


if __name__ == "__main__":
    main()
