"""The parameters of a prediction run and of its polygons, each described once: name, type,
range or choices, default, help, and the library function that checks it.

The command line builds its options from this table (:mod:`geoseg.commands.options`), and a
test compares the QGIS plugin's parameters with it, so ``geoseg predict``, ``geoseg
evaluate``, ``geoseg tile``, ``geoseg info``, the QGIS dialogs and the library cannot
disagree. A default is either written here (the run's: window, test-time augmentation,
resolution, probability dtype) or read from its owner (:class:`geoseg.model.predictor.ModelSpec`
for the batch size, device, precision and backend); ``None`` means the owner decides from
the model (:func:`geoseg.raster.tiling.grid_size` for the tile size and overlap, the model's stored
threshold and post-processing). Every check stays with its owner, named by ``checked_by``.

The smallest tile is 1 pixel, as :func:`geoseg.raster.tiling.check_grid_size` has it: the grid
needs nothing more, and a model's own rule (a multiple of its size step, ``2**(layers-1)``:
16 for five layers, 4 for three) is its settings' to check
(:meth:`geoseg.settings.ModelSettings.validate`), not a fixed floor of the command line.

No click here (the library never imports it), and nothing slow to import: the command line
reads this table at start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from geoseg.model.model_protocol import BACKENDS, DEVICES, PRECISIONS
from geoseg.model.predictor import ModelSpec
from geoseg.prediction.tta import TTA_MODES
from geoseg.settings import AUTO_WINDOW, AUTO_WINDOW_FILTERS, DEFAULT_TILE_SIZE
from geoseg.vectors.polygon_options import PolygonOptions

__all__ = ["PROBABILITY_DTYPES", "RUN_PARAMETERS", "Kind", "RunParameter", "run_parameter"]

Kind = Literal["int", "float", "choice", "window", "bands", "text"]
"""How a parameter's value is written: a whole number, a number, one of ``choices``, a window
(``auto``, ``tile`` or pixels), a list of 1-based bands, or text its owner parses."""

PROBABILITY_DTYPES = ("uint8", "float32")
"""How probabilities are stored (:class:`geoseg.prediction.predict_options.PredictOptions`)."""


@dataclass(frozen=True)
class RunParameter:
    """One parameter of a run, as every front end offers it."""

    name: str
    """The library's name (:func:`geoseg.errors.param`); the flag is ``--`` + it with dashes."""
    kind: Kind
    default: Any
    """The value when none is given; ``None``: the owner decides (from the model mostly)."""
    help: str
    """The command line's help text (the QGIS dialogs word their labels themselves)."""
    checked_by: str
    """The library function or class that checks a value (and resolves ``None``)."""
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    """The minimum itself is refused."""
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    """How the command line's help shows a value of kind ``text``."""
    fallback: Any = None
    """With ``default`` None: the value when there is no model to take it from either."""

    @property
    def flag(self) -> str:
        """The command line's flag: ``--tile-size`` for ``tile_size``."""
        return "--" + self.name.replace("_", "-")


def _spec_default(name: str) -> Any:
    """A :class:`ModelSpec` field's default: the batch size, device, precision or backend."""
    return next(field.default for field in dataclasses.fields(ModelSpec) if field.name == name)


_POLYGONS = PolygonOptions()
"""The polygons' defaults (minimum area, simplification, holes, connectivity): their owner's."""


