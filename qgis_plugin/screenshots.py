"""Draw the README's QGIS pictures headless: the Detect dialog, and the result as QGIS draws it.

Run with QGIS's Python and geoseg's executable (offscreen, no display needed):

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_plugin/screenshots.py \\
        --geoseg .venv/bin/geoseg --out docs/

Writes ``qgis_detect_dialog.png`` (the algorithm dialog, scene chosen) and
``qgis_detect_result.jpg``: part of the sample scene under the class mask (left) and under the
landslide polygons (right), as 'Detect landslides' loaded them with geoseg's styles, rendered
with ``QgsMapRendererParallelJob``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "sample_data" / "iburi_synthetic.tif"
sys.path.insert(0, str(HERE))
sys.path.append("/usr/share/qgis/python/plugins")

from osgeo import gdal  # noqa: E402
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsBrowserGuiModel, QgsMapCanvas, QgsMessageBar  # noqa: E402
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor, QImage, QPainter  # noqa: E402
from qgis.PyQt.QtWidgets import QMainWindow  # noqa: E402


def headless_iface() -> mock.Mock:
    """Just enough of QGIS's interface for Processing's dialogs, with real widgets."""
    iface = mock.Mock()
    widgets = {"mainWindow": QMainWindow(), "mapCanvas": QgsMapCanvas(),
               "browserModel": QgsBrowserGuiModel(), "messageBar": QgsMessageBar()}
    for name, widget in widgets.items():
        getattr(iface, name).return_value = widget
    iface.activeLayer.return_value = None
    return iface


def dialog_picture(scene: QgsRasterLayer, out: Path) -> None:
    """The Detect landslides dialog with the scene chosen."""
    import processing

    dialog = processing.createAlgorithmDialog("geoseg:detect", {"INPUT": scene.id()})
    dialog.show()
    dialog.resize(1000, 780)
    QgsApplication.processEvents()
    dialog.grab().save(str(out))
    dialog.close()


def render(layers: list[QgsMapLayer], extent: QgsRectangle, size: int) -> QImage:
    """``layers`` (top first) over ``extent`` as QGIS draws them, ``size`` pixels square."""
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def result_picture(scene: QgsRasterLayer, out: Path, extent: QgsRectangle,
                   size: int = 600) -> None:
    """Scene and class mask | scene and polygons, side by side, as Detect loaded them."""
    project = QgsProject.instance()
    mask, = project.mapLayersByName("Class mask")
    polygons, = project.mapLayersByName("Landslide polygons")
    picture = QImage(2 * size + 8, size, QImage.Format_RGB32)
    picture.fill(QColor("white"))
    painter = QPainter(picture)
    painter.drawImage(0, 0, render([mask, scene], extent, size))
    painter.drawImage(size + 8, 0, render([polygons, scene], extent, size))
    painter.end()
    picture.save(str(out), "JPG", 85)


def main() -> None:
    """Run Detect landslides on the sample scene through the plugin and draw both pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geoseg", required=True, help="the geoseg executable to run")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()

    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")  # no statistics .aux.xml in sample_data
    work = Path(tempfile.mkdtemp(prefix="geoseg-screens-"))
    app = QgsApplication([], True, str(work / "profile"))
    app.initQgis()
    import qgis.utils

    qgis.utils.iface = headless_iface()
    from processing.core.Processing import Processing
    from processing.core.ProcessingConfig import ProcessingConfig

    Processing.initialize()
    import geoseg_qgis

    plugin = geoseg_qgis.classFactory(qgis.utils.iface)
    plugin.initProcessing()
    ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", args.geoseg)

    scene = QgsRasterLayer(str(SAMPLE), SAMPLE.stem)
    QgsProject.instance().addMapLayer(scene)
    dialog_picture(scene, args.out / "qgis_detect_dialog.png")

    import processing

    processing.runAndLoadResults("geoseg:detect", {
        "INPUT": scene.id(), "OUTPUT": str(work / "mask.tif"),
        "POLYGONS": str(work / "landslides.gpkg")})
    full = scene.extent()
    # a quarter of the scene's width, around its densest cluster of landslides
    side = full.width() / 4
    left, top = full.xMinimum(), full.center().y() - 0.02 * full.height()
    extent = QgsRectangle(left, top - side, left + side, top)
    result_picture(scene, args.out / "qgis_detect_result.jpg", extent)
    plugin.unload()
    print(f"{args.out / 'qgis_detect_dialog.png'}\n{args.out / 'qgis_detect_result.jpg'}")


if __name__ == "__main__":
    main()
