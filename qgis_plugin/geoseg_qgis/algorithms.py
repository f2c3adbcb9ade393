"""The Processing algorithms: each runs one ``geoseg`` command in a child process.

TensorFlow never loads in QGIS: the algorithms build a command line (:mod:`.commands`), run it
with :func:`.runner.run_geoseg`, turn its JSON progress lines into the dialog's progress bar
and log, its error into the algorithm's error (naming the dialog's fields, :mod:`.fields`), and
Cancel into a clean stop. Outputs are loaded with the ``.qml`` styles geoseg writes next to
them (a GeoPackage holds its own, applied as the layer's default style); Detect's
probabilities with a colour ramp on the landslide band, below the mask and the polygons.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from processing.core.ProcessingConfig import ProcessingConfig
from qgis.core import (
    QgsColorRampShader,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor, QIcon

from . import commands
from .commands import ModelChoice
from .fields import FIELDS
from .runner import (
    GeosegCancelled,
    GeosegError,
    Progress,
    find_executable,
    read_geoseg,
    remove_partials,
    run_geoseg,
)

EXECUTABLE_SETTING = "GEOSEG_EXECUTABLE"
ICON = Path(__file__).with_name("icon.svg")
DEVICES = ["auto", "cpu", "gpu"]
WINDOWS = {"auto": "Automatic: up to 2048 pixels, smaller for wide models",
           "tile": "The model's tiles (least memory)",
           "1024": "1024-pixel windows (about half the memory of 2048)"}
"""geoseg predict --window choices, as the Detect algorithm lists them."""
RESOLUTIONS = {"native": "The scene's own pixels",
               "auto": "The model's training pixel size, when the scene's differs by over 1.25x"}
"""geoseg predict --resolution choices, as the Detect algorithm lists them."""
LABEL_FORMATS = ["gpkg", "shp", "geojson", "fgb"]
MODEL_FILTER = "Keras models (*.keras)"


PROBABILITY_RAMP = [(0.0, (255, 255, 178, 0)), (0.2, (255, 255, 178, 0)),
                    (0.4, (254, 204, 92, 140)), (0.6, (253, 141, 60, 180)),
                    (0.8, (240, 59, 32, 210)), (1.0, (189, 0, 38, 230))]
"""Landslide probability -> RGBA of the probabilities layer: transparent up to 0.2, then
yellow to dark red, more opaque as the probability grows."""
RUN_PROPERTY, PLACE_PROPERTY = "geoseg/run", "geoseg/place"
"""Custom properties of a loaded output: its run, and its place among the run's outputs."""


def landslide_band(layer: QgsRasterLayer) -> int:
    """The band of a probabilities layer holding the landslide class (else its last band)."""
    for band in range(1, layer.bandCount() + 1):
        if layer.bandName(band).endswith("probability landslide"):
            return band
    return layer.bandCount()


def probability_renderer(layer: QgsRasterLayer) -> QgsSingleBandPseudoColorRenderer:
    """A colour ramp over the landslide probabilities (:data:`PROBABILITY_RAMP`)."""
    ramp = QgsColorRampShader(0.0, 1.0)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    ramp.setColorRampItemList([
        QgsColorRampShader.ColorRampItem(value, QColor(*rgba), f"{value:.1f}")
        for value, rgba in PROBABILITY_RAMP])
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), landslide_band(layer),
                                                shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    return renderer


def stack_layers(layer: QgsMapLayer, project: QgsProject) -> None:
    """Order the loaded outputs of ``layer``'s run by their place (0 on top), where the
    topmost of them is in the layer tree."""
    node = project.layerTreeRoot().findLayer(layer.id())
    if node is None or node.parent() is None:
        return
    group = node.parent()
    run = layer.customProperty(RUN_PROPERTY)
    rows = [(row, child) for row, child in enumerate(group.children())
            if isinstance(child, QgsLayerTreeLayer) and child.layer() is not None
            and child.layer().customProperty(RUN_PROPERTY) == run]
    top = rows[0][0]
    ordered = sorted((child for _, child in rows),
                     key=lambda child: int(child.layer().customProperty(PLACE_PROPERTY)))
    clones = [child.clone() for child in ordered]
    for _, child in rows:
        group.removeChildNode(child)
    for offset, clone in enumerate(clones):
        group.insertChildNode(top + offset, clone)


