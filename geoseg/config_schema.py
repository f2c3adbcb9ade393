"""The INI configuration schema: every section and key, with its default, type, range and doc.

Each ``[section]`` is a frozen dataclass whose fields carry a :class:`Key` (default, value
:class:`Kind`, bounds or choices, a one-line doc); :data:`SECTIONS` lists them in file order.
:mod:`geoseg.config` reads and checks a config against it; :func:`schema_markdown` writes it as
the tables of ``docs/config.md``.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LOSSES", "SECTIONS", "Key", "Kind", "ModelSection", "DatasetSection", "TrainSection",
    "SplitSection", "EvalSection", "InferSection", "TiledInferSection", "ImageSection",
    "MaskSection", "ini_text", "schema_markdown", "section_keys",
]

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
        choices = "one of " + ", ".join(map(ini_text, self.choices))
        text = choices if self.choices else self.kind.name
        if self.bounds():
            bounds = " and ".join(f"{symbol} {bound:g}" for symbol, bound, _ in self.bounds())
            text += f", each {bounds}" if self.kind.each else f" {bounds}"
        return text + (", or None" if self.default is None else "")


def ini_text(value: Any) -> str:
    """``value`` as written in a config: strings in double quotes, string tuples as lists."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(map(ini_text, value)) + "]"
    return repr(value)


def _key(default: Any, kind: Kind, doc: str, **rules: Any) -> Any:
    """A dataclass field carrying its :class:`Key` (every field is filled by the parser)."""
    return field(metadata={"key": Key(default, kind, doc, **rules)})


_COMPAT = "Compatibility only: accepted, not used."
NOT_READ = ("Not read by geoseg, which warns when it is set: geoseg predict takes scenes, outputs "
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

    images_dir: Path | None = _key(None, PATH, f"Images to predict. {NOT_READ}")
    output_dir: Path | None = _key(None, PATH, f"Folder for predicted masks. {NOT_READ}")
    threshold: float | None = _key(None, FLOAT, f"{NOT_READ} Foreground probability threshold "
                                   "(2 classes); "
                                   "None = argmax.", above=0, below=1)
    batch_size: int = _key(4, INT, f"Tiles per prediction batch. {NOT_READ}", minimum=1)


@dataclass(frozen=True)
class TiledInferSection:
    """The [tiledinfer] section: prediction of whole scenes, tile by tile."""

    images_dir: Path | None = _key(None, PATH, f"Scenes to predict. {NOT_READ}")
    output_dir: Path | None = _key(None, PATH, f"Folder for the stitched predictions. {NOT_READ}")
    overlap: int | None = _key(None, INT, "Tile overlap (pixels) of predictions; stored in the "
                               "model as its recommended overlap. None = [model] overlap.",
                               minimum=0)
    batch_size: int = _key(4, INT, f"Tiles per prediction batch. {NOT_READ}", minimum=1)
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



def section_keys(cls: type) -> dict[str, Key]:
    """The keys of one section's dataclass, by name, in file order."""
    return {f.name: f.metadata["key"] for f in dataclasses.fields(cls)}


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
        for key, spec in section_keys(cls).items():
            lines.append(f"| `{key}` | `{ini_text(spec.default)}` | {spec.describe()} | "
                         f"{spec.doc} |")
        lines.append("")
    return "\n".join(lines)
