"""The QGIS plugin's pure-Python parts, without QGIS: command lines, the child runner, the zip.

The command lines are checked against geoseg's own parser, so the plugin cannot drift from the
CLI; the runner is checked on small scripts that behave like geoseg (progress, errors, a
SIGTERM that cleans up, one that is ignored) and on a real ``geoseg vectorize``.
"""

from __future__ import annotations

import doctest
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest

import geoseg
from geoseg.cli import cli
from geoseg.commands.options import PROGRESS_KEY
from geoseg.model.bundled import BUNDLED_MODELS, DEFAULT_MODEL, resolve_model

PLUGIN_ROOT = Path(__file__).resolve().parents[1] / "qgis_plugin"
sys.path.insert(0, str(PLUGIN_ROOT))

from build_zip import build_zip  # noqa: E402
from geoseg_qgis import commands, fields, runner  # noqa: E402
from geoseg_qgis.fields import FIELDS  # noqa: E402
from geoseg_qgis.runner import (  # noqa: E402
    SETTING_HELP,
    GeosegCancelled,
    GeosegError,
    Progress,
    child_environment,
    find_executable,
    parse_error,
    parse_progress,
    read_geoseg,
    remove_partials,
    run_geoseg,
)


def parse(args: list[str]) -> dict:
    """Parse ``geoseg ARGS`` with the real command line; its parameters and --progress."""
    group = cli.make_context("geoseg", list(args))
    command = cli.get_command(group, args[0])
    assert command is not None, args[0]
    context = command.make_context(args[0], list(args[1:]), parent=group)
    return {**context.params, "progress": context.meta.get(PROGRESS_KEY)}


# Command lines
# --------------------------------------------------------------------------------------------


def test_predict_command_parses_as_given(make_raster, tmp_path):
    scene = make_raster()
    (tmp_path / "x.keras").write_bytes(b"")  # the parser only checks that it exists
    args = commands.predict_args(
        str(scene), str(tmp_path / "m.tif"), probabilities=str(tmp_path / "p.tif"),
        polygons=str(tmp_path / "l.gpkg"), model=str(tmp_path / "x.keras"), bands=[3, 2, 1],
        threshold=0.4, overlap=96, device="cpu", batch_size=2, window="tile",
        resolution="auto", resume=True, uncertainty=str(tmp_path / "u.tif"))
    params = parse(args)
    assert params["scenes"] == (str(scene),) and params["out_path"] == str(tmp_path / "m.tif")
    assert params["probabilities_path"] == str(tmp_path / "p.tif")
    assert params["uncertainty_path"] == str(tmp_path / "u.tif")
    assert params["vector_path"] == str(tmp_path / "l.gpkg")
    assert params["model_path"] == str(tmp_path / "x.keras")
    assert params["bands"] == [3, 2, 1] and params["threshold"] == 0.4
    assert params["overlap"] == 96 and params["device"] == "cpu" and params["batch_size"] == 2
    assert params["window"] == "tile" and params["resolution"] == "auto"
    assert params["resume"] and params["overwrite"] and params["progress"] == "json"


def test_predict_defaults_leave_the_choices_to_geoseg(make_raster, tmp_path):
    params = parse(commands.predict_args(str(make_raster()), str(tmp_path / "m.tif")))
    assert params["model_path"] == str(resolve_model()) and params["bands"] is None
    assert params["threshold"] is None and params["overlap"] is None
    assert params["probabilities_path"] is None and not params["resume"]
    assert params["uncertainty_path"] is None
    assert params["window"] == "auto" and params["resolution"] == "native"


def test_the_plugins_bundled_models_come_from_geoseg_models_and_parse_by_name(make_raster,
                                                                           tmp_path):
    listing = read_geoseg([sys.executable, "-m", "geoseg", *commands.MODELS_ARGS])
    choices = commands.model_choices(listing)
    assert [choice.name for choice in choices] == [DEFAULT_MODEL] + sorted(
        set(BUNDLED_MODELS) - {DEFAULT_MODEL})
    hokkaido = next(choice for choice in choices if choice.name == "hokkaido-iburi")
    assert hokkaido.label == ("hokkaido-iburi: 8-bit RGB satellite, ~3 m pixels "
                              "(CC-BY-NC-4.0)")
    for choice in choices:
        params = parse(commands.predict_args(str(make_raster()), str(tmp_path / "m.tif"),
                                             model=choice.name))
        assert params["model_path"] == str(resolve_model(choice.name))