class OutputLoader(QgsProcessingLayerPostProcessorInterface):
    """Style an output once QGIS has loaded it (geoseg's ``.qml`` sidecar, or a renderer of
    the plugin's), and keep the loaded outputs of its run stacked in order."""

    _keep: dict[str, OutputLoader] = {}  # QGIS holds a plain pointer: keep one alive each

    def __init__(self, output: str, run: str, place: int,
                 style: Callable[[QgsRasterLayer], Any] | None = None):
        """``output`` is ``place`` in the stack of the outputs of ``run`` (0 on top);
        ``style`` makes its renderer, else its sidecar style (``mask.tif`` -> ``mask.qml``)
        is applied."""
        super().__init__()
        self.sidecar = str(Path(output).with_suffix(".qml"))
        self.run = run
        self.place = place
        self.style = style
        OutputLoader._keep[output] = self

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> None:
        if self.style is not None:
            layer.setRenderer(self.style(layer))
        elif Path(self.sidecar).is_file():
            message, ok = layer.loadNamedStyle(self.sidecar)
            if not ok:
                feedback.pushWarning(f"{self.sidecar}: style not applied ({message})")
        else:
            layer.loadDefaultStyle()  # a GeoPackage's own (none: the layer stays as it is)
        layer.setCustomProperty(RUN_PROPERTY, self.run)
        layer.setCustomProperty(PLACE_PROPERTY, self.place)
        stack_layers(layer, context.project() or QgsProject.instance())
        layer.triggerRepaint()


class ProgressReport:
    """Feed geoseg's progress lines to the dialog: the bar, and its text per 10%.

    The dialog writes each progress text into its log too, so the text changes (and is
    logged) once per 10% of the work, not on every line.
    """

    def __init__(self, feedback: QgsProcessingFeedback):
        self.feedback = feedback
        self._logged: tuple[str, int] | None = None

    def __call__(self, progress: Progress) -> None:
        self.feedback.setProgress(100.0 * progress.fraction)
        step = (progress.message, int(progress.fraction * 10))
        if step != self._logged:
            self._logged = step
            self.feedback.setProgressText(f"{progress.message}: {progress.done} of "
                                          f"{progress.total} ({100 * progress.fraction:.0f}%)")


@lru_cache(maxsize=4)
def _listed_models(executable_setting: str) -> tuple[tuple[ModelChoice, ...], str | None]:
    """The bundled models ``geoseg models --json`` lists (once per executable), or none and
    why."""
    try:
        listing = read_geoseg([*find_executable(executable_setting), *commands.MODELS_ARGS])
        return tuple(commands.model_choices(listing)), None
    except (GeosegError, ValueError) as exc:
        return (), str(exc)


def bundled_models() -> tuple[tuple[ModelChoice, ...], str | None]:
    """The bundled models of the geoseg the provider runs, the default first (none if it
    cannot be asked, with the reason)."""
    return _listed_models(ProcessingConfig.getSetting(EXECUTABLE_SETTING) or "")


def _message(feedback: QgsProcessingFeedback, line: str) -> None:
    if line.startswith("WARNING: "):
        feedback.pushWarning(line[len("WARNING: "):])
    else:
        feedback.pushInfo(line)


