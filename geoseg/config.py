"""The one configuration loader of geoseg: FlexUNet-style INI files for train, evaluate and predict.

The format is the reference FlexUNet ``train_eval_infer.config``: ``[section]`` headers and
``key = value`` lines whose values are Python literals, read with :func:`ast.literal_eval`
(never ``eval``): numbers, ``True``/``False``/``None``, quoted strings, tuples, lists and dicts,
e.g. ``base_kernels = (11,11)`` or ``rgb_map = {(0,0,0):0, (255,0,0):1,}``. Lines starting
with ``;`` or ``#`` are comments. Keys are lower-cased by :mod:`configparser`.

Every section and key is declared once, in the section dataclasses below: default, type, range
and a one-line doc. Absent keys take their default; unknown sections or keys, wrong types and
out-of-range values are a :class:`~geoseg.errors.ConfigError` naming file, section and key.

Relative paths (``images_dir``, ``model_dir``, ...) are resolved against the folder of the
config file, so a config works from any working directory; ``~`` is expanded. In
:func:`parse_config` they are resolved against ``base_dir``, or kept relative when it is None.
Write Windows paths with forward slashes or as raw strings (``r"C:\\data"``).
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import difflib
import logging
import math
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.errors import ConfigError
from geoseg.settings import ARCHITECTURE, ModelSettings, default_class_names

__all__ = [
    "LOSSES", "SECTIONS", "Config", "ModelSection", "DatasetSection", "TrainSection",
    "SplitSection", "EvalSection", "InferSection", "TiledInferSection", "ImageSection",
    "MaskSection", "load_config", "parse_config", "default_config", "schema_markdown",
]

log = logging.getLogger(__name__)

LOSSES = ("categorical_crossentropy", "dice", "ce_dice", "focal", "lovasz_softmax",
          "ce_lovasz_softmax")
"""Loss functions the trainer knows (``[model] loss``)."""


@dataclass(frozen=True)
class Kind:
    """A value type: its name in messages and a converter raising TypeError/ValueError."""

    name: str
    convert: Callable[[Any], Any]
    each: bool = False
    """True for sequences: bounds apply to each item."""


def _exactly(*types: type) -> Callable[[Any], Any]:
    """Accept instances of ``types`` only (booleans are not integers here)."""

    def convert(value: Any) -> Any:
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise TypeError(value)
        return value

    return convert


def _as_float(value: Any) -> float:
    number = float(_exactly(int, float)(value))  # OverflowError for huge ints
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _as_path(value: Any) -> Path:
    text = _exactly(str)(value)
    if not text.strip() or "\0" in text:
        raise ValueError(value)
    return Path(os.path.expanduser(text))


def _sequence_of(item: Callable[[Any], Any], length: int | None = None) -> Callable[[Any], tuple]:
    def convert(value: Any) -> tuple:
        if not isinstance(value, (tuple, list)) or length not in (None, len(value)):
            raise TypeError(value)
        return tuple(item(element) for element in value)

    return convert


def _as_model(value: Any) -> Path | str:
    """A model file (a path ending in ``.keras`` or naming a folder) or a bundled model's name
    (kept as text; resolved where models are loaded)."""
    text = _exactly(str)(value)
    if text.lower().endswith(".keras") or "/" in text or "\\" in text:
        return _as_path(text)
    if not text.strip() or "\0" in text:
        raise ValueError(value)
    return text


def _as_rgb_map(value: Any) -> dict[tuple[int, ...], int]:
    if not isinstance(value, dict) or not value:
        raise TypeError(value)
    return {_sequence_of(_exactly(int), 3)(rgb): _exactly(int)(c) for rgb, c in value.items()}


INT = Kind("an integer", _exactly(int))
FLOAT = Kind("a number", _as_float)
BOOL = Kind("True or False", _exactly(bool))
STR = Kind("a quoted string", _exactly(str))
PATH = Kind("a quoted path", _as_path)
INT_PAIR = Kind("a pair of integers such as (7,7)", _sequence_of(_exactly(int), 2), each=True)
STR_LIST = Kind("a list of quoted strings", _sequence_of(_exactly(str)), each=True)
INT_LIST = Kind("a list of integers", _sequence_of(_exactly(int)), each=True)
FLOAT_LIST = Kind("a list of numbers", _sequence_of(_as_float), each=True)
MODEL = Kind("a quoted .keras file or a bundled model's name such as \"hokkaido-iburi\"",
              _as_model)
RGB_MAP = Kind("a dict of (R,G,B) colours to classes such as {(0,0,0):0, (255,0,0):1}",
               _as_rgb_map)


@dataclass(frozen=True)
class Key:
    """One schema entry. Bounds apply to a number, or to each number of a sequence."""

    default: Any
    kind: Kind
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    maximum: float | None = None

    def bounds(self) -> list[tuple[str, float, Callable[[float, float], bool]]]:
        """The bounds that are set, as (symbol, bound, test)."""
        rules = [(">=", self.minimum, operator.ge), (">", self.above, operator.gt),
                 ("<", self.below, operator.lt), ("<=", self.maximum, operator.le)]
        return [(symbol, bound, test) for symbol, bound, test in rules if bound is not None]

    def describe(self) -> str:
        """The type and range in words, e.g. ``an integer >= 1, or None``."""
        choices = "one of " + ", ".join(map(_ini_text, self.choices))
        text = choices if self.choices else self.kind.name
        if self.bounds():
            bounds = " and ".join(f"{symbol} {bound:g}" for symbol, bound, _ in self.bounds())
            text += f", each {bounds}" if self.kind.each else f" {bounds}"
        return text + (", or None" if self.default is None else "")


def _ini_text(value: Any) -> str:
    """``value`` as written in a config: strings in double quotes, string tuples as lists."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(map(_ini_text, value)) + "]"
    return repr(value)


