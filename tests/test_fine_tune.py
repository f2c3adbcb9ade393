"""Training records its imagery; fine-tuning starts from a parent's weights, with its network.

Tiny FlexUNets (32-pixel tiles, 3 levels) trained for one or two steps on the synthetic
squares of ``test_train``: what is checked is where the weights start and which of them move.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_train import config_text, write_reference_layout, write_scene

from geoseg import cli as cli_module
from geoseg.config import parse_config
from geoseg.errors import ConfigError, ModelError
from geoseg.model.bundled import resolve_model
from geoseg.model.flexunet import encoder_layers, load_model
from geoseg.model.model_archive import read_settings, replace_settings
from geoseg.settings import ModelSettings
from geoseg.training.train import train

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def quiet(line: str) -> None:
    """A report that says nothing."""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    return [write_scene(folder, "a", 1), write_scene(folder, "b", 2)]


@pytest.fixture(scope="module")
def parent(tmp_path_factory, scenes) -> Path:
    """A model trained from scratch for one step: the parent of the fine-tuned ones."""
    out = tmp_path_factory.mktemp("parent")
    return train(parse_config(config_text(epochs=1, steps_per_epoch=1)), out_dir=out,
                 train_scenes=scenes, valid_scenes=[], report=quiet).model_path


def weights_by_layer(path: Path) -> dict[str, list[np.ndarray]]:
    model, _ = load_model(path)
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def same(a: list[np.ndarray], b: list[np.ndarray], atol: float = 0.0) -> bool:
    return all(np.allclose(x, y, rtol=0, atol=atol) for x, y in zip(a, b, strict=True))


def encoder_names(path: Path) -> set[str]:
    return {layer.name for layer in encoder_layers(load_model(path)[0]) if layer.weights}


# --------------------------------------------------------------------------------------------
# What a trained model knows of its imagery
# --------------------------------------------------------------------------------------------


def test_a_trained_model_stores_its_pixel_size_and_band_statistics(parent):
    settings = read_settings(parent)
    assert settings.pixel_size_m == 3.0  # the scenes' UTM transform
    assert settings.parent is None and len(settings.band_stats) == 3
    for stats in settings.band_stats:  # dark noise around 40 with bright squares (test_train)
        assert 25 < stats.p50 < 55 and stats.p1 < stats.p50 < stats.p99 and stats.p99 > 150


def test_png_tiles_need_the_pixel_size_given_or_say_it_is_unknown(tmp_path):
    data = write_reference_layout(tmp_path / "data", {"train": 2})
    config = config_text(epochs=1, steps_per_epoch=1, tune_threshold=False,
                         epoch_change_infer=False)
    lines: list[str] = []
    unknown = train(parse_config(config), out_dir=tmp_path / "a", report=lines.append,
                    train_scenes=_reference(data))
    assert read_settings(unknown.model_path).pixel_size_m is None
    assert [line for line in lines if "pixel size" in line] == [
        "note: the training images carry no georeference, so the model will not know their "
        "pixel size; set [train] pixel_size (metres) so that it can warn about scenes of "
        "another resolution"]
    given = train(parse_config(config.replace("[train]\n", "[train]\npixel_size = 0.5\n")),
                  out_dir=tmp_path / "b", report=quiet, train_scenes=_reference(data))
    assert read_settings(given.model_path).pixel_size_m == 0.5
    told = train(parse_config(config), out_dir=tmp_path / "c", report=quiet, pixel_size=2.0,
                 train_scenes=_reference(data))
    assert read_settings(told.model_path).pixel_size_m == 2.0


def _reference(root: Path):
    from geoseg.training.datasets import reference_split

    return reference_split(root, "train")


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------


def test_a_fine_tuned_model_starts_at_its_parents_weights_and_names_it(parent, scenes,
                                                                        tmp_path):
    # a learning rate of 1e-10 moves no weight by more than ~1e-10: what is saved is the start
    config = parse_config(config_text(epochs=1, steps_per_epoch=1)
                          .replace("learning_rate = 0.003", "learning_rate = 1e-10"))
    result = train(config, out_dir=tmp_path, train_scenes=scenes, valid_scenes=[],
                   init=parent, report=quiet)
    before, after = weights_by_layer(parent), weights_by_layer(result.last_path)
    assert before.keys() == after.keys()
    assert all(same(before[name], after[name], atol=1e-6) for name in before)
    scratch = train(config, out_dir=tmp_path / "scratch", train_scenes=scenes, valid_scenes=[],
                    report=quiet)  # the same run without init: other weights
    assert not same(weights_by_layer(scratch.last_path)["enc0_conv1"], before["enc0_conv1"],
                    atol=1e-3)
    settings = read_settings(result.model_path)
    digest = hashlib.sha256(parent.read_bytes()).hexdigest()
    assert (settings.parent.name, settings.parent.digest) == (str(parent), digest)
    assert settings.without_facts() == dataclasses.replace(
        read_settings(parent).without_facts(), threshold=settings.threshold)


def test_the_encoder_stays_fixed_for_its_epochs_then_learns(parent, scenes, tmp_path):
    config = parse_config(config_text(epochs=1, steps_per_epoch=2, freeze_encoder_epochs=1,
                                      tune_threshold=False))
    start = weights_by_layer(parent)
    encoder = encoder_names(parent)
    assert encoder == {f"enc{level}_conv{step}" for level in range(3) for step in (1, 2)}
    frozen = train(config, out_dir=tmp_path / "run", train_scenes=scenes, valid_scenes=[],
                   init=parent, report=quiet)
    after_one = weights_by_layer(frozen.last_path)
    assert all(same(start[name], after_one[name]) for name in encoder)
    assert not any(same(start[name], after_one[name]) for name in start if name not in encoder)
    resumed = train(config, out_dir=tmp_path / "run", train_scenes=scenes, valid_scenes=[],
                    init=parent, epochs=2, resume=True, report=quiet)
    after_two = weights_by_layer(resumed.last_path)
    assert not any(same(after_one[name], after_two[name]) for name in encoder)
    # in one run: frozen for the first epoch, learning in the second
    both = train(config, out_dir=tmp_path / "both", train_scenes=scenes, valid_scenes=[],
                 init=parent, epochs=2, report=quiet)
    assert both.last_epoch == 2
    in_one_run = weights_by_layer(both.last_path)
    assert not any(same(start[name], in_one_run[name]) for name in encoder)


def test_the_parent_comes_from_the_config_too_and_must_exist(parent, scenes, tmp_path):
    text = config_text(epochs=1, steps_per_epoch=1, tune_threshold=False,
                       epoch_change_infer=False)
    config = parse_config(text.replace("[train]\n", f'[train]\ninit_model = "{parent}"\n'))
    result = train(config, out_dir=tmp_path / "a", train_scenes=scenes, valid_scenes=[],
                   report=quiet)
    assert read_settings(result.model_path).parent.name == str(parent)
    missing = parse_config(text.replace("[train]\n", '[train]\ninit_model = "hokaido"\n'))
    with pytest.raises(ModelError, match="hokaido: no such model file to fine-tune"):
        train(missing, out_dir=tmp_path / "b", train_scenes=scenes, report=quiet)
    with pytest.raises(ConfigError, match="needs a model to fine-tune"):
        train(parse_config(text), out_dir=tmp_path / "c", train_scenes=scenes, report=quiet,
              freeze_encoder_epochs=2)


def test_the_config_keeps_names_and_resolves_paths_of_the_model_to_fine_tune(tmp_path):
    named = parse_config('[train]\ninit_model = "hokkaido-iburi"\n', base_dir=tmp_path)
    assert named.train.init_model == "hokkaido-iburi"
    filed = parse_config('[train]\ninit_model = "runs/a/model.keras"\n', base_dir=tmp_path)
    assert filed.train.init_model == tmp_path / "runs" / "a" / "model.keras"
    with pytest.raises(ConfigError, match=r"\[train\] freeze_encoder_epochs: must be"):
        parse_config("[train]\nfreeze_encoder_epochs = -1\n")
    with pytest.raises(ConfigError, match=r"\[train\] pixel_size: must be a number > 0"):
        parse_config("[train]\npixel_size = 0\n")


def test_a_fine_tuned_model_takes_its_parents_network_unless_the_config_sets_it():
    parent = read_settings(resolve_model("hokkaido-iburi"))
    config = parse_config('[model]\ndropout_rate = 0.2\nbands = [3, 2, 1]\n'
                          '[train]\ninit_model = "hokkaido-iburi"\n')
    kwargs = ModelSettings(**config.fine_tuned_kwargs(parent, "hokkaido-iburi"))
    assert kwargs.differences(parent) == {}  # 256-pixel tiles, 8 filters, 6 levels, ...
    assert (kwargs.dropout_rate, kwargs.bands) == (0.2, [3, 2, 1])
    assert kwargs.pixel_size_m is None and kwargs.threshold is None  # the new data's own
    assert parent.postprocessing is not None and kwargs.postprocessing is None  # likewise


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "words"), [
    ("base_filters", "16", "base_filters = 16 (it has 8)"),
    ("num_layers", "4", "num_layers = 4 (it has 3)"),
    ("image_width", "64", "image_width = 64 (it has 32)"),
])
def test_a_parent_with_another_network_is_one_line_and_an_error(parent, scenes, tmp_path, key,
                                                                  value, words):
    text = config_text(epochs=1, steps_per_epoch=1)
    if key == "image_width":
        text = text.replace("image_width = 32\nimage_height = 32\n",
                            f"image_width = {value}\nimage_height = {value}\n")
    else:
        text = text.replace(f"{key} = ", f"; {key} = ").replace("[model]\n",
                                                                  f"[model]\n{key} = {value}\n")
    config = tmp_path / "other.config"
    config.write_text(text)
    scene = scenes[0]
    result = CliRunner().invoke(cli_module.cli, [
        "train", str(config), "--scene", str(scene.image), "--labels", str(scene.labels),
        "--init", str(parent), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {config}: [model] differs from {parent}, the "
                                    "model to fine-tune: ")
    assert words in result.output and "remove these keys or set them" in result.output
    assert not (tmp_path / "out" / "model.keras").exists()


def test_freezing_without_a_parent_is_one_line(scenes, tmp_path):
    config = tmp_path / "small.config"
    config.write_text(config_text(epochs=1, steps_per_epoch=1))
    scene = scenes[0]
    result = CliRunner().invoke(cli_module.cli, [
        "train", str(config), "--scene", str(scene.image), "--labels", str(scene.labels),
        "--freeze-encoder-epochs", "2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "--freeze-encoder-epochs keeps a trained encoder fixed: it needs a model to " \
           "fine-tune (--init or [train] init_model)" in result.output


def test_resuming_compares_the_network_not_the_imagery_facts(parent, scenes, tmp_path):
    config = parse_config(config_text(epochs=1, steps_per_epoch=1, tune_threshold=False))
    first = train(config, out_dir=tmp_path, train_scenes=scenes, valid_scenes=[], report=quiet)
    saved = read_settings(first.last_path)
    replace_settings(first.last_path, dataclasses.replace(saved, pixel_size_m=99.0))
    again = train(config, out_dir=tmp_path, train_scenes=scenes, valid_scenes=[], epochs=2,
                  resume=True, report=quiet)
    assert again.last_epoch == 2 and read_settings(again.last_path).pixel_size_m == 3.0
