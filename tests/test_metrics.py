"""Tests for geoseg.evaluation.metrics: hand-computed matrices, brute-force sweeps, synthetic
polygons."""

from __future__ import annotations

import csv
import json
import math

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from shapely.geometry import Point, Polygon, box

from geoseg.errors import ConfigError, InputError, OutputExistsError
from geoseg.evaluation.metrics import ConfusionMatrix, ThresholdSweep
from geoseg.evaluation.metrics_report import MetricsReport
from geoseg.evaluation.object_matching import label_overlaps, match_objects, object_overlaps


def arrays_from_matrix(matrix: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Truth/prediction label arrays whose confusion matrix is ``matrix``."""
    m = np.asarray(matrix)
    n = m.shape[0]
    truth = np.repeat(np.repeat(np.arange(n), n), m.ravel())
    pred = np.repeat(np.tile(np.arange(n), n), m.ravel())
    return truth, pred


def nan_equal(a, b) -> bool:
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


# --------------------------------------------------------------------------- confusion matrix


def test_binary_hand_computed():
    # tp=3 fp=1 fn=2 tn=4, scrambled into a 2-D tile
    truth = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]).reshape(2, 5)
    pred = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0]).reshape(2, 5)
    cm = ConfusionMatrix(2, ["background", "landslide"])
    cm.update(truth, pred)
    assert cm.matrix.tolist() == [[4, 1], [2, 3]]
    assert cm.iou.tolist() == pytest.approx([4 / 7, 3 / 6])
    assert cm.precision.tolist() == pytest.approx([4 / 6, 3 / 4])
    assert cm.recall.tolist() == pytest.approx([4 / 5, 3 / 5])
    assert cm.f1.tolist() == pytest.approx([8 / 11, 6 / 9])
    assert cm.support.tolist() == [5, 5] and cm.predicted.tolist() == [6, 4]
    assert cm.overall_accuracy == pytest.approx(0.7)
    assert cm.mean_iou == pytest.approx((4 / 7 + 0.5) / 2)
    assert cm.mean_f1 == pytest.approx((8 / 11 + 2 / 3) / 2)
    assert cm.total == 10


def test_three_class_hand_computed():
    matrix = [[50, 3, 2], [4, 10, 1], [0, 5, 0]]
    truth, pred = arrays_from_matrix(matrix)
    rng = np.random.default_rng(0)
    order = rng.permutation(truth.size)
    cm = ConfusionMatrix(3)
    cm.update(truth[order], pred[order])
    assert cm.matrix.tolist() == matrix
    assert cm.tp.tolist() == [50, 10, 0]
    assert cm.fp.tolist() == [4, 8, 3]
    assert cm.fn.tolist() == [5, 5, 5]
    assert cm.iou.tolist() == pytest.approx([50 / 59, 10 / 23, 0.0])
    assert cm.precision.tolist() == pytest.approx([50 / 54, 10 / 18, 0.0])
    assert cm.recall.tolist() == pytest.approx([50 / 55, 10 / 15, 0.0])
    assert cm.overall_accuracy == pytest.approx(60 / 75)
    assert cm.class_names == ["class 0", "class 1", "class 2"]


def test_empty_classes_are_nan_or_zero_by_convention():
    cm = ConfusionMatrix(2)
    cm.update(np.zeros(4, int), np.array([0, 0, 1, 0]))  # no landslide in truth, one predicted
    assert cm.iou[1] == 0 and cm.f1[1] == 0 and cm.precision[1] == 0
    assert math.isnan(cm.recall[1])

    cm = ConfusionMatrix(2)
    cm.update(np.array([1, 1, 0, 0]), np.zeros(4, int))  # landslides, none predicted
    assert cm.iou[1] == 0 and cm.f1[1] == 0 and cm.recall[1] == 0
    assert math.isnan(cm.precision[1])

    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 0]))  # class 2 absent from both
    assert all(math.isnan(v[2]) for v in (cm.iou, cm.f1, cm.precision, cm.recall))
    # means skip the n/a class instead of counting it as 0 or 1
    assert cm.mean_iou == pytest.approx((1 / 2 + 1 / 2) / 2)

    empty = ConfusionMatrix(2)
    assert math.isnan(empty.overall_accuracy) and math.isnan(empty.mean_iou)
    assert math.isnan(empty.dice_coef_multiclass)


def test_valid_mask_excludes_pixels_and_their_labels():
    truth = np.array([[1, 255], [0, 1]], dtype=np.uint8)  # 255 = nodata
    pred = np.array([[1, 1], [1, 7]], dtype=np.uint8)  # garbage under nodata is ignored
    valid = np.array([[True, False], [True, False]])
    cm = ConfusionMatrix(2)
    cm.update(truth, pred, valid)
    assert cm.matrix.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(InputError, match=r"label 255, outside the classes 0\.\.1"):
        ConfusionMatrix(2).update(truth, pred)


@pytest.mark.parametrize(
    ("truth", "pred", "valid", "message"),
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), None, "shape"),
        (np.zeros(3, int), np.zeros(3, float), None, "integer class indices"),
        (np.zeros(3, int), np.array([0, -1, 0]), None, "label -1"),
        (np.zeros(3, int), np.zeros(3, int), np.ones(3, int), "boolean array"),
    ],
)
def test_bad_inputs_raise_input_error(truth, pred, valid, message):
    with pytest.raises(InputError, match=message):
        ConfusionMatrix(2).update(truth, pred, valid)


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError):
        ConfusionMatrix(1)
    with pytest.raises(ConfigError):
        ConfusionMatrix(2, ["only one"])
    with pytest.raises(ConfigError, match="cannot merge"):
        ConfusionMatrix(2).merge(ConfusionMatrix(3))


def test_merge_equals_update_on_concatenation():
    rng = np.random.default_rng(1)
    a_t, a_p = rng.integers(0, 3, (2, 40, 40))
    b_t, b_p = rng.integers(0, 3, (2, 25, 40))
    cm_a, cm_b, whole = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    cm_a.update(a_t, a_p)
    cm_b.update(b_t, b_p)
    whole.update(np.concatenate([a_t, b_t]), np.concatenate([a_p, b_p]))
    merged = cm_a.merge(cm_b)
    assert np.array_equal(merged.matrix, whole.matrix)
    assert cm_a.total == 1600  # inputs are left unchanged


def test_dice_coef_multiclass_matches_one_hot_and_overstates_landslides():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 3, (64, 64))
    pred = np.where(rng.random((64, 64)) < 0.6, truth, rng.integers(0, 3, (64, 64)))
    cm = ConfusionMatrix(3)
    cm.update(truth, pred)
    y_true, y_pred = np.eye(3)[truth], np.eye(3)[pred]
    direct = 2 * np.sum(y_true * y_pred) / (np.sum(y_true) + np.sum(y_pred))
    assert cm.dice_coef_multiclass == pytest.approx(direct)
    assert cm.dice_coef_multiclass == pytest.approx(cm.overall_accuracy)

    # 1 % landslide, half of it missed, as many false alarms: a poor landslide detector
    truth = np.zeros((100, 100), int)
    truth[:10, :10] = 1
    pred = np.zeros_like(truth)
    pred[:5, :10] = 1
    pred[50:55, :10] = 1
    cm = ConfusionMatrix(2, ["background", "landslide"])
    cm.update(truth, pred)
    assert cm.f1[1] == pytest.approx(0.5)
    assert cm.dice_coef_multiclass == pytest.approx(0.99)


# ----------------------------------------------------------------------------- threshold sweep


def brute_force(prob: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> dict:
    p, t = prob.astype(np.float64), truth.astype(bool)
    out = {k: [] for k in ("tp", "fp", "fn", "tn")}
    for th in thresholds:
        hit = p >= th
        out["tp"].append(np.sum(hit & t))
        out["fp"].append(np.sum(hit & ~t))
        out["fn"].append(np.sum(~hit & t))
        out["tn"].append(np.sum(~hit & ~t))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("thresholds", [None, [0.05, 0.2, 0.21, 0.5, 0.9, 1.0]])
def test_sweep_equals_brute_force(thresholds):
    rng = np.random.default_rng(3)
    prob = rng.random((50, 60))
    flat = prob.ravel()
    flat[:200] = np.round(flat[:200], 2).astype(np.float32)  # float32 just off the thresholds
    flat[200:402] = np.linspace(0, 1, 101).repeat(2)  # exactly on the default thresholds
    truth = rng.random((50, 60)) < prob  # informative probabilities
    valid = rng.random((50, 60)) > 0.1
    sweep = ThresholdSweep(thresholds)
    sweep.update(prob, truth, valid)
    expected = brute_force(prob[valid], truth[valid], sweep.thresholds)
    for key, values in expected.items():
        assert np.array_equal(getattr(sweep, key), values), key
    tp, fp, fn = expected["tp"], expected["fp"], expected["fn"]
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert np.allclose(sweep.f1, f1)
    assert np.allclose(sweep.iou, tp / (tp + fp + fn))
    assert sweep.best_threshold == sweep.thresholds[np.argmax(f1)]


def test_sweep_merge_pr_curve_and_degenerate_cases():
    rng = np.random.default_rng(4)
    prob, truth = rng.random((2, 30, 30))
    truth = truth < 0.3
    a, b, whole = ThresholdSweep(), ThresholdSweep(), ThresholdSweep()
    a.update(prob[:10], truth[:10])
    b.update(prob[10:], truth[10:])
    whole.update(prob, truth)
    merged = a.merge(b)
    assert np.array_equal(merged.positive_hist, whole.positive_hist)
    assert np.array_equal(merged.negative_hist, whole.negative_hist)
    assert whole.tp[0] == truth.sum() and whole.fp[0] == (~truth).sum()  # p >= 0: all positive
    recall, precision, th = whole.pr_curve()
    assert not np.isnan(precision).any() and np.all(np.diff(recall) <= 0)
    assert th.size < 101  # thresholds no pixel reaches are dropped

    empty = ThresholdSweep()
    empty.update(np.zeros((3, 3)), np.zeros((3, 3), bool))  # nothing to find, nothing >= 0.01
    assert np.isnan(empty.f1[1:]).all() and empty.f1[0] == 0
    assert empty.best_threshold == 0.0
    assert math.isnan(ThresholdSweep().best_threshold)


def test_sweep_agrees_with_confusion_matrix():
    rng = np.random.default_rng(5)
    prob, truth = rng.random((40, 40)), rng.random((40, 40)) < 0.2
    sweep = ThresholdSweep()
    sweep.update(prob, truth)
    cm = ConfusionMatrix(2)
    cm.update(truth.astype(np.uint8), (prob >= sweep.thresholds[37]).astype(np.uint8))
    assert sweep.f1[37] == pytest.approx(cm.f1[1])
    assert sweep.precision[37] == pytest.approx(cm.precision[1])
    assert sweep.recall[37] == pytest.approx(cm.recall[1])


def test_sweep_rejects_bad_input():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ThresholdSweep().update(np.array([0.2, 1.5]), np.array([0, 1]))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ThresholdSweep().update(np.array([0.2, np.nan]), np.array([0, 1]))
    ThresholdSweep().update(np.array([0.2, np.nan]), np.array([0, 1]), np.array([True, False]))
    with pytest.raises(InputError, match="binary"):
        ThresholdSweep().update(np.array([0.2, 0.3]), np.array([0, 2]))
    with pytest.raises(ConfigError):
        ThresholdSweep([0.5, 0.5, 0.7])
    with pytest.raises(ConfigError):
        ThresholdSweep().merge(ThresholdSweep([0.5]))


# ------------------------------------------------------------------------------ object matching


def shifted_square(d: float) -> Polygon:
    """10x10 square shifted by d along x: IoU with box(0, 0, 10, 10) is (10 - d) / (10 + d)."""
    return box(d, 0, 10 + d, 10)


def test_match_iou_just_above_and_below_threshold():
    truth = [box(0, 0, 10, 10), box(100, 0, 110, 10)]
    pred = [shifted_square(3.3), box(103.4, 0, 113.4, 10)]  # IoU 0.5038 and 0.4925
    result = match_objects(truth, pred, iou_threshold=0.5)
    assert [(t, p) for t, p, _ in result.pairs] == [(0, 0)]
    assert result.pairs[0][2] == pytest.approx(6.7 / 13.3)
    assert result.true_positives == 1
    assert result.missed == [1] and result.false_landslides == [1]
    assert (result.precision, result.recall, result.f1) == (0.5, 0.5, 0.5)
    # IoU exactly at the threshold matches (>=): half of the square has IoU 50 / 100
    assert match_objects([box(0, 0, 10, 10)], [box(0, 0, 10, 5)]).true_positives == 1


def test_match_is_one_to_one_greedy_by_iou():
    truth = [box(0, 0, 10, 10), shifted_square(2)]  # two overlapping truth outlines
    pred = [shifted_square(1), box(0, 0, 10, 10)]
    result = match_objects(truth, pred)
    # best pair (truth 0, pred 1, IoU 1) first; then truth 1 takes pred 0 (IoU 9/11)
    assert [(t, p) for t, p, _ in result.pairs] == [(0, 1), (1, 0)]
    assert result.pairs[1][2] == pytest.approx(9 / 11)

    one_truth = match_objects([box(0, 0, 10, 10)], [box(0, 0, 10, 10), shifted_square(1)])
    assert one_truth.true_positives == 1 and one_truth.false_landslides == [1]


def test_many_to_one_split_prediction_does_not_match():
    truth = [box(0, 0, 9, 9)]
    thirds = [box(0, 0, 3, 9), box(3, 0, 6, 9), box(6, 0, 9, 9)]  # IoU 1/3 each
    far = [box(50, 50, 51, 51)]
    result = match_objects(gpd.GeoSeries(truth, crs=32654), gpd.GeoSeries(thirds + far, crs=32654))
    assert result.pairs == [] and result.missed == [0]
    assert result.false_landslides == [0, 1, 2, 3]
    assert result.precision == 0 and result.recall == 0 and result.f1 == 0
    assert match_objects(truth, thirds, iou_threshold=0.3).true_positives == 1


def test_a_quarter_iou_counts_a_half_overlap_that_a_half_iou_does_not():
    """A landslide outlined half a width off: IoU 1/3."""
    truth, pred = [box(0, 0, 10, 10), box(40, 0, 50, 10)], [shifted_square(5), box(40, 0, 50, 10)]
    overlaps = object_overlaps(truth, pred)
    strict, loose = overlaps.match(0.5), overlaps.match(0.25)
    assert (strict.true_positives, strict.missed, strict.false_landslides) == (1, [0], [0])
    assert (loose.true_positives, loose.missed, loose.false_landslides) == (2, [], [])
    assert loose.f1 == 1.0 and strict.f1 == 0.5
    best_truth, best_pred = overlaps.best_iou()
    assert best_truth.tolist() == pytest.approx([1 / 3, 1.0])
    assert best_pred.tolist() == pytest.approx([1 / 3, 1.0])
    # the same landslides as labelled pixel regions give the same IoUs and matches
    truth_labels = np.zeros((10, 60), np.int32)
    truth_labels[:, 0:10], truth_labels[:, 40:50] = 1, 2
    pred_labels = np.zeros_like(truth_labels)
    pred_labels[:, 5:15], pred_labels[:, 40:50] = 1, 2
    pixels = label_overlaps(truth_labels, pred_labels)
    assert sorted(pixels.iou.tolist()) == pytest.approx([1 / 3, 1.0])
    assert pixels.match(0.5).pairs == [(1, 1, 1.0)]
    assert pixels.match(0.25).true_positives == 2
    with pytest.raises(ConfigError):
        pixels.match(0)


def test_report_lists_every_object_matching(tmp_path):
    overlaps = object_overlaps([box(0, 0, 10, 10)], [shifted_square(5)])
    report = MetricsReport(ConfusionMatrix(2), overlaps.match(0.5),
                           more_objects=(overlaps.match(0.25),))
    data = report.to_dict()
    assert data["objects"]["iou_threshold"] == 0.5 and data["objects"]["f1"] == 0
    assert [(row["iou_threshold"], row["f1"]) for row in data["objects_by_iou"]] == [
        (0.5, 0.0), (0.25, 1.0)]
    table = report.format_table()
    assert "Objects (IoU >= 0.5): 0 found, 1 missed, 1 false" in table
    assert "Objects (IoU >= 0.25): 1 found, 0 missed, 0 false" in table
    report.objects_to_csv(tmp_path / "objects.csv")
    with open(tmp_path / "objects.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["iou_threshold"], r["true_positives"]) for r in rows] == [("0.5", "0"),
                                                                         ("0.25", "1")]
    with pytest.raises(ValueError, match="no object figures"):
        MetricsReport(ConfusionMatrix(2)).objects_to_csv(tmp_path / "none.csv")


def test_match_equals_brute_force_greedy_on_random_boxes():
    rng = np.random.default_rng(6)

    def boxes(n):
        xy = rng.uniform(0, 60, (n, 2))
        wh = rng.uniform(3, 12, (n, 2))
        return [box(x, y, x + w, y + h) for (x, y), (w, h) in zip(xy, wh, strict=True)]

    truth, pred = boxes(40), boxes(45)
    iou = np.array(
        [[t.intersection(p).area / t.union(p).area for p in pred] for t in truth]
    )
    expected, used_t, used_p = [], set(), set()
    for k in np.argsort(-iou, axis=None, kind="stable"):
        i, j = np.unravel_index(k, iou.shape)
        if iou[i, j] >= 0.3 and i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            expected.append((int(i), int(j)))
    result = match_objects(truth, pred, iou_threshold=0.3)
    assert [(t, p) for t, p, _ in result.pairs] == expected
    assert len(expected) > 3  # the case is not trivial


def test_match_edge_cases():
    empty = match_objects([], [])
    assert math.isnan(empty.precision) and math.isnan(empty.recall) and math.isnan(empty.f1)
    none_found = match_objects([box(0, 0, 1, 1)], [])
    assert none_found.recall == 0 and math.isnan(none_found.precision)
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])  # invalid, repaired
    assert match_objects([bowtie], [bowtie]).true_positives == 1
    with pytest.raises(InputError, match="number 1"):
        match_objects([box(0, 0, 1, 1), Point(0, 0)], [])
    with pytest.raises(InputError, match="number 0"):
        match_objects([], [None])
    with pytest.raises(InputError, match="different CRS"):
        match_objects(gpd.GeoSeries([box(0, 0, 1, 1)], crs=4326), gpd.GeoSeries([], crs=32654))
    with pytest.raises(ConfigError):
        match_objects([], [], iou_threshold=0)


# -------------------------------------------------------------------------------------- report


@pytest.fixture
def report() -> MetricsReport:
    cm = ConfusionMatrix(3, ["background", "cloud", "Landslide"])
    cm.update(*arrays_from_matrix([[80, 0, 4], [0, 0, 0], [6, 0, 10]]))  # cloud: n/a
    rng = np.random.default_rng(7)
    sweep = ThresholdSweep()
    truth = rng.random((20, 20)) < 0.3
    sweep.update(np.clip(truth * 0.5 + rng.random((20, 20)) * 0.5, 0, 1), truth)
    objects = match_objects([box(0, 0, 10, 10)], [shifted_square(1), box(40, 0, 45, 5)])
    return MetricsReport(cm, objects, sweep)


def test_report_puts_landslide_first(report):
    assert report.foreground == 2
    data = report.to_dict()
    assert list(data)[:3] == ["landslide", "objects", "best_threshold"]
    assert data["landslide"]["class"] == "Landslide"
    assert data["landslide"]["iou"] == pytest.approx(10 / 20)
    assert data["classes"][1]["iou"] is None  # n/a, not 0 or 1
    assert data["objects"]["missed_landslides"] == 0 and data["objects"]["false_landslides"] == 1
    assert MetricsReport(ConfusionMatrix(2)).foreground == 1
    text = report.format_table()
    assert text.splitlines()[0].startswith("Landslide ('Landslide', class 2): IoU 0.5000")
    assert "n/a" in text and "includes background" in text


def test_report_json_csv_round_trip(report, tmp_path):
    report.to_json(tmp_path / "m.json")
    loaded = json.loads((tmp_path / "m.json").read_text())
    assert loaded == report.to_dict()
    assert loaded["dice_coef_multiclass"] == pytest.approx(90 / 100)
    assert loaded["confusion_matrix"] == report.confusion.matrix.tolist()

    report.to_csv(tmp_path / "m.csv")
    with open(tmp_path / "m.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["class"] for r in rows] == ["background", "cloud", "Landslide"]
    for row, expected in zip(rows, report.class_rows(), strict=True):
        for key in ("iou", "precision", "recall", "f1"):
            value = math.nan if row[key] == "n/a" else float(row[key])
            assert nan_equal(value, expected[key])
        assert int(row["support"]) == expected["support"]
    with pytest.raises(OutputExistsError):
        report.to_csv(tmp_path / "m.csv")
    report.to_csv(tmp_path / "m.csv", overwrite=True)


def test_report_sweep_outputs(report, tmp_path):
    report.sweep_to_csv(tmp_path / "sweep.csv")
    with open(tmp_path / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 101 and float(rows[37]["threshold"]) == pytest.approx(0.37)
    assert int(rows[37]["tp"]) == report.sweep.tp[37]
    report.plot_sweep(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind
    with pytest.raises(ValueError, match="no threshold sweep"):
        MetricsReport(ConfusionMatrix(2)).plot_sweep(tmp_path / "x.png")


# ------------------------------------------------------------------------------ property tests

labels = hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 2))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_scores_are_probabilities_or_nan(data):
    truth = data.draw(labels)
    pred = data.draw(hnp.arrays(np.int64, truth.shape, elements=st.integers(0, 2)))
    cm = ConfusionMatrix(3)
    cm.update(truth, pred)
    for scores in (cm.iou, cm.precision, cm.recall, cm.f1):
        finite = scores[~np.isnan(scores)]
        assert np.all((finite >= 0) & (finite <= 1))
    assert np.all(cm.iou[~np.isnan(cm.iou)] <= cm.f1[~np.isnan(cm.f1)])
    assert cm.total == truth.size


@settings(max_examples=40, deadline=None)
@given(labels, labels, labels)
def test_merge_is_associative_and_commutative(a, b, c):
    cms = []
    for arr in (a, b, c):
        cm = ConfusionMatrix(3)
        cm.update(arr, arr[::-1])
        cms.append(cm)
    x, y, z = cms
    assert np.array_equal(x.merge(y).merge(z).matrix, x.merge(y.merge(z)).matrix)
    assert np.array_equal(x.merge(y).matrix, y.merge(x).matrix)
