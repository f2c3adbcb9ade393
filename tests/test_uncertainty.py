"""The uncertainty raster's measures: predictive entropy and the spread across TTA, with known
answers."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.prediction.tta import TTAPredictor
from geoseg.prediction.uncertainty import predictive_entropy, uncertainty_style
from tests.test_tta import LookRight, tiles


def test_entropy_is_one_at_even_odds_and_zero_when_sure() -> None:
    two = np.array([[[0.5, 0.0, 1.0, 0.1]], [[0.5, 1.0, 0.0, 0.9]]])
    expected_01 = -(0.1 * np.log(0.1) + 0.9 * np.log(0.9)) / np.log(2)
    assert predictive_entropy(two)[0].tolist() == pytest.approx([1.0, 0.0, 0.0, expected_01])
    # a one-output (sigmoid) model reads as two classes; three classes normalise by log 3
    assert predictive_entropy(two[1:])[0].tolist() == pytest.approx(
        predictive_entropy(two)[0].tolist())
    three = np.full((3, 1, 2), 1 / 3)
    three[:, 0, 1] = [1.0, 0.0, 0.0]
    assert predictive_entropy(three)[0].tolist() == pytest.approx([1.0, 0.0])
    assert predictive_entropy(two).dtype == np.float32


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_spread_of_an_equivariant_model_is_zero(pixelwise, mode: str) -> None:
    x = tiles(3)
    got = TTAPredictor(pixelwise, mode, spread=True)(x)
    plain = TTAPredictor(pixelwise, mode)(x)
    assert got.shape == (*plain.shape[:-1], plain.shape[-1] + 1)
    np.testing.assert_array_equal(got[..., :-1], plain)  # the probabilities do not change
    assert np.all(got[..., -1] == 0.0)


def test_spread_of_a_model_that_looks_aside_is_half_its_disagreement() -> None:
    """LookRight under the 4 flips answers its right, left, right and left neighbours: a
    population standard deviation of |right - left| / 2."""
    x = tiles(2, 12, seed=3)
    band = x[..., 0] / 255.0
    right, left = np.roll(band, -1, axis=2), np.roll(band, 1, axis=2)
    inner = (slice(None), slice(1, -1), slice(1, -1))
    spread = TTAPredictor(LookRight(), "flips", spread=True)(x)[..., -1]
    np.testing.assert_allclose(spread[inner], (np.abs(right - left) / 2)[inner], atol=1e-6)
    assert spread[inner].max() > 0.1


def test_uncertainty_style_ramps_to_the_measures_strong_value() -> None:
    entropy, spread = uncertainty_style("entropy"), uncertainty_style("tta_spread")
    assert 'type="singlebandpseudocolor"' in entropy and 'band="1"' in entropy
    assert 'maximumValue="1"' in entropy and 'maximumValue="0.25"' in spread
    assert 'value="0" color="#ffffcc" alpha="0"' in entropy  # certain: transparent


def _raster(path, array: np.ndarray, tags: dict[str, str] | None = None,
            scale: float | None = None, nodata: float | None = None):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype=array.dtype.name, crs="EPSG:32654", nodata=nodata,
                       transform=from_origin(500000, 4000000, 10, 10)) as dst:
        dst.write(array, 1)
        if tags:
            dst.update_tags(**tags)
        if scale is not None:
            dst.scales = [scale]
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_polygons_get_the_mean_uncertainty_over_their_pixels(tmp_path, workers: int) -> None:
    """A polygon cut by block edges (merged) and one whole; uint8 with a scale of 1/254 and
    nodata 255 as geoseg predict writes it: nodata pixels do not count."""
    from geoseg.errors import InputError
    from geoseg.vectors.vectorize import polygons_from_mask

    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 20:40] = 1  # 800 pixels across the 32-pixel blocks
    mask[2:6, 2:6] = 1  # 16 pixels
    spread = np.zeros((64, 64), np.uint8)
    spread[10:30, 20:40] = 127  # 0.5 on half of the big one...
    spread[30:50, 20:40] = 254  # ...1.0 on the other half
    spread[2:6, 2:6] = 51
    spread[2, 2] = 255  # nodata
    mask_path = _raster(tmp_path / "mask.tif", mask, nodata=255)
    unc = _raster(tmp_path / "unc.tif", spread, {"GEOSEG_UNCERTAINTY": "tta_spread"},
                  scale=1 / 254, nodata=255)
    frame = polygons_from_mask(mask_path, uncertainty_path=unc, block_size=32, workers=workers)
    assert list(frame.columns)[-4:] == ["tta_spread", "lon", "lat", "geometry"]
    assert frame["tta_spread"].tolist() == pytest.approx([(127 + 254) / 2 / 254, 51 / 254])
    untagged = _raster(tmp_path / "plain.tif", spread)
    with pytest.raises(InputError, match="not an uncertainty raster"):
        polygons_from_mask(mask_path, uncertainty_path=untagged)
    with pytest.raises(InputError, match="is the mask itself"):
        polygons_from_mask(mask_path, uncertainty_path=mask_path)


# --------------------------------------------------------------------------- the raster
WKT_NO_EPSG = (
    'PROJCS["Iburi local TM",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",42.7],'
    'PARAMETER["central_meridian",142.0],PARAMETER["scale_factor",1],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
SETTINGS_32 = dict(image_size=32, base_filters=4, num_layers=3, overlap=8)


def _rgba_scene(path) -> tuple[object, np.ndarray]:
    """An RGBA scene of 70 x 90 pixels (not a multiple of the 32-pixel tile) in a WKT CRS
    without EPSG code, transparent (no data) in a corner."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    rng = np.random.default_rng(5)
    rgb = rng.integers(1, 255, (3, 70, 90), dtype=np.uint8)
    alpha = np.full((70, 90), 255, np.uint8)
    alpha[:20, :25] = 0
    with rasterio.open(path, "w", driver="GTiff", width=90, height=70, count=4, dtype="uint8",
                       crs=CRS.from_wkt(WKT_NO_EPSG), photometric="RGB", alpha="YES",
                       transform=Affine(2.5, 0.0, 1000.0, 0.0, -2.5, 5000.0)) as dst:
        dst.write(np.concatenate([rgb, alpha[None]]))
    return path, alpha > 0