class GeosegAlgorithm(QgsProcessingAlgorithm):
    """Shared parts: names, help, icon, and running geoseg with progress and cancel."""

    NAME = ""
    LABEL = ""
    GROUP = ""
    HELP = ""
    CANCELLED = "Cancelled; no output was written."

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.LABEL

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:
        return self.GROUP.lower().replace(" ", "_")

    def shortHelpString(self) -> str:
        return self.HELP

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createInstance(self) -> GeosegAlgorithm:
        return type(self)()

    def _advanced(self, parameter: QgsProcessingParameterDefinition) -> None:
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def _optional_number(self, parameters: dict[str, Any], name: str,
                         context: QgsProcessingContext) -> float | None:
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def _optional_int(self, parameters: dict[str, Any], name: str,
                      context: QgsProcessingContext) -> int | None:
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsInt(parameters, name, context)

    def _scene(self, parameters: dict[str, Any], name: str,
               context: QgsProcessingContext) -> str | None:
        """The file behind a raster layer parameter (None when optional and unset)."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            return None
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{layer.name()}: geoseg reads raster files; save this layer as a GeoTIFF first")
        return layer.source()

    def _labels(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> str | None:
        """A file of the label polygons: the layer's own, or a copy of a selection or subset."""
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsCompatibleSourceLayerPath(
            parameters, name, context, LABEL_FORMATS, "gpkg", feedback)

    def _model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """The model file, else the chosen bundled model's name (None: geoseg's default)."""
        choices, _ = bundled_models()
        index = self.parameterAsEnum(parameters, "BUNDLED_MODEL", context)
        bundled = choices[index].name if 0 <= index < len(choices) else None
        return self.parameterAsFile(parameters, "MODEL", context) or bundled

    def _bands(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[int]:
        return self.parameterAsInts(parameters, "BANDS", context)

    def _device(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        return DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]

    def field_label(self, parameter: str) -> str | None:
        """How the dialog names geoseg's ``parameter``: its field's label, quoted (None when
        this algorithm has no such field)."""
        field = FIELDS.get(parameter)
        definition = self.parameterDefinition(field) if field else None
        return f"'{definition.description()}'" if definition is not None else None

    def cancelled_message(self) -> str:
        """What the error of a cancelled run says (asked once the child has stopped)."""
        return self.CANCELLED

    def run_geoseg(self, args: list[str], feedback: QgsProcessingFeedback,
                   outputs: list[str]) -> None:
        """Run ``geoseg ARGS``; ``outputs`` are cleaned if a cancelled child must be killed.

        Raises
        ------
        QgsProcessingException
            geoseg is missing, failed (with its own message, naming this dialog's fields), or
            was cancelled.
        """
        try:
            executable = find_executable(ProcessingConfig.getSetting(EXECUTABLE_SETTING))
        except GeosegError as exc:
            raise QgsProcessingException(str(exc)) from None
        command = [*executable, *args]
        feedback.pushCommandInfo(" ".join(shlex.quote(part) for part in command))
        try:
            run_geoseg(command, on_progress=ProgressReport(feedback),
                       on_output=feedback.pushInfo,
                       on_message=lambda line: _message(feedback, line),
                       is_canceled=feedback.isCanceled)
        except GeosegCancelled as stop:
            if stop.forced:
                remove_partials(outputs)
            raise QgsProcessingException(self.cancelled_message()) from None
        except GeosegError as exc:
            raise QgsProcessingException(exc.worded(self.field_label)) from None

    @staticmethod
    def load_in_order(outputs: list[tuple[str | None, Callable[[QgsRasterLayer], Any] | None]],
                      context: QgsProcessingContext) -> None:
        """Style each output QGIS loads when the run ends, and stack them in the given order
        (the first on top); each pair is an output (None: not written) and its renderer
        (None: geoseg's ``.qml`` sidecar)."""
        written = [(output, style) for output, style in outputs if output]
        run = uuid.uuid4().hex  # this run's layers, not an earlier run's of the same files
        for place, (output, style) in enumerate(written):
            if context.willLoadLayerOnCompletion(output):
                context.layerToLoadOnCompletionDetails(output).setPostProcessor(
                    OutputLoader(output, run, place, style))


def _prediction_parameters(algorithm: GeosegAlgorithm) -> None:
    """Model, bands, threshold, overlap and device: shared by Detect and Evaluate."""
    algorithm.addParameter(QgsProcessingParameterFile(
        "MODEL", "Model file (.keras; empty: the bundled model below)",
        behavior=QgsProcessingParameterFile.File, optional=True, fileFilter=MODEL_FILTER))
    choices, problem = bundled_models()
    algorithm.addParameter(QgsProcessingParameterEnum(
        "BUNDLED_MODEL", "Bundled model (when no model file is given; geoseg models)",
        [choice.label for choice in choices] or [f"geoseg's default model ({problem})"],
        defaultValue=0))
    algorithm.addParameter(QgsProcessingParameterBand(
        "BANDS", "Bands, in the model's order (empty: the model's)",
        None, "INPUT", optional=True, allowMultiple=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "THRESHOLD", "Threshold (empty: the model's own, else the most probable class)",
        QgsProcessingParameterNumber.Double, None, True, 0.0, 1.0))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "OVERLAP", "Tile overlap in pixels (empty: the model's)",
        QgsProcessingParameterNumber.Integer, None, True, 0))
    algorithm.addParameter(QgsProcessingParameterEnum(
        "DEVICE", "Device", DEVICES, defaultValue=0))


