"""geoseg.evaluation.evaluate and `geoseg evaluate`: hand-computed scene figures, perfect and empty
models, excluded pixels, the reference PNG layout, report files and the command's exit codes."""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import (
    TEST_CRS,
    TEST_TRANSFORM,
    PixelwisePredictor,
    look_right_keras_model,
    pixelwise_keras_model,
    write_raster,
)
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage
from shapely.geometry import box

from geoseg import cli as cli_module
from geoseg.errors import InputError, OutputExistsError
from geoseg.evaluation import evaluate as evaluate_module
from geoseg.evaluation.evaluate import evaluate_dataset, evaluate_scenes
from geoseg.evaluation.evaluation_report import (
    OBJECT_FILES,
    REPORT_FILES,
    SCENES_FILE,
    write_report,
)
from geoseg.evaluation.metrics_report import MetricsReport
from geoseg.model.predictor import load_predictor
from geoseg.postprocessing.postprocess_recipe import PostProcessing
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.prediction.tta import TTAPredictor
from geoseg.settings import ModelSettings

SETTINGS = ModelSettings(image_size=32, num_layers=3, base_filters=4, overlap=8)
RGB_MAP = {(0, 0, 0): 0, (255, 0, 0): 1}


def evaluate_one(scene, labels, predictor, settings, **options) -> MetricsReport:
    """The report of one labelled scene."""
    return evaluate_scenes([(scene, labels)], predictor, settings, **options).report


class NothingPredictor:
    """A model that never sees a landslide: p(landslide) = 0 everywhere."""

    batch_size = 4

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        shape = batch.shape[:-1]
        return np.stack([np.ones(shape), np.zeros(shape)], axis=-1).astype(np.float32)


def image_encoding(truth: np.ndarray) -> np.ndarray:
    """A 3-band image whose band 1 is 255 on landslides, so PixelwisePredictor is perfect."""
    band1 = np.where(truth == 1, 255, 0).astype(np.uint8)
    return np.stack([band1, np.full_like(band1, 90), np.full_like(band1, 40)])


def pixel_box(row0: int, row1: int, col0: int, col1: int):
    """Map-coordinate box of pixel rows [row0, row1) and columns [col0, col1) of the test grid."""
    x0, y0 = TEST_TRANSFORM * (col0, row1)
    x1, y1 = TEST_TRANSFORM * (col1, row0)
    return box(x0, y0, x1, y1)


@pytest.fixture
def shifted_scene(tmp_path):
    """Truth square rows 10-29 x cols 10-29; predicted square 10 rows lower (rows 20-39)."""
    truth = np.zeros((60, 80), np.uint8)
    truth[10:30, 10:30] = 1
    predicted = np.zeros_like(truth)
    predicted[20:40, 10:30] = 1
    scene = write_raster(tmp_path / "scene.tif", image_encoding(predicted))
    labels = write_raster(tmp_path / "truth.tif", truth[None])
    return scene, labels


def test_scene_figures_match_hand_computed_counts(shifted_scene):
    scene, labels = shifted_scene
    report = evaluate_one(scene, labels, PixelwisePredictor(), SETTINGS)
    cm = report.confusion
    # tp = 10 rows x 20 cols overlap, fp = fn = 200, tn = 4800 - 600
    assert cm.matrix.tolist() == [[4200, 200], [200, 200]]
    assert cm.iou[1] == pytest.approx(1 / 3) and cm.f1[1] == pytest.approx(0.5)
    assert cm.precision[1] == pytest.approx(0.5) and cm.recall[1] == pytest.approx(0.5)
    assert cm.iou[0] == pytest.approx(4200 / 4600)
    # polygons overlap with IoU 1/3 < 0.5: one missed, one false landslide
    objects = report.objects
    assert (objects.n_truth, objects.n_pred, objects.true_positives) == (1, 1, 0)
    # the sweep: p is 1 on the predicted square and 0 elsewhere
    sweep = report.sweep
    assert (sweep.tp[0], sweep.fp[0]) == (400, 4400)  # threshold 0: every pixel positive
    at_half = int(np.flatnonzero(np.isclose(sweep.thresholds, 0.5))[0])
    assert (sweep.tp[at_half], sweep.fp[at_half], sweep.fn[at_half]) == (200, 200, 200)


