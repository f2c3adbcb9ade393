"""``--progress json``: machine-readable progress on stderr; SIGTERM cleans up like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import pixelwise_keras_model
from test_train import config_text, write_reference_layout

from geoseg.cli import cli
from geoseg.model.flexunet import build_flexunet, save_model
from geoseg.settings import ModelSettings


def progress_lines(stderr: str) -> list[dict]:
    """The JSON progress lines of ``stderr``; every other line must not look like one."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    for line in lines:
        assert set(line) == {"progress", "done", "total", "message"}
    return lines


def check_run(lines: list[dict], message: str) -> None:
    """Monotone, ends at 1.0 with done == total, one message throughout."""
    assert lines, "no progress line"
    fractions = [line["progress"] for line in lines]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)
    assert lines[-1]["progress"] == 1.0 and lines[-1]["done"] == lines[-1]["total"]
    assert {line["message"] for line in lines} == {message}


def test_vectorize_reports_blocks_as_json_lines(make_raster, tmp_path):
    mask = np.zeros((1, 4200, 300), np.uint8)  # three blocks of 2048 rows
    mask[0, 100:300, 100:200] = 1
    mask[0, 3200:3400, 100:200] = 1
    path = make_raster("mask.tif", data=mask, nodata=255)
    result = CliRunner().invoke(cli, ["vectorize", str(path), "--out", str(tmp_path / "v.gpkg"),
                                      "--progress", "json"])
    assert result.exit_code == 0, result.output
    lines = progress_lines(result.stderr)
    check_run(lines, "blocks")
    assert [line["done"] for line in lines] == [1, 2, 3]
    assert "2 polygons" in result.stdout and "{" not in result.stdout


def test_without_json_a_non_terminal_gets_no_progress(make_raster, tmp_path):
    mask = np.zeros((1, 600, 600), np.uint8)
    mask[0, 10:50, 10:50] = 1
    path = make_raster("mask.tif", data=mask, nodata=255)
    result = CliRunner().invoke(cli, ["vectorize", str(path), "--out", str(tmp_path / "v.gpkg")])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def predict_quietly(tmp_path, scene, batch_size: int):  # type: ignore[no-untyped-def]
    """``geoseg predict -q --progress json`` of ``scene`` in 64-pixel tiles (16 shared) with a
    per-pixel model; the run and its progress lines, checked."""
    settings = ModelSettings(image_size=64, num_layers=3, overlap=16)
    model = save_model(pixelwise_keras_model(settings), settings, tmp_path / "m.keras")
    result = CliRunner().invoke(cli, [
        "predict", str(scene), "--model", str(model), "--out", str(tmp_path / "mask.tif"),
        "--batch-size", str(batch_size), "--window", "tile", "--progress", "json", "-q"])
    assert result.exit_code == 0, result.output
    lines = progress_lines(result.stderr)
    check_run(lines, "windows")
    return result, lines


def test_predict_reports_windows_even_when_quiet(make_raster, tmp_path):
    _, lines = predict_quietly(tmp_path, make_raster(height=300, width=200), batch_size=2)
    assert lines[-1]["total"] == 6 * 4  # 300 rows and 200 columns in 64-pixel tiles, 16 shared


def test_predict_progress_on_a_sparse_scene_follows_the_rows_written(make_raster, tmp_path,
                                                                     monkeypatch):
    """Windows without data count once the rows they cover are written, not when read; 1.0
    comes after the last row is written."""
    from geoseg.prediction import prediction_outputs

    data = np.zeros((3, 1200, 200), np.uint8)
    data[:, 10:40, 10:40] = 200  # one patch of data, at the top; nodata below
    scene = make_raster("sparse.tif", data=data, nodata=0)
    write = prediction_outputs.Outputs.write

    def write_and_say(self, row_off, mask, band):  # type: ignore[no-untyped-def]
        write(self, row_off, mask, band)
        print(f"rows {row_off}+{mask.shape[0]} written", file=sys.stderr, flush=True)

    monkeypatch.setattr(prediction_outputs.Outputs, "write", write_and_say)
    result, _ = predict_quietly(tmp_path, scene, batch_size=1)
    events = [line for line in result.stderr.splitlines() if line.startswith(("{", "rows"))]
    writes = [i for i, line in enumerate(events) if line.startswith("rows")]
    assert len(writes) == 5  # block rows of 256 rows
    end = next(i for i, line in enumerate(events) if line.startswith('{"progress": 1.0'))
    assert writes[-1] < end, "progress reached 1.0 before the outputs were written"
    assert writes[0] < end - 1 and events[writes[0] + 1].startswith("{"), \
        "rows without data were written only at the end, not as windows were passed over"
    assert "1 of 100 windows predicted" in result.stdout and "99 without data skipped" \
        in result.stdout


def test_train_reports_every_step(tmp_path):
    data = write_reference_layout(tmp_path / "data", {"train": 4, "valid": 2})
    config = tmp_path / "small.config"
    config.write_text(config_text(epochs=2, steps_per_epoch=3, batch_size=2))
    result = CliRunner().invoke(cli, ["train", str(config), "--dataset", str(data),
                                      "--out", str(tmp_path / "out"), "--progress", "json"])
    assert result.exit_code == 0, result.output
    lines = progress_lines(result.stderr)
    check_run(lines, "steps")
    assert [line["done"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert "epoch 2/2 - " in result.stdout


def test_sigterm_cleans_up_like_ctrl_c_and_keeps_the_journal(make_raster, tmp_path):
    """A Cancel (SIGTERM) part way: an Error line, no output, no temporary folder, a journal."""
    settings = ModelSettings(image_size=128, num_layers=3, base_filters=16, overlap=16)
    model = save_model(build_flexunet(settings), settings, tmp_path / "m.keras")
    scene = make_raster(height=3000, width=256)
    out = tmp_path / "out.tif"
    run = subprocess.Popen(
        [sys.executable, "-m", "geoseg", "predict", str(scene), "--model", str(model),
         "--out", str(out), "--probabilities", str(tmp_path / "prob.tif"),
         "--device", "cpu", "--batch-size", "1", "--progress", "json"],
        env={**os.environ, "GEOSEG_TF_LOGS": "0"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    journal = tmp_path / ".out.tif.resume"
    deadline = time.monotonic() + 120
    while not list(journal.glob("rows_*.npz")) and time.monotonic() < deadline:
        if run.poll() is not None:
            pytest.fail("the run ended before it could be stopped; make the scene larger")
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130  # interrupted, as Ctrl-C
    assert stderr.strip().splitlines()[-1].startswith("Interrupted: no complete output")
    assert "Traceback" not in stderr
    assert progress_lines(stderr)  # it was running
    # No output, no .partial-* folder (a converting backend's cache may sit by the model).
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".geoseg-cache") == [
        ".out.tif.resume", "m.keras", "scene.tif"]
    assert list(journal.glob("rows_*.npz"))