class DetectLandslides(GeosegAlgorithm):
    """``geoseg predict`` with polygons: the scene in, mask, probabilities and polygons out."""

    NAME = "detect"
    LABEL = "Detect landslides"
    GROUP = "Find landslides"
    HELP = (
        "Finds landslides in a scene with a geoseg model (geoseg predict): the scene is cut "
        "into overlapping tiles, each tile is predicted, and the tiles are blended into a "
        "class mask with the scene's CRS, grid and size.<br><br>"
        "<b>Scene</b>: a raster file layer (GeoTIFF or any file GDAL reads).<br>"
        "<b>Model file</b>: a .keras model trained with geoseg; empty uses the <b>bundled "
        "model</b> chosen ('geoseg models' lists them): demo (trained on synthetic scenes: "
        "a demonstration, not a model for real imagery), hokkaido-iburi (trained on real "
        "8-bit RGB imagery of the 2018 Hokkaido Eastern Iburi earthquake landslides, about "
        "3 m pixels; its weights derive from CC "
        "BY-NC 4.0 data: non-commercial use, credit the CAS Landslide Dataset, Xu et al. "
        "2023; 'geoseg info hokkaido-iburi' shows its card) or sichuan-aerial (trained on "
        "aerial orthophotos of Sichuan landslides at about 2 m pixels; CC BY 4.0 data: credit "
        "Zeng, Cao, Su et al. 2021; 'geoseg info sichuan-aerial').<br>"
        "A model that knows its training imagery (the bundled ones, and those geoseg trains) "
        "warns in the log when the scene's pixels are more than twice as large or small as "
        "its training pixels, or its pixel values far from theirs: results may then be poor or "
        "noise.<br>"
        "<b>Bands</b>: the scene bands to feed the model, in the model's order, when the "
        "scene has other bands than the model.<br>"
        "<b>Threshold</b>: a pixel is landslide when its probability is at least this; "
        "'Evaluate a model' reports the threshold with the best F1.<br>"
        "<b>Outputs</b>: the landslide polygons with area, perimeter and confidence (their "
        "mean and highest probability) on top, the class mask (landslides red) and the "
        "probabilities (one band per class, drawn as the landslide probability: transparent "
        "up to 0.2, then yellow to dark red), each loaded with its style; optionally the "
        "<b>uncertainty</b>: the predictive entropy of the class probabilities, 0 where the "
        "model is sure of a class, 1 at even odds (transparent where low, yellow to purple), "
        "and the polygons' mean of it (entropy).<br>"
        "<b>Prediction windows</b> (advanced): the model predicts windows of up to 2048 "
        "pixels by default (smaller for models of more than 8 base filters), the fastest; "
        "1024-pixel windows take less memory, and the model's own tiles, with 1 tile per "
        "model call, the least.<br>"
        "<b>Prediction pixel size</b> (advanced): the scene's own pixels by default; or the "
        "pixel size the model was trained on (when the scene's differs by more than 1.25x, "
        "and the model and the scene's CRS tell it): the scene is read resampled to it and "
        "the outputs are written back on the scene's own grid.<br><br>"
        "Cancel stops geoseg cleanly: no output is written, and the rows finished so far are "
        "kept next to the mask. Run again with the same parameters and <b>Continue an "
        "interrupted run</b> ticked to go on from there; the result is identical to an "
        "uninterrupted run.")
    CANCELLED = ("Cancelled; no output was written. The rows finished so far are kept: run "
                 "again with the same parameters and 'Continue an interrupted run' ticked to "
                 "go on from there.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        _prediction_parameters(self)
        self.addParameter(QgsProcessingParameterBoolean(
            "RESUME", "Continue an interrupted run", defaultValue=False))
        self._advanced(QgsProcessingParameterNumber(
            "BATCH_SIZE", "Tiles per model call", QgsProcessingParameterNumber.Integer, 4,
            False, 1))
        self._advanced(QgsProcessingParameterEnum(
            "WINDOW", "Prediction windows", list(WINDOWS.values()), defaultValue=0))
        self._advanced(QgsProcessingParameterEnum(
            "RESOLUTION", "Prediction pixel size", list(RESOLUTIONS.values()), defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Class mask"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "PROBABILITIES", "Probabilities", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "UNCERTAINTY", "Uncertainty (predictive entropy)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "POLYGONS", "Landslide polygons", QgsProcessing.TypeVectorPolygon, optional=True,
            createByDefault=True))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        scene = self._scene(parameters, "INPUT", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        probabilities = self.parameterAsOutputLayer(parameters, "PROBABILITIES", context) or None
        uncertainty = self.parameterAsOutputLayer(parameters, "UNCERTAINTY", context) or None
        polygons = self.parameterAsOutputLayer(parameters, "POLYGONS", context) or None
        args = commands.predict_args(
            scene, mask, probabilities=probabilities, uncertainty=uncertainty,
            polygons=polygons,
            model=self._model(parameters, context), bands=self._bands(parameters, context),
            threshold=self._optional_number(parameters, "THRESHOLD", context),
            overlap=self._optional_int(parameters, "OVERLAP", context),
            device=self._device(parameters, context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            window=list(WINDOWS)[self.parameterAsEnum(parameters, "WINDOW", context)],
            resolution=list(RESOLUTIONS)[self.parameterAsEnum(parameters, "RESOLUTION", context)],
            resume=self.parameterAsBoolean(parameters, "RESUME", context))
        outputs = [path for path in (mask, probabilities, uncertainty, polygons) if path]
        self.run_geoseg(args, feedback, outputs)
        self.load_in_order([(polygons, None), (uncertainty, None), (mask, None),
                            (probabilities, probability_renderer)], context)
        return {"OUTPUT": mask, "PROBABILITIES": probabilities, "UNCERTAINTY": uncertainty,
                "POLYGONS": polygons}


class VectorizeMask(GeosegAlgorithm):
    """``geoseg vectorize``: a class mask in, polygons out."""

    NAME = "vectorize"
    LABEL = "Vectorize a mask"
    GROUP = "Find landslides"
    HELP = (
        "Turns a class mask written by 'Detect landslides' (or any class raster) into one "
        "polygon per connected region (geoseg vectorize), in the mask's CRS, with class, "
        "area_m2, perim_m, compact (4&pi; area / perim_m²: 1 for a disc, lower for elongated "
        "shapes) and the centroid's longitude and latitude.<br><br>"
        "<b>Probabilities</b>: the probabilities written with the mask add mean_prob and "
        "max_prob (the confidence of each polygon).<br>"
        "<b>Minimum area</b> and <b>Fill holes</b> are in m²; <b>Simplify</b> is a tolerance "
        "in metres (0 keeps the pixel outlines).<br>"
        "<b>Connectivity</b>: 8 joins pixels touching at a corner, 4 only along an edge.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class mask"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "PROBABILITIES", "Probabilities written with the mask", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_AREA", "Minimum area (m²)", QgsProcessingParameterNumber.Double, 0.0, False,
            0.0))
        self.addParameter(QgsProcessingParameterNumber(
            "SIMPLIFY", "Simplify tolerance (m)", QgsProcessingParameterNumber.Double,
            0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterNumber(
            "FILL_HOLES", "Fill holes smaller than (m²)", QgsProcessingParameterNumber.Double,
            0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterEnum(
            "CONNECTIVITY", "Connectivity", ["8", "4"], defaultValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "OUTPUT", "Landslide polygons", QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        polygons = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        args = commands.vectorize_args(
            self._scene(parameters, "INPUT", context), polygons,
            probabilities=self._scene(parameters, "PROBABILITIES", context),
            min_area=self.parameterAsDouble(parameters, "MIN_AREA", context),
            simplify=self.parameterAsDouble(parameters, "SIMPLIFY", context),
            fill_holes=self.parameterAsDouble(parameters, "FILL_HOLES", context),
            connectivity=(8, 4)[self.parameterAsEnum(parameters, "CONNECTIVITY", context)])
        self.run_geoseg(args, feedback, [polygons])
        self.load_in_order([(polygons, None)], context)
        return {"OUTPUT": polygons}


class EvaluateModel(GeosegAlgorithm):
    """``geoseg evaluate`` on one labelled scene, with its report folder and key figures."""

    NAME = "evaluate"
    LABEL = "Evaluate a model"
    GROUP = "Train and evaluate"
    HELP = (
        "Predicts a labelled scene as 'Detect landslides' does and scores the result against "
        "the true landslide polygons (geoseg evaluate).<br><br>"
        "The log shows the key figures: landslide IoU, F1, precision and recall (pixels), "
        "matched landslide polygons (objects), and the probability threshold with the best "
        "F1. The report folder gets evaluation.json and .csv, threshold_sweep.csv and .png "
        "and scenes.csv.<br><br>"
        "<b>Labels</b>: polygons of every landslide in the scene (a selection or a filtered "
        "layer is used as shown). Pixels without scene data are left out.<br>"
        "<b>IoU for a match</b>: how much a predicted polygon must overlap a true one to find "
        "it (empty: 0.5).")
    FIGURES = {"LANDSLIDE_IOU": ("landslide", "iou"), "LANDSLIDE_F1": ("landslide", "f1"),
               "PRECISION": ("landslide", "precision"), "RECALL": ("landslide", "recall"),
               "BEST_THRESHOLD": ("best_threshold", "threshold")}

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "LABELS", "True landslides", [QgsProcessing.TypeVectorPolygon]))
        _prediction_parameters(self)
        self.addParameter(QgsProcessingParameterNumber(
            "IOU_THRESHOLD", "IoU for a predicted polygon to match a true one (empty: 0.5)",
            QgsProcessingParameterNumber.Double, None, True, 0.01, 1.0))
        self.addParameter(QgsProcessingParameterBoolean(
            "OBJECTS", "Score landslide polygons (objects) too", defaultValue=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "OVERWRITE", "Replace an earlier report in the folder", defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Report folder"))
        for name, label in (("LANDSLIDE_IOU", "Landslide IoU"), ("LANDSLIDE_F1", "Landslide F1"),
                            ("PRECISION", "Landslide precision"),
                            ("RECALL", "Landslide recall"),
                            ("BEST_THRESHOLD", "Threshold with the best F1")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        report = self.parameterAsString(parameters, "OUTPUT", context)
        args = commands.evaluate_args(
            self._scene(parameters, "INPUT", context),
            self._labels(parameters, "LABELS", context, feedback), report,
            model=self._model(parameters, context), bands=self._bands(parameters, context),
            threshold=self._optional_number(parameters, "THRESHOLD", context),
            overlap=self._optional_int(parameters, "OVERLAP", context),
            device=self._device(parameters, context),
            iou_threshold=self._optional_number(parameters, "IOU_THRESHOLD", context),
            objects=self.parameterAsBoolean(parameters, "OBJECTS", context),
            overwrite=self.parameterAsBoolean(parameters, "OVERWRITE", context))
        self.run_geoseg(args, feedback, [])
        figures = json.loads((Path(report) / "evaluation.json").read_text(encoding="utf-8"))
        results: dict[str, Any] = {"OUTPUT": report}
        for name, (section, key) in self.FIGURES.items():
            results[name] = (figures.get(section) or {}).get(key)
        return results


class CutTrainingChips(GeosegAlgorithm):
    """``geoseg tile``: chips of a labelled scene, split spatially, with their footprints."""

    NAME = "tile"
    LABEL = "Cut training chips"
    GROUP = "Train and evaluate"
    HELP = (
        "Cuts a labelled scene into training chips exactly where prediction reads its tiles "
        "(geoseg tile), for 'Train a model'.<br><br>"
        "Square blocks of the scene go to train, valid and test at random (seeded); chips "
        "touching a chip of another split are dropped, so no pixel is shared between splits. "
        "The folder gets images/, labels/ and index.gpkg with every chip's footprint, split "
        "and landslide fraction (loaded into the project).<br><br>"
        "<b>Split</b>: shares of train, valid and test, e.g. 0.8,0.1,0.1.<br>"
        "<b>Format</b>: tif keeps the georeference; png writes 8-bit RGB chips and red/black "
        "masks like the reference dataset.<br>"
        "<b>Minimum landslide fraction</b> leaves out chips with fewer landslide pixels; "
        "<b>Share of empty chips kept</b> thins out chips without any.")
    FORMATS = ["tif", "png"]

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "LABELS", "Landslide polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterNumber(
            "TILE_SIZE", "Chip size in pixels (the model's tile size)",
            QgsProcessingParameterNumber.Integer, 512, False, 1))
        self.addParameter(QgsProcessingParameterNumber(
            "OVERLAP", "Overlap in pixels (empty: an eighth of the chip size)",
            QgsProcessingParameterNumber.Integer, None, True, 0))
        self.addParameter(QgsProcessingParameterBand(
            "BANDS", "Bands to keep (empty: all)", None, "INPUT", optional=True,
            allowMultiple=True))
        self.addParameter(QgsProcessingParameterEnum(
            "FORMAT", "Format", self.FORMATS, defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            "SPLIT", "Split: train,valid,test shares", defaultValue="0.8,0.1,0.1"))
        self.addParameter(QgsProcessingParameterNumber(
            "SEED", "Seed", QgsProcessingParameterNumber.Integer, 0, False, 0))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_FOREGROUND", "Minimum landslide fraction of a chip",
            QgsProcessingParameterNumber.Double, None, True, 0.0, 1.0))
        self.addParameter(QgsProcessingParameterNumber(
            "KEEP_EMPTY", "Share of empty chips kept", QgsProcessingParameterNumber.Double,
            1.0, False, 0.0, 1.0))
        self.addParameter(QgsProcessingParameterBoolean(
            "OVERWRITE", "Replace chips of an earlier run in the folder", defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Chip folder"))
        self.addOutput(QgsProcessingOutputVectorLayer("INDEX", "Chip footprints"))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        out_dir = self.parameterAsString(parameters, "OUTPUT", context)
        text = self.parameterAsString(parameters, "SPLIT", context)
        try:
            split = [float(part) for part in text.split(",")]
        except ValueError:
            raise QgsProcessingException(
                f"Split {text!r}: give three shares such as 0.8,0.1,0.1") from None
        args = commands.tile_args(
            self._scene(parameters, "INPUT", context),
            self._labels(parameters, "LABELS", context, feedback), out_dir,
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            overlap=self._optional_int(parameters, "OVERLAP", context),
            bands=self._bands(parameters, context),
            chip_format=self.FORMATS[self.parameterAsEnum(parameters, "FORMAT", context)],
            split=split, seed=self.parameterAsInt(parameters, "SEED", context),
            min_foreground=self._optional_number(parameters, "MIN_FOREGROUND", context),
            keep_empty=self.parameterAsDouble(parameters, "KEEP_EMPTY", context),
            overwrite=self.parameterAsBoolean(parameters, "OVERWRITE", context))
        self.run_geoseg(args, feedback, [])
        index = str(Path(out_dir) / "index.gpkg")
        context.addLayerToLoadOnCompletion(index, QgsProcessingContext.LayerDetails(
            "Training chips", context.project() or QgsProject.instance(), "INDEX"))
        return {"OUTPUT": out_dir, "INDEX": index}


class TrainModel(GeosegAlgorithm):
    """``geoseg train``: a model from a config, on a dataset folder or a labelled scene."""

    NAME = "train"
    LABEL = "Train a model"
    GROUP = "Train and evaluate"
    HELP = (
        "Trains a FlexUNet as a geoseg config file describes (geoseg train). Training takes "
        "long: the progress bar counts training steps, the log gets a line per epoch, and "
        "Cancel stops cleanly after the current step.<br><br>"
        "<b>Config</b>: a FlexUNet INI config (see configs/ in geoseg's repository): the "
        "network, loss, epochs, batch size and data folders.<br>"
        "<b>Data</b>: a dataset folder (the reference layout, or chips from 'Cut training "
        "chips'), or a scene with its landslide polygons; empty: the folders of the config. "
        "A validation scene with its polygons is optional.<br>"
        "<b>Output folder</b> gets model.keras (the best epoch, for 'Detect landslides'), "
        "last.keras, training_log.csv, training_curves.png and epoch previews. An output "
        "folder holding a run is refused unless <b>Continue the run</b> (with more epochs) or "
        "<b>Replace</b> is ticked.")
    CANCELLED = ("Cancelled. Epochs finished so far are saved in the output folder: run "
                 "again with 'Continue the run in the output folder' ticked to go on.")
    _out_dir = ""
    CANCELLED_EARLY = ("Cancelled before the first epoch ended: no epoch was saved, so there "
                       "is nothing to continue; run again to start the training.")

    def cancelled_message(self) -> str:
        """Suggest continuing only when the output folder holds an epoch (last.keras)."""
        if (Path(self._out_dir) / "last.keras").is_file():
            return self.CANCELLED
        return self.CANCELLED_EARLY

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterFile(
            "CONFIG", "Config", behavior=QgsProcessingParameterFile.File,
            fileFilter="geoseg configs (*.config *.ini *.cfg);;All files (*)"))
        self.addParameter(QgsProcessingParameterFile(
            "DATASET", "Dataset folder", behavior=QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "SCENE", "Training scene (instead of a dataset folder)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "LABELS", "Landslide polygons of the training scene",
            [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "VALID_SCENE", "Validation scene", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "VALID_LABELS", "Landslide polygons of the validation scene",
            [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "EPOCHS", "Train until epoch (empty: the config's)",
            QgsProcessingParameterNumber.Integer, None, True, 1))
        self._advanced(QgsProcessingParameterString(
            "MONITOR", "Value choosing the best model, e.g. val_landslide_iou (empty: val_loss)",
            optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "RESUME", "Continue the run in the output folder", defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            "OVERWRITE", "Replace a run in the output folder", defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Output folder"))
        self.addOutput(QgsProcessingOutputFile("MODEL", "Trained model"))

    def _pair(self, parameters: dict[str, Any], scene: str, labels: str,
              context: QgsProcessingContext,
              feedback: QgsProcessingFeedback) -> tuple[str, str] | None:
        image = self._scene(parameters, scene, context)
        polygons = self._labels(parameters, labels, context, feedback)
        if (image is None) != (polygons is None):
            raise QgsProcessingException(f"give both {scene.lower().replace('_', ' ')} and "
                                         "its landslide polygons, or neither")
        return None if image is None or polygons is None else (image, polygons)

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        out_dir = self._out_dir = self.parameterAsString(parameters, "OUTPUT", context)
        args = commands.train_args(
            self.parameterAsFile(parameters, "CONFIG", context), out_dir,
            dataset=self.parameterAsFile(parameters, "DATASET", context) or None,
            scene=self._pair(parameters, "SCENE", "LABELS", context, feedback),
            valid_scene=self._pair(parameters, "VALID_SCENE", "VALID_LABELS", context,
                                   feedback),
            epochs=self._optional_int(parameters, "EPOCHS", context),
            monitor=self.parameterAsString(parameters, "MONITOR", context) or None,
            resume=self.parameterAsBoolean(parameters, "RESUME", context),
            overwrite=self.parameterAsBoolean(parameters, "OVERWRITE", context))
        self.run_geoseg(args, feedback, [])
        return {"OUTPUT": out_dir, "MODEL": str(Path(out_dir) / "model.keras")}


ALGORITHMS = [DetectLandslides, VectorizeMask, EvaluateModel, CutTrainingChips, TrainModel]