def _key(default: Any, kind: Kind, doc: str, **rules: Any) -> Any:
    """A dataclass field carrying its :class:`Key` (every field is filled by the parser)."""
    return field(metadata={"key": Key(default, kind, doc, **rules)})


_COMPAT = "Compatibility only: accepted, not used."
_NOT_READ = ("Not read by geoseg, which warns when it is set: geoseg predict takes scenes, outputs "
             "and these options on its command line.")


@dataclass(frozen=True)
class ModelSection:
    """The [model] section: the FlexUNet network, its optimiser and loss."""

    model: str = _key("TensorFlowFlexUNet", STR, "Network; FlexUNet is the only one.",
                      choices=("TensorFlowFlexUNet",))
    generator: bool = _key(False, BOOL, f"Reference data-generator switch. {_COMPAT}")
    image_width: int = _key(512, INT, "Tile width in pixels = model input size.", minimum=1)
    image_height: int = _key(512, INT, "Tile height; must equal image_width.", minimum=1)
    image_channels: int = _key(3, INT, "Bands fed to the model.", minimum=1, maximum=1024)
    input_normalize: bool = _key(True, BOOL, "Scale inputs to 0-1 inside the model.")
    normalization: bool = _key(False, BOOL, "Batch normalisation after convolutions.")
    num_classes: int = _key(2, INT, "Classes, background included.", minimum=1, maximum=256)
    base_filters: int = _key(16, INT, "Filters of the first level, doubled per level.", minimum=1)
    base_kernels: tuple[int, int] = _key((7, 7), INT_PAIR, "Kernel size (odd).", minimum=1)
    num_layers: int = _key(6, INT, "Levels; tiles must divide by 2**(num_layers-1).", minimum=1,
                           maximum=16)
    dropout_rate: float = _key(0.05, FLOAT, "Dropout rate.", minimum=0, below=1)
    dilation: tuple[int, int] = _key((1, 1), INT_PAIR, "Convolution dilation rate.", minimum=1)
    optimizer: str = _key("Adam", STR, "Keras optimizer name.")
    learning_rate: float = _key(1e-4, FLOAT, "Initial learning rate.", above=0)
    clipvalue: float | None = _key(None, FLOAT, "Gradient clip value; None = none.", above=0)
    loss: str = _key("categorical_crossentropy", STR, "Training loss.", choices=LOSSES)
    metrics: tuple[str, ...] = _key(("dice_coef_multiclass",), STR_LIST, "Training metrics.")
    show_summary: bool = _key(False, BOOL, "Print the Keras model summary when building.")
    class_names: tuple[str, ...] = _key(None, STR_LIST, 'Class names; None = "background", '
                                        '"landslide" for 2 classes, else "class_0"...')
    bands: tuple[int, ...] = _key(None, INT_LIST, "1-based scene bands fed to the model, in "
                                  "order; None = 1..image_channels.", minimum=1)
    overlap: int | None = _key(None, INT, "Recommended tile overlap (pixels) for prediction, "
                               "stored in the model; None = image_width // 8 (64 for 512).",
                               minimum=0)


