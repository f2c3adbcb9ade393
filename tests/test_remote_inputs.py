"""Scenes read by URL (http(s)://, s3://) give what the same scenes give as local files."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
import test_cli_predict
from click.testing import CliRunner
from conftest import InterruptedAfter, PixelwisePredictor, write_raster
from range_server import serving
from rasterio.windows import Window
from test_bad_inputs import striped_mosaic
from test_inputs_protected import one_error_line

from geoseg.cli import cli
from geoseg.errors import InputError
from geoseg.prediction.distributed import expand_scenes
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.raster.scene import open_scene, read_window, scene_fingerprint

SETTINGS = test_cli_predict.SETTINGS
model_path = test_cli_predict.model_path
"""The fixture of the tiny Keras model of test_cli_predict: p(landslide) from band 1."""


@pytest.fixture(autouse=True)
def _uncached_gdal(monkeypatch):
    """GDAL keeps what it read of a URL for the process's life: a file changed on the server
    between two opens would be read as it was. Tests serve changing files, so nothing is
    kept; no folder listings are asked for either."""
    monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", "/vsicurl/http://127.0.0.1")
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")


@pytest.fixture
def served(tmp_path):
    """A folder served on 127.0.0.1 with Range requests, and its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    with serving(folder) as url:
        yield folder, url


def scene_data(height: int = 150, width: int = 130) -> np.ndarray:
    return np.random.default_rng(3).integers(1, 255, size=(3, height, width), dtype=np.uint8)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_predict_from_a_url_writes_the_bytes_of_the_local_scene(served, tmp_path, model_path):
    folder, url = served
    write_raster(folder / "scene.tif", scene_data(), nodata=0)
    common = ["--model", str(model_path), "--device", "cpu", "-q"]
    local = run("predict", str(folder / "scene.tif"), "--out", str(tmp_path / "local.tif"),
                *common)
    remote = run("predict", f"{url}/scene.tif?token=a.b", "--out-dir", str(tmp_path / "out"),
                 *common)
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    # named after the URL's file, written here, the same bytes
    assert sha256(tmp_path / "out" / "scene_mask.tif") == sha256(tmp_path / "local.tif")


def test_a_dask_worker_predicts_bands_of_a_url(served, tmp_path, model_path):
    pytest.importorskip("distributed")
    folder, url = served
    write_raster(folder / "scene.tif", scene_data(height=200), nodata=0)
    common = ["--model", str(model_path), "--device", "cpu", "-q"]
    local = run("predict", str(folder / "scene.tif"), "--out", str(tmp_path / "local.tif"),
                *common)
    spread = run("predict", f"{url}/scene.tif", "--out", str(tmp_path / "dask.tif"),
                 "--workers", "1", "--band-tile-rows", "1", *common)
    assert local.exit_code == 0, local.output
    assert spread.exit_code == 0, spread.output
    assert "bands on workers" in spread.output  # split in bands, read by the worker
    assert sha256(tmp_path / "dask.tif") == sha256(tmp_path / "local.tif")


def test_info_and_tile_read_a_url(served, tmp_path):
    folder, url = served
    write_raster(folder / "scene.tif", scene_data(), nodata=0)
    labels = write_raster(tmp_path / "labels.tif",
                          (scene_data()[:1] > 128).astype(np.uint8))
    info = run("info", f"{url}/scene.tif", "--json")
    assert info.exit_code == 0, info.output
    facts = json.loads(info.output)
    assert facts["size"] == "130 x 150 pixels" and facts["crs"] == "EPSG:32654"
    chips = {}
    for name, scene in (("local", str(folder / "scene.tif")),
                        ("remote", f"{url}/scene.tif?version=1.2")):
        result = run("tile", scene, "--labels", str(labels), "--out", str(tmp_path / name),
                     "--tile-size", "64", "--overlap", "16", "-q")
        assert result.exit_code == 0, result.output
        chips[name] = {p.name: sha256(p) for p in (tmp_path / name / "images").rglob("*.tif")}
    assert chips["remote"] and chips["remote"] == chips["local"]


