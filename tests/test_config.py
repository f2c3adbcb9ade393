"""Tests of geoseg.config: the reference FlexUNet INI format, the schema and its checks."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoseg.config import (
    SECTIONS,
    Config,
    default_config,
    load_config,
    parse_config,
    schema_markdown,
)
from geoseg.errors import ConfigError
from geoseg.settings import ModelSettings

DATA = Path(__file__).parent / "data"
HOKKAIDO = DATA / "hokkaido.config"
ALL_KEYS = [(section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def test_reference_hokkaido_config_parses_unchanged() -> None:
    cfg = load_config(HOKKAIDO)
    assert isinstance(cfg, Config)
    assert cfg.source == str(HOKKAIDO)
    assert cfg.model.base_kernels == (11, 11)
    assert cfg.model.num_layers == 8
    assert cfg.model.dilation == (1, 1)
    assert cfg.model.learning_rate == pytest.approx(0.00007)
    assert cfg.model.clipvalue == 0.5
    assert cfg.model.metrics == ("dice_coef_multiclass",)
    assert cfg.mask.rgb_map == {(0, 0, 0): 0, (255, 0, 0): 1}
    assert cfg.mask.mask_file_format == ".png"
    assert cfg.dataset.class_name == "ImageCategorizedMaskDataset"
    assert cfg.train.batch_size == 2
    assert cfg.train.epoch_change_infer is True
    # ";epochs = 50" and ";images_dir = ..." are comments: the live lines win.
    assert cfg.train.epochs == 100
    assert cfg.infer.images_dir == DATA.resolve() / "mini_test" / "images"
    # Derived values.
    assert cfg.model.class_names == ("background", "landslide")
    assert cfg.model.bands == (1, 2, 3)
    assert cfg.tiledinfer.overlap == cfg.model.overlap == 64


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    shutil.copy(HOKKAIDO, folder / "train.config")
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    cfg = load_config("project/configs/train.config")
    dataset = tmp_path.parent / "dataset" / "Hokkaido-Iburi-Tobu"  # ../../../ from configs/
    assert cfg.train.images_dir == dataset / "train" / "images"
    assert cfg.valid.masks_dir == dataset / "valid" / "masks"
    assert cfg.train.model_dir == folder / "models"
    assert cfg.train.model_dir.is_absolute()
    assert cfg.tiledinfer.images_dir is None  # absent optional paths stay None


def test_absolute_and_home_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    text = f'[train]\nimages_dir = "{tmp_path / "imgs"}"\nmasks_dir = "~/masks"\n'
    cfg = parse_config(text, base_dir="/somewhere/else")
    assert cfg.train.images_dir == tmp_path / "imgs"
    assert cfg.train.masks_dir == tmp_path / "masks"
    assert parse_config('[infer]\noutput_dir = "out%1"').infer.output_dir == Path("out%1")


def test_defaults_when_keys_are_absent() -> None:
    cfg = parse_config("[model]\nnum_classes = 3\n")
    assert cfg.model.class_names == ("class_0", "class_1", "class_2")
    assert cfg.model.base_kernels == (7, 7)
    assert cfg.model.num_layers == 6
    assert cfg.model.dropout_rate == 0.05
    assert cfg.model.image_width == cfg.model.image_height == 512
    assert cfg.model.normalization is False and cfg.model.input_normalize is True
    assert cfg.model.learning_rate == 1e-4
    assert cfg.train.epochs == 50 and cfg.train.batch_size == 4 and cfg.train.seed == 42
    assert cfg.train.patience == 10 and cfg.train.reducer_patience == 4
    assert cfg.train.class_weights is None
    assert cfg.infer.threshold is None
    assert cfg.eval.iou_threshold == 0.5
    assert cfg.mask.rgb_map == {(0, 0, 0): 0, (255, 0, 0): 1}
    assert cfg.train.model_dir == Path("models")  # no base_dir: kept relative
    assert default_config() == dataclasses.replace(parse_config(""), source="<defaults>")


def test_model_kwargs() -> None:
    cfg = parse_config("[model]\nimage_channels = 4\nbands = [4, 3, 2, 1]\nnormalization = True\n"
                       "overlap = 32\n[tiledinfer]\noverlap = 16\n")
    kwargs = cfg.model_kwargs()
    assert set(kwargs) == {"image_size", "image_channels", "num_classes", "base_filters",
                           "base_kernels", "num_layers", "dropout_rate", "dilation",
                           "input_normalize", "batch_norm", "class_names", "bands", "overlap"}
    assert kwargs["image_size"] == 512
    assert kwargs["bands"] == [4, 3, 2, 1]
    assert kwargs["batch_norm"] is True
    assert cfg.model.overlap == 32
    assert kwargs["overlap"] == cfg.tiledinfer.overlap == 16  # the prediction overlap is stored


@pytest.mark.parametrize("size", [64, 256, 512, 1024])
def test_the_overlap_default_is_one_rule_whatever_builds_the_model(size: int) -> None:
    from geoseg.settings import default_overlap

    cfg = parse_config(f"[model]\nimage_width = {size}\nimage_height = {size}\nnum_layers = 3\n")
    from_config = ModelSettings(**cfg.model_kwargs()).overlap
    assert from_config == ModelSettings(image_size=size, num_layers=3).overlap == \
        default_overlap(size) == cfg.model.overlap == cfg.tiledinfer.overlap


def test_keys_geoseg_does_not_read_are_named_once(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        parse_config('[infer]\nimages_dir = "a"\nbatch_size = 2\n[tiledinfer]\n'
                     'output_dir = "b"\n', source="mine.config")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("mine.config: [infer] images_dir, [infer] batch_size, "
                                  "[tiledinfer] output_dir not read by geoseg")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        parse_config("[tiledinfer]\noverlap = 8\n")
    assert not caplog.records  # the overlap is read: the model carries it


def test_config_is_frozen() -> None:
    cfg = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.num_layers = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("model", "learning_rate", "1", 1.0),  # ints accepted for floats
        ("model", "base_kernels", "[3, 3]", (3, 3)),  # lists and tuples interchangeable
        ("model", "metrics", '("a", "b")', ("a", "b")),
        ("model", "clipvalue", "None", None),  # None where the default is None
        ("train", "class_weights", "(1, 2.5)", (1.0, 2.5)),
        ("infer", "threshold", "0.3", 0.3),
    ],
)
def test_accepted_values(section: str, key: str, value: str, expected: object) -> None:
    cfg = parse_config(f"[{section}]\n{key} = {value}\n")
    assert getattr(getattr(cfg, section), key) == expected


def test_misspelled_key_names_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[model]\nnum_layer = 8\n", source="my.config")
    message = str(info.value)
    assert message.startswith("my.config: [model] num_layer:")
    assert "did you mean 'num_layers'?" in message
    assert "valid keys: model, generator, image_width" in message
    assert "\n" not in message


def test_key_in_the_wrong_section_says_where_it_belongs() -> None:
    with pytest.raises(ConfigError, match=r"\[infer\] overlap: .*belongs in \[model\] or "
                                          r"\[tiledinfer\]"):
        parse_config("[infer]\noverlap = 32\n")


@pytest.mark.parametrize("text", ["[modle]\nnum_layers = 8\n", "[DEFAULT]\nepochs = 3\n"])
def test_unknown_section(text: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown section .*valid sections: model, dataset"):
        parse_config(text)
    if text.startswith("[modle]"):
        with pytest.raises(ConfigError, match="did you mean 'model'"):
            parse_config(text)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[model]\nnum_layers = 8.5", "[model] num_layers: expected an integer, got '8.5'"),
        ("[model]\nnum_layers = None", "[model] num_layers: expected an integer, got None"),
        ("[train]\nepochs = True", "[train] epochs: expected an integer, got 'True'"),
        ("[model]\nnormalization = 1", "[model] normalization: expected True or False"),
        ("[model]\nbase_kernels = (7, 7, 7)", "expected a pair of integers"),
        ("[model]\ndropout_rate = \"0.1\"", "[model] dropout_rate: expected a number"),
        ("[model]\nlearning_rate = 1e999", "[model] learning_rate: expected a number"),
        ("[train]\nmodel_dir = 3", "[train] model_dir: expected a quoted path"),
        ("[mask]\nrgb_map = {(0,0):0}", "[mask] rgb_map: expected a dict of (R,G,B)"),
        ("[model]\nclass_names = [\"a\", 2]", "expected a list of quoted strings"),
    ],
)
def test_wrong_types(line: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(line, source="x.config")
    assert expected in str(info.value)
    assert str(info.value).startswith("x.config: ")


@pytest.mark.parametrize("value", ["Adam", "adam optimizer", "", "{", "1 +", "f(1)"])
def test_values_that_are_not_literals_ask_to_quote_strings(value: str) -> None:
    with pytest.raises(ConfigError, match=r"x.config: \[model\] optimizer: .*not a Python "
                                          r"literal; quote strings"):
        parse_config(f"[model]\noptimizer = {value}\n", source="x.config")


def test_malicious_value_is_never_evaluated(tmp_path) -> None:
    marker = tmp_path / "X"
    config = tmp_path / "evil.config"
    config.write_text(f"[model]\noptimizer = __import__('os').system('touch {marker}')\n")
    with pytest.raises(ConfigError, match="not a Python literal"):
        load_config(config)
    with pytest.raises(ConfigError):
        parse_config(f"[mask]\nrgb_map = {{(0,0,0): __import__('os').system('touch {marker}')}}")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[model]\nimage_width = 500\nimage_height = 500\nnum_layers = 8",
         "[model] tile size 500 is not divisible by 2**(8-1)=128; use 512 or fewer layers"),
        ("[model]\nimage_height = 256", "image_height: 256 differs from image_width 512"),
        ("[model]\nnum_layers = 11", "not divisible by 2**(11-1)=1024; use 1024"),
        ("[model]\nnum_layers = 0", "[model] num_layers: must be an integer >= 1 and <= 16"),
        ("[model]\ndropout_rate = 1.0", "dropout_rate: must be a number >= 0 and < 1"),
        ("[model]\nbase_kernels = (7, 4)", "base_kernels: (7, 4) must be odd sizes"),
        ("[model]\nbase_kernels = (0, 3)", "base_kernels: must be a pair of integers such as "
         "(7,7), each >= 1"),
        ("[model]\nnum_classes = 0", "num_classes: must be an integer >= 1"),
        ("[model]\nlearning_rate = 0", "learning_rate: must be a number > 0"),
        ("[train]\nepochs = 0", "[train] epochs: must be an integer >= 1"),
        ("[train]\nreducer_factor = 1", "reducer_factor: must be a number > 0 and < 1"),
        ('[model]\nloss = "dice_loss"', "loss: 'dice_loss' is not one of categorical_crossentropy,"
         " dice, ce_dice, focal, lovasz_softmax, ce_lovasz_softmax; did you mean 'dice'?"),
        ('[model]\nmodel = "TensorFlowSwinUNet"', "model: 'TensorFlowSwinUNet' is not one of"),
        ('[image]\ncolor_order = "rgb"', "color_order: 'rgb' is not one of RGB, BGR"),
        ("[mask]\nrgb_map = {(0,0,0):0, (256,0,0):1}", "colour (256, 0, 0) has components"),
        ("[mask]\nrgb_map = {(0,0,0):0, (0,255,0):2}", "class 2 of colour (0, 255, 0) is outside "
         "0..1 (num_classes = 2)"),
        ("[mask]\nrgb_map = {(255,0,0):1}", "no colour for class 0"),
        ("[mask]\nrgb_map = {}", "rgb_map: expected a dict"),
        ('[mask]\nmask_file_format = "png"', "mask_file_format: write the extension with its dot"),
        ('[model]\nclass_names = ["a", "b", "c"]', "must be 2 different non-empty names"),
        ('[model]\nclass_names = ["a", "a"]', "must be 2 different non-empty names"),
        ("[model]\nbands = [1, 2]", "[model] bands [1, 2] must list 3 band numbers"),
        ("[model]\nbands = [0, 1, 2]", "bands: must be a list of integers, each >= 1"),
        ("[train]\nclass_weights = [1.0]", "class_weights: 1 weights given for 2 classes"),
        ("[model]\noverlap = 512", "overlap must be in [0, 512) for 512-pixel tiles, got 512"),
        ("[tiledinfer]\noverlap = 600", "[tiledinfer] overlap: 600 must be at least 0 and smaller"),
        ("[tiledinfer]\nsplit_size = 256", "split_size: 256 differs from image_width 512"),
        ("[infer]\nthreshold = 1.5", "[infer] threshold: must be a number > 0 and < 1, or None"),
        ("[eval]\niou_threshold = 0", "iou_threshold: must be a number > 0 and <= 1"),
        ('[train]\nimages_dir = ""', "[train] images_dir: expected a quoted path"),
    ],
)
def test_value_checks(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs = 3\n", "line 1 comes before any [section] header: 'epochs = 3'"),
        ("[train]\nepochs = 3\nepochs = 4\n", "[train] epochs appears twice (line 3)"),
        ("[train]\n[train]\n", "section [train] appears twice (line 2)"),
        ("[train]\njust words\n", "line 2 is not a 'key = value' line: 'just words'"),
    ],
)
def test_not_ini(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match="not a valid INI config") as info:
        parse_config(text)
    assert expected in str(info.value)


def test_file_problems_name_the_path(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.config: config file not found"):
        load_config(tmp_path / "missing.config")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    binary = tmp_path / "scene.tif"
    binary.write_bytes(b"II*\x00\x08\x00\x00\x00\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"scene\.tif: not a text file"):
        load_config(binary)
    json_file = tmp_path / "config.json"
    json_file.write_text('{"model": {"num_layers": 8}}')
    with pytest.raises(ConfigError, match=r"config\.json: not a valid INI config"):
        load_config(json_file)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path) -> None:
    config = tmp_path / "locked.config"
    config.write_text("[model]\n")
    config.chmod(0)
    with pytest.raises(ConfigError, match=r"locked\.config: cannot be read"):
        load_config(config)


def test_utf8_bom_and_multiline_values() -> None:
    text = "\ufeff[mask]\nrgb_map = {(0,0,0):0,\n  (255,0,0):1,\n  (255,255,0):1}\n"
    assert parse_config(text).mask.rgb_map[(255, 255, 0)] == 1


def test_schema_markdown_covers_every_key() -> None:
    markdown = schema_markdown()
    for section in SECTIONS:
        assert f"### [{section}]" in markdown
    for section, key in ALL_KEYS:
        assert f"| `{key}` |" in markdown, (section, key)
    assert '| `base_kernels` | `(7, 7)` |' in markdown
    assert '| `loss` | `"categorical_crossentropy"` | one of "categorical_crossentropy"' in markdown
    # Every key is documented, compatibility-only keys say so.
    assert "| `generator` | `False` | True or False | Reference data-generator switch. " \
           "Compatibility only" in markdown


# Python literals of every shape the schema knows, and some it does not.
literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.tuples(st.integers(-1, 300), st.integers(0, 255), st.integers(0, 255)),
                      st.integers(-1, 3), max_size=3),
    max_leaves=8,
).map(repr)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200))
def test_fuzz_random_text_only_raises_config_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(st.sampled_from(ALL_KEYS),
                                  literals | st.text(max_size=30)
                                  | st.sampled_from(["__import__('os').system('touch {m}')",
                                                     "open('{m}', 'w')", "(lambda: 1)()",
                                                     "[x for x in ()]", "1 if True else 2"])),
                        max_size=6))
def test_fuzz_random_values_only_raise_config_error(tmp_path, entries) -> None:
    marker = tmp_path / "pwned"
    by_section: dict[str, dict[str, str]] = {}
    for (section, key), value in entries:
        by_section.setdefault(section, {})[key] = value.replace("{m}", str(marker))
    text = "".join(f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
                   for section, keys in by_section.items())
    try:
        cfg = parse_config(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert cfg.model.image_width % 2 ** (cfg.model.num_layers - 1) == 0
    assert not marker.exists()


def test_docs_config_reference_is_current():
    from pathlib import Path

    from geoseg.config import reference_markdown

    page = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert page.read_text() == reference_markdown(), "regenerate: python -m geoseg.config"