def test_object_iou_threshold_is_applied(shifted_scene):
    scene, labels = shifted_scene
    report = evaluate_one(scene, labels, PixelwisePredictor(), SETTINGS, iou_threshold=0.3)
    assert report.objects.true_positives == 1
    assert report.objects.pairs[0][2] == pytest.approx(1 / 3)


def blobs(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = np.zeros((height, width), np.uint8)
    for _ in range(6):
        r, c = rng.integers(0, height - 12), rng.integers(0, width - 12)
        truth[r : r + rng.integers(4, 12), c : c + rng.integers(4, 12)] = 1
    return truth


def test_perfect_model_scores_landslide_iou_one_across_overlapping_tiles(tmp_path):
    truth = blobs(90, 110, seed=3)  # 5 x 5 tiles of 32 with overlap 8
    scene = write_raster(tmp_path / "scene.tif", image_encoding(truth))
    labels = write_raster(tmp_path / "truth.tif", truth[None])
    report = evaluate_one(scene, labels, PixelwisePredictor(batch_size=4), SETTINGS)
    assert report.confusion.iou[1] == 1.0 and report.confusion.f1[1] == 1.0
    assert report.confusion.total == truth.size
    assert report.confusion.support[1] == truth.sum()
    assert report.objects.n_truth > 0 and report.objects.f1 == 1.0
    assert report.sweep.best_index is not None and report.sweep.f1[report.sweep.best_index] == 1


def test_blocks_count_every_pixel_once(tmp_path, monkeypatch, shifted_scene):
    whole = evaluate_one(*shifted_scene, PixelwisePredictor(), SETTINGS)
    monkeypatch.setattr(evaluate_module, "SCORING_BLOCK", 24)  # 60 x 80 pixels in 3 x 4 blocks
    blocked = evaluate_one(*shifted_scene, PixelwisePredictor(), SETTINGS)
    assert blocked.confusion.matrix.tolist() == whole.confusion.matrix.tolist()
    assert blocked.sweep.tp.tolist() == whole.sweep.tp.tolist()
    assert blocked.objects.summary() == whole.objects.summary()


def test_model_that_predicts_nothing_scores_zero(tmp_path):
    truth = blobs(50, 60, seed=5)
    scene = write_raster(tmp_path / "scene.tif", image_encoding(truth))
    labels = write_raster(tmp_path / "truth.tif", truth[None])
    report = evaluate_one(scene, labels, NothingPredictor(), SETTINGS)
    cm = report.confusion
    assert cm.iou[1] == 0.0 and cm.recall[1] == 0.0 and cm.f1[1] == 0.0
    assert math.isnan(cm.precision[1])  # nothing predicted: n/a, not 0 or 1
    assert cm.predicted[1] == 0 and cm.support[1] == truth.sum()
    assert report.objects.true_positives == 0 and report.objects.n_pred == 0
    # ... while the background-dominated reference metric still looks good
    assert cm.dice_coef_multiclass > 0.8


def test_vector_labels_are_matched_as_polygons_clipped_to_the_scene(tmp_path):
    truth = np.zeros((40, 50), np.uint8)
    truth[5:15, 5:20] = 1
    truth[20:35, 40:50] = 1  # the second polygon runs 10 columns beyond the right edge
    scene = write_raster(tmp_path / "scene.tif", image_encoding(truth))
    polygons = [pixel_box(5, 15, 5, 20), pixel_box(20, 35, 40, 60), pixel_box(0, 5, 70, 80)]
    labels = tmp_path / "inventory.gpkg"
    gpd.GeoDataFrame(geometry=polygons, crs=TEST_CRS).to_file(labels)
    report = evaluate_one(scene, labels, PixelwisePredictor(), SETTINGS)
    assert report.confusion.iou[1] == 1.0
    objects = report.objects
    assert (objects.n_truth, objects.n_pred, objects.true_positives) == (2, 2, 2)
    assert all(iou == pytest.approx(1.0) for _, _, iou in objects.pairs)


def test_nodata_and_unlabelled_pixels_are_left_out(tmp_path):
    truth = blobs(48, 64, seed=7)
    image = image_encoding(truth)
    image[:, :, :8] = 0  # scene nodata: 8 columns, where the truth says landslide
    truth[:, :8] = 1
    labels = truth.copy()
    labels[40:, 20:] = 9  # unlabelled (the label raster's nodata) ...
    image[0, 40:, 20:] = 255  # ... where the model sees landslides everywhere
    scene = write_raster(tmp_path / "scene.tif", image, nodata=0)
    label_path = write_raster(tmp_path / "truth.tif", labels[None], nodata=9)
    report = evaluate_one(scene, label_path, PixelwisePredictor(), SETTINGS)
    cm = report.confusion
    assert cm.total == 48 * 64 - 48 * 8 - 8 * 44
    assert cm.iou[1] == 1.0  # neither the nodata columns nor the unlabelled block count
    assert report.sweep.positive_hist.sum() + report.sweep.negative_hist.sum() == cm.total
    assert report.objects.f1 == 1.0


def test_sigmoid_model_with_one_class(tmp_path):
    truth = blobs(40, 40, seed=11)
    scene = write_raster(tmp_path / "scene.tif", image_encoding(truth))
    labels = write_raster(tmp_path / "truth.tif", truth[None])

    def sigmoid(batch: np.ndarray) -> np.ndarray:
        return (batch[..., :1] / 255.0).astype(np.float32)

    sigmoid.batch_size = 2  # type: ignore[attr-defined]
    settings = ModelSettings(image_size=32, num_layers=3, base_filters=4, num_classes=1)
    report = evaluate_one(scene, labels, sigmoid, settings)
    assert report.confusion.class_names == ["background", "landslide"]
    assert report.confusion.iou[1] == 1.0


def test_several_scenes_are_pooled_and_kept_per_scene(tmp_path, shifted_scene):
    truth = blobs(50, 60, seed=13)
    scene2 = write_raster(tmp_path / "scene2.tif", image_encoding(truth))
    labels2 = write_raster(tmp_path / "truth2.tif", truth[None])
    result = evaluate_scenes([shifted_scene, (scene2, labels2)], PixelwisePredictor(), SETTINGS)
    assert [s.name for s in result.scenes] == ["scene.tif", "scene2.tif"]
    matrices = [s.report.confusion.matrix for s in result.scenes]
    assert result.report.confusion.matrix.tolist() == (matrices[0] + matrices[1]).tolist()
    assert result.scenes[1].report.confusion.iou[1] == 1.0
    pooled = result.report.objects
    assert pooled.n_truth == sum(s.report.objects.n_truth for s in result.scenes)
    assert pooled.true_positives == result.scenes[1].report.objects.true_positives
    # at IoU 0.25 the shifted square (IoU 1/3) of the first scene is found too
    (loose,) = result.report.more_objects
    assert loose.iou_threshold == 0.25 and loose.n_truth == pooled.n_truth
    assert loose.true_positives == pooled.true_positives + 1


def test_work_dir_is_emptied(tmp_path, shifted_scene):
    work = tmp_path / "work"
    work.mkdir()
    evaluate_one(*shifted_scene, PixelwisePredictor(), SETTINGS, work_dir=work)
    assert list(work.iterdir()) == []


def test_wrong_labels_fail_before_prediction(tmp_path, shifted_scene):
    scene, _ = shifted_scene
    other = write_raster(tmp_path / "small.tif", np.zeros((1, 10, 10), np.uint8))
    predictor = PixelwisePredictor()
    with pytest.raises(InputError, match="is not on the grid of"):
        evaluate_one(scene, other, predictor, SETTINGS)
    assert predictor.calls == 0


# ------------------------------------------------------------------------- reference layout
def write_png(path, rgb: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=rgb.shape[2], height=rgb.shape[1],
                           count=3, dtype="uint8") as dst:
            dst.write(rgb)


def write_reference_split(folder, count: int = 2, size: tuple[int, int] = (40, 48)) -> int:
    """PNG tiles in the reference layout; returns the number of white (no-data) pixels."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    white = 0
    for number in range(count):
        truth = blobs(*size, seed=20 + number)
        image = image_encoding(truth)
        image[:, :5, :5] = 255  # a white corner wedge: no data; the mask is background there
        truth[:5, :5] = 0
        white += 25
        mask = np.stack([truth * 255, np.zeros_like(truth), np.zeros_like(truth)])
        write_png(folder / "images" / f"{number}.png", image)
        write_png(folder / "masks" / f"{number}.png", mask)
    return white


def test_reference_png_layout_without_georeference_warnings(tmp_path, caplog):
    white = write_reference_split(tmp_path / "data" / "valid")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = evaluate_dataset(tmp_path / "data", PixelwisePredictor(), SETTINGS,
                                  rgb_map=RGB_MAP)
    assert [s.name for s in result.scenes] == ["0.png", "1.png"]
    # white pixels would be false landslides (band 1 = 255) if they were scored
    assert result.report.confusion.iou[1] == 1.0
    assert result.report.confusion.total == 2 * 40 * 48 - white
    assert result.report.objects.f1 == 1.0
    assert not [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)]
    assert "CRS" not in caplog.text


def test_dataset_folder_forms(tmp_path):
    write_reference_split(tmp_path / "split", count=1)
    direct = evaluate_dataset(tmp_path / "split", PixelwisePredictor(), SETTINGS, rgb_map=RGB_MAP)
    pair = evaluate_dataset((tmp_path / "split" / "images", tmp_path / "split" / "masks"),
                            PixelwisePredictor(), SETTINGS, rgb_map=RGB_MAP, objects=False)
    assert direct.report.confusion.matrix.tolist() == pair.report.confusion.matrix.tolist()
    assert pair.report.objects is None
    with pytest.raises(InputError, match="nor a test/ or valid/ split"):
        evaluate_dataset(tmp_path, PixelwisePredictor(), SETTINGS, rgb_map=RGB_MAP)


# ------------------------------------------------------------------------------ report files
def test_report_files_written_and_not_clobbered(tmp_path, shifted_scene):
    result = evaluate_scenes([shifted_scene], PixelwisePredictor(), SETTINGS)
    out = tmp_path / "report"
    written = write_report(result, out)
    assert sorted(p.name for p in written) == sorted([*REPORT_FILES, SCENES_FILE, *OBJECT_FILES])
    figures = json.loads((out / "evaluation.json").read_text())
    assert figures["landslide"]["iou"] == pytest.approx(1 / 3)
    assert figures["landslide"]["precision"] == pytest.approx(0.5)
    with (out / SCENES_FILE).open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["scene"] == "scene.tif" and float(rows[0]["f1"]) == pytest.approx(0.5)
    with (out / "threshold_sweep.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 101
    assert (out / "threshold_sweep.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(OutputExistsError, match="holds a report already"):
        write_report(result, out)
    write_report(result.report, out, overwrite=True)  # a plain MetricsReport: no scenes.csv


def test_object_report_marks_matched_missed_and_false_polygons(tmp_path):
    """Truth: A (rows 5-14, cols 5-14), B (cols 30-39), C (cols 60-64). Prediction: A exactly,
    B shifted 5 columns (IoU 1/3), and D where there is no landslide."""
    truth = np.zeros((40, 80), np.uint8)
    truth[5:15, 5:15] = truth[5:15, 30:40] = truth[5:10, 60:65] = 1
    predicted = np.zeros_like(truth)
    predicted[5:15, 5:15] = predicted[5:15, 35:45] = predicted[25:31, 60:66] = 1
    scene = write_raster(tmp_path / "scene.tif", image_encoding(predicted))
    labels = write_raster(tmp_path / "truth.tif", truth[None])
    result = evaluate_scenes([(scene, labels)], PixelwisePredictor(), SETTINGS)
    strict, loose = result.report.object_matches
    assert (strict.iou_threshold, strict.true_positives, len(strict.missed),
            len(strict.false_landslides)) == (0.5, 1, 2, 2)
    assert (loose.iou_threshold, loose.true_positives, len(loose.missed),
            len(loose.false_landslides)) == (0.25, 2, 1, 1)

    out = tmp_path / "report"
    write_report(result, out)
    layer = gpd.read_file(out / "objects.gpkg", layer="objects")
    assert layer.crs == TEST_CRS and (layer["scene"] == "scene.tif").all()
    rows = sorted(zip(layer["status"], np.round(layer["iou"], 4), layer["area_m2"],
                      strict=True))
    assert rows == [("false", 0.0, 36 * 9.0), ("false", 0.3333, 900.0),
                    ("matched", 1.0, 900.0), ("missed", 0.0, 25 * 9.0),
                    ("missed", 0.3333, 900.0)]
    missed = layer[layer["status"] == "missed"].geometry.union_all()
    assert missed.equals(pixel_box(5, 15, 30, 40).union(pixel_box(5, 10, 60, 65)))
    assert 'attr="status"' in (out / "objects.qml").read_text()
    write_report(result, tmp_path / "again")  # the same objects give the same bytes
    assert (tmp_path / "again" / "objects.gpkg").read_bytes() == (out / "objects.gpkg").read_bytes()
    assert (out / "objects_frequency_area.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads((out / "evaluation.json").read_text())
    assert [(row["iou_threshold"], row["f1"]) for row in figures["objects_by_iou"]] == [
        (0.5, pytest.approx(1 / 3)), (0.25, pytest.approx(2 / 3))]
    with (out / "objects.csv").open() as fh:
        assert [row["true_positives"] for row in csv.DictReader(fh)] == ["1", "2"]
    with (out / SCENES_FILE).open() as fh:
        scene_row = next(csv.DictReader(fh))
    assert (scene_row["matched_objects"], scene_row["matched_objects_iou0.25"]) == ("1", "2")


# ------------------------------------------------------------------------------ command
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from geoseg.model.flexunet import save_model

    path = tmp_path_factory.mktemp("model") / "pixelwise.keras"
    return save_model(pixelwise_keras_model(SETTINGS), SETTINGS, path)


@pytest.fixture
def run(monkeypatch):
    """Invoke `geoseg evaluate` through the real group (its one-line error handling)."""
    monkeypatch.setitem(cli_module.COMMANDS, "evaluate", "evaluate")

    def invoke(*args: str):
        return CliRunner().invoke(cli_module.cli, ["evaluate", *map(str, args)],
                                  catch_exceptions=False)

    return invoke


def test_command_on_a_dataset_prints_the_table_and_writes_the_report(tmp_path, run, model_path):
    write_reference_split(tmp_path / "valid")
    out = tmp_path / "report"
    result = run("--dataset", tmp_path / "valid", "--model", model_path, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert "Landslide ('landslide', class 1): IoU 1.0000" in result.output
    assert "Objects (IoU >= 0.5)" in result.output and "Objects (IoU >= 0.25)" in result.output
    assert "on 2 scenes" in result.output
    assert "stays high even when every landslide is missed" in result.output
    assert all((out / name).is_file() for name in [*REPORT_FILES, SCENES_FILE])

    again = run("--dataset", tmp_path / "valid", "--model", model_path, "--out", out, "-q")
    assert again.exit_code == 1
    assert "holds a report already" in again.output and "--overwrite" in again.output


def test_command_on_scenes_with_labels(tmp_path, run, model_path, shifted_scene):
    scene, labels = shifted_scene
    result = run(scene, "--labels", labels, "--model", model_path, "--iou-threshold", "0.3",
                 "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    assert "IoU 0.3333" in result.output and "Objects (IoU >= 0.3): 1 found" in result.output


def test_command_tta_averages_a_model_that_is_not_flip_equivariant(tmp_path, run,
                                                                   shifted_scene):
    from geoseg.model.flexunet import save_model

    model = save_model(look_right_keras_model(SETTINGS), SETTINGS, tmp_path / "right.keras")
    scene, labels = shifted_scene
    matrices, outputs = {}, {}
    for tta in ("none", "flips"):
        result = run(scene, "--labels", labels, "--model", model, "--device", "cpu",
                     "--window", "64", "--out", tmp_path / tta, "-q", "--tta", tta)
        assert result.exit_code == 0, result.output
        outputs[tta] = result.output
        matrices[tta] = json.loads((tmp_path / tta / "evaluation.json").read_text())[
            "confusion_matrix"]
    # Looking right moves the predicted square (rows 20-39, cols 10-29) one column left: tp
    # 10 x 19, IoU 190 / 610. Averaged with looking left, its two edge columns (one side sees
    # the square, the other not) fall just below 0.5: 18 columns, tp 10 x 18, IoU 180 / 580.
    assert matrices["none"][1] == [210, 190] and "IoU 0.3115" in outputs["none"]
    assert matrices["flips"][1] == [220, 180] and "IoU 0.3103" in outputs["flips"]
    # the library's flips around the same model, on the same windows
    flips = TTAPredictor(load_predictor(model, device="cpu"), "flips")
    library = evaluate_one(scene, labels, flips, SETTINGS, options=PredictOptions(window=64))
    assert library.confusion.matrix.tolist() == matrices["flips"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, s, lab: [s, s, "--labels", lab], "give one --labels per scene"),
        (lambda d, s, lab: [s, "--labels", lab, "--dataset", d], "not both"),
        (lambda d, s, lab: ["--labels", lab], "--labels needs the SCENES"),
        (lambda d, s, lab: [], "nothing to evaluate"),
        (lambda d, s, lab: ["--split", "valid", s, "--labels", lab], "--split applies to"),
    ],
)
def test_command_usage_mistakes(tmp_path, run, shifted_scene, make_args, message):
    scene, labels = shifted_scene
    result = run(*make_args(tmp_path, scene, labels))
    assert result.exit_code == 2
    assert message in result.output


def test_command_reports_unusable_labels_in_one_line(tmp_path, run, model_path, shifted_scene):
    scene, _ = shifted_scene
    (tmp_path / "notes.tif").write_text("not a raster")
    result = run(scene, "--labels", tmp_path / "notes.tif", "--model", model_path, "-q")
    assert result.exit_code == 1
    assert "notes.tif: not a raster GDAL can read" in result.output
    assert "Traceback" not in result.output


def test_the_mask_scored_is_the_one_geoseg_predict_makes(tmp_path):
    """Two true landslides peaking at 240 / 255, three false blobs of 153 / 255 = 0.6, and a
    model storing a 0.6 seed: the run post-processes the probabilities it stores (bytes:
    152 / 254 = 0.598 for the blobs), so it drops the blobs, and so must the evaluation."""
    data = np.full((3, 200, 200), 40, dtype=np.uint8)
    labels = np.zeros((1, 200, 200), dtype=np.uint8)
    rows, cols = np.mgrid[:200, :200]
    for r, c in ((50, 50), (150, 140)):
        disc = (rows - r) ** 2 + (cols - c) ** 2 < 20**2
        data[0][disc], labels[0][disc] = 240, 1
    for r, c in ((40, 150), (110, 40), (170, 60)):
        data[0][(rows - r) ** 2 + (cols - c) ** 2 < 10**2] = 153
    scene = write_raster(tmp_path / "scene.tif", data)
    truth = write_raster(tmp_path / "truth.tif", labels)
    settings = replace(SETTINGS, postprocessing=PostProcessing(threshold=0.5,
                                                               seed_threshold=0.6).to_dict())
    predict_scene(scene, tmp_path / "mask.tif", PixelwisePredictor(), settings)
    with rasterio.open(tmp_path / "mask.tif") as src:
        _, regions = ndimage.label(src.read(1) == 1)
    report = evaluate_one(scene, truth, PixelwisePredictor(), settings)
    assert report.objects is not None
    assert report.objects.n_pred == regions == 2
