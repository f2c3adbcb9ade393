"""QGIS styles are outputs like any other: refused when they exist unless ``--overwrite``, never
an input's style, one per output; a GeoPackage keeps its style inside (``layer_styles``)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pyogrio
import pytest
from click.testing import CliRunner
from conftest import PixelwisePredictor, pixelwise_keras_model
from test_inputs_protected import one_error_line

from geoseg.cli import cli
from geoseg.errors import OutputError, OutputExistsError, OutputIsInputError
from geoseg.model.flexunet import save_model
from geoseg.prediction.jobs import SceneJob, run_job
from geoseg.prediction.predict import PredictOptions
from geoseg.raster.styles import polygon_style
from geoseg.settings import ModelSettings
from geoseg.vectors.vectorize import vectorize_mask

SETTINGS = ModelSettings(image_size=64, num_layers=3, overlap=16)
USER_STYLE = "<qgis><!-- the user's own style of the scene --></qgis>"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


@pytest.fixture
def scene(make_raster, tmp_path) -> Path:
    """``RGB.byte.tif`` with the user's own ``RGB.byte.qml`` beside it."""
    path = make_raster("RGB.byte.tif", height=70, width=80)
    (tmp_path / "RGB.byte.qml").write_text(USER_STYLE)
    return path


def predict(scene: Path, model: Path, *args: str):
    return CliRunner().invoke(cli, ["predict", str(scene), "--model", str(model), "-q", *args])


def stored_styles(gpkg: Path) -> list[tuple]:
    with sqlite3.connect(gpkg) as db:
        return db.execute("SELECT f_table_catalog, f_table_schema, f_table_name, "
                          "f_geometry_column, styleName, styleQML, useAsDefault "
                          "FROM layer_styles").fetchall()