@dataclass(frozen=True)
class DatasetSection:
    """The [dataset] section (compatibility only)."""

    class_name: str = _key("ImageCategorizedMaskDataset", STR, f"Dataset class. {_COMPAT}")


@dataclass(frozen=True)
class TrainSection:
    """The [train] section: training data, schedule and outputs."""

    epochs: int = _key(50, INT, "Maximum training epochs.", minimum=1)
    batch_size: int = _key(4, INT, "Tiles per training batch.", minimum=1)
    steps_per_epoch: int | None = _key(None, INT, "Batches per epoch; None = all.", minimum=1)
    validation_steps: int | None = _key(None, INT, "Validation batches; None = all.", minimum=1)
    patience: int = _key(10, INT, "Epochs without improvement before stopping.", minimum=0)
    metrics: tuple[str, ...] = _key(("dice_coef_multiclass", "val_dice_coef_multiclass"),
                                    STR_LIST, f"Reference plot list. {_COMPAT} (every logged "
                                    "metric is plotted)")
    model_dir: Path = _key("./models/", PATH, "Folder for the model and checkpoints.")
    eval_dir: Path = _key("./eval/", PATH, f"Reference folder for curves and logs. {_COMPAT} "
                          "(geoseg writes them into the output folder)")
    images_dir: Path | None = _key(None, PATH, "Training images folder.")
    masks_dir: Path | None = _key(None, PATH, "Training masks folder.")
    create_backup: bool = _key(False, BOOL, f"Reference backup switch. {_COMPAT}")
    learning_rate_reducer: bool = _key(True, BOOL, "Reduce the learning rate on plateaus "
                                       "(with lr_schedule \"plateau\").")
    lr_schedule: str = _key("plateau", STR, "Learning-rate schedule: plateau (constant, "
                            "reduced on plateaus if learning_rate_reducer) or cosine (decays "
                            "from learning_rate to 0 over epochs x steps, step by step).",
                            choices=("plateau", "cosine"))
    reducer_factor: float = _key(0.5, FLOAT, "Learning-rate reduction factor.", above=0, below=1)
    reducer_patience: int = _key(4, INT, "Epochs on a plateau before reducing.", minimum=0)
    epoch_change_infer: bool = _key(True, BOOL, "After every epoch, save image | truth | "
                                    "prediction panels of a few validation tiles.")
    epoch_change_infer_dir: Path = _key("./epoch_change_infer", PATH, _COMPAT)
    epoch_change_tiled_infer: bool = _key(False, BOOL, f"Per-epoch tiled preview. {_COMPAT}")
    epoch_change_tiled_infer_dir: Path = _key("./epoch_change_tiled_infer", PATH, _COMPAT)
    num_infer_images: int = _key(6, INT, "Tiles in the per-epoch previews.", minimum=0)
    save_weights_only: bool = _key(True, BOOL, f"Reference checkpoint switch. {_COMPAT} (the "
                                   "best model is saved with its settings, last.keras in full)")
    seed: int = _key(42, INT, "Seed of shuffling, augmentation and initialisation.", minimum=0)
    augmentation: bool = _key(True, BOOL, "Augment training tiles: random flips and "
                              "rotations, and the changes below.")
    augment_brightness: float = _key(0.1, FLOAT, "Largest relative brightness change of an "
                                     "augmented tile, in [0, 1): a gain drawn from [1 - b, "
                                     "1 + b]; 0 = none.")
    augment_contrast: float = _key(0.1, FLOAT, "Largest relative contrast change, in [0, 1): "
                                   "each band stretched about its mean by a factor drawn from "
                                   "[1 - c, 1 + c]; 0 = none.")
    augment_scale: float = _key(0.0, FLOAT, "Largest relative zoom, in [0, 1]: a factor drawn "
                                "from [1 / (1 + s), 1 + s], the tile cropped back or padded "
                                "with pixels left out of the loss; 0 = none.")
    class_weights: tuple[float, ...] | None = _key(None, FLOAT_LIST, "Loss weight per class; "
                                                   "None = equal.", minimum=0)
    gap_weight: float = _key(0.0, FLOAT, "Extra cross-entropy weight of the background "
                             "pixels in narrow gaps between landslides (those a closing of "
                             "the landslide classes fills, up to gap_width pixels wide), so "
                             "the model learns to keep neighbouring landslides apart: a gap "
                             "pixel counts 1 + gap_weight times; 0 = off.", minimum=0)
    gap_width: int = _key(4, INT, "Widest gap between landslides, in pixels, that gap_weight "
                          "emphasises.", minimum=1, maximum=64)
    tune_threshold: bool = _key(True, BOOL, "After training, choose the landslide "
                                "probability threshold with the best IoU on the training "
                                "tiles and store it in the model, for predict and evaluate "
                                "(two-class models).")
    tune_postprocessing: bool = _key(True, BOOL, "After training, choose the post-processing "
                                     "(hysteresis peak, minimum area, hole filling) with the "
                                     "best object F1 on the validation scenes, keeping their "
                                     "pixel IoU, and store it in the model for predict, "
                                     "vectorize and evaluate (two-class models; needs "
                                     "validation scenes).")
    precision: str = _key("float32", STR, "Arithmetic of the training step: mixed_bfloat16 "
                          "computes in bfloat16 (weights stay float32; faster on CPUs with "
                          "bfloat16 instructions); saved models predict in float32.",
                          choices=("float32", "mixed_bfloat16"))
    ema_momentum: float | None = _key(None, FLOAT, "Keep an exponential moving average of the "
                                      "weights with this momentum (e.g. 0.99: about the last "
                                      "100 steps) and save the average as the model; None = "
                                      "off.", above=0, below=1)
    cache_mb: int = _key(2048, INT, "Decode the training and validation tiles once and keep "
                         "them in memory when they fit in this many MiB (float32); 0 = read "
                         "them from the files every epoch.", minimum=0)
    pixel_size: float | None = _key(None, FLOAT, "Ground size of the training pixels in "
                                    "metres, stored in the model so that geoseg predict warns "
                                    "about scenes of another resolution; None = from the "
                                    "training images' georeference (unknown for PNG tiles).",
                                    above=0)
    init_model: Path | str | None = _key(None, MODEL, "Fine-tune this model: start from its "
                                         "weights, with its network, tile size, bands and "
                                         "normalisation ([model] keys that change the network "
                                         "must match it); None = train from scratch.")
    freeze_encoder_epochs: int = _key(0, INT, "With init_model: keep the encoder (the "
                                      "contracting path and the bridge) fixed for this many "
                                      "first epochs, training the decoder only.", minimum=0)


