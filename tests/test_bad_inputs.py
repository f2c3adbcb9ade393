"""The catalogue of bad inputs: each gets a one-line error, a non-zero exit, no output left.

Each case runs the CLI as a user would and checks (1) the exit code, (2) that the message is a
single ``Error:`` line naming what is wrong, (3) that no traceback is shown and (4) that the
output folder holds nothing new (no file under the requested name, no temporary leftovers).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import pixelwise_keras_model

from geoseg.cli import cli
from geoseg.model.flexunet import build_flexunet, save_model
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


def assert_refused(result, message: str, out_dir: Path, before: set[str]) -> None:
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert message in errors[0], errors[0]
    assert "Traceback" not in result.output
    assert {p.name for p in out_dir.iterdir()} == before, "an output or temporary file was left"


def predict(tmp_path: Path, scene: str, model: Path, *extra: str):
    before = {p.name for p in tmp_path.iterdir()}
    result = CliRunner().invoke(cli, ["predict", scene, "--model", str(model), "--out",
                                      str(tmp_path / "out.tif"), "-q", *extra])
    return result, before


def test_missing_scene(tmp_path, model):
    result, before = predict(tmp_path, str(tmp_path / "nope.tif"), model)
    assert_refused(result, "does not exist", tmp_path, before)


def test_folder_instead_of_scene(tmp_path, model):
    (tmp_path / "folder.tif").mkdir()
    result, before = predict(tmp_path, str(tmp_path / "folder.tif"), model)
    assert_refused(result, "is a directory", tmp_path, before)


def test_text_file_named_tif(tmp_path, model):
    (tmp_path / "notes.tif").write_text("not a raster")
    result, before = predict(tmp_path, str(tmp_path / "notes.tif"), model)
    assert_refused(result, "not a raster GDAL can read", tmp_path, before)


def test_truncated_geotiff(tmp_path, model, make_raster):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (3, 700, 700), dtype=np.uint8)
    full = make_raster("full.tif", data=data)
    with rasterio.open(full) as src:
        profile = src.profile | {"tiled": True, "blockxsize": 128, "blockysize": 128,
                                 "compress": "deflate"}
    with rasterio.open(tmp_path / "tiled.tif", "w", **profile) as dst:
        dst.write(data)
    raw = (tmp_path / "tiled.tif").read_bytes()
    (tmp_path / "truncated.tif").write_bytes(raw[: len(raw) // 2])
    result, before = predict(tmp_path, str(tmp_path / "truncated.tif"), model)
    assert_refused(result, "truncated or corrupted", tmp_path, before)


def test_scene_without_crs_refused_with_require_crs(tmp_path, model, make_raster):
    scene = make_raster("nocrs.tif", height=50, width=50, crs=None)
    result, before = predict(tmp_path, str(scene), model, "--require-crs")
    assert_refused(result, "has no CRS", tmp_path, before)


def test_band_count_different_from_the_model(tmp_path, model, make_raster):
    scene = make_raster("four.tif", height=50, width=50, bands=4)
    result, before = predict(tmp_path, str(scene), model)
    assert_refused(result, "has 4 bands but the model takes 3", tmp_path, before)


def test_non_geoseg_keras_model(tmp_path, make_raster):
    scene = make_raster("s.tif", height=50, width=50)
    plain = tmp_path / "plain.keras"
    build_flexunet(SETTINGS).save(plain)
    result, before = predict(tmp_path, str(scene), plain)
    assert_refused(result, "not a geoseg model", tmp_path, before)


def test_corrupted_keras_model(tmp_path, make_raster):
    scene = make_raster("s.tif", height=50, width=50)
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 garbage")
    result, before = predict(tmp_path, str(scene), tmp_path / "broken.keras")
    assert_refused(result, "not a readable .keras model file", tmp_path, before)


def test_output_in_a_missing_folder(tmp_path, model, make_raster):
    scene = make_raster("s.tif", height=50, width=50)
    before = {p.name for p in tmp_path.iterdir()}
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out",
                                      str(tmp_path / "missing" / "out.tif")])
    assert_refused(result, "does not exist; create it first", tmp_path, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_in_a_read_only_folder(tmp_path, model, make_raster):
    scene = make_raster("s.tif", height=50, width=50)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "--out",
                                      str(locked / "out.tif")])
    assert_refused(result, "not writable", locked, set())


def test_existing_output_without_overwrite(tmp_path, model, make_raster):
    scene = make_raster("s.tif", height=50, width=50)
    (tmp_path / "out.tif").write_bytes(b"precious")
    result, before = predict(tmp_path, str(scene), model)
    assert_refused(result, "exists already; pass --overwrite", tmp_path, before)
    assert (tmp_path / "out.tif").read_bytes() == b"precious"


def test_disk_full_during_the_write_leaves_no_partial_output(tmp_path, model, make_raster,
                                                             monkeypatch):
    import errno

    scene = make_raster("s.tif", height=600, width=300)
    real_write = rasterio.io.DatasetWriter.write
    calls = {"n": 0}

    def failing_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", failing_write)
    result, before = predict(tmp_path, str(scene), model)
    # The journal stays, so that --resume continues once there is space.
    assert_refused(result, "out.tif: disk full (", tmp_path, before | {".out.tif.resume"})
    assert "run again with --resume to continue" in result.output


def test_misspelled_config_key(tmp_path):
    config = tmp_path / "bad.config"
    config.write_text("[model]\nnum_layer = 6\n")
    from geoseg.config import load_config
    from geoseg.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'num_layers'"):
        load_config(config)


def test_malicious_config_value_is_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.config"
    config.write_text(f"[model]\nbase_filters = __import__('os').system('touch {marker}')\n")
    from geoseg.config import load_config
    from geoseg.errors import ConfigError

    with pytest.raises(ConfigError):
        load_config(config)
    assert not marker.exists()


# ---------------------------------------------------------------- mosaics missing a source
def striped_mosaic(folder: Path, side: int = 1024) -> Path:
    """Four striped GeoTIFFs with nodata 0 mosaicked by a VRT, as gdalbuildvrt writes it."""
    rng = np.random.default_rng(0)
    sources = []
    for row in range(2):
        for col in range(2):
            name = f"tile_{row}{col}.tif"
            with rasterio.open(folder / name, "w", driver="GTiff", width=side, height=side,
                               count=3, dtype="uint8", nodata=0, crs="EPSG:32654",
                               transform=rasterio.transform.from_origin(
                                   582000 + 3 * side * col, 4734000 - 3 * side * row, 3, 3)
                               ) as dst:
                dst.write(rng.integers(1, 255, (3, side, side), dtype=np.uint8))
            sources.append(f"""<ComplexSource><SourceFilename relativeToVRT="1">{name}\