def test_vectorize_reads_a_mask_and_probabilities_by_url(served, tmp_path, model_path):
    import geopandas as gpd

    folder, url = served
    write_raster(folder / "scene.tif", scene_data(), nodata=0)
    predicted = run("predict", str(folder / "scene.tif"), "--out", str(folder / "mask.tif"),
                    "--probabilities", str(folder / "prob.tif"), "--model", str(model_path),
                    "--device", "cpu", "-q")
    assert predicted.exit_code == 0, predicted.output
    layers = {}
    for name, where, query in (("local", str(folder), ""), ("remote", url, "?version=1.2")):
        result = run("vectorize", f"{where}/mask.tif{query}", "--probabilities",
                     f"{where}/prob.tif{query}",
                     "--out", str(tmp_path / f"{name}.gpkg"), "--workers", "1", "-q")
        assert result.exit_code == 0, result.output
        layers[name] = gpd.read_file(tmp_path / f"{name}.gpkg", layer="mask")  # the file's stem
    assert len(layers["remote"]) > 0
    assert layers["remote"].equals(layers["local"])


def test_evaluate_reads_a_url(served, tmp_path, model_path):
    folder, url = served
    data = scene_data()
    write_raster(folder / "scene.tif", data, nodata=0)
    labels = write_raster(tmp_path / "labels.tif", (data[:1] > 128).astype(np.uint8))
    reports = {}
    for name, scene in (("local", str(folder / "scene.tif")),
                        ("remote", f"{url}/scene.tif?version=1.2")):
        result = run("evaluate", scene, "--labels", str(labels), "--model", str(model_path),
                     "--device", "cpu", "--no-objects", "-q", "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / name / "evaluation.json").read_text())
        reports[name] = {k: v for k, v in report.items() if k != "seconds"}
    assert reports["remote"] == reports["local"]


@pytest.mark.parametrize("command", ["predict", "info", "evaluate", "tile"])
@pytest.mark.parametrize("where", ["missing", "refused"])
def test_a_url_that_cannot_be_read_is_one_line(served, tmp_path, model_path, command, where):
    folder, url = served
    address = (f"{url}/missing.tif" if where == "missing"
               else f"http://127.0.0.1:{_closed_port()}/scene.tif")
    labels = write_raster(tmp_path / "labels.tif", np.zeros((1, 8, 8), np.uint8))
    args = {"predict": ["--out", str(tmp_path / "o.tif"), "--model", str(model_path)],
            "info": [],
            "evaluate": ["--labels", str(labels), "--model", str(model_path)],
            "tile": ["--labels", str(labels), "--out", str(tmp_path / "chips")]}[command]
    result = run(command, address, *args)
    error = one_error_line(result)
    assert result.exit_code == 1
    assert address in error and "cannot be read" in error
    assert ("404" if where == "missing" else "connect") in error
    assert not (tmp_path / "o.tif").exists()


def test_a_missing_local_scene_keeps_its_message(tmp_path):
    result = run("info", str(tmp_path / "missing.tif"))
    assert result.exit_code != 0 and "does not exist" in result.output
    with pytest.raises(InputError, match="missing.tif: does not exist"):
        expand_scenes([str(tmp_path / "missing.tif")])


def test_scene_lists_keep_urls_as_they_are(tmp_path):
    listing = tmp_path / "scenes.txt"
    listing.write_text("https://example.com/a.tif\ns3://bucket/b.tif\n/vsigs/bucket/c.tif\n")
    assert expand_scenes([f"@{listing}", "gs://bucket/d.tif"]) == [
        "/vsicurl/https://example.com/a.tif", "/vsis3/bucket/b.tif", "/vsigs/bucket/c.tif",
        "/vsigs/bucket/d.tif"]


@pytest.mark.parametrize("prefix", ["/vsicurl/", ""])
def test_a_mosaic_of_served_sources_is_read_and_a_missing_one_fails(served, tmp_path, prefix):
    folder, url = served
    served_mosaic = striped_mosaic(folder, side=64)
    vrt = tmp_path / "remote.vrt"
    vrt.write_text(served_mosaic.read_text().replace(
        '<SourceFilename relativeToVRT="1">',
        f'<SourceFilename relativeToVRT="0">{prefix}{url}/'))
    whole = Window(0, 0, 128, 128)
    with open_scene(served_mosaic) as local, open_scene(vrt) as remote:
        assert (read_window(remote, whole, [1, 2, 3])[0]
                == read_window(local, whole, [1, 2, 3])[0]).all()
    (folder / "tile_11.tif").unlink()
    with open_scene(vrt) as remote, pytest.raises(InputError, match=r"remote.vrt: pixels at "
                                                  r"rows 0-128, .*cannot be read"):
        read_window(remote, whole, [1, 2, 3])


def test_the_fingerprint_of_a_served_scene_follows_the_server(served):
    folder, url = served
    path = folder / "scene.tif"
    write_raster(path, scene_data())

    def fingerprint() -> str:
        with open_scene(f"{url}/scene.tif") as src:
            return scene_fingerprint(src)

    first = fingerprint()
    assert fingerprint() == first  # what the server says does not change by itself
    with rasterio.open(path) as src:  # the same pixels, another file (size, ETag)
        profile, pixels = src.profile, src.read()
    with rasterio.open(path, "w", **{**profile, "compress": "deflate"}) as dst:
        dst.write(pixels)
    assert fingerprint() != first


def test_resume_from_a_url_continues_and_refuses_a_changed_file(served, tmp_path):
    folder, url = served
    data = scene_data(height=600, width=100)
    write_raster(folder / "scene.tif", data, nodata=0)
    scene = f"{url}/scene.tif"
    reference = predict_scene(folder / "scene.tif", tmp_path / "ref.tif", PixelwisePredictor(4),
                              SETTINGS)
    out = tmp_path / "mask.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(scene, out, InterruptedAfter(6), SETTINGS)
    journal = tmp_path / ".mask.tif.resume"
    recorded = json.loads((journal / "fingerprint.json").read_text())
    assert recorded["scene"] == f"/vsicurl/{scene}"  # the URL, not a local path made of it
    kept = {p.name: p.read_bytes() for p in journal.iterdir()}
    resumed = predict_scene(scene, out, PixelwisePredictor(4), SETTINGS,
                            PredictOptions(resume=True))
    assert resumed.tiles_predicted < reference.tiles_predicted
    assert sha256(out) == sha256(tmp_path / "ref.tif")
    # the same interrupted run, but the server now serves another file of the same pixels
    out.unlink()
    out.with_suffix(".qml").unlink()
    journal.mkdir()
    for name, content in kept.items():
        (journal / name).write_bytes(content)
    write_raster(folder / "scene.tif", data, nodata=0)
    with rasterio.open(folder / "scene.tif", "r+") as dst:
        dst.update_tags(edited="yes")  # size and ETag change, the pixels do not
    with pytest.raises(InputError, match="another scene, model or options"):
        predict_scene(scene, out, PixelwisePredictor(4), SETTINGS, PredictOptions(resume=True))


def _closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    """moto's S3 server on 127.0.0.1, and GDAL pointed at it (path-style, plain HTTP)."""
    pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    port = _closed_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("moto's S3 server did not start")
                time.sleep(0.1)
        for key, value in {"AWS_S3_ENDPOINT": f"127.0.0.1:{port}", "AWS_HTTPS": "NO",
                           "AWS_VIRTUAL_HOSTING": "FALSE", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                           "CPL_VSIL_CURL_NON_CACHED": "/vsis3/"}.items():
            monkeypatch.setenv(key, value)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_predict_from_s3_writes_the_bytes_of_the_local_scene(s3_server, tmp_path, model_path):
    import boto3

    scene = write_raster(tmp_path / "scene.tif", scene_data(), nodata=0)
    bucket = boto3.client("s3", endpoint_url=s3_server)
    bucket.create_bucket(Bucket="scenes")
    bucket.upload_file(str(scene), "scenes", "area/scene.tif")
    common = ["--model", str(model_path), "--device", "cpu", "-q"]
    local = run("predict", str(scene), "--out", str(tmp_path / "local.tif"), *common)
    remote = run("predict", "s3://scenes/area/scene.tif", "--out", str(tmp_path / "s3.tif"),
                 *common)
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    assert sha256(tmp_path / "s3.tif") == sha256(tmp_path / "local.tif")