def test_a_listing_that_is_not_geosegs_is_refused_and_a_failed_one_says_why(tmp_path):
    for text in ("", "{}", '[{"name": "demo"}]', "Loading..."):
        with pytest.raises(ValueError, match="not a geoseg models --json listing"):
            commands.model_choices(text)
    with pytest.raises(GeosegError, match="^No such command 'modles'"):
        read_geoseg([sys.executable, "-m", "geoseg", "modles"])


def test_vectorize_evaluate_tile_and_train_commands_parse(make_raster, tmp_path):
    mask = make_raster("mask.tif", bands=1)
    labels = tmp_path / "labels.gpkg"
    labels.write_bytes(b"")  # the parser only checks that it exists
    config = tmp_path / "a.config"
    config.write_text("[model]\n")
    params = parse(commands.vectorize_args(str(mask), str(tmp_path / "v.gpkg"),
                                           probabilities=str(mask), min_area=100.0,
                                           simplify=1.5, connectivity=4))
    assert (params["min_area"], params["simplify"], params["connectivity"]) == (100, 1.5, "4")
    assert params["probabilities_path"] == str(mask) and params["progress"] == "json"

    params = parse(commands.evaluate_args(str(mask), str(labels), str(tmp_path / "report"),
                                          iou_threshold=0.3, objects=False, overwrite=True))
    assert params["scenes"] == (str(mask),) and params["labels"] == (str(labels),)
    assert params["iou_threshold"] == 0.3 and params["no_objects"] and params["overwrite"]

    params = parse(commands.tile_args(str(mask), str(labels), str(tmp_path / "chips"),
                                      tile_size=256, overlap=32, chip_format="png",
                                      split=(0.7, 0.2, 0.1), seed=3, min_foreground=0.01,
                                      keep_empty=0.5))
    assert params["split"] == (0.7, 0.2, 0.1) and params["chip_format"] == "png"
    assert (params["tile_size"], params["overlap"], params["seed"]) == (256, 32, 3)
    assert params["min_foreground"] == 0.01 and params["keep_empty"] == 0.5

    params = parse(commands.train_args(str(config), str(tmp_path / "run"),
                                       scene=(str(mask), str(labels)),
                                       valid_scene=(str(mask), str(labels)), epochs=5,
                                       monitor="val_landslide_iou", resume=True))
    assert params["scenes"] == (str(mask),) and params["valid_labels"] == (str(labels),)
    assert params["epochs"] == 5 and params["monitor"] == "val_landslide_iou"
    assert params["resume"] and params["progress"] == "json"


# Finding geoseg
# --------------------------------------------------------------------------------------------


def test_a_missing_geoseg_is_reported_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GeosegError, match="not found on PATH") as missing:
        find_executable("")
    assert "pip install" in str(missing.value) and str(missing.value).endswith(SETTING_HELP)
    # where QGIS 3.22 has the setting (Processing has no Options menu of its own)
    assert SETTING_HELP.startswith("Settings > Options > Processing > Providers > geoseg")
    with pytest.raises(GeosegError, match="does not exist"):
        find_executable(str(tmp_path / "nowhere" / "geoseg"))
    with pytest.raises(GeosegError, match="is a folder"):
        find_executable(str(tmp_path))
    on_path = tmp_path / "geoseg"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert find_executable("") == [str(on_path)]
    assert find_executable(str(on_path)) == [str(on_path)]


@pytest.mark.parametrize("name", ["python", "python3", "python3.11", "python.exe",
                                  "pythonw.exe", "Python3.EXE"])
def test_a_python_interpreter_runs_geoseg_as_a_module(tmp_path, name):
    interpreter = tmp_path / name
    interpreter.write_text("")
    assert find_executable(str(interpreter)) == [str(interpreter), "-m", "geoseg"]