def _predict(scene, out_dir, predictor, name: str, tta: str = "none", dtype: str = "uint8",
             uncertainty: bool = True, **kwargs):
    from geoseg.prediction.predict import PredictOptions, predict_scene
    from geoseg.settings import ModelSettings

    out_dir.mkdir(exist_ok=True)
    return predict_scene(
        scene, out_dir / f"{name}.tif", predictor, ModelSettings(**SETTINGS_32),
        PredictOptions(tta=tta, probability_dtype=dtype, **kwargs),
        probabilities_path=out_dir / f"{name}_p.tif",
        uncertainty_path=out_dir / f"{name}_u.tif" if uncertainty else None)


def test_entropy_raster_is_on_the_scenes_grid_with_its_nodata(tmp_path, pixelwise) -> None:
    import rasterio

    scene, valid = _rgba_scene(tmp_path / "scene.tif")
    made = _predict(scene, tmp_path / "out", pixelwise, "m", dtype="float32")
    assert made.uncertainty_path == tmp_path / "out" / "m_u.tif"
    with rasterio.open(scene) as src, rasterio.open(made.uncertainty_path) as unc, \
            rasterio.open(made.probabilities_path) as prob:
        assert unc.crs.to_wkt() == src.crs.to_wkt() and unc.crs.to_epsg() is None
        assert unc.transform == src.transform and (unc.width, unc.height) == (90, 70)
        assert unc.count == 1 and unc.dtypes[0] == "float32"
        assert unc.tags()["GEOSEG_UNCERTAINTY"] == "entropy"
        values, probs = unc.read(1), prob.read()
    assert np.isnan(values[~valid]).all() and not np.isnan(values[valid]).any()
    np.testing.assert_allclose(values[valid], predictive_entropy(probs)[valid], atol=1e-6)
    assert (tmp_path / "out" / "m_u.qml").read_text() == uncertainty_style("entropy")


def test_uint8_uncertainty_is_scaled_like_the_probabilities(tmp_path, pixelwise) -> None:
    import rasterio

    scene, valid = _rgba_scene(tmp_path / "scene.tif")
    made = _predict(scene, tmp_path / "out", pixelwise, "m")
    with rasterio.open(made.uncertainty_path) as unc, \
            rasterio.open(made.probabilities_path) as prob:
        assert unc.dtypes[0] == "uint8" and unc.nodata == 255
        assert unc.scales == prob.scales[:1] and unc.scales[0] == pytest.approx(1 / 254)
        raw, probs = unc.read(1), prob.read(masked=True).astype(np.float64) / 254
    assert (raw[~valid] == 255).all() and (raw[valid] <= 254).all()
    np.testing.assert_allclose(raw[valid] / 254, predictive_entropy(probs.filled(0))[valid],
                               atol=1.5 / 254)


