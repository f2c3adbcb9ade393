"""Training: examples read like prediction, seeded augmentation, losses, checkpoints, resume.

The synthetic scenes are GeoTIFFs in EPSG:32654 (UTM 54N, 3 m pixels, near the 2018 Eastern
Iburi landslides) with bright squares (landslides) on a dark noisy background, so a tiny
FlexUNet learns them in a few dozen steps. One short training run is shared by the tests
that inspect its outputs.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import rasterio
import tensorflow as tf
from click.testing import CliRunner
from rasterio.transform import from_origin

from geoseg import cli as cli_module
from geoseg.config import load_config, parse_config
from geoseg.errors import ConfigError, InputError, OutputExistsError
from geoseg.evaluation.metrics import ConfusionMatrix
from geoseg.model.flexunet import build_flexunet, load_model
from geoseg.raster.tiling import TileGrid, pad_to_tile, read_tile
from geoseg.settings import ModelSettings
from geoseg.training.augment import Augmentation, augment, example_seed
from geoseg.training.chips import write_chips
from geoseg.training.datasets import (
    WHITE_NODATA,
    LabelledScene,
    MemoryTiles,
    TileDataset,
    chip_split,
    dataset_split,
    reference_scenes,
    reference_split,
)
from geoseg.training.keras_metrics import ClassIoU
from geoseg.training.losses import (
    IGNORE,
    crossentropy,
    decode_target,
    dice,
    focal,
    gap_pixels,
    lovasz,
    make_loss,
)
from geoseg.training.tf_dataset import example_tile, training_dataset
from geoseg.training.train import LAST_NAME, LOG_NAME, MODEL_NAME, choose_threshold, train

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hokkaido-iburi"
HOKKAIDO_CONFIG = Path(__file__).parent / "data" / "hokkaido.config"
CRS = "EPSG:32654"
TRANSFORM = from_origin(582000.0, 4734000.0, 3.0, 3.0)
SEED = 42

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def squares(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, size, size) uint8 dark noise with bright squares, and the (size, size) square mask."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.uint8)
    for _ in range(size * size // 1000):
        row, col = rng.integers(0, size - 10, 2)
        side = rng.integers(4, 10)
        labels[row : row + side, col : col + side] = 1
    image = rng.normal(40, 12, (3, size, size))
    image[:, labels == 1] += 150
    return np.clip(image, 1, 254).astype(np.uint8), labels


def write_scene(folder: Path, name: str, seed: int, size: int = 96) -> LabelledScene:
    """A GeoTIFF scene and its one-band label raster on the same grid."""
    image, labels = squares(seed, size)
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": CRS,
               "transform": TRANSFORM}
    with rasterio.open(folder / f"{name}.tif", "w", count=3, dtype="uint8", **profile) as dst:
        dst.write(image)
    with rasterio.open(folder / f"{name}_labels.tif", "w", count=1, dtype="uint8", nodata=255,
                       **profile) as dst:
        dst.write(labels, 1)
    return LabelledScene(folder / f"{name}.tif", folder / f"{name}_labels.tif")


def write_png(path: Path, data: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=data.shape[2], height=data.shape[1],
                           count=data.shape[0], dtype="uint8") as dst:
            dst.write(data)


def write_reference_layout(root: Path, counts: dict[str, int], size: int = 32) -> Path:
    """``root/<split>/{images,masks}/*.png`` with red/black masks, like the reference data."""
    for split, count in counts.items():
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True)
        for i in range(count):
            image, labels = squares(100 + i + 10 * len(split), size)
            mask = np.zeros((3, size, size), np.uint8)
            mask[0][labels == 1] = 255
            write_png(root / split / "images" / f"{i:03d}.png", image)
            write_png(root / split / "masks" / f"{i:03d}.png", mask)
    return root


def config_text(**train_keys: object) -> str:
    train_lines = {"epochs": 8, "batch_size": 8, "steps_per_epoch": 8, "patience": 20,
                   "seed": SEED, "epoch_change_infer": True, "num_infer_images": 2,
                   **train_keys}
    return (
        "[model]\nimage_width = 32\nimage_height = 32\nbase_filters = 8\nnum_layers = 3\n"
        "base_kernels = (3,3)\ndropout_rate = 0.0\nlearning_rate = 0.003\noverlap = 0\n"
        'loss = "ce_dice"\n[train]\n'
        + "".join(f"{key} = {value!r}\n" for key, value in train_lines.items())
    )


SETTINGS = ModelSettings(**parse_config(config_text()).model_kwargs())


def landslide_iou(model, tiles: TileDataset) -> float:
    images, masks, valid = tiles.read_many(range(len(tiles)))
    predicted = np.argmax(np.asarray(model(images, training=False)), axis=-1)
    matrix = ConfusionMatrix(2)
    matrix.update(masks, predicted, valid)
    return float(matrix.iou[1])


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, list[LabelledScene]]:
    folder = tmp_path_factory.mktemp("scenes")
    return {"train": [write_scene(folder, "a", 1), write_scene(folder, "b", 2)],
            "valid": [write_scene(folder, "c", 3)]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, scenes):
    out = tmp_path_factory.mktemp("run") / "out"
    result = train(parse_config(config_text()), out_dir=out, train_scenes=scenes["train"],
                   valid_scenes=scenes["valid"], report=lambda line: None)
    return result


# --------------------------------------------------------------------------------------------
# Training end to end
# --------------------------------------------------------------------------------------------


def test_training_improves_the_validation_landslide_iou(trained, scenes):
    tf.keras.utils.set_random_seed(SEED)  # the initial weights of the run
    untrained = build_flexunet(SETTINGS)
    model, settings = load_model(trained.model_path)
    with TileDataset(scenes["valid"], settings) as tiles:
        before, after = landslide_iou(untrained, tiles), landslide_iou(model, tiles)
    assert after > 0.6
    assert after > before + 0.4
    assert trained.best["val_landslide_iou"] > 0.6


def test_checkpoints_load_with_their_settings_and_match_the_log(trained, scenes):
    rows = list(csv.DictReader(trained.log_path.open()))
    loss = make_loss("ce_dice", 2)
    with TileDataset(scenes["valid"], SETTINGS) as tiles:
        images, masks, valid = tiles.read_many(range(len(tiles)))
    target = np.where(valid, masks, IGNORE)
    best = min(rows, key=lambda row: float(row["val_loss"]))
    assert trained.threshold is not None  # [train] tune_threshold is on by default
    for path, row, threshold in ((trained.model_path, best, trained.threshold),
                                 (trained.last_path, rows[-1], None)):
        model, settings = load_model(path)
        assert settings.without_facts() == dataclasses.replace(SETTINGS, threshold=threshold)
        assert settings.pixel_size_m == 3.0 and len(settings.band_stats) == 3  # imagery facts
        assert settings.class_names == ["background", "landslide"]
        # Keras logs the mean of the batch losses (batches of 8 tiles) weighted by batch size
        values = [(len(images[i : i + 8]),
                   float(loss(target[i : i + 8], model(images[i : i + 8], training=False))))
                  for i in range(0, len(images), 8)]
        value = sum(n * v for n, v in values) / len(images)
        assert value == pytest.approx(float(row["val_loss"]), rel=1e-3)
    assert trained.best_epoch == int(best["epoch"])


def test_outputs_log_curves_and_previews(trained):
    rows = list(csv.DictReader(trained.log_path.open()))
    assert [int(row["epoch"]) for row in rows] == list(range(1, 9))
    assert {"loss", "val_loss", "landslide_iou", "val_landslide_iou", "learning_rate",
            "seconds"} <= set(rows[0])
    assert trained.curves_path.stat().st_size > 10_000
    previews = sorted(trained.previews_dir.glob("*.png"))
    assert [p.name for p in previews] == [f"epoch_{e:03d}.png" for e in range(1, 9)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(previews[-1]) as png:
            assert png.width > 3 * 100 and png.height > 2 * 100
    leftovers = [p.name for p in trained.out_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_resume_continues_the_epoch_numbering(trained, scenes, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(trained.out_dir, out)
    result = train(parse_config(config_text()), out_dir=out, train_scenes=scenes["train"],
                   valid_scenes=scenes["valid"], resume=True, epochs=10,
                   report=lambda line: None)
    rows = list(csv.DictReader((out / LOG_NAME).open()))
    assert [int(row["epoch"]) for row in rows] == list(range(1, 11))
    assert rows[:8] == list(csv.DictReader(trained.log_path.open()))
    assert (result.first_epoch, result.last_epoch) == (9, 10)
    assert (out / "epoch_previews" / "epoch_010.png").is_file()
    with pytest.raises(InputError, match="10 epochs are done already"):
        train(parse_config(config_text()), out_dir=out, train_scenes=scenes["train"],
              resume=True, epochs=10)


def test_resume_needs_a_run_with_the_same_model(trained, scenes, tmp_path):
    with pytest.raises(InputError, match="no last.keras to resume from"):
        train(parse_config(config_text()), out_dir=tmp_path, train_scenes=scenes["train"],
              resume=True)
    other = config_text().replace("base_filters = 8", "base_filters = 4")
    with pytest.raises(ConfigError, match=r"\[model\] differs from the model"):
        train(parse_config(other), out_dir=trained.out_dir, train_scenes=scenes["train"],
              resume=True, epochs=20)
    with pytest.raises(InputError, match="only one of them"):
        train(parse_config(config_text()), out_dir=trained.out_dir,
              train_scenes=scenes["train"], resume=True, overwrite=True)


def test_a_tuned_threshold_travels_with_the_model_trained_in_bfloat16(scenes, tmp_path):
    config = parse_config(config_text(epochs=2, steps_per_epoch=4, tune_threshold=True,
                                      precision="mixed_bfloat16", epoch_change_infer=False))
    lines: list[str] = []
    result = train(config, out_dir=tmp_path, train_scenes=scenes["train"], valid_scenes=[],
                   report=lines.append)
    assert result.threshold is not None and 0 < result.threshold < 1
    assert f"landslide threshold {result.threshold:.2f}" in "\n".join(lines)
    model, settings = load_model(result.model_path)
    assert settings.threshold == result.threshold
    assert load_model(result.last_path)[1].threshold is None
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    with TileDataset(scenes["train"], settings) as tiles:
        assert choose_threshold(model, tiles, 4) == result.threshold
        images, masks, valid = tiles.read_many(range(len(tiles)))
    p = np.asarray(model(images, training=False))[..., 1]

    def iou(threshold: float) -> float:
        matrix = ConfusionMatrix(2)
        matrix.update(masks, (p >= threshold).astype(np.uint8), valid)
        return float(matrix.iou[1])

    assert iou(result.threshold) >= max(iou(0.5), iou(0.3), iou(0.7))


def test_cosine_schedule_decays_the_rate_step_by_step(scenes, tmp_path):
    config = parse_config(config_text(epochs=3, steps_per_epoch=2, lr_schedule="cosine",
                                      epoch_change_infer=False))
    result = train(config, out_dir=tmp_path, train_scenes=scenes["train"], valid_scenes=[],
                   report=lambda line: None)
    rates = [float(row["learning_rate"]) for row in csv.DictReader(result.log_path.open())]
    np.testing.assert_allclose(rates, [0.003, 0.003 * 0.75, 0.003 * 0.25], rtol=1e-5)


def test_the_model_saved_is_the_moving_average_of_the_weights_with_ema(scenes, tmp_path):
    config = parse_config(config_text(epochs=1, steps_per_epoch=3, ema_momentum=0.5,
                                      tune_threshold=False, epoch_change_infer=False))
    result = train(config, out_dir=tmp_path, train_scenes=scenes["train"], valid_scenes=[],
                   report=lambda line: None)
    best = load_model(result.model_path)[0].get_weights()
    # last.keras resumes training: the weights themselves, and the averages in the optimizer
    resumed = build_flexunet(SETTINGS)
    resumed.compile(optimizer=keras.optimizers.Adam(use_ema=True, ema_momentum=0.5),
                    loss="categorical_crossentropy")
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(result.last_path)
    raw = resumed.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(best, raw, strict=True))
    resumed.optimizer.finalize_variable_values(resumed.trainable_variables)
    for saved, average in zip(best, resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, average)


def test_a_non_empty_output_folder_is_refused_and_left_alone(scenes, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / MODEL_NAME).write_text("an older model")
    with pytest.raises(OutputExistsError, match="resume=True .* overwrite=True"):
        train(parse_config(config_text()), out_dir=tmp_path, train_scenes=scenes["train"])
    assert (tmp_path / MODEL_NAME).read_text() == "an older model"
    result = train(parse_config(config_text(epochs=1, steps_per_epoch=1)), out_dir=tmp_path,
                   train_scenes=scenes["train"], valid_scenes=[], overwrite=True,
                   report=lambda line: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    saved = load_model(tmp_path / MODEL_NAME)[1]
    assert saved.without_facts() == dataclasses.replace(SETTINGS, threshold=result.threshold)
    assert result.monitor == "loss" and result.valid_tiles == 0


# --------------------------------------------------------------------------------------------
# Augmentation and the tf.data stream
# --------------------------------------------------------------------------------------------


def aligned_example(seed: int = 0, size: int = 32):
    """Random image; mask = band 1 > 128; valid = band 2 > 60: misalignment shows at once."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.float32)
    return image, (image[..., 0] > 128).astype(np.uint8), image[..., 1] > 60


GEOMETRY = Augmentation(brightness=0.0, contrast=0.0)


def test_augmentation_keeps_image_mask_and_valid_aligned():
    image, mask, valid = aligned_example()
    seen = set()
    for number in range(40):
        out_image, out_mask, out_valid = (np.asarray(t) for t in augment(
            image, mask, valid, example_seed(SEED, number), GEOMETRY))
        np.testing.assert_array_equal(out_mask, out_image[..., 0] > 128)
        np.testing.assert_array_equal(out_valid, out_image[..., 1] > 60)
        assert out_mask.dtype == np.uint8 and out_valid.dtype == bool
        seen.add(out_image.tobytes())
    assert len(seen) == 8  # every flip/rotation of the square appears


def test_zoom_moves_image_and_masks_together_and_pads_with_pixels_that_do_not_count():
    blocks = np.random.default_rng(1).integers(1, 256, (8, 8, 3)).astype(np.float32)
    image = np.kron(blocks, np.ones((8, 8, 1), np.float32))  # 64 px of 8 x 8 blocks
    mask, valid = (image[..., 0] > 128).astype(np.uint8), image[..., 1] > 60
    zoom = Augmentation(flips=False, rotations=False, brightness=0.0, contrast=0.0, scale=0.3)
    padded = cropped = changed = 0
    for number in range(20):
        out_image, out_mask, out_valid = (np.asarray(t) for t in augment(
            image, mask, valid, example_seed(SEED, number), zoom))
        assert out_image.shape == image.shape and out_mask.dtype == np.uint8
        changed += not np.array_equal(out_image, image)
        # bilinear image, nearest masks: they differ only along the blocks' edges
        assert ((out_image[..., 0] > 128) == (out_mask == 1))[out_valid].mean() > 0.9
        padding = (out_image == 0).all(axis=-1)
        assert not out_valid[padding].any() and not out_mask[padding].any()
        padded += bool(padding.any())
        cropped += not padding.any()
    assert padded and cropped and changed > 10  # zoomed out and in


@pytest.mark.parametrize(("key", "value", "message"), [
    ("augment_brightness", 1.5, "brightness must be in [0, 1), got 1.5"),
    ("augment_scale", -0.2, "scale must be in [0, 1], got -0.2"),
])
def test_augmentation_strengths_are_checked_before_any_data_is_read(tmp_path, key, value,
                                                                    message):
    config = parse_config(config_text(**{key: value}))
    missing = LabelledScene(tmp_path / "missing.tif", tmp_path / "missing.gpkg")
    with pytest.raises(ConfigError) as error:
        train(config, out_dir=tmp_path / "out", train_scenes=[missing], valid_scenes=[])
    assert str(error.value).endswith(f"[train] augment_{message}")
    assert not (tmp_path / "out").exists()


def test_augmentation_is_reproducible_and_varies_with_the_seed():
    image, mask, valid = aligned_example()
    options = Augmentation(brightness=0.1, contrast=0.1, scale=0.2)
    first = [np.asarray(t) for t in augment(image, mask, valid, example_seed(SEED, 3), options)]
    again = [np.asarray(t) for t in augment(image, mask, valid, example_seed(SEED, 3), options)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    others = {np.asarray(augment(image, mask, valid, example_seed(SEED + 1, n), options)[0])
              .tobytes() for n in range(5)}
    assert first[0].tobytes() not in others


def test_photometric_changes_touch_the_image_only():
    image, mask, valid = aligned_example()
    seed = example_seed(SEED, 5)
    geometric = [np.asarray(t) for t in augment(image, mask, valid, seed, GEOMETRY)]
    full = [np.asarray(t) for t in augment(image, mask, valid, seed,
                                           Augmentation(brightness=0.3, contrast=0.3))]
    np.testing.assert_array_equal(full[1], geometric[1])
    np.testing.assert_array_equal(full[2], geometric[2])
    assert not np.allclose(full[0], geometric[0])
    assert full[0].min() >= 0 and full[0].max() <= 255
    # gain and stretch are increasing functions of each band: the order of values is kept
    order = np.argsort(geometric[0][..., 0], axis=None, kind="stable")
    assert np.all(np.diff(full[0][..., 0].ravel()[order]) >= 0)


def test_training_stream_is_seeded_aligned_and_resumable(scenes):
    with TileDataset(scenes["train"], SETTINGS) as tiles:
        assert sorted(example_tile(SEED, len(tiles), k) for k in range(len(tiles))) == \
            list(range(len(tiles)))

        def batches(start: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
            stream = training_dataset(tiles, 4, SEED, Augmentation(), start=start)
            return [(x.numpy(), y.numpy()) for x, y in stream.take(count)]

        first = batches(0, 3)
        for images, targets in first:
            assert images.shape == (4, 32, 32, 3) and targets.dtype == np.uint8
            np.testing.assert_array_equal(targets == 1, images[..., 0] > 120)
        for (a, b), (c, d) in zip(first, batches(0, 3), strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)
        resumed = batches(8, 1)[0]  # examples 8..11 = the third batch of the first stream
        np.testing.assert_array_equal(resumed[0], first[2][0])


def test_tiles_kept_in_memory_are_the_tiles_read_and_give_the_same_stream(scenes):
    with TileDataset(scenes["train"], SETTINGS) as tiles:
        memory = MemoryTiles(tiles)
        assert len(memory) == len(tiles) and memory.describe(3) == tiles.describe(3)
        for index in (0, len(tiles) - 1):
            for got, expected in zip(memory.read(index), tiles.read(index), strict=True):
                assert got.dtype == expected.dtype
                np.testing.assert_array_equal(got, expected)
        with pytest.raises(ValueError, match="read-only"):
            memory.read(0)[0][0, 0, 0] = 1.0
        streams = [training_dataset(source, 4, SEED, Augmentation()).take(3)
                   for source in (tiles, memory)]
        for (a, b), (c, d) in zip(*streams, strict=True):
            np.testing.assert_array_equal(a.numpy(), c.numpy())
            np.testing.assert_array_equal(b.numpy(), d.numpy())


# --------------------------------------------------------------------------------------------
# Losses and metrics
# --------------------------------------------------------------------------------------------


def onehot_case():
    """Three pixels: true classes 0, 1 and an ignored one with a very wrong prediction."""
    target = np.array([[0, 1, IGNORE]], np.uint8)
    probs = np.array([[[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]]], np.float32)
    return target, probs


def test_crossentropy_focal_and_class_weights_by_hand():
    target, probs = onehot_case()
    onehot, weight = decode_target(target, 2)
    np.testing.assert_array_equal(weight.numpy(), [[1, 1, 0]])
    assert float(crossentropy(onehot, probs, weight)) == pytest.approx(math.log(2), rel=1e-5)
    assert float(crossentropy(onehot, probs, weight, [1.0, 3.0])) == \
        pytest.approx((1 + 3) * math.log(2) / 2, rel=1e-5)
    assert float(focal(onehot, probs, weight)) == pytest.approx(0.25 * math.log(2), rel=1e-5)
    assert float(make_loss("categorical_crossentropy", 2)(target, probs)) == \
        pytest.approx(math.log(2), rel=1e-5)


def two_landslides(gap: int) -> np.ndarray:
    """A 1 x 12 x 14 target: two landslides ``gap`` columns apart, one touching the left edge;
    a few ignored pixels above."""
    target = np.zeros((1, 12, 14), np.uint8)
    target[0, 2:10, 0:5] = 1
    target[0, 2:10, 5 + gap : 9 + gap] = 1
    target[0, 0, :] = IGNORE
    return target


def test_gap_pixels_are_the_background_between_landslides_only():
    onehot, _ = decode_target(two_landslides(gap=2), 2)
    gaps = gap_pixels(onehot, 2).numpy()[0]
    expected = np.zeros((12, 14))
    expected[2:10, 5:7] = 1  # the 2-column gap: not the tile's edges, not ignored pixels
    np.testing.assert_array_equal(gaps, expected)
    wide, _ = decode_target(two_landslides(gap=6), 2)
    assert gap_pixels(wide, 2).numpy().sum() == 0  # wider than gap_width: no gap


def test_gap_weight_counts_gap_pixels_more():
    target = two_landslides(gap=2)
    probs = np.full((1, 12, 14, 2), 0.5, np.float32)
    probs[0, 2:10, 5:7] = [0.1, 0.9]  # the gap predicted as landslide: the merge to avoid
    plain = float(make_loss("ce_lovasz_softmax", 2)(target, probs))
    weighted = float(make_loss("ce_lovasz_softmax", 2, gap_weight=5, gap_width=2)(
        target, probs))
    onehot, weight = decode_target(target, 2)
    gaps = gap_pixels(onehot, 2)
    expected = plain - float(crossentropy(onehot, probs, weight)) + float(
        crossentropy(onehot, probs, weight * (1 + 5 * gaps)))
    assert weighted == pytest.approx(expected, rel=1e-5)
    assert weighted > plain


def test_dice_by_hand():
    target = np.array([[1, IGNORE]], np.uint8)
    probs = np.array([[[0.2, 0.8], [1.0, 0.0]]], np.float32)
    onehot, weight = decode_target(target, 2)
    background = (0 + 1) / (0.2 + 1)  # no background truth; 0.2 predicted; smooth 1
    landslide = (2 * 0.8 + 1) / (1 + 0.8 + 1)
    expected = 1 - (background + landslide) / 2
    assert float(dice(onehot, probs, weight)) == pytest.approx(expected, rel=1e-5)
    both = make_loss("ce_dice", 2)(target, probs)
    assert float(both) == pytest.approx(expected - math.log(0.8), rel=1e-5)
    perfect = np.array([[[0.0, 1.0], [0.3, 0.7]]], np.float32)
    assert float(dice(onehot, perfect, weight)) == pytest.approx(0.0, abs=1e-6)


def test_lovasz_is_one_minus_the_mean_iou_of_hard_predictions():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (2, 8, 8))
    truth[0, 0, :3] = IGNORE
    hard = rng.integers(0, 2, (2, 8, 8)).astype(np.float32)
    probs = np.stack([1 - hard, hard], axis=-1)
    onehot, weight = decode_target(tf.constant(truth), 2)
    valid = truth != IGNORE
    expected = np.mean([1 - ((truth == c) & (hard == c) & valid).sum()
                        / (((truth == c) | (hard == c)) & valid).sum() for c in (0, 1)])
    assert float(lovasz(onehot, tf.constant(probs), weight)) == pytest.approx(expected, abs=1e-6)
    ce = float(crossentropy(onehot, tf.constant(probs), weight))
    combined = float(make_loss("ce_lovasz_softmax", 2)(truth, probs))
    assert combined == pytest.approx(ce + expected, rel=1e-5)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "dice", "ce_dice", "focal",
                                  "lovasz_softmax", "ce_lovasz_softmax"])
def test_ignored_pixels_change_neither_loss_nor_gradient(name):
    target, probs = onehot_case()
    loss = make_loss(name, 2)
    changed = probs.copy()
    changed[0, 2] = [0.9, 0.1]
    assert float(loss(target, probs)) == pytest.approx(float(loss(target, changed)))
    variable = tf.Variable(probs)
    with tf.GradientTape() as tape:
        value = loss(target, variable)
    gradient = tape.gradient(value, variable).numpy()
    assert np.all(gradient[0, 2] == 0) and np.any(gradient[0, :2] != 0)


def test_sigmoid_output_is_the_two_class_case_and_bad_settings_fail():
    target = np.array([[0, 1, 1, IGNORE]], np.uint8)
    p = np.array([[0.3, 0.6, 0.9, 0.5]], np.float32)[..., None]
    for name in ("categorical_crossentropy", "dice", "focal"):
        assert float(make_loss(name, 1)(target, p)) == pytest.approx(
            float(make_loss(name, 2)(target, np.concatenate([1 - p, p], axis=-1))))
    with pytest.raises(ConfigError, match="not one of"):
        make_loss("hinge", 2)
    with pytest.raises(ConfigError, match="3 weights given for 2 classes"):
        make_loss("dice", 2, [1.0, 2.0, 3.0])


def test_landslide_iou_metric_counts_the_epoch_and_skips_ignored_pixels():
    metric = ClassIoU(1, 2)
    target = np.array([[1, 1, 0, 0, IGNORE]], np.uint8)
    probs = np.array([[[0.2, 0.8], [0.7, 0.3], [0.1, 0.9], [0.9, 0.1], [0.0, 1.0]]],
                     np.float32)
    metric.update_state(target, probs)  # tp 1, fn 1, fp 1
    assert float(metric.result()) == pytest.approx(1 / 3)
    metric.update_state(np.array([[1]], np.uint8), np.array([[[0.0, 1.0]]], np.float32))
    assert float(metric.result()) == pytest.approx(2 / 4)
    metric.reset_state()
    assert math.isnan(float(metric.result()))


# --------------------------------------------------------------------------------------------
# Datasets: the same tiles as prediction
# --------------------------------------------------------------------------------------------


def test_scene_tiles_are_the_prediction_grid(scenes):
    settings = ModelSettings(**{**SETTINGS.to_dict(), "overlap": 8})
    scene = scenes["train"][0]
    with TileDataset([scene], settings) as tiles, rasterio.open(scene.image) as src, \
            rasterio.open(scene.labels) as lab:
        grid = TileGrid.for_dataset(src, 32, 8)
        assert [tile for _, tile in tiles.tiles] == list(grid)
        for index, tile in enumerate(grid):
            image, mask, valid = tiles.read(index)
            expected, expected_valid = read_tile(src, tile, 32, settings.bands)
            np.testing.assert_array_equal(image, expected)
            np.testing.assert_array_equal(valid, expected_valid)
            np.testing.assert_array_equal(mask, lab.read(1, window=tile.window))


def test_a_png_smaller_than_the_tile_is_padded_like_prediction(tmp_path):
    image, labels = squares(7, 40)
    image, labels = image[:, :20, :24], labels[:20, :24]
    image[:, 0, 0] = 255  # one white pixel: no data in the reference layout
    mask = np.zeros((3, 20, 24), np.uint8)
    mask[0][labels == 1] = 255
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    write_png(tmp_path / "images" / "t.png", image)
    write_png(tmp_path / "masks" / "t.png", mask)
    pairs = reference_scenes(tmp_path / "images", tmp_path / "masks")
    assert pairs == [LabelledScene(tmp_path / "images" / "t.png", tmp_path / "masks" / "t.png",
                                   WHITE_NODATA)]
    with TileDataset(pairs, SETTINGS, rgb_map={(0, 0, 0): 0, (255, 0, 0): 1}) as tiles:
        assert len(tiles) == 1
        got_image, got_mask, got_valid = tiles.read(0)
    np.testing.assert_array_equal(got_image,
                                  np.moveaxis(pad_to_tile(image, 32), 0, -1).astype(np.float32))
    expected_valid = np.zeros((32, 32), bool)
    expected_valid[:20, :24] = True
    expected_valid[0, 0] = False
    np.testing.assert_array_equal(got_valid, expected_valid)
    np.testing.assert_array_equal(got_mask[:20, :24], np.where(expected_valid[:20, :24],
                                                               labels, 0))


def test_reference_layout_errors_name_the_folder(tmp_path):
    write_reference_layout(tmp_path, {"train": 2})
    (tmp_path / "train" / "masks" / "001.png").unlink()
    with pytest.raises(InputError, match=r"no mask for 1 of 2 images \(missing 001.png\)"):
        reference_split(tmp_path, "train")
    with pytest.raises(InputError, match="images folder not found"):
        reference_split(tmp_path, "test")
    assert dataset_split(tmp_path, "valid") == []


def test_a_chip_folder_reads_the_pixels_of_its_scene(scenes, tmp_path):
    scene = scenes["train"][0]
    summary = write_chips(scene.image, scene.labels, tmp_path / "chips", tile_size=32, overlap=0,
                          split=(0.5, 0.5, 0.0), split_block=32, seed=1)
    chips = chip_split(tmp_path / "chips", "train")
    assert len(chips) == summary.chips["train"] > 0
    assert dataset_split(tmp_path / "chips", "valid") == chip_split(tmp_path / "chips", "valid")
    with TileDataset(chips[:1], SETTINGS) as from_chip, TileDataset([scene], SETTINGS) as whole:
        name = chips[0].image.stem  # <scene>_r<row>_c<col>
        row, col = (int(part[1:]) for part in name.split("_")[-2:])
        index = next(i for i, (_, tile) in enumerate(whole.tiles)
                     if (tile.row, tile.col) == (row, col))
        for got, expected in zip(from_chip.read(0), whole.read(index), strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Hokkaido data not present")
def test_reference_layout_reader_on_the_hokkaido_tiles():
    config = load_config(HOKKAIDO_CONFIG)
    settings = ModelSettings(**config.model_kwargs())
    pairs = reference_split(SHARED, "train", config.mask.mask_file_format)
    assert len(pairs) == 18 and all(p.image.stem == p.labels.stem for p in pairs)
    wedge = next(p for p in pairs if p.image.name == "10025.png")  # ~4% white corner wedge
    with TileDataset([wedge], settings, rgb_map=config.mask.rgb_map) as tiles:
        image, mask, valid = tiles.read(0)
    assert image.dtype == np.float32 and image.shape == (512, 512, 3) and image.max() > 200
    np.testing.assert_array_equal(~valid, (image == 255).all(axis=-1))
    assert 0.03 < (~valid).mean() < 0.06
    assert set(np.unique(mask)) == {0, 1} and 0.05 < mask[valid].mean() < 0.2


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setitem(cli_module.COMMANDS, "train", "train")

    def invoke(*args: str):
        return CliRunner().invoke(cli_module.cli, ["train", *args])

    return invoke


def test_cli_trains_a_reference_layout_resumes_and_refuses_to_clobber(run, tmp_path):
    data = write_reference_layout(tmp_path / "data", {"train": 4, "valid": 2})
    config = tmp_path / "small.config"
    config.write_text(config_text(epochs=1, steps_per_epoch=2, batch_size=2))
    out = tmp_path / "out"
    result = run(str(config), "--dataset", str(data), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "training on 4 tiles, validating on 2" in result.output
    assert "epoch 1/1 - " in result.output and f"model: {out / MODEL_NAME}" in result.output
    again = run(str(config), "--dataset", str(data), "--out", str(out))
    assert again.exit_code != 0 and "is not empty; pass --resume" in again.output
    assert len(again.output.strip().splitlines()) == 1
    resumed = run(str(config), "--dataset", str(data), "--out", str(out), "--resume",
                  "--epochs", "2", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert "epoch 2/2" not in resumed.output
    rows = list(csv.DictReader((out / LOG_NAME).open()))
    assert [row["epoch"] for row in rows] == ["1", "2"] and (out / LAST_NAME).is_file()


def test_cli_usage_errors(run, tmp_path, scenes):
    config = tmp_path / "small.config"
    config.write_text(config_text())
    scene = scenes["train"][0]
    result = run(str(config), "--scene", str(scene.image), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "1 --scene but 0 --labels" in result.output
    result = run(str(config), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "no training data" in result.output


def test_cli_writes_the_int8_version_calibrated_on_the_training_tiles(run, tmp_path):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    from geoseg.model.model_archive import file_digest
    from geoseg.model.runtimes import INT8, cached_conversion

    data = write_reference_layout(tmp_path / "data", {"train": 2})
    config = tmp_path / "small.config"
    config.write_text(config_text(epochs=1, steps_per_epoch=1, batch_size=2,
                                  epoch_change_infer=False))
    result = run(str(config), "--dataset", str(data), "--out", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0, result.output
    model = tmp_path / "out" / MODEL_NAME
    found = cached_conversion(model, file_digest(model), INT8)  # of the model as written last
    assert found is not None and "FakeQuantize" in found.read_text()
    assert "int8 version (used by geoseg predict on CPUs with VNNI or AMX)" in result.output
    assert "training tiles" in result.output