@pytest.mark.parametrize("name", ["geoseg", "geoseg.exe", "python-geoseg", "pythonista"])
def test_other_executables_run_as_they_are(tmp_path, name):
    executable = tmp_path / name
    executable.write_text("")
    assert find_executable(str(executable)) == [str(executable)]


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script plays the other Python")
def test_geosegs_python_runs_geoseg_and_another_python_says_it_lacks_geoseg(make_raster,
                                                                             tmp_path):
    data = np.zeros((1, 64, 64), np.uint8)
    data[0, 10:20, 10:20] = 1
    mask = make_raster("mask.tif", data=data, nodata=255)
    command = find_executable(sys.executable)
    record = Record()
    run_geoseg([*command, *commands.vectorize_args(str(mask), str(tmp_path / "v.gpkg"))],
               on_progress=record.progress.append, on_output=record.output.append,
               on_message=record.messages.append, is_canceled=record.canceled)
    assert (tmp_path / "v.gpkg").is_file()
    other = tmp_path / "python3"  # says what a Python without geoseg says to -m geoseg
    other.write_text('#!/bin/sh\necho "$0: No module named geoseg" >&2\nexit 1\n')
    other.chmod(0o755)
    with pytest.raises(GeosegError) as failed:
        run_geoseg([*find_executable(str(other)), "vectorize"],
                   on_progress=record.progress.append, on_output=record.output.append,
                   on_message=record.messages.append, is_canceled=record.canceled)
    assert str(failed.value) == (f"geoseg is not installed in the Python of {other} (No module "
                                 "named geoseg): set the geoseg executable of an environment "
                                 "that has it under " + SETTING_HELP)


def test_the_child_gets_no_qgis_python_or_proj_settings():
    env = child_environment({"PATH": "/bin", "PYTHONPATH": "/usr/share/qgis/python",
                             "PROJ_LIB": "/qgis/proj", "GDAL_DATA": "/qgis/gdal"})
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


def test_progress_lines_are_recognised_and_anything_else_is_not():
    line = '{"progress": 0.42, "done": 21, "total": 50, "message": "tiles"}'
    assert parse_progress(line + "\n") == Progress(0.42, 21, 50, "tiles")
    for other in ("WARNING: {not json}", '{"progress": 0.5}', "{broken", '{"a": 1}',
                  "Error: interrupted", ""):
        assert parse_progress(other) is None


# Running a child
# --------------------------------------------------------------------------------------------


class Record:
    """Collects what the runner passes on."""

    def __init__(self, cancel_after: int | None = None):
        self.progress: list[Progress] = []
        self.output: list[str] = []
        self.messages: list[str] = []
        self.cancel_after = cancel_after

    def run(self, script: str, **kwargs: object) -> None:
        run_geoseg([sys.executable, "-c", textwrap.dedent(script)],
                   on_progress=self.progress.append, on_output=self.output.append,
                   on_message=self.messages.append, is_canceled=self.canceled, **kwargs)

    def canceled(self) -> bool:
        return self.cancel_after is not None and len(self.progress) >= self.cancel_after


FAILS = """
    import json, sys
    for done in (1, 2):
        print(json.dumps({"progress": done / 4, "done": done, "total": 4, "message": "tiles"}),
              file=sys.stderr, flush=True)
    print("WARNING: scene has no CRS", file=sys.stderr)
    print("halfway")
    print("Usage: geoseg predict\\n\\nError: scene.tif: unreadable", file=sys.stderr)
    sys.exit(1)
"""


def test_progress_output_messages_and_the_error_line_are_told_apart():
    record = Record()
    with pytest.raises(GeosegError) as failed:
        record.run(FAILS)
    assert str(failed.value) == "scene.tif: unreadable"
    assert [(p.fraction, p.done, p.total, p.message) for p in record.progress] == [
        (0.25, 1, 4, "tiles"), (0.5, 2, 4, "tiles")]
    assert record.output == ["halfway"]
    assert record.messages == ["WARNING: scene has no CRS", "Usage: geoseg predict", ""]


