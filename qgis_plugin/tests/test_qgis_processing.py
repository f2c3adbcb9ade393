"""The geoseg provider in a real, headless QGIS: installed from its zip, run through Processing.

Each algorithm runs the geoseg command of the environment under test (GEOSEG_EXECUTABLE) on a
crop of the sample scene; outputs are checked for existence, CRS, styles and agreement with
the same geoseg command run by hand; a cancelled detection leaves no output and resumes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PLUGIN, SAMPLE, SAMPLE_LANDSLIDES, install_zip
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

ALGORITHMS = {"geoseg:detect", "geoseg:vectorize", "geoseg:evaluate", "geoseg:tile",
              "geoseg:train"}
CRS = "EPSG:32654"


class Recorder(QgsProcessingFeedback):
    """Feedback that keeps the log and the progress, and cancels at ``cancel_at`` percent.

    ``log`` is what the Processing dialog's log shows: QGIS 3.22's dialog writes every
    progress text into its log, besides the info lines.
    """

    def __init__(self, cancel_at: float | None = None):
        super().__init__()
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.commands: list[str] = []
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.log: list[str] = []
        self.cancel_at = cancel_at
        self.progressChanged.connect(self._progressed)

    def setProgressText(self, text: str) -> None:
        self.texts.append(text)
        self.log.append(text)
        super().setProgressText(text)

    def _progressed(self, percent: float) -> None:
        self.progress.append(percent)
        if self.cancel_at is not None and percent >= self.cancel_at:
            self.cancel()

    def pushInfo(self, info: str) -> None:
        self.infos.append(info)
        self.log.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning: str) -> None:
        self.warnings.append(warning)
        super().pushWarning(warning)

    def pushCommandInfo(self, info: str) -> None:
        self.commands.append(info)
        super().pushCommandInfo(info)


def run(algorithm: str, parameters: dict, feedback: QgsProcessingFeedback | None = None,
        load: bool = False) -> dict:
    import processing

    runner = processing.runAndLoadResults if load else processing.run
    return runner(algorithm, parameters, feedback=feedback or Recorder())


def features(path: str | Path) -> list[tuple]:
    """(attributes, WKB) of every polygon in ``path``, in id order."""
    layer = QgsVectorLayer(str(path), "polygons", "ogr")
    assert layer.isValid(), path
    names = [field.name() for field in layer.fields() if field.name() != "fid"]
    rows = [(tuple(feature[name] for name in names), bytes(feature.geometry().asWkb()))
            for feature in layer.getFeatures()]
    return sorted(rows, key=lambda row: row[0][names.index("id")])


def pixels(path: str | Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def geoseg(executable: str, *args: str) -> None:
    done = subprocess.run([executable, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# Installation
# --------------------------------------------------------------------------------------------


def test_the_zip_installs_into_a_clean_profile_and_registers_the_provider(qgis_app, profile):
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.utils import active_plugins, pluginMetadata

    installed = profile / "python" / "plugins" / PLUGIN
    assert (installed / "metadata.txt").is_file()
    assert Path(sys.modules[PLUGIN].__file__).parent == installed  # loaded from the profile
    assert PLUGIN in active_plugins
    assert pluginMetadata(PLUGIN, "hasProcessingProvider") == "yes"
    provider = QgsApplication.processingRegistry().providerById("geoseg")
    assert provider is not None and provider.isActive()
    assert {alg.id() for alg in provider.algorithms()} == ALGORITHMS
    for alg in provider.algorithms():
        assert alg.shortHelpString(), alg.id()
    assert not provider.icon().isNull()
    assert "GEOSEG_EXECUTABLE" in ProcessingConfig.settings


def test_the_setting_is_where_the_messages_say(qgis_app):
    """Settings > Options > Processing (or the Toolbox's wrench) shows Processing's settings
    tree, which lists each group but General, Models, Scripts and Menus under Providers."""
    from geoseg_qgis.runner import SETTING_HELP
    from processing.core.ProcessingConfig import ProcessingConfig

    assert SETTING_HELP.startswith("Settings > Options > Processing > Providers > geoseg")
    groups = ProcessingConfig.getSettings()
    assert [setting.name for setting in groups["geoseg"]] == ["GEOSEG_EXECUTABLE"]


def test_a_missing_geoseg_is_a_clear_error_with_the_install_command(qgis_app, scene,
                                                                    tmp_path, monkeypatch):
    from processing.core.ProcessingConfig import ProcessingConfig

    before = ProcessingConfig.getSetting("GEOSEG_EXECUTABLE")
    monkeypatch.setenv("PATH", str(tmp_path))
    try:
        ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", "")
        with pytest.raises(QgsProcessingException) as missing:
            run("geoseg:vectorize", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "v.gpkg")})
        assert "not found on PATH" in str(missing.value) and "pip install" in str(missing.value)
        assert "Settings > Options > Processing > Providers > geoseg" in str(missing.value)
        gone = tmp_path / "geoseg"  # an environment removed after it was configured
        gone.write_text("")
        ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", str(gone))
        gone.unlink()
        with pytest.raises(QgsProcessingException, match="does not exist"):
            run("geoseg:vectorize", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "v.gpkg")})
    finally:
        ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", before)


def test_the_python_of_geosegs_environment_runs_geoseg_as_a_module(
        configured, geoseg_python, scene, tmp_path):
    from processing.core.ProcessingConfig import ProcessingConfig

    mask = tmp_path / "mask.tif"
    geoseg(configured, "predict", str(scene), "--out", str(mask), "--device", "cpu")
    try:
        ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", geoseg_python)
        feedback = Recorder()
        out = run("geoseg:vectorize", {"INPUT": str(mask), "OUTPUT": str(tmp_path / "v.gpkg")},
                  feedback)["OUTPUT"]
        assert shlex.split(feedback.commands[0])[:4] == [geoseg_python, "-m", "geoseg",
                                                         "vectorize"]
        assert QgsVectorLayer(out, "v", "ogr").featureCount() > 10
        # a Python without geoseg (QGIS's own) is named as such, with where to set geoseg
        ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", sys.executable)
        with pytest.raises(QgsProcessingException) as failed:
            run("geoseg:vectorize", {"INPUT": str(mask), "OUTPUT": str(tmp_path / "w.gpkg")})
        message = str(failed.value)
        assert message.startswith(f"geoseg is not installed in the Python of {sys.executable} "
                                  "(No module named ")
        assert message.endswith("set the geoseg executable of an environment that has it under "
                                "Settings > Options > Processing > Providers > geoseg (or the "
                                "Processing Toolbox's wrench button, then Providers > geoseg)")
    finally:
        ProcessingConfig.setSettingValue("GEOSEG_EXECUTABLE", configured)


# Detect and vectorise
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detected(configured, scene, tmp_path_factory) -> tuple[dict, Recorder]:
    """Detect landslides on the crop, outputs loaded into the project."""
    out = tmp_path_factory.mktemp("detect")
    feedback = Recorder()
    results = run("geoseg:detect", {
        "INPUT": str(scene), "OUTPUT": str(out / "mask.tif"),
        "PROBABILITIES": str(out / "probabilities.tif"),
        "POLYGONS": str(out / "landslides.gpkg"), "DEVICE": 1}, feedback, load=True)
    return results, feedback


def test_detect_writes_outputs_on_the_scenes_grid_and_crs(detected, scene):
    results, feedback = detected
    source = gdal.Open(str(scene))
    for name in ("OUTPUT", "PROBABILITIES"):
        layer = QgsRasterLayer(results[name], name)
        assert layer.isValid() and layer.crs().authid() == CRS
        output = gdal.Open(results[name])
        assert output.GetGeoTransform() == source.GetGeoTransform()
        assert (output.RasterXSize, output.RasterYSize) == (600, 600)
    polygons = QgsVectorLayer(results["POLYGONS"], "polygons", "ogr")
    assert polygons.isValid() and polygons.crs().authid() == CRS
    assert polygons.featureCount() > 10
    landslide_pixels = int((pixels(results["OUTPUT"]) == 1).sum())
    assert landslide_pixels > 0.05 * 600 * 600
    # the run reported its progress and geoseg's summary
    assert feedback.progress[-1] == pytest.approx(100.0)
    assert feedback.texts[0] == "windows: 1 of 1 (100%)"  # one 608-px window
    assert any(f"{landslide_pixels} landslide pixels" in info for info in feedback.infos)
    assert "--progress json" in feedback.commands[0]


def test_detect_runs_a_bundled_model_chosen_by_name(configured, scene, tmp_path):
    feedback = Recorder()
    results = run("geoseg:detect", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "mask.tif"),
                                    "BUNDLED_MODEL": 1, "DEVICE": 1, "WINDOW": 1,
                                    "RESOLUTION": 1}, feedback)
    assert "--model hokkaido-iburi" in feedback.commands[0]
    assert "--window tile" in feedback.commands[0]
    assert "--resolution auto" in feedback.commands[0]
    assert QgsRasterLayer(results["OUTPUT"], "mask").isValid()


def test_detect_loads_its_outputs_with_geosegs_styles(detected):
    results, _ = detected
    project = QgsProject.instance()
    loaded = {layer.source(): layer for layer in project.mapLayers().values()}
    mask = loaded[results["OUTPUT"]]
    assert mask.renderer().type() == "paletted"
    colours = {entry.value: entry.color.name() for entry in mask.renderer().classes()}
    assert colours[1] == "#e31a1c" and mask.renderer().classes()[0].color.alpha() == 0
    polygons = next(layer for source, layer in loaded.items()
                    if source.startswith(results["POLYGONS"]))
    fill = polygons.renderer().symbol().symbolLayer(0)
    assert fill.fillColor().name() == "#e31a1c" and fill.fillColor().alpha() == 110
    assert results["PROBABILITIES"] in loaded


def test_detect_draws_the_landslide_probability_below_the_mask_and_polygons(detected):
    """Loaded by path order, the probabilities would come last, on top of everything."""
    results, _ = detected
    project = QgsProject.instance()
    loaded = {layer.source(): layer for layer in project.mapLayers().values()}
    probabilities = loaded[results["PROBABILITIES"]]
    renderer = probabilities.renderer()
    assert renderer.type() == "singlebandpseudocolor" and renderer.band() == 2
    assert probabilities.bandName(2).endswith("probability landslide")
    ramp = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert ramp[0].color.alpha() == 0 and ramp[-1].color.alpha() > 200  # low values clear
    assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)
    # the polygons on top, then the mask, then the probabilities, whatever the load order
    polygons = next(layer for source, layer in loaded.items()
                    if source.startswith(results["POLYGONS"]))
    order = [layer.id() for layer in project.layerTreeRoot().layerOrder()]
    mask = loaded[results["OUTPUT"]]
    assert order.index(polygons.id()) < order.index(mask.id()) < order.index(
        probabilities.id())


def test_each_progress_step_is_logged_once(configured, scene, tmp_path):
    feedback = Recorder()
    run("geoseg:detect", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "mask.tif"),
                          "DEVICE": 1, "WINDOW": 1, "BATCH_SIZE": 1}, feedback)  # 4 tiles
    steps = [line for line in feedback.log if line.startswith("windows: ")]
    assert steps == [f"windows: {done} of 4 ({25 * done}%)" for done in (1, 2, 3, 4)]


def test_detect_polygons_match_geoseg_vectorize(detected, configured, tmp_path):
    results, _ = detected
    by_hand = tmp_path / "by_hand.gpkg"
    geoseg(configured, "vectorize", results["OUTPUT"], "--probabilities",
           results["PROBABILITIES"], "--out", str(by_hand))
    assert features(results["POLYGONS"]) == features(by_hand)


def test_vectorize_algorithm_matches_geoseg_vectorize(detected, configured, tmp_path):
    results, _ = detected
    parameters = {"INPUT": results["OUTPUT"], "PROBABILITIES": results["PROBABILITIES"],
                  "MIN_AREA": 500, "CONNECTIVITY": 1, "OUTPUT": str(tmp_path / "alg.gpkg")}
    feedback = Recorder()
    out = run("geoseg:vectorize", parameters, feedback)["OUTPUT"]
    by_hand = tmp_path / "by_hand.gpkg"
    geoseg(configured, "vectorize", results["OUTPUT"], "--probabilities",
           results["PROBABILITIES"], "--min-area", "500", "--connectivity", "4",
           "--out", str(by_hand))
    assert features(out) == features(by_hand) and features(out)
    assert QgsVectorLayer(out, "v", "ogr").crs().authid() == CRS
    assert feedback.progress[-1] == pytest.approx(100.0)


def test_errors_name_the_dialogs_fields_not_geosegs_flags(configured, scene, tmp_path):
    four_bands = tmp_path / "rgbn.tif"
    gdal.Translate(str(four_bands), str(scene), bandList=[1, 2, 3, 1])
    with pytest.raises(QgsProcessingException) as failed:
        run("geoseg:detect", {"INPUT": str(four_bands), "OUTPUT": str(tmp_path / "mask.tif"),
                              "DEVICE": 1})
    assert str(failed.value).endswith(
        "but the model takes 3 (bands 1,2,3); choose them with 'Bands, in the model's order "
        "(empty: the model's)'")
    assert "--" not in str(failed.value)
    with pytest.raises(QgsProcessingException) as failed:
        run("geoseg:detect", {"INPUT": str(four_bands), "OUTPUT": str(tmp_path / "mask.tif"),
                              "BANDS": [1, 2, 7], "DEVICE": 1})
    assert str(failed.value).endswith(
        "band 7 does not exist ('Bands, in the model's order (empty: the model's)')")


def test_every_field_geoseg_may_name_is_a_field_of_an_algorithm(qgis_app):
    from geoseg_qgis.fields import FIELDS

    provider = QgsApplication.processingRegistry().providerById("geoseg")
    names = {definition.name() for algorithm in provider.algorithms()
             for definition in algorithm.parameterDefinitions()}
    assert set(FIELDS.values()) <= names


def test_geoseg_errors_are_the_algorithms_error_in_one_line(configured, scene, tmp_path):
    with pytest.raises(QgsProcessingException) as failed:
        run("geoseg:vectorize", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "v.gpkg")})
    message = str(failed.value)
    assert message.startswith(f"{scene}: has 3 bands; pass a single-band class mask")
    assert "Traceback" not in message and "\n" not in message
    assert not (tmp_path / "v.gpkg").exists()


def test_cancel_leaves_no_output_and_the_run_resumes_to_the_same_mask(configured, tmp_path):
    out = {"OUTPUT": str(tmp_path / "mask.tif"),
           "PROBABILITIES": str(tmp_path / "probabilities.tif"),
           "POLYGONS": str(tmp_path / "landslides.gpkg")}
    parameters = {"INPUT": str(SAMPLE), "DEVICE": 1, "BATCH_SIZE": 1, **out}
    feedback = Recorder(cancel_at=60)  # 9 windows: after the second row of 3, rows are saved
    with pytest.raises(QgsProcessingException, match="Continue an interrupted run"):
        run("geoseg:detect", parameters, feedback)
    assert 60 <= feedback.progress[-1] < 100  # stopped part way
    # nothing under the output names, no temporary folder; the journal of finished rows stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mask.tif.resume"]
    assert list((tmp_path / ".mask.tif.resume").glob("rows_*.npz"))

    resumed = Recorder()
    results = run("geoseg:detect", {**parameters, "RESUME": True, "BATCH_SIZE": 4}, resumed)
    assert "--resume" in shlex.split(resumed.commands[0])
    assert not (tmp_path / ".mask.tif.resume").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "landslides.gpkg", "mask.qml", "mask.tif", "probabilities.tif"]  # polygons: style inside
    whole = tmp_path / "whole"
    whole.mkdir()
    geoseg(configured, "predict", str(SAMPLE), "--out", str(whole / "mask.tif"),
           "--probabilities", str(whole / "probabilities.tif"), "--device", "cpu")
    assert np.array_equal(pixels(results["OUTPUT"]), pixels(whole / "mask.tif"))
    assert np.array_equal(pixels(results["PROBABILITIES"]), pixels(whole / "probabilities.tif"))


def test_qgis_process_runs_the_zip_installed_plugin_with_geoseg_on_path(
        detected, configured, plugin_zip, tmp_path):
    """QGIS's own plugin loader, in a fresh profile: enable, then run; geoseg from PATH."""
    qgis_process = shutil.which("qgis_process.bin")
    assert qgis_process, "qgis_process.bin is not installed"
    install_zip(plugin_zip, tmp_path / "config" / "profiles" / "default" / "python" / "plugins")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "geoseg").symlink_to(configured)
    # QGIS as a desktop starts it: no virtual environment on PATH (its python3 would become
    # QGIS's Python home), the geoseg command alone added
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")}
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"), QT_QPA_PLATFORM="offscreen",
               PATH=os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]))
    enabled = subprocess.run([qgis_process, "plugins", "enable", PLUGIN], env=env,
                             capture_output=True, text=True)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    results, _ = detected
    out = tmp_path / "polygons.gpkg"
    done = subprocess.run([qgis_process, "--json", "run", "geoseg:vectorize", "--",
                           f"INPUT={results['OUTPUT']}",
                           f"PROBABILITIES={results['PROBABILITIES']}", f"OUTPUT={out}"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["results"]["OUTPUT"] == str(out)
    assert report["log"]["info"][0].startswith(f"{bin_dir / 'geoseg'} vectorize ")
    assert features(out) == features(results["POLYGONS"])


# Evaluate, cut chips, train
# --------------------------------------------------------------------------------------------


def test_evaluate_reports_the_key_figures(configured, scene, tmp_path):
    feedback = Recorder()
    results = run("geoseg:evaluate", {"INPUT": str(scene), "LABELS": str(SAMPLE_LANDSLIDES),
                                      "DEVICE": 1, "OUTPUT": str(tmp_path / "report")}, feedback)
    assert 0.5 < results["LANDSLIDE_IOU"] <= 1 and 0.5 < results["LANDSLIDE_F1"] <= 1
    assert 0 < results["PRECISION"] <= 1 and 0 < results["RECALL"] <= 1
    assert 0 < results["BEST_THRESHOLD"] < 1
    iou = f"IoU {results['LANDSLIDE_IOU']:.4f}"
    assert any(info.startswith("Landslide (") and iou in info for info in feedback.infos)
    assert (tmp_path / "report" / "evaluation.json").is_file()


CONFIG = """[model]
image_width = 128
image_height = 128
base_filters = 4
num_layers = 3
overlap = 0
[train]
epochs = 2
batch_size = 2
steps_per_epoch = 3
epoch_change_infer = False
"""


def test_cut_chips_then_train_a_model_on_them(configured, scene, tmp_path):
    chips = tmp_path / "chips"
    tiled = Recorder()
    results = run("geoseg:tile", {"INPUT": str(scene), "LABELS": str(SAMPLE_LANDSLIDES),
                                  "TILE_SIZE": 128, "OVERLAP": 0, "SPLIT": "0.6,0.4,0",
                                  "OUTPUT": str(chips)}, tiled)
    assert results["INDEX"] == str(chips / "index.gpkg")
    index = QgsVectorLayer(results["INDEX"], "chips", "ogr")
    assert index.isValid() and index.crs().authid() == CRS and index.featureCount() > 4
    assert tiled.progress[-1] == pytest.approx(100.0)

    config = tmp_path / "tiny.config"
    config.write_text(CONFIG)
    trained = Recorder()
    results = run("geoseg:train", {"CONFIG": str(config), "DATASET": str(chips),
                                   "OUTPUT": str(tmp_path / "run")}, trained)
    assert Path(results["MODEL"]).is_file() and results["MODEL"].endswith("model.keras")
    assert any(info.startswith("epoch 2/2 - ") for info in trained.infos)
    assert trained.progress[-1] == pytest.approx(100.0)
    assert len(trained.progress) == 6  # one update per training step

    # a long continuation, cancelled at its first step: geoseg stops, the run stays resumable
    log = (tmp_path / "run" / "training_log.csv").read_text()
    cancelled = Recorder(cancel_at=0)
    with pytest.raises(QgsProcessingException, match="Continue the run in the output folder"):
        run("geoseg:train", {"CONFIG": str(config), "DATASET": str(chips), "EPOCHS": 500,
                             "RESUME": True, "OUTPUT": str(tmp_path / "run")}, cancelled)
    assert 0 < cancelled.progress[-1] < 1  # a step or two of 1494
    assert (tmp_path / "run" / "training_log.csv").read_text() == log
    assert Path(results["MODEL"]).is_file() and (tmp_path / "run" / "last.keras").is_file()

    # a new run cancelled before its first epoch ended has nothing to continue
    with pytest.raises(QgsProcessingException) as early:
        run("geoseg:train", {"CONFIG": str(config), "DATASET": str(chips), "EPOCHS": 500,
                             "OUTPUT": str(tmp_path / "new")}, Recorder(cancel_at=0))
    assert "Continue" not in str(early.value) and "no epoch was saved" in str(early.value)
    assert not (tmp_path / "new" / "last.keras").exists()
