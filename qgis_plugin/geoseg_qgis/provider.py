"""The ``geoseg`` Processing provider and its setting: the path of the geoseg executable."""

from __future__ import annotations

from processing.core.ProcessingConfig import ProcessingConfig, Setting
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS, EXECUTABLE_SETTING, ICON


class GeosegProvider(QgsProcessingProvider):
    """geoseg's algorithms: detect, vectorise, evaluate, cut chips, train."""

    def id(self) -> str:
        return "geoseg"

    def name(self) -> str:
        return "geoseg"

    def longName(self) -> str:
        return "geoseg: find landslides in georeferenced scenes"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:
        return str(ICON)

    def load(self) -> bool:
        """Add the executable setting (Settings > Options > Processing > Providers > geoseg)."""
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(Setting(
            self.name(), EXECUTABLE_SETTING,
            "geoseg executable (empty: the geoseg command found on PATH)", "",
            valuetype=Setting.FILE))
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        ProcessingConfig.removeSetting(EXECUTABLE_SETTING)

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportsNonFileBasedOutput(self) -> bool:
        """geoseg writes files: temporary outputs become temporary files."""
        return False

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        return ["gpkg", "shp", "geojson", "fgb"]