def test_a_child_that_dies_without_an_error_line_is_reported_with_its_last_words():
    with pytest.raises(GeosegError, match=r"exit code -9; its last message: loading"):
        Record().run("import os, sys; print('loading', file=sys.stderr, flush=True); "
                     "os.kill(os.getpid(), 9)")


STOPPABLE = """
    import json, pathlib, signal, sys, time
    def stop(*_):
        pathlib.Path(sys.argv[1]).unlink()  # clean up, as geoseg does
        print("Error: interrupted", file=sys.stderr)
        sys.exit(1)
    signal.signal(signal.SIGTERM, {handler})
    pathlib.Path(sys.argv[1]).write_text("partial")
    for done in range(1, 1000):
        print(json.dumps({{"progress": done / 1000, "done": done, "total": 1000,
                          "message": "tiles"}}), file=sys.stderr, flush=True)
        time.sleep(0.05)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_cancel_asks_the_child_to_stop_and_waits_for_its_cleanup(tmp_path):
    partial = tmp_path / "partial"
    record = Record(cancel_after=3)
    with pytest.raises(GeosegCancelled) as stopped:
        run_geoseg([sys.executable, "-c", textwrap.dedent(STOPPABLE.format(handler="stop")),
                    str(partial)], on_progress=record.progress.append,
                   on_output=record.output.append, on_message=record.messages.append,
                   is_canceled=record.canceled)
    assert not stopped.value.forced
    assert not partial.exists()  # the child cleaned up before the runner returned
    assert 3 <= len(record.progress) < 50


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_a_child_ignoring_cancel_is_killed_after_the_grace_period(tmp_path):
    partial = tmp_path / "partial"
    record = Record(cancel_after=2)
    script = textwrap.dedent(STOPPABLE.format(handler="signal.SIG_IGN"))
    with pytest.raises(GeosegCancelled) as stopped:
        run_geoseg([sys.executable, "-c", script, str(partial)],
                   on_progress=record.progress.append, on_output=record.output.append,
                   on_message=record.messages.append, is_canceled=record.canceled, grace=0.5)
    assert stopped.value.forced
    assert partial.exists()  # killed: nothing cleaned up


def test_remove_partials_keeps_the_resume_journal(tmp_path):
    (tmp_path / ".mask.tif.partial-1a2b3c4d").mkdir()
    (tmp_path / ".mask.tif.partial-1a2b3c4d" / "mask.tif").write_bytes(b"half")
    (tmp_path / ".mask.tif.resume").mkdir()
    (tmp_path / ".other.tif.partial-00000000").mkdir()
    removed = remove_partials([tmp_path / "mask.tif"])
    assert [p.name for p in removed] == [".mask.tif.partial-1a2b3c4d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".mask.tif.resume", ".other.tif.partial-00000000"]


def test_a_real_geoseg_vectorize_through_the_runner(make_raster, tmp_path):
    data = np.zeros((1, 200, 300), np.uint8)
    data[0, 20:60, 30:90] = 1
    mask = make_raster("mask.tif", data=data, nodata=255)
    out = tmp_path / "landslides.gpkg"
    record = Record()
    run_geoseg([sys.executable, "-m", "geoseg",
                *commands.vectorize_args(str(mask), str(out), min_area=10.0)],
               on_progress=record.progress.append, on_output=record.output.append,
               on_message=record.messages.append, is_canceled=record.canceled)
    assert record.progress[-1] == Progress(1.0, 1, 1, "blocks")
    # 40 x 60 pixels of 3 m
    assert record.output and record.output[-1].startswith("1 polygon, total area 21,600 m²")
    assert out.is_file() and not out.with_suffix(".qml").exists()  # the style is inside
    assert pyogrio.list_layers(out)[:, 0].tolist() == ["mask", "layer_styles"]


def test_geoseg_errors_arrive_as_its_one_line_message(tmp_path):
    with pytest.raises(GeosegError) as failed:
        Record().run(f"import sys; sys.argv = ['geoseg', 'vectorize', {str(tmp_path)!r}, "
                     f"'--out', 'x.gpkg']; from geoseg.cli import main; main()")
    assert str(failed.value) == f"Invalid value for 'MASK': File '{tmp_path}' is a directory."
    assert failed.value.template is None  # no parameter to name: the message as it is


def test_geosegs_errors_name_the_parameters_for_the_caller_to_word(make_raster, tmp_path):
    scene = make_raster("rgbn.tif", bands=4)
    record = Record()
    with pytest.raises(GeosegError) as failed:
        run_geoseg([sys.executable, "-m", "geoseg",
                    *commands.predict_args(str(scene), str(tmp_path / "m.tif"))],
                   on_progress=record.progress.append, on_output=record.output.append,
                   on_message=record.messages.append, is_canceled=record.canceled)
    assert str(failed.value).endswith("; choose them with --bands")  # the command line's
    assert failed.value.worded({"bands": "'Bands'"}.get).endswith("; choose them with 'Bands'")
    assert failed.value.worded({}.get) == str(failed.value)  # no field: geoseg's own words
    assert not [line for line in record.messages if line.startswith("{")]  # not in the log


def test_the_json_error_line_comes_with_progress_json_only(make_raster, tmp_path):
    from click.testing import CliRunner

    scene = str(make_raster("rgbn.tif", bands=4))
    args = ["predict", scene, "--out", str(tmp_path / "m.tif")]
    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 1 and "{" not in plain.stderr
    machine = CliRunner().invoke(cli, [*args, "--progress", "json"])
    lines = machine.stderr.splitlines()
    assert machine.exit_code == 1 and lines[-1].startswith("Error: ")
    error = json.loads(lines[-2])
    assert error["parameters"] == ["bands"]
    assert error["error"].endswith("; choose them with [[bands]]")
    assert parse_error(lines[-2]) == error["error"]
    assert lines[-1] == "Error: " + error["error"].replace("[[bands]]", "--bands")


def test_every_parameter_the_plugin_names_is_a_geoseg_parameter():
    """The table of :mod:`geoseg_qgis.fields` names parameters of geoseg's commands."""
    names = set()
    for name in cli.list_commands(cli.make_context("geoseg", ["info"])):
        command = cli.get_command(cli.make_context("geoseg", ["info"]), name)
        names.update(param.name for param in command.params)
    assert set(FIELDS) <= names, set(FIELDS) - names


