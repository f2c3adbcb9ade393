"""One description of every run parameter (:mod:`geoseg.prediction.run_parameters`): the command
line's options and the QGIS plugin's parameters agree with it, and its owners exist."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import click
import pytest

from geoseg.cli import cli
from geoseg.commands.options import PREDICTION_PARAMETERS
from geoseg.prediction.run_parameters import RUN_PARAMETERS, RunParameter
from geoseg.settings import AUTO_WINDOW, AUTO_WINDOW_FILTERS

ALGORITHMS = Path(__file__).resolve().parents[1] / "qgis_plugin" / "geoseg_qgis" / "algorithms.py"
FIELDS = ALGORITHMS.with_name("fields.py")


OTHER_MEANINGS = {("preview", "--window"), ("preview", "--bands"), ("tile", "--bands")}
"""Flags of a run parameter's name that mean something else in that command (a pixel window
to draw, bands to show or to keep)."""


def _commands() -> dict[str, click.Command]:
    context = cli.make_context("geoseg", ["info"])
    return {name: cli.get_command(context, name) for name in cli.list_commands(context)}


def _range(kind: click.ParamType) -> tuple[Any, Any, bool]:
    return (getattr(kind, "min", None), getattr(kind, "max", None),
            bool(getattr(kind, "min_open", False)))


def _schema_range(parameter: RunParameter) -> tuple[Any, Any, bool]:
    return parameter.minimum, parameter.maximum, parameter.min_open


def test_every_command_option_of_a_run_parameter_is_the_schemas():
    seen = set()
    for name, command in _commands().items():
        for option in command.params:
            parameter = RUN_PARAMETERS.get(option.name or "")
            if parameter is None or parameter.flag not in option.opts \
                    or (name, parameter.flag) in OTHER_MEANINGS:
                continue
            seen.add(parameter.name)
            where = f"geoseg {name} {parameter.flag}"
            assert option.default == parameter.default, where
            assert _range(option.type) == _schema_range(parameter), where
            assert tuple(getattr(option.type, "choices", ())) == parameter.choices, where
    assert seen == set(RUN_PARAMETERS), set(RUN_PARAMETERS) - seen


def test_predict_and_evaluate_offer_the_same_run_options():
    commands = _commands()
    for name in ("predict", "evaluate"):
        flags = {opt for option in commands[name].params for opt in option.opts}
        assert {RUN_PARAMETERS[p].flag for p in PREDICTION_PARAMETERS} <= flags, name
        assert flags >= {"-o", "--out", "--no-postprocessing"}, name


def test_the_smallest_tile_is_the_grids():
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["info", "--tile-size", "0", "--overlap", "0", "x.tif"])
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output
    assert RUN_PARAMETERS["tile_size"].minimum == 1


@pytest.mark.parametrize("parameter", RUN_PARAMETERS.values(), ids=lambda p: p.name)
def test_each_parameter_names_an_owner_that_exists(parameter):
    module, _, attribute = parameter.checked_by.rpartition(".")
    assert hasattr(importlib.import_module(module), attribute), parameter.checked_by


# The QGIS plugin (it cannot import geoseg: its declarations are read from its source)
# --------------------------------------------------------------------------------------------


def _constants(tree: ast.Module) -> dict[str, Any]:
    """The plugin's module-level constants that are plain literals (choices of its enums)."""
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def _choices(node: ast.expr, constants: dict[str, Any]) -> list[str]:
    """What an enum's options stand for on geoseg's command line: a constant list, or the
    keys of a constant dict whose values are the labels (``list(WINDOWS.values())``)."""
    if isinstance(node, ast.Name):
        return list(constants[node.id])
    if isinstance(node, ast.List):
        return list(ast.literal_eval(node))
    if (isinstance(node, ast.Call) and isinstance(node.args[0], ast.Call)
            and isinstance(node.args[0].func, ast.Attribute)
            and isinstance(node.args[0].func.value, ast.Name)):
        return list(constants[node.args[0].func.value.id])
    raise AssertionError(f"unread enum options: {ast.unparse(node)}")


