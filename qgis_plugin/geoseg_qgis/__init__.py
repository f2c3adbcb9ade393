"""geoseg for QGIS: a Processing provider that runs the ``geoseg`` command of your choice.

QGIS calls :func:`classFactory`; nothing QGIS-specific is imported before that, so the pure
modules (:mod:`.runner`, :mod:`.commands`) can be imported and tested without QGIS.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """The plugin object QGIS loads (``iface`` is None in headless QGIS)."""
    from .plugin import GeosegPlugin

    return GeosegPlugin(iface)