@pytest.mark.parametrize("module", [runner, commands, fields], ids=lambda m: m.__name__)
def test_the_plugins_examples_hold(module):
    assert doctest.testmod(module).failed == 0


# The zip
# --------------------------------------------------------------------------------------------


def test_the_zip_holds_one_plugin_folder_qgis_can_load(tmp_path):
    plugin = Path(shutil.copytree(PLUGIN_ROOT / "geoseg_qgis", tmp_path / "geoseg_qgis"))
    (plugin / "__pycache__").mkdir(exist_ok=True)  # bytecode caches must not be packed
    (plugin / "__pycache__" / "runner.cpython-311.pyc").write_bytes(b"")
    (plugin / "stray.pyc").write_bytes(b"")
    archive = zipfile.ZipFile(build_zip(tmp_path / "dist" / "geoseg_qgis.zip", plugin))
    names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"geoseg_qgis"}
    for required in ("__init__.py", "metadata.txt", "icon.svg", "provider.py",
                     "algorithms.py", "runner.py", "commands.py", "plugin.py"):
        assert f"geoseg_qgis/{required}" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert "def classFactory(" in archive.read("geoseg_qgis/__init__.py").decode()
    metadata = dict(line.split("=", 1) for line in
                    archive.read("geoseg_qgis/metadata.txt").decode().splitlines() if "=" in line)
    assert metadata["hasProcessingProvider"] == "yes"
    assert metadata["qgisMinimumVersion"] == "3.22"
    assert metadata["version"] == geoseg.__version__
    assert f"geoseg_qgis/{metadata['icon']}" in names


def test_build_zip_command_line(tmp_path):
    out = tmp_path / "plugin.zip"
    done = subprocess.run([sys.executable, str(PLUGIN_ROOT / "build_zip.py"), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(out) and zipfile.is_zipfile(out)

