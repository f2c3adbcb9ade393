"""What the package declares: its license against the bundled models' cards, the Keras it
requires, the runtime it runs by default, and the terms ``predict`` prints for a model."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

from geoseg.cli import cli
from geoseg.model.bundled import BUNDLED_MODELS, CODE_LICENSE, card_facts, model_card, resolve_model

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement(project: dict, name: str) -> Requirement:
    return next(Requirement(line) for line in project["dependencies"]
                if Requirement(line).name == name)


def test_the_license_covers_the_code_and_every_bundled_model(project):
    cards = {name: model_card(resolve_model(name)) for name in BUNDLED_MODELS}
    licenses = {card_facts(card)["license"] for card in cards.values() if card is not None}
    assert set(project["license"].split(" AND ")) == {CODE_LICENSE} | licenses
    # every card with terms beyond the code's ships as a license file
    for card in cards.values():
        if card is not None and card_facts(card)["license"] != CODE_LICENSE:
            assert card.relative_to(ROOT).as_posix() in project["license-files"]


def test_keras_is_one_without_the_known_safe_mode_bypasses(project):
    keras = requirement(project, "keras").specifier
    for affected in ("3.8.0", "3.10.0", "3.11.3", "3.12.0", "3.13.0", "3.13.1"):
        assert not keras.contains(affected), affected
    for fixed in ("3.12.1", "3.12.4", "3.13.2", "3.14.0"):
        assert keras.contains(fixed), fixed
    assert keras.contains(version("keras"))  # the one installed here


def test_openvino_and_its_converter_come_with_geoseg(project):
    names = {Requirement(line).name for line in project["dependencies"]}
    assert {"openvino", "tf2onnx"} <= names
    assert project["optional-dependencies"]["openvino"] == []  # kept for old install lines


def test_predict_prints_a_models_terms_once(make_raster, tmp_path):
    """Before any work: here the scene is refused (4 bands), the terms were said already."""
    scene = str(make_raster("rgbn.tif", bands=4))
    runner = CliRunner()
    done = runner.invoke(cli, ["predict", scene, "--model", "hokkaido-iburi",
                               "--out", str(tmp_path / "m.tif"), "--quiet"])
    terms = [line for line in done.stderr.splitlines() if line.startswith("Model ")]
    assert terms == ["Model hokkaido-iburi: " + card_facts(
        model_card(resolve_model("hokkaido-iburi")))["terms"]]
    assert "non-commercial" in terms[0] and "10.5281/zenodo.10294997" in terms[0]
    done = runner.invoke(cli, ["predict", scene, "--out", str(tmp_path / "m.tif")])
    assert not [line for line in done.stderr.splitlines() if line.startswith("Model ")]
