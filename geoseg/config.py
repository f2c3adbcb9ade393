"""The one configuration loader of geoseg: FlexUNet-style INI files for train, evaluate and predict.

The format is the reference FlexUNet ``train_eval_infer.config``: ``[section]`` headers and
``key = value`` lines whose values are Python literals, read with :func:`ast.literal_eval`
(never ``eval``): numbers, ``True``/``False``/``None``, quoted strings, tuples, lists and dicts,
e.g. ``base_kernels = (11,11)`` or ``rgb_map = {(0,0,0):0, (255,0,0):1,}``. Lines starting
with ``;`` or ``#`` are comments. Keys are lower-cased by :mod:`configparser`.

Every section and key is declared once, in the section dataclasses of
:mod:`geoseg.config_schema`: default, type, range and a one-line doc. Absent keys take their
default; unknown sections or keys, wrong types and out-of-range values are a
:class:`~geoseg.errors.ConfigError` naming file, section and key.

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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.config_schema import (
    LOSSES,
    NOT_READ,
    SECTIONS,
    DatasetSection,
    EvalSection,
    ImageSection,
    InferSection,
    Key,
    MaskSection,
    ModelSection,
    SplitSection,
    TiledInferSection,
    TrainSection,
    ini_text,
    schema_markdown,
    section_keys,
)
from geoseg.errors import ConfigError
from geoseg.settings import ARCHITECTURE, ModelSettings, default_class_names, overlap_fits

__all__ = [
    "LOSSES", "SECTIONS", "Config", "ModelSection", "DatasetSection", "TrainSection",
    "SplitSection", "EvalSection", "InferSection", "TiledInferSection", "ImageSection",
    "MaskSection", "load_config", "parse_config", "default_config", "schema_markdown",
]
"""The schema's names are re-exported: ``from geoseg.config import SECTIONS`` keeps working."""

log = logging.getLogger(__name__)


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
            listed = ", ".join(f"{keys[name]} = {ini_text(ours)} (it has {ini_text(theirs)})"
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
        valid = [*section_keys(SECTIONS[section])]
        for key in parser[section]:
            if key not in valid:
                elsewhere = [s for s, cls in SECTIONS.items() if key in section_keys(cls)]
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
    if tiled.overlap is not None and not overlap_fits(tiled.overlap, size):
        raise fail("tiledinfer", "overlap", f"{tiled.overlap} must be at least 0 and smaller "
                   f"than the tile {size}")
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
                                for key, spec in section_keys(cls).items()})
    _derive_and_check(sections, source)
    _warn_unread(parser, source)
    keys_set = frozenset((name, key) for name in parser.sections() for key in parser[name])
    return Config(**sections, source=source, given=keys_set)


def _warn_unread(parser: configparser.ConfigParser, source: str) -> None:
    """Say, once, which keys of the file geoseg does not read (set, but without effect)."""
    unread = [f"[{name}] {key}" for name, cls in SECTIONS.items() if parser.has_section(name)
              for key, spec in section_keys(cls).items()
              if key in parser[name] and NOT_READ in spec.doc]
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
