"""The plugin object: registers the geoseg Processing provider, in the GUI and headless."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import GeosegProvider


class GeosegPlugin:
    """Adds the provider in ``initProcessing`` (QGIS calls it for ``hasProcessingProvider``)."""

    def __init__(self, iface: Any):
        self.iface = iface
        self.provider: GeosegProvider | None = None

    def initProcessing(self) -> None:
        """Register the provider once (also called from :meth:`initGui`)."""
        if self.provider is None:
            self.provider = GeosegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Nothing but the provider: its algorithms are in the Processing Toolbox."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider and its setting."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