@dataclass(frozen=True)
class SplitSection:
    """The [valid] and [test] sections: validation data (training) and test data (evaluate)."""

    images_dir: Path | None = _key(None, PATH, "Images folder.")
    masks_dir: Path | None = _key(None, PATH, "Masks folder.")


@dataclass(frozen=True)
class EvalSection:
    """The [eval] section: evaluation outputs and object matching."""

    output_dir: Path | None = _key(None, PATH, "Folder for evaluation reports.")
    iou_threshold: float = _key(0.5, FLOAT, "IoU for a predicted object to match a labelled one.",
                                above=0, maximum=1)


@dataclass(frozen=True)
class InferSection:
    """The [infer] section: prediction of single images."""

    images_dir: Path | None = _key(None, PATH, f"Images to predict. {_NOT_READ}")
    output_dir: Path | None = _key(None, PATH, f"Folder for predicted masks. {_NOT_READ}")
    threshold: float | None = _key(None, FLOAT, f"{_NOT_READ} Foreground probability threshold "
                                   "(2 classes); "
                                   "None = argmax.", above=0, below=1)
    batch_size: int = _key(4, INT, f"Tiles per prediction batch. {_NOT_READ}", minimum=1)


@dataclass(frozen=True)
class TiledInferSection:
    """The [tiledinfer] section: prediction of whole scenes, tile by tile."""

    images_dir: Path | None = _key(None, PATH, f"Scenes to predict. {_NOT_READ}")
    output_dir: Path | None = _key(None, PATH, f"Folder for the stitched predictions. {_NOT_READ}")
    overlap: int | None = _key(None, INT, "Tile overlap (pixels) of predictions; stored in the "
                               "model as its recommended overlap. None = [model] overlap.",
                               minimum=0)
    batch_size: int = _key(4, INT, f"Tiles per prediction batch. {_NOT_READ}", minimum=1)
    bitwise_blending: bool = _key(True, BOOL, f"Reference blending switch. {_COMPAT}")
    split_size: int | None = _key(None, INT, "Reference tile size; must equal image_width "
                                  "if given (compatibility).", minimum=1)