</SourceFilename><SourceBand>{{band}}</SourceBand><SourceProperties RasterXSize="{side}" \
RasterYSize="{side}" DataType="Byte" BlockXSize="{side}" BlockYSize="2"/><SrcRect xOff="0" \
yOff="0" xSize="{side}" ySize="{side}"/><DstRect xOff="{col * side}" yOff="{row * side}" \
xSize="{side}" ySize="{side}"/><NODATA>0</NODATA></ComplexSource>""")
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{band}"><NoDataValue>0'
                    f'</NoDataValue>{"".join(s.format(band=band) for s in sources)}'
                    "</VRTRasterBand>" for band in (1, 2, 3))
    vrt = folder / "mosaic.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="{2 * side}" rasterYSize="{2 * side}"><SRS>'
                   "EPSG:32654</SRS><GeoTransform>582000, 3, 0, 4734000, 0, -3</GeoTransform>"
                   f"{bands}</VRTDataset>")
    return vrt


@pytest.fixture
def holed_mosaic(tmp_path) -> Path:
    """The mosaic of the issue: one of its four tiles deleted."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    vrt = striped_mosaic(scenes)
    (scenes / "tile_11.tif").unlink()
    with rasterio.open(scenes / "labels.tif", "w", driver="GTiff", width=2048, height=2048,
                       count=1, dtype="uint8", crs="EPSG:32654",
                       transform=rasterio.transform.from_origin(582000, 4734000, 3, 3)) as dst:
        dst.write(np.zeros((1, 2048, 2048), np.uint8))
    return vrt


@pytest.mark.parametrize("command", ["predict", "evaluate", "tile"])
def test_mosaic_missing_a_source(tmp_path, model, holed_mosaic, command):
    labels = holed_mosaic.parent / "labels.tif"
    out = tmp_path / "out"
    args = {"predict": ["--out", str(tmp_path / "out.tif")],
            "evaluate": ["--labels", str(labels), "--out", str(out)],
            "tile": ["--labels", str(labels), "--out", str(out), "--tile-size", "64"]}[command]
    before = {p.name for p in tmp_path.iterdir()}
    result = CliRunner().invoke(cli, [command, str(holed_mosaic), "--model", str(model), "-q",
                                      *args])
    assert_refused(result, f"mosaic.vrt: its source {holed_mosaic.parent / 'tile_11.tif'} "
                           "does not exist; restore it, or rebuild the mosaic without it",
                   tmp_path, before)


def test_mosaic_with_a_truncated_source(tmp_path, model):
    vrt = striped_mosaic(tmp_path)
    tile = tmp_path / "tile_11.tif"
    tile.write_bytes(tile.read_bytes()[: tile.stat().st_size // 2])  # the header opens
    result, before = predict(tmp_path, str(vrt), model)
    assert_refused(result, "tile_11.tif, band 1: IReadBlock failed", tmp_path, before)
    assert "truncated or corrupted" in result.output
