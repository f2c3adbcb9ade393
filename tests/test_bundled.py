"""Bundled models: selected by name everywhere a model is taken, described by their cards.

The ``hokkaido-iburi`` model is checked on a real tile of ``../shared`` (when present) through
the whole ``geoseg predict`` command, as a user would run it on a real GeoTIFF.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import SHARED_DATA, TEST_CRS, TEST_TRANSFORM, write_raster
from rasterio.errors import NotGeoreferencedWarning

from geoseg.cli import cli
from geoseg.model.bundled import (
    BUNDLED_MODELS,
    CARD_KEYS,
    DEFAULT_MODEL,
    bundled_models,
    bundled_name,
    card_facts,
    model_card,
    resolve_model,
)
from geoseg.model.model_archive import read_settings
from geoseg.prediction.info import describe_model

# The pooled landslide IoU the committed hokkaido-iburi model reaches on the six valid/ tiles
# through `geoseg predict` (0.638 measured on 2026-11-30; it trained on them too, so this checks
# the shipped file and the pipeline, not how well it generalises: the model card gives the
# held-out figures of its recipe). A wrong band order, scaling or georeference falls far below.
REAL_IOU_FLOOR = 0.5


def test_every_bundled_model_ships_small_with_settings():
    for name, file_name in BUNDLED_MODELS.items():
        path = resolve_model(name)
        assert path.name == file_name and path.is_file()
        assert path.stat().st_size <= 10 * 2**20, f"{name} is larger than 10 MB"
        settings = read_settings(path)
        assert settings.class_names == ["background", "landslide"] and settings.bands == [1, 2, 3]
        assert bundled_name(path) == name


PIXEL_SIZES = {"demo": 3.0, "hokkaido-iburi": 3.0, "sichuan-aerial": 2.0}
"""The training pixel size of each bundled model: its tiles' figure (or georeference)."""


def test_every_bundled_model_knows_its_imagery_and_is_listed_from_its_card():
    listed = bundled_models()
    assert [model.name for model in listed] == [DEFAULT_MODEL] + sorted(
        set(BUNDLED_MODELS) - {DEFAULT_MODEL})
    for model in listed:
        settings = read_settings(model.path)
        assert settings.pixel_size_m == model.pixel_size_m == PIXEL_SIZES[model.name]
        assert len(settings.band_stats) == 3 and settings.parent is None
        card = card_facts(model_card(model.path))
        assert [card[key] for key in CARD_KEYS] == [model.imagery, model.license,
                                                    model.works_on]
    # hokkaido-iburi's 24 tiles: green brighter than blue, blue than red, 8-bit wide
    hokkaido = read_settings(resolve_model("hokkaido-iburi")).band_stats
    assert hokkaido[0].p50 < hokkaido[2].p50 < hokkaido[1].p50
    assert all(s.p1 < 15 and s.p99 > 230 for s in hokkaido)


def test_geoseg_models_says_one_line_per_bundled_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_bytes(b"a user's file called demo")  # not listed instead
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split() == ["name", "imagery", "pixels", "license", "works", "on"]
    assert len(lines) == len(BUNDLED_MODELS) and lines[0].startswith("demo (default)  ")
    hokkaido = next(line for line in lines if line.startswith("hokkaido-iburi"))
    for words in ("8-bit RGB satellite", "~3 m", "CC-BY-NC-4.0", "forested hills"):
        assert words in hokkaido
    as_json = json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)
    assert as_json == [model.to_dict() for model in bundled_models()]
    assert as_json[1]["pixel_size_m"] == 3.0 and as_json[0]["default"]


def test_names_resolve_to_bundled_files_but_a_users_file_wins(tmp_path, monkeypatch):
    assert resolve_model() == resolve_model(DEFAULT_MODEL)
    assert resolve_model("models/mine.keras") == Path("models/mine.keras")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_bytes(b"not a model")
    assert resolve_model("demo") == Path("demo")
    assert bundled_name(tmp_path / "demo") is None