@dataclass(frozen=True)
class ImageSection:
    """The [image] section: image files."""

    color_order: str = _key("RGB", STR, f"Channel order of image files. {_COMPAT} (geoseg "
                            "reads bands in file order; choose them with [model] bands)",
                            choices=("RGB", "BGR"))


@dataclass(frozen=True)
class MaskSection:
    """The [mask] section: mask files and their colours."""

    mask_file_format: str = _key(".png", STR, "File extension of masks, with the dot.")
    rgb_map: dict[tuple[int, int, int], int] = _key(
        {(0, 0, 0): 0, (255, 0, 0): 1}, RGB_MAP, "Mask colour (R,G,B) of each class; class 0 "
        "(background) must have one.")


SECTIONS: dict[str, type] = {
    "model": ModelSection, "dataset": DatasetSection, "train": TrainSection,
    "valid": SplitSection, "test": SplitSection, "eval": EvalSection, "infer": InferSection,
    "tiledinfer": TiledInferSection, "image": ImageSection, "mask": MaskSection,
}
"""Section name -> its dataclass, in file order."""


@dataclass(frozen=True)
class Config:
    """A complete, checked configuration: one attribute per section, plus its source."""

    model: ModelSection
    dataset: DatasetSection
    train: TrainSection
    valid: SplitSection
    test: SplitSection
    eval: EvalSection
    infer: InferSection
    tiledinfer: TiledInferSection
    image: ImageSection
    mask: MaskSection
    source: str
    """The config file path, or ``"<string>"``/``"<defaults>"`` when not read from a file."""
    given: frozenset[tuple[str, str]] = frozenset()
    """The (section, key) pairs the text sets; every other key has its default."""

    def model_kwargs(self) -> dict[str, Any]:
        """The arguments of the FlexUNet builder, taken from ``[model]``.

        Returns
        -------
        dict
            ``image_size, image_channels, num_classes, base_filters, base_kernels, num_layers,
            dropout_rate, dilation, input_normalize, batch_norm, class_names, bands, overlap``;
            the overlap is ``[tiledinfer] overlap`` (which defaults to ``[model] overlap``):
            the model carries it as the overlap ``geoseg predict`` uses.
        """
        return _model_kwargs(self.model) | {"overlap": self.tiledinfer.overlap}

    def fine_tuned_kwargs(self, parent: ModelSettings, parent_name: str) -> dict[str, Any]:
        """The settings of a model fine-tuned from ``parent``, as :meth:`model_kwargs`: the
        parent's (its imagery facts, threshold and post-processing left out: they are the
        parent's data's), with the ``[model]`` keys this
        config sets that do not change the network (dropout, class names, bands, overlap).

        Raises
        ------
        ConfigError
            A key the config sets changes the network (:data:`~geoseg.settings.ARCHITECTURE`:
            tile size, bands count, classes, filters, kernels, layers, dilation,
            normalisation), naming each and the parent's value.
        """
        requested = ModelSettings(**self.model_kwargs())
        given = {_MODEL_KEYS[key] for section, key in self.given
                 if section == "model" and key in _MODEL_KEYS}
        if ("tiledinfer", "overlap") in self.given:
            given.add("overlap")
        differ = requested.differences(parent, [n for n in ARCHITECTURE if n in given])
        if differ:
            keys = {field: key for key, field in reversed(_MODEL_KEYS.items())}  # image_width
            listed = ", ".join(f"{keys[name]} = {_ini_text(ours)} (it has {_ini_text(theirs)})"
                               for name, (ours, theirs) in differ.items())
            raise ConfigError(f"{self.source}: [model] differs from {parent_name}, the model to "
                              f"fine-tune: {listed}; a fine-tuned model keeps its parent's "
                              "network: remove these keys or set them to its values")
        kept = parent.without_facts().to_dict() | {"threshold": None, "postprocessing": None}
        return kept | {name: getattr(requested, name) for name in given}