def plugin_parameters() -> list[dict[str, Any]]:
    """Every number and enum parameter of a run parameter the plugin's algorithms declare
    (:func:`_geoseg_names`): its name, whether it is whole numbers, default, minimum,
    maximum, or its choices and default choice."""
    names = _geoseg_names()
    tree = ast.parse(ALGORITHMS.read_text(encoding="utf-8"))
    constants = _constants(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        first = node.args[0] if node.args else None
        if not (isinstance(first, ast.Constant) and first.value in names):
            continue
        if node.func.id == "QgsProcessingParameterNumber":
            args = [*node.args, *[None] * (7 - len(node.args))]
            default = args[3] if args[3] is not None else keywords.get("defaultValue")
            found.append({
                "name": ast.literal_eval(args[0]),
                "whole": isinstance(args[2], ast.Attribute) and args[2].attr == "Integer",
                "default": ast.literal_eval(default) if default is not None else None,
                "minimum": ast.literal_eval(args[5]) if args[5] is not None else None,
                "maximum": ast.literal_eval(args[6]) if args[6] is not None else None})
        elif node.func.id == "QgsProcessingParameterEnum":
            choices = _choices(node.args[2], constants) if len(node.args) > 2 else []
            index = ast.literal_eval(keywords.get("defaultValue", ast.Constant(0)))
            found.append({"name": ast.literal_eval(node.args[0]), "choices": choices,
                          "default": choices[index] if choices else None})
    return found


def _geoseg_names() -> dict[str, str]:
    """Dialog field -> geoseg parameter, from the plugin's own table."""
    table = ast.parse(FIELDS.read_text(encoding="utf-8")).body
    fields = next(ast.literal_eval(node.value) for node in table
                  if isinstance(node, ast.AnnAssign))
    return {field: name for name, field in fields.items() if name in RUN_PARAMETERS}


def test_the_plugins_parameters_agree_with_the_schema():
    names = _geoseg_names()
    checked = set()
    for declared in plugin_parameters():
        parameter = RUN_PARAMETERS[names[declared["name"]]]
        checked.add(parameter.name)
        where = f"QGIS {declared['name']}"
        if "choices" in declared:
            for choice in declared["choices"]:
                if parameter.kind == "window":
                    assert choice in ("auto", "tile") or int(choice) % 16 == 0, where
                elif parameter.choices:
                    assert choice in parameter.choices, where
            assert declared["default"] == parameter.default, where
            continue
        assert declared["whole"] == (parameter.kind == "int"), where
        # Empty in QGIS leaves the value to geoseg; a value given must be geoseg's own.
        assert declared["default"] in (None, parameter.default, parameter.fallback), where
        if parameter.default is not None:
            assert declared["default"] == parameter.default, where
        assert declared["minimum"] == parameter.minimum, where
        assert declared["maximum"] == parameter.maximum, where
    assert checked >= {"overlap", "tile_size", "threshold", "batch_size", "device", "window",
                       "resolution", "min_area", "simplify", "fill_holes", "connectivity"}, checked


def test_the_plugins_overlap_is_left_to_geoseg_and_its_window_label_is_geosegs():
    overlaps = [p for p in plugin_parameters() if p["name"] == "OVERLAP"]
    assert overlaps and all(p["default"] is None for p in overlaps)
    constants = _constants(ast.parse(ALGORITHMS.read_text(encoding="utf-8")))
    assert f"up to {AUTO_WINDOW} pixels" in constants["WINDOWS"]["auto"]
    # the Detect dialog's help restates the rule: with geoseg's numbers
    text = " ".join(ALGORITHMS.read_text(encoding="utf-8").split())
    help_words = re.sub(r'" "', "", text)
    assert (f"windows of up to {AUTO_WINDOW} pixels by default (smaller for models of more "
            f"than {AUTO_WINDOW_FILTERS} base filters)") in help_words


def test_the_librarys_requests_take_their_defaults_from_the_schema():
    from geoseg.model.predictor import ModelSpec, load_predictor
    from geoseg.prediction.predict_options import PredictOptions

    for owner in (PredictOptions, ModelSpec):
        for field in dataclasses.fields(owner):
            if field.name in RUN_PARAMETERS:
                assert field.default == RUN_PARAMETERS[field.name].default, field.name
    for name, given in inspect.signature(load_predictor).parameters.items():
        if name in RUN_PARAMETERS:
            assert given.default == RUN_PARAMETERS[name].default, name