def test_the_real_model_has_a_card_with_its_terms_and_data():
    facts = describe_model("hokkaido-iburi")
    assert facts["bundled as"] == "hokkaido-iburi"
    assert Path(facts["model card"]) == model_card(resolve_model("hokkaido-iburi"))
    assert "non-commercial" in facts["terms"] and "CC BY-NC 4.0" in facts["terms"]
    assert "10.5281/zenodo.10294997" in facts["training data"]
    assert "8-bit RGB" in facts["expects"]
    assert facts["threshold"] is not None and 0 < float(facts["threshold"]) < 1


def test_info_describes_a_bundled_model_by_name_or_as_the_model_option():
    runner = CliRunner()
    by_path = runner.invoke(cli, ["info", "hokkaido-iburi", "--json"])
    by_option = runner.invoke(cli, ["info", "--model", "hokkaido-iburi", "--json"])
    assert by_path.exit_code == 0, by_path.output
    assert json.loads(by_path.output) == json.loads(by_option.output)
    assert json.loads(by_path.output)["bundled as"] == "hokkaido-iburi"
    assert json.loads(runner.invoke(cli, ["info", "demo", "--json"]).output)["bundled as"] == "demo"
    nothing = runner.invoke(cli, ["info"])
    assert nothing.exit_code == 2 and "give a PATH to describe, or --model" in nothing.output


def test_an_unknown_model_name_is_one_line_naming_the_bundled_ones(tmp_path):
    scene = write_raster(tmp_path / "s.tif", np.zeros((3, 32, 32), np.uint8))
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", "hokaido",
                                      "--out", str(tmp_path / "m.tif")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "hokaido: no such model file" in result.output
    assert all(name in result.output for name in BUNDLED_MODELS)
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.skipif(not (SHARED_DATA / "valid" / "images").is_dir(),
                    reason="the shared Hokkaido tiles (../shared/data/hokkaido-iburi) are absent")
def test_predict_with_the_real_model_finds_the_landslides_of_real_geotiffs(tmp_path):
    truths = {}
    for png in sorted((SHARED_DATA / "valid" / "images").glob("*.png")):
        with warnings.catch_warnings():  # the PNG tiles carry no georeference
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(png) as src:
                image = src.read()
            with rasterio.open(SHARED_DATA / "valid" / "masks" / png.name) as src:
                truths[png.stem] = src.read(1) == 255  # red (255, 0, 0) = landslide
        write_raster(tmp_path / f"{png.stem}.tif", image)  # assigned georeference (conftest)
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "*.tif"), "--model",
                                      "hokkaido-iburi", "--out-dir", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    both = either = 0
    for stem, truth in truths.items():
        with rasterio.open(tmp_path / "out" / f"{stem}_mask.tif") as mask:
            assert (mask.crs.to_string(), mask.transform) == (TEST_CRS, TEST_TRANSFORM)
            predicted = mask.read(1) == 1
        both += np.count_nonzero(predicted & truth)
        either += np.count_nonzero(predicted | truth)
    assert both / either > REAL_IOU_FLOOR, f"hokkaido-iburi landslide IoU {both / either:.3f}"


def test_a_folder_given_as_model_says_it_is_a_folder_and_what_a_model_file_is(tmp_path):
    scene = write_raster(tmp_path / "s.tif", np.zeros((3, 32, 32), np.uint8))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"stands for a trained model")
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(run),
                                      "--out", str(tmp_path / "m.tif")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert f"{run}: is a folder; give a model file: the .keras file geoseg train writes; " \
           f"{run} holds model.keras" in errors[0]
    assert "no such model file" not in result.output
    assert not (tmp_path / "m.tif").exists()


def test_a_folder_named_like_a_bundled_model_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_MODEL).mkdir()  # e.g. a user's demo/ folder
    assert resolve_model(DEFAULT_MODEL) == resolve_model(None) != Path(DEFAULT_MODEL)
    assert resolve_model(DEFAULT_MODEL).is_file()
    (tmp_path / "hokkaido-iburi").write_bytes(b"a user's own file still wins")
    assert resolve_model("hokkaido-iburi") == Path("hokkaido-iburi")