def test_tta_spread_is_zero_for_an_equivariant_model_and_not_for_one_that_looks_aside(
        tmp_path, pixelwise) -> None:
    import rasterio

    from tests.test_tta import LookRight

    scene, valid = _rgba_scene(tmp_path / "scene.tif")
    still = _predict(scene, tmp_path / "out", pixelwise, "still", tta="flips", dtype="float32")
    aside = _predict(scene, tmp_path / "out", LookRight(), "aside", tta="flips",
                     dtype="float32")
    with rasterio.open(still.uncertainty_path) as a, rasterio.open(aside.uncertainty_path) as b:
        assert a.tags()["GEOSEG_UNCERTAINTY"] == b.tags()["GEOSEG_UNCERTAINTY"] == "tta_spread"
        zero, spread = a.read(1), b.read(1)
    assert (zero[valid] == 0).all() and np.isnan(zero[~valid]).all()
    assert np.nanmean(spread) > 0.05
    assert (tmp_path / "out" / "aside_u.qml").read_text() == uncertainty_style("tta_spread")


def test_uncertainty_changes_no_other_output_and_is_the_same_bytes_every_run(
        tmp_path, pixelwise) -> None:
    from tests.test_tta import LookRight

    scene, _ = _rgba_scene(tmp_path / "scene.tif")
    for tta, predictor in (("none", pixelwise), ("flips", LookRight())):
        runs = [_predict(scene, tmp_path / f"{tta}{i}", predictor, "m", tta=tta,
                         uncertainty=i < 2) for i in range(3)]
        first, again, without = ([path.read_bytes() for path in sorted(
            (tmp_path / f"{tta}{i}").iterdir())] for i in range(3))
        assert first == again  # mask, its style, probabilities, uncertainty, its style
        assert len(first) == 5 and len(without) == 3
        assert [runs[0].mask_path.read_bytes(), runs[0].probabilities_path.read_bytes()] == [
            runs[2].mask_path.read_bytes(), runs[2].probabilities_path.read_bytes()]


def test_uncertainty_output_is_refused_when_it_exists_or_is_the_scene(tmp_path,
                                                                       pixelwise) -> None:
    from geoseg.errors import OutputExistsError, OutputIsInputError
    from geoseg.prediction.predict import PredictOptions, predict_scene
    from geoseg.settings import ModelSettings

    scene, _ = _rgba_scene(tmp_path / "scene.tif")
    before = scene.read_bytes()
    (tmp_path / "u.tif").write_bytes(b"keep")
    settings = ModelSettings(**SETTINGS_32)
    with pytest.raises(OutputExistsError, match="u.tif"):
        predict_scene(scene, tmp_path / "m.tif", pixelwise, settings,
                      uncertainty_path=tmp_path / "u.tif")
    assert (tmp_path / "u.tif").read_bytes() == b"keep" and not (tmp_path / "m.tif").exists()
    with pytest.raises(OutputIsInputError):
        predict_scene(scene, tmp_path / "m.tif", pixelwise, settings,
                      PredictOptions(overwrite=True), uncertainty_path=scene)
    assert scene.read_bytes() == before and not (tmp_path / "m.tif").exists()


def test_polygons_of_a_tta_run_get_the_spread_without_an_uncertainty_output(tmp_path) -> None:
    """--tta with --vector: tta_spread per polygon from a hidden spread raster, removed after;
    without TTA the polygons are those of before (no uncertainty column)."""
    import geopandas as gpd

    from geoseg.prediction.jobs import SceneJob, run_job
    from geoseg.prediction.predict import PredictOptions
    from geoseg.settings import ModelSettings
    from tests.test_tta import LookRight

    scene, _ = _rgba_scene(tmp_path / "scene.tif")
    settings = ModelSettings(**SETTINGS_32)
    columns = {}
    for tta in ("none", "flips"):
        out = tmp_path / tta
        out.mkdir()
        job = SceneJob(str(scene), out / "m.tif", vector=out / "slides.gpkg")
        run_job(job, LookRight(), settings, PredictOptions(tta=tta))  # type: ignore[arg-type]
        assert sorted(p.name for p in out.iterdir()) == ["m.qml", "m.tif", "slides.gpkg"]
        frame = gpd.read_file(out / "slides.gpkg", layer="scene")
        columns[tta] = list(frame.columns)
        if tta == "flips":
            assert frame["tta_spread"].notna().all() and frame["tta_spread"].mean() > 0.05
    assert "tta_spread" in columns["flips"] and "tta_spread" not in columns["none"]
    assert not any(name in columns["none"] for name in ("entropy", "tta_spread"))


def test_uncertainty_at_another_pixel_size_is_refused_before_any_work(tmp_path,
                                                                       pixelwise) -> None:
    from geoseg.cli import flag
    from geoseg.errors import ParameterError

    scene, _ = _rgba_scene(tmp_path / "scene.tif")
    with pytest.raises(ParameterError, match="uncertainty_path is not written yet") as error:
        _predict(scene, tmp_path / "out", pixelwise, "m", resolution=5.0)
    assert "--resolution native" in error.value.worded(flag)
    assert not list((tmp_path / "out").iterdir())