_PARAMETERS = [
    RunParameter(
        "tile_size", "int", None, f"Tile side in pixels [default: the model's, else "
        f"{DEFAULT_TILE_SIZE}].", "geoseg.raster.tiling.check_grid_size", minimum=1,
        fallback=DEFAULT_TILE_SIZE),
    RunParameter(
        "overlap", "int", None, "Pixels shared by neighbouring tiles [default: the model's "
        "recommended overlap, else an eighth of the tile].", "geoseg.raster.tiling.check_grid_size",
        minimum=0),
    RunParameter(
        "batch_size", "int", _spec_default("batch_size"), "Tiles per model call (windows "
        "larger than a tile: as many as hold their pixels, at least one).",
        "geoseg.model.model_protocol.check_run_settings", minimum=1),
    RunParameter(
        "device", "choice", _spec_default("device"), "Where the model runs; auto uses a GPU "
        "when one is visible.", "geoseg.model.model_protocol.check_run_settings", choices=DEVICES),
    RunParameter(
        "precision", "choice", _spec_default("precision"), "bfloat16: faster on CPUs with "
        "bfloat16 instructions and recent GPUs; int8: the model's int8 version (bundled models "
        "ship theirs; geoseg quantize and geoseg train make one) on openvino and the CPU, ~3x "
        "as fast on CPUs with VNNI or AMX; both give probabilities slightly different from "
        "float32's. auto: int8 when the CPU has VNNI or AMX int8 instructions and the model an "
        "int8 version, else float32.", "geoseg.model.model_protocol.check_run_settings",
        choices=PRECISIONS),
    RunParameter(
        "backend", "choice", _spec_default("backend"), "What runs the model: keras "
        "(TensorFlow), openvino, onnx (ONNX Runtime) or tflite (LiteRT), the last three on a "
        "conversion made once and cached next to the model; auto: openvino (installed with "
        "geoseg: same masks, faster, starts without TensorFlow), but keras when the NVIDIA "
        "driver lists a GPU or openvino is missing.",
        "geoseg.model.model_protocol.check_run_settings",
        choices=BACKENDS),
    RunParameter(
        "window", "window", "auto", f"Side of the windows the model predicts, with the "
        f"model's overlap. auto: {AUTO_WINDOW} pixels for models of up to "
        f"{AUTO_WINDOW_FILTERS} base filters, as many pixels times filters for wider ones "
        f"({AUTO_WINDOW // 2} for {AUTO_WINDOW_FILTERS * 4}), or the model's tile if larger "
        "(keras and openvino backends; the tile on the others); tile: the model's tile, the "
        "least memory; or pixels, a multiple of the model's size step. Larger windows predict "
        "less of the scene twice; a model call holds as many pixels as --batch-size tiles, or "
        "one window.", "geoseg.raster.tiling.resolve_window"),
    RunParameter(
        "resolution", "text", "native", "Pixel size the model predicts at. native: the "
        "scene's own; auto: the model's training pixel size when the scene's differs by more "
        "than 1.25x (else, or when either is unknown, native); or metres (at most 16x the "
        "scene's pixels). The scene is read resampled (averaged when coarser, bilinear when "
        "finer) and the probabilities resampled back: the outputs are always on the scene's "
        "grid.", "geoseg.raster.resample.check_resolution", metavar="native|auto|METRES"),
    RunParameter(
        "tta", "choice", "none", "Test-time augmentation: average each tile's probabilities "
        "over its flipped (flips: 4 model calls per tile) or flipped and rotated (d4: 8 "
        "calls) copies before blending.", "geoseg.prediction.tta.transforms", choices=TTA_MODES),
    RunParameter(
        "bands", "bands", None, "Comma-separated 1-based bands to feed the model, in the "
        "model's order, e.g. 1,2,3 [default: the bands the model was trained on].",
        "geoseg.raster.scene.select_bands"),
    RunParameter(
        "threshold", "float", None, "Landslide probability threshold: a pixel is landslide "
        "when its probability is >= it; 0.5 is the most probable class [default: the model's "
        "own threshold (geoseg info), else the most probable class]. geoseg evaluate reports "
        "the threshold with the best landslide F1 (threshold_sweep.csv).",
        "geoseg.prediction.predict_options.PredictOptions", minimum=0.0, maximum=1.0),
    RunParameter(
        "seed_threshold", "float", None, "Keep a landslide region only if its highest "
        "probability reaches this (hysteresis: regions grow down to --threshold) [default: "
        "the model's post-processing (geoseg info), else every region].",
        "geoseg.postprocessing.postprocess_recipe.PostProcessing",
        minimum=0.0, maximum=1.0, min_open=True),
    RunParameter(
        "min_region_area", "float", None, "Drop landslide regions smaller than this many m² "
        "from the mask [default: the model's post-processing, else 0].",
        "geoseg.postprocessing.postprocess_recipe.PostProcessing", minimum=0.0),
    RunParameter(
        "fill_region_holes", "float", None, "Fill holes of up to this many m² in landslide "
        "regions of the mask [default: the model's post-processing, else 0].",
        "geoseg.postprocessing.postprocess_recipe.PostProcessing", minimum=0.0),
    RunParameter(
        "probability_dtype", "choice", PROBABILITY_DTYPES[0], "uint8: round(p*254) with a "
        "GDAL scale of 1/254, nodata 255; float32: p with nodata NaN.",
        "geoseg.prediction.predict_options.PredictOptions", choices=PROBABILITY_DTYPES),
    RunParameter(
        "min_area", "float", _POLYGONS.min_area, "Drop polygons smaller than this, in m².",
        "geoseg.vectors.polygon_options.PolygonOptions", minimum=0.0),
    RunParameter(
        "simplify", "float", _POLYGONS.simplify, "Simplification tolerance in metres (0: "
        "pixel outlines); on a geographic or Web Mercator CRS converted to its units at the "
        "scene's centre.", "geoseg.vectors.polygon_options.PolygonOptions", minimum=0.0),
    RunParameter(
        "fill_holes", "float", _POLYGONS.fill_holes, "Fill holes smaller than this, in m².",
        "geoseg.vectors.polygon_options.PolygonOptions", minimum=0.0),
    RunParameter(
        "connectivity", "choice", str(_POLYGONS.connectivity), "8: pixels touching at a "
        "corner are one polygon; 4: only along an edge.",
        "geoseg.vectors.polygon_options.PolygonOptions", choices=("4", "8")),
]

RUN_PARAMETERS: dict[str, RunParameter] = {parameter.name: parameter
                                           for parameter in _PARAMETERS}
"""Every run parameter by its name."""


def run_parameter(name: str) -> RunParameter:
    """The parameter called ``name``.

    >>> run_parameter("overlap").flag, run_parameter("tile_size").minimum
    ('--overlap', 1)
    >>> run_parameter("window").default, run_parameter("batch_size").default
    ('auto', 4)
    """
    return RUN_PARAMETERS[name]