def test_a_geopackage_named_like_the_scene_leaves_the_scenes_style_alone(scene, model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = predict(scene, model, "--out", str(out / "m.tif"),
                     "--vector", str(tmp_path / "RGB.byte.gpkg"),
                     "--preview", str(out / "preview.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "RGB.byte.qml").read_text() == USER_STYLE
    assert "paletteEntry" in (out / "m.qml").read_text()  # the mask's own style
    gpkg = tmp_path / "RGB.byte.gpkg"
    # the polygons' style is the layer's default style inside the GeoPackage, as QGIS stores it
    geometry = pyogrio.read_info(gpkg, layer="RGB.byte")["geometry_name"]
    assert stored_styles(gpkg) == [("", "", "RGB.byte", geometry, "RGB.byte", polygon_style(), 1)]
    assert "More than one layer" not in result.output  # the preview read the polygons' layer


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_sidecar_that_is_the_scenes_style_is_refused_up_front(scene, model, tmp_path,
                                                                 overwrite):
    result = predict(scene, model, "--out", str(tmp_path / "m.tif"),
                     "--vector", str(tmp_path / "RGB.byte.shp"), *overwrite)
    assert one_error_line(result) == (
        f"Error: {tmp_path / 'RGB.byte.qml'}: is the QGIS style of {scene}, an input of this "
        "run; give the polygons another name, or write a GeoPackage (.gpkg), which keeps its "
        "style inside")
    assert (tmp_path / "RGB.byte.qml").read_text() == USER_STYLE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RGB.byte.qml", "RGB.byte.tif"]


def test_a_mask_may_not_take_the_scenes_style(make_raster, tmp_path):
    scene = make_raster("x.png", height=70, width=80)  # its style would be x.qml, as x.tif's
    with pytest.raises(OutputIsInputError, match=r"x.qml: is the QGIS style of .*x.png, an input"):
        run_job(SceneJob(str(scene), tmp_path / "x.tif"), PixelwisePredictor(), SETTINGS,
                PredictOptions(overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_mask_and_geopackage_of_one_name_keep_one_style_each(scene, model, tmp_path):
    result = predict(scene, model, "--out", str(tmp_path / "x.tif"),
                     "--vector", str(tmp_path / "x.gpkg"))
    assert result.exit_code == 0, result.output
    assert "paletteEntry" in (tmp_path / "x.qml").read_text()
    assert stored_styles(tmp_path / "x.gpkg")[0][5] == polygon_style()


@pytest.mark.parametrize("vector", ["x.shp", "x.geojson"])
def test_mask_and_polygons_sharing_a_sidecar_are_refused_up_front(scene, model, tmp_path, vector):
    result = predict(scene, model, "--out", str(tmp_path / "x.tif"),
                     "--vector", str(tmp_path / vector))
    assert one_error_line(result) == (
        f"Error: {tmp_path / 'x.qml'}: would be the QGIS style of both {tmp_path / vector} and "
        f"{tmp_path / 'x.tif'} (QGIS finds a layer's style by its file name); give the "
        "polygons another name, or write a GeoPackage (.gpkg), which keeps its style inside")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RGB.byte.qml", "RGB.byte.tif"]


def test_an_existing_style_is_refused_without_overwrite_even_without_its_mask(scene, model,
                                                                              tmp_path):
    (tmp_path / "m.qml").write_text("<qgis><!-- mine --></qgis>")
    result = predict(scene, model, "--out", str(tmp_path / "m.tif"))
    assert one_error_line(result) == (f"Error: {tmp_path / 'm.qml'}: exists already; pass "
                                  "--overwrite to replace it")
    assert (tmp_path / "m.qml").read_text() == "<qgis><!-- mine --></qgis>"
    assert not (tmp_path / "m.tif").exists()
    result = predict(scene, model, "--out", str(tmp_path / "m.tif"), "--overwrite")
    assert result.exit_code == 0, result.output
    assert "paletteEntry" in (tmp_path / "m.qml").read_text()


def test_vectorize_never_takes_the_style_of_its_mask_or_probabilities(make_raster, tmp_path):
    job = SceneJob(str(make_raster("s.tif", height=70, width=80)), tmp_path / "pred.tif",
                   tmp_path / "prob.tif")
    run_job(job, PixelwisePredictor(), SETTINGS)
    mask_style = (tmp_path / "pred.qml").read_bytes()
    for out in ("pred.shp", "prob.geojson"):
        with pytest.raises(OutputIsInputError, match=r"is the QGIS style of .*, an input"):
            vectorize_mask(job.mask, tmp_path / out, probabilities_path=job.probabilities,
                           overwrite=True)
    assert (tmp_path / "pred.qml").read_bytes() == mask_style
    assert not (tmp_path / "prob.qml").exists()
    vectorize_mask(job.mask, tmp_path / "pred.gpkg", probabilities_path=job.probabilities)
    (tmp_path / "slides.qml").write_text("mine")
    with pytest.raises(OutputExistsError, match="slides.qml: exists already"):
        vectorize_mask(job.mask, tmp_path / "slides.shp")
    assert not (tmp_path / "slides.shp").exists()
    vectorize_mask(job.mask, tmp_path / "slides.shp", overwrite=True)
    assert (tmp_path / "slides.qml").read_text() == polygon_style()
    vectorize_mask(job.mask, tmp_path / "plain.shp", style=False)  # no style: nothing to check
    assert not (tmp_path / "plain.qml").exists()


def test_out_dir_runs_check_every_style_before_any_work(make_raster, model, tmp_path):
    scenes = [make_raster(f"{name}.tif", height=70, width=80) for name in ("a", "b")]
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_mask.qml").write_text("mine")
    result = CliRunner().invoke(cli, ["predict", *map(str, scenes), "--model", str(model),
                                      "--out-dir", str(out), "-q"])
    assert f"{out / 'b_mask.qml'}: exists already" in one_error_line(result)
    assert sorted(p.name for p in out.iterdir()) == ["b_mask.qml"]  # a.tif not predicted


def test_a_style_colliding_with_another_output_is_an_output_error(make_raster, tmp_path):
    job = SceneJob(str(make_raster("s.tif", height=70, width=80)), tmp_path / "x.tif",
                   tmp_path / "x.tiff")
    with pytest.raises(OutputError, match="would be the QGIS style of both"):
        run_job(job, PixelwisePredictor(), SETTINGS)
    assert not (tmp_path / "x.tif").exists()


def test_polygons_are_the_same_bytes_run_after_run(make_raster, tmp_path):
    job = SceneJob(str(make_raster("s.tif", height=70, width=80)), tmp_path / "m.tif")
    run_job(job, PixelwisePredictor(), SETTINGS)
    digests = []
    for run in ("first", "second"):
        folder = tmp_path / run
        folder.mkdir()
        for name in ("p.gpkg", "p.shp"):
            vectorize_mask(job.mask, folder / name, layer="s")
        digests.append({name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                        for name in ("p.gpkg", "p.dbf", "p.shp", "p.qml")})
        time.sleep(1.1)  # GDAL writes the time of writing, to the millisecond or the day
    assert digests[0] == digests[1]
    assert (tmp_path / "first" / "p.dbf").read_bytes()[1:4] == bytes([70, 1, 1])  # 1970-01-01
    with sqlite3.connect(tmp_path / "first" / "p.gpkg") as db:
        times = db.execute("SELECT last_change FROM gpkg_contents UNION "
                           "SELECT update_time FROM layer_styles").fetchall()
    assert sorted(times) == [("1970-01-01T00:00:00.000Z",), ("1970-01-01T00:00:00Z",)]