_MODEL_KEYS = {
    "image_width": "image_size", "image_height": "image_size",
    "image_channels": "image_channels", "num_classes": "num_classes",
    "base_filters": "base_filters", "base_kernels": "base_kernels", "num_layers": "num_layers",
    "dropout_rate": "dropout_rate", "dilation": "dilation",
    "input_normalize": "input_normalize", "normalization": "batch_norm",
    "class_names": "class_names", "bands": "bands", "overlap": "overlap",
}
"""``[model]`` keys that are model settings, and the :class:`ModelSettings` field of each."""


def _model_kwargs(m: ModelSection) -> dict[str, Any]:
    kwargs = {field: getattr(m, key) for key, field in _MODEL_KEYS.items()
              if key != "image_height"}  # equal to image_width (checked)
    return kwargs | {"class_names": list(m.class_names), "bands": list(m.bands)}


def _schema(cls: type) -> dict[str, Key]:
    return {f.name: f.metadata["key"] for f in dataclasses.fields(cls)}


def _show(raw: str) -> str:
    text = " ".join(raw.split())
    return f"'{text[:60]}...'" if len(text) > 60 else f"'{text}'"


def _unknown(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {kind} {name!r}; {hint}valid {kind}s: {', '.join(valid)}"


def _check_names(parser: configparser.ConfigParser, source: str) -> None:
    names = (["DEFAULT"] if parser.defaults() else []) + parser.sections()
    for section in names:
        if section not in SECTIONS:
            raise ConfigError(f"{source}: [{section}]: {_unknown('section', section, [*SECTIONS])}")
        valid = [*_schema(SECTIONS[section])]
        for key in parser[section]:
            if key not in valid:
                elsewhere = [s for s, cls in SECTIONS.items() if key in _schema(cls)]
                hint = f" ({key} belongs in [{'] or ['.join(elsewhere)}])" if elsewhere else ""
                message = _unknown("key", key, valid)
                raise ConfigError(f"{source}: [{section}] {key}: {message}{hint}")


def _value(key: Key, raw: str | None, where: str, base_dir: Path | None) -> Any:
    """The checked value of one key from its raw INI text (None: the key is absent)."""
    if raw is None:
        value, raw = key.default, repr(key.default)
    else:
        try:
            value = ast.literal_eval(raw.strip())
        except TypeError:  # an unhashable dict key or set item
            raise ConfigError(f"{where}: {_show(raw)}: dict keys must be tuples such as "
                              "(255,0,0), not lists") from None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            hint = "; comments go on their own line" if " ;" in raw or " #" in raw else ""
            raise ConfigError(f"{where}: {_show(raw)} is not a Python literal; quote strings "
                              f'(key = "text"), write True/False/None, numbers, (tuples), '
                              f"[lists] or {{dicts}}{hint}") from None
    if value is None:
        if key.default is None:
            return None
        raise ConfigError(f"{where}: expected {key.kind.name}, got None (None is not allowed here)")
    try:
        value = key.kind.convert(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected {key.kind.name}, got {_show(raw)}") from None
    if key.choices and value not in key.choices:
        close = difflib.get_close_matches(str(value), key.choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(key.choices)}{hint}")
    numbers = value if isinstance(value, tuple) else (value,)
    for number in numbers if isinstance(value, (int, float, tuple)) else ():
        if not all(test(number, bound) for _, bound, test in key.bounds()):
            raise ConfigError(f"{where}: must be {key.describe()}, got {_show(raw)}")
    if isinstance(value, Path) and base_dir is not None:
        value = Path(os.path.normpath(base_dir / value))
    return value


def _derive_and_check(sections: dict[str, Any], source: str) -> None:
    """Check the rules that involve several keys; fill in the derived values (in place)."""

    def fail(section: str, key: str, message: str) -> ConfigError:
        return ConfigError(f"{source}: [{section}] {key}: {message}")

    model, mask, tiled = sections["model"], sections["mask"], sections["tiledinfer"]
    size, n = model.image_width, model.num_classes
    if model.image_height != size:
        raise fail("model", "image_height", f"{model.image_height} differs from image_width "
                   f"{size}; geoseg tiles are square, set both to the same size")
    bands = model.bands or tuple(range(1, model.image_channels + 1))
    names = model.class_names or tuple(default_class_names(n))
    model = dataclasses.replace(model, bands=bands, class_names=names)
    try:  # the architecture rules and the overlap default live in one place: ModelSettings
        settings = ModelSettings(**_model_kwargs(model))
    except ConfigError as exc:
        raise ConfigError(f"{source}: [model] {exc}") from None
    model = dataclasses.replace(model, overlap=settings.overlap)
    weights = sections["train"].class_weights
    if weights is not None and len(weights) != n:
        raise fail("train", "class_weights", f"{len(weights)} weights given for {n} classes")
    for colour, cls in mask.rgb_map.items():
        if not all(0 <= c <= 255 for c in colour):
            raise fail("mask", "rgb_map", f"colour {colour} has components outside 0-255")
        if not 0 <= cls < n:
            raise fail("mask", "rgb_map", f"class {cls} of colour {colour} is outside "
                       f"0..{n - 1} (num_classes = {n})")
    if 0 not in mask.rgb_map.values():
        raise fail("mask", "rgb_map", "no colour for class 0 (background); add e.g. (0,0,0):0")
    if not mask.mask_file_format.startswith("."):
        raise fail("mask", "mask_file_format", "write the extension with its dot, e.g. \".png\"")
    if tiled.overlap is not None and not tiled.overlap < size:
        raise fail("tiledinfer", "overlap", f"{tiled.overlap} must be smaller than the tile {size}")
    if tiled.split_size not in (None, size):
        raise fail("tiledinfer", "split_size", f"{tiled.split_size} differs from image_width "
                   f"{size}; geoseg tiles at the model input size, remove split_size")
    sections["model"] = model
    if tiled.overlap is None:
        sections["tiledinfer"] = dataclasses.replace(tiled, overlap=model.overlap)


def parse_config(text: str, source: str = "<string>",
                 base_dir: str | os.PathLike[str] | None = None) -> Config:
    """Parse and check a config given as text.

    Parameters
    ----------
    text : str
        INI text; absent sections and keys take their defaults.
    source : str
        Name used in error messages (the file path when read by :func:`load_config`).
    base_dir : path-like, optional
        Folder that relative paths are resolved against; None keeps them relative.

    Returns
    -------
    Config
        With derived values filled in (``class_names``, ``bands``, ``[tiledinfer] overlap``).

    Raises
    ------
    ConfigError
        The text is not INI, or a section, key or value is unknown or invalid.
    """
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"))
    text = text.removeprefix("\ufeff")
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        problem = _ini_problem(exc, text.splitlines())
        raise ConfigError(f"{source}: not a valid INI config: {problem}") from None
    _check_names(parser, source)
    base = Path(os.path.abspath(base_dir)) if base_dir is not None else None
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        given = parser[name] if parser.has_section(name) else {}
        sections[name] = cls(**{key: _value(spec, given.get(key), f"{source}: [{name}] {key}", base)
                                for key, spec in _schema(cls).items()})
    _derive_and_check(sections, source)
    _warn_unread(parser, source)
    keys_set = frozenset((name, key) for name in parser.sections() for key in parser[name])
    return Config(**sections, source=source, given=keys_set)


def _warn_unread(parser: configparser.ConfigParser, source: str) -> None:
    """Say, once, which keys of the file geoseg does not read (set, but without effect)."""
    unread = [f"[{name}] {key}" for name, cls in SECTIONS.items() if parser.has_section(name)
              for key, spec in _schema(cls).items()
              if key in parser[name] and _NOT_READ in spec.doc]
    if unread:
        log.warning("%s: %s not read by geoseg (geoseg predict takes scenes, outputs and "
                    "prediction options on its command line)", source, ", ".join(unread))


def _ini_problem(exc: configparser.Error, lines: list[str]) -> str:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} comes before any [section] header: {_show(exc.line)}"
    if isinstance(exc, configparser.ParsingError):
        lineno = exc.errors[0][0]
        line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        return f"line {lineno} is not a 'key = value' line: {_show(line)}"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"section [{exc.section}] appears twice (line {exc.lineno})"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"[{exc.section}] {exc.option} appears twice (line {exc.lineno})"
    return " ".join(str(exc).split())


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check a config file; relative paths in it are resolved against its folder.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        The file is missing, a folder, unreadable, not UTF-8 text or not a valid config.
    """
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a folder; give the path of a .config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a text file; give an INI .config file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    return parse_config(text, source=str(file), base_dir=file.parent)


def default_config() -> Config:
    """The configuration used when no file is given: every key at its default.

    Returns
    -------
    Config
        Paths relative (to the working directory).
    """
    return parse_config("", source="<defaults>")


def schema_markdown() -> str:
    """Every section and key with type, default and doc, as Markdown tables (for the README).

    Returns
    -------
    str
    """
    lines: list[str] = []
    for name, cls in SECTIONS.items():
        lines += [f"### [{name}]", "", cls.__doc__ or "", "",
                  "| Key | Default | Type | Description |", "|---|---|---|---|"]
        for key, spec in _schema(cls).items():
            lines.append(f"| `{key}` | `{_ini_text(spec.default)}` | {spec.describe()} | "
                         f"{spec.doc} |")
        lines.append("")
    return "\n".join(lines)


def reference_markdown() -> str:
    """The whole configuration reference page (``docs/config.md``), generated from the schema."""
    return (
        "# Configuration reference\n\n"
        "Generated from `geoseg.config` (`python -m geoseg.config > docs/config.md`); a test "
        "keeps it in step with the code.\n\n"
        "The format is the reference FlexUNet `train_eval_infer.config`: INI sections whose "
        "values are Python literals, read with `ast.literal_eval` (never evaluated as code). "
        "Relative paths are resolved against the config file's folder. Unknown keys are an "
        "error naming the closest valid key.\n\n" + schema_markdown()
    )


if __name__ == "__main__":
    print(reference_markdown(), end="")
