"""A headless QGIS with the plugin installed from its zip into a clean profile.

Runs under QGIS's own Python (``/usr/bin/python3`` with python3-qgis), not geoseg's venv:

    QT_QPA_PLATFORM=offscreen GEOSEG_EXECUTABLE=.venv/bin/geoseg \\
        /usr/bin/python3 -m pytest qgis_plugin/tests

``GEOSEG_EXECUTABLE`` names the geoseg command the plugin runs [default: the repository's
.venv/bin/geoseg]. One QgsApplication serves the session (QGIS allows one per process).
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Qt keeps settings (the plugin's executable path among them) under the user's config and data
# folders: give the tests their own, so they neither read nor leave a user's or an earlier run's.
_HOME = Path(tempfile.mkdtemp(prefix="geoseg-qgis-settings-"))
os.environ["XDG_CONFIG_HOME"] = str(_HOME / "config")
os.environ["XDG_DATA_HOME"] = str(_HOME / "data")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "qgis_plugin"))
sys.path.append("/usr/share/qgis/python/plugins")  # Processing, where Debian installs it

from build_zip import build_zip  # noqa: E402
from osgeo import gdal  # noqa: E402
from qgis.core import QgsApplication  # noqa: E402

PLUGIN = "geoseg_qgis"
SAMPLE = REPO / "sample_data" / "iburi_synthetic.tif"
SAMPLE_LANDSLIDES = REPO / "sample_data" / "iburi_synthetic_landslides.gpkg"

gdal.UseExceptions()
gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")  # QGIS must not leave .aux.xml in sample_data


@pytest.fixture(scope="session")
def geoseg_executable() -> str:
    """The geoseg command of the environment under test."""
    path = Path(os.environ.get("GEOSEG_EXECUTABLE", REPO / ".venv" / "bin" / "geoseg"))
    if not path.is_file():
        pytest.fail(f"{path}: no geoseg executable; set GEOSEG_EXECUTABLE")
    return str(path)


@pytest.fixture(scope="session")
def geoseg_python(geoseg_executable: str) -> str:
    """The Python of the environment under test, beside its geoseg executable."""
    path = Path(geoseg_executable).with_name("python.exe" if os.name == "nt" else "python")
    if not path.is_file():
        pytest.fail(f"{path}: no Python beside the geoseg executable")
    return str(path)


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip a user installs with Install from ZIP."""
    return build_zip(tmp_path_factory.mktemp("dist") / "geoseg_qgis.zip")


def install_zip(archive: Path, plugins: Path) -> None:
    """What Install from ZIP does: unpack into the profile's python/plugins folder."""
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(plugins)


@pytest.fixture(scope="session")
def profile(tmp_path_factory: pytest.TempPathFactory, plugin_zip: Path) -> Path:
    """A clean QGIS profile folder holding nothing but the unzipped plugin zip."""
    root = tmp_path_factory.mktemp("qgis-profile")
    install_zip(plugin_zip, root / "python" / "plugins")
    return root


@pytest.fixture(scope="session")
def qgis_app(profile: Path) -> Iterator[QgsApplication]:
    """QGIS, headless, with Processing initialised and the plugin loaded from the profile."""
    app = QgsApplication([], False, str(profile))
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    import qgis.utils

    plugins = str(profile / "python" / "plugins")
    qgis.utils.plugin_paths = [plugins]
    sys.path.insert(0, plugins)
    qgis.utils.updateAvailablePlugins()
    assert qgis.utils.loadPlugin(PLUGIN), "the plugin did not import"
    assert qgis.utils.startProcessingPlugin(PLUGIN), "the plugin did not start"
    yield app
    qgis.utils.unloadPlugin(PLUGIN)


@pytest.fixture(scope="session")
def configured(qgis_app: QgsApplication, geoseg_executable: str) -> str:
    """The plugin's executable setting pointing at the geoseg under test."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", geoseg_executable)
    return geoseg_executable


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600x600 crop of the sample scene holding many landslides (a fast prediction)."""
    out = tmp_path_factory.mktemp("scene") / "iburi_crop.tif"
    gdal.Translate(str(out), str(SAMPLE), srcWin=[0, 1024, 600, 600],
                   creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
    return out
