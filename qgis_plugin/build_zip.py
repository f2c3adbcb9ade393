"""Build the plugin zip that QGIS installs with Plugins > Install from ZIP.

    python qgis_plugin/build_zip.py --out dist/geoseg_qgis.zip

The zip holds one top-level folder, ``geoseg_qgis/``, with the plugin's files (no caches, no
tests). It is written by :func:`geoseg.shipped.build_plugin_zip`, the same code as ``geoseg
qgis-plugin DIR`` of an installed geoseg, imported from the checkout around this script: it
needs neither geoseg's dependencies nor QGIS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geoseg.shipped import build_plugin_zip  # noqa: E402

PLUGIN = Path(__file__).resolve().parent / "geoseg_qgis"


def build_zip(out: Path, root: Path = PLUGIN) -> Path:
    """Write the plugin zip of ``root`` to ``out`` (replacing it) and return ``out``."""
    return build_plugin_zip(out, root, overwrite=True)


def main() -> None:
    """Command line: ``--out`` names the zip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/geoseg_qgis.zip"),
                        help="zip to write [default: dist/geoseg_qgis.zip]")
    args = parser.parse_args()
    print(build_zip(args.out))


if __name__ == "__main__":
    main()
