"""Training on several replicas: two logical CPU devices (MirroredStrategy) and two worker
processes on 127.0.0.1 (MultiWorkerMirroredStrategy, from TF_CONFIG), each compared with one
process training the same global batch.

The tolerance of the comparisons: the replicas compute the same sums as one process in
another order (each replica its share of the batch, then the all-reduce), so float32 rounding
differs; over the 6 Adam steps here the logged values agreed to 2e-7 (relative) and the
weights to 1e-6. ``rel=1e-5`` leaves a margin of 50x for other machines' kernels and is far
below what a wrong split moves (two workers reading the same half of every batch moved the
first epoch's loss by 1%). The loss is the cross-entropy: a Dice loss is
pooled over each replica's share, so it is not the single process's by design.

Logical devices must be set before TensorFlow starts and a cluster is joined at start-up, so
both runs are subprocesses; the pytest process trains the reference.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from test_train import SEED, config_text, write_scene

from geoseg.cli import cli
from geoseg.config import load_config
from geoseg.errors import ConfigError, InputError
from geoseg.evaluation.metrics import ConfusionMatrix
from geoseg.model.flexunet import load_model
from geoseg.model.runtimes import CACHE_FOLDER
from geoseg.settings import ModelSettings
from geoseg.training.datasets import TileDataset
from geoseg.training.losses import IGNORE, make_loss
from geoseg.training.tf_dataset import replica_shares, training_dataset, validation_steps
from geoseg.training.train import CURVES_NAME, LAST_NAME, LOG_NAME, MODEL_NAME, PREVIEWS_DIR, train
from geoseg.training.training_strategy import (
    CLUSTER_TIMEOUT,
    CLUSTER_TIMEOUT_VARIABLE,
    Placement,
    cluster_timeout,
    weights_digest,
)

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

TOLERANCE = 1e-5
TIMEOUT = 600  # seconds for a subprocess run; on an idle 2-core machine they take ~30-60 s
LOGGED = ("loss", "landslide_iou", "dice_coef_multiclass", "val_loss", "val_landslide_iou",
          "val_dice_coef_multiclass")

LOGICAL_DEVICES_RUN = """
import sys
from pathlib import Path

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np

from geoseg.config import load_config
from geoseg.training.datasets import LabelledScene, TileDataset
from geoseg.settings import ModelSettings
from geoseg.training.tf_dataset import training_dataset
from geoseg.training.train import train
from geoseg.training.training_strategy import training_placement

config_path, out, split_path, *paths = sys.argv[1:]
config = load_config(config_path)
scenes = [LabelledScene(Path(image), Path(labels))
          for image, labels in zip(paths[::2], paths[1::2])]
train(config, out_dir=out, train_scenes=scenes[:2], valid_scenes=scenes[2:], report=print)


# Each replica's part of the first global batch; in a function, as an endless distributed
# iterator still alive at exit can hang the interpreter's shutdown.
def save_first_batch():
    placement = training_placement()  # the run's, made once per process
    with TileDataset(scenes[:2], ModelSettings(**config.model_kwargs())) as tiles:
        batches = iter(placement.distribute(lambda worker, workers: training_dataset(
            tiles, config.train.batch_size, config.train.seed, worker=worker,
            workers=workers, replicas=placement.replicas)))
        images, _ = next(batches)
        np.savez(split_path, *placement.strategy.experimental_local_results(images))


save_first_batch()
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three scenes (9 tiles each: 18 to train on, 9 to validate on) and the config."""
    folder = tmp_path_factory.mktemp("distributed")
    scenes = [write_scene(folder, name, seed) for name, seed in (("a", 1), ("b", 2), ("c", 3))]
    config_path = folder / "tiny.config"
    config_path.write_text(config_text(epochs=2, steps_per_epoch=3, batch_size=4)
                           .replace('"ce_dice"', '"categorical_crossentropy"'))
    return folder, scenes, config_path


@pytest.fixture(scope="module")
def setup(data):
    """The data, and the single-process reference run of 2 epochs."""
    folder, scenes, config_path = data
    reference = train(load_config(config_path), out_dir=folder / "reference",
                      train_scenes=scenes[:2], valid_scenes=scenes[2:],
                      report=lambda line: None)
    return folder, scenes, config_path, reference


def log_rows(path: Path) -> list[dict[str, float]]:
    return [{key: float(value) for key, value in row.items()}
            for row in csv.DictReader(path.open())]


def assert_same_curve(rows: list[dict[str, float]], reference: list[dict[str, float]]) -> None:
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in reference]
    for row, expected in zip(rows, reference, strict=True):
        for key in LOGGED:
            assert row[key] == pytest.approx(expected[key], rel=TOLERANCE, abs=1e-7), key


def scene_arguments(scenes) -> list[str]:
    return [str(path) for scene in scenes for path in (scene.image, scene.labels)]


def test_two_logical_devices_split_each_batch_reduce_the_metrics_and_save(setup, tmp_path):
    folder, scenes, config_path, reference = setup
    out, split = tmp_path / "out", tmp_path / "split.npz"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", LOGICAL_DEVICES_RUN, str(config_path), str(out),
                          str(split), *scene_arguments(scenes)],
                         capture_output=True, text=True, timeout=TIMEOUT)
    print(f"two logical devices: {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MirroredStrategy: 2 replica(s) (CPU:0, CPU:1)" in run.stdout

    # batch splitting: each replica took 2 consecutive tiles of the global batch of 4
    settings = ModelSettings(**load_config(config_path).model_kwargs())
    with TileDataset(scenes[:2], settings) as tiles:
        images, _ = next(iter(training_dataset(tiles, 4, SEED)))
    with np.load(split) as parts:
        shares = [parts[name] for name in parts.files]
    assert [share.shape[0] for share in shares] == [2, 2]
    np.testing.assert_array_equal(np.concatenate(shares), images.numpy())
    assert_same_curve(log_rows(out / LOG_NAME), log_rows(reference.log_path))

    # metric reduction: the validation values logged are those of all 9 tiles (the two
    # replicas got 1 and 2 of them at each step), computed here from the epoch's weights
    model, saved = load_model(out / LAST_NAME)
    with TileDataset(scenes[2:], settings) as tiles:
        images, masks, valid = tiles.read_many(range(len(tiles)))
    probs = np.asarray(model(images, training=False))
    target = np.where(valid, masks, IGNORE)
    matrix = ConfusionMatrix(2)
    matrix.update(masks, np.argmax(probs, axis=-1), valid)
    last = log_rows(out / LOG_NAME)[-1]
    loss = make_loss("categorical_crossentropy", 2)
    assert last["val_loss"] == pytest.approx(float(loss(target, probs)), rel=1e-5)
    truth_probability = np.take_along_axis(probs, masks[..., None].astype(int), axis=-1)[..., 0]
    assert last["val_dice_coef_multiclass"] == pytest.approx(  # see DiceCoefMulticlass
        float(truth_probability[valid].mean()), rel=1e-5)
    assert np.nan_to_num(last["val_landslide_iou"]) == pytest.approx(
        np.nan_to_num(float(matrix.iou[1])), abs=1e-6)

    # saving: both models load with their settings and the reference's weights
    assert saved.without_facts() == settings.without_facts()  # facts: the training imagery's
    best, best_settings = load_model(out / MODEL_NAME)
    assert best_settings.threshold == reference.threshold
    expected, _ = load_model(reference.last_path)
    for got, want in zip(model.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=1e-6)
    assert (out / CURVES_NAME).is_file() and len(list((out / PREVIEWS_DIR).glob("*.png"))) == 2


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_workers(arguments: list[list[str]], scratch: list[Path]) -> list[str]:
    """Run ``geoseg train`` as worker i of a cluster on 127.0.0.1 with ``arguments[i]``;
    both are ended by the end of this call. Returns their outputs."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(arguments))]}
    workers = []
    try:
        for index, (args, tmp) in enumerate(zip(arguments, scratch, strict=True)):
            tmp.mkdir(exist_ok=True)
            env = {**os.environ, "TMPDIR": str(tmp), "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}})}
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "geoseg", "train", *args], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        deadline = time.monotonic() + TIMEOUT
        outputs = [worker.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
                   for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]
    return outputs


def digests(outputs: list[str]) -> list[str]:
    return [re.search(r"weights sha256 (\w+)", output).group(1) for output in outputs]


def test_two_workers_train_one_model_like_one_process_and_resume(setup, tmp_path):
    folder, scenes, config_path, reference = setup
    train_args = [str(config_path), "--valid-scene", str(scenes[2].image), "--valid-labels",
                  str(scenes[2].labels)]
    for scene in scenes[:2]:
        train_args += ["--scene", str(scene.image), "--labels", str(scene.labels)]
    outs = [tmp_path / "out0", tmp_path / "out1"]  # as on two machines without a shared disk
    scratch = [tmp_path / "tmp0", tmp_path / "tmp1"]

    started = time.monotonic()
    outputs = run_workers([[*train_args, "--out", str(out), "--epochs", "1"] for out in outs],
                          scratch)
    print(f"two workers, 1 epoch: {time.monotonic() - started:.1f} s")
    assert all("MultiWorkerMirroredStrategy: 2 workers, 2 replicas" in output
               for output in outputs)
    assert "this is worker 0, the chief" in outputs[0]
    assert "this is worker 1, which writes only into a scratch folder" in outputs[1]
    assert ["the chief (worker 0) wrote:" in output for output in outputs] == [False, True]
    # one model written, by the chief (and its int8 version, with NNCF); the other worker's
    # scratch folder is gone
    nncf = all(importlib.util.find_spec(name) for name in ("nncf", "openvino"))
    int8 = {CACHE_FOLDER} if nncf else set()
    assert {path.name for path in outs[0].iterdir()} == {
        MODEL_NAME, LAST_NAME, LOG_NAME, CURVES_NAME, PREVIEWS_DIR, *int8}
    assert not outs[1].exists()
    assert [list(tmp.iterdir()) for tmp in scratch] == [[], []]
    first, second = digests(outputs)
    assert first == second == weights_digest(load_model(outs[0] / LAST_NAME)[0])[:16]
    assert_same_curve(log_rows(outs[0] / LOG_NAME), log_rows(reference.log_path)[:1])

    # resumed from the chief's last.keras (here every worker sees the chief's folder)
    started = time.monotonic()
    outputs = run_workers([[*train_args, "--out", str(outs[0]), "--resume", "--epochs", "2"]
                           for _ in outs], scratch)
    print(f"two workers, resumed for 1 epoch: {time.monotonic() - started:.1f} s")
    first, second = digests(outputs)
    assert first == second == weights_digest(load_model(outs[0] / LAST_NAME)[0])[:16]
    assert_same_curve(log_rows(outs[0] / LOG_NAME), log_rows(reference.log_path))
    assert [list(tmp.iterdir()) for tmp in scratch] == [[], []]


# --------------------------------------------------------------------------------------------
# Refusals and shares, without a cluster
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tf_config", "message"), [
    ('{"cluster": {"worker": ["127.0.0.1:1"]', "TF_CONFIG: not JSON"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}',
     'TF_CONFIG: the cluster must list "worker" addresses'),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "is not one of the cluster's tasks"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}}', "is not one of the cluster's tasks"),
])
def test_a_tf_config_that_is_no_cluster_of_workers_is_refused_in_one_line(
        data, tmp_path, monkeypatch, tf_config, message):
    folder, scenes, config_path = data
    monkeypatch.setenv("TF_CONFIG", tf_config)
    result = CliRunner().invoke(cli, ["train", str(config_path), "--scene", str(scenes[0].image),
                                      "--labels", str(scenes[0].labels), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_global_batch_must_split_evenly_over_the_replicas():
    four = Placement(SimpleNamespace(num_replicas_in_sync=4), "MirroredStrategy")
    four.check_batch_size(8)
    with pytest.raises(ConfigError, match="batch_size 6 does not split evenly over 4 "
                                          "replicas .*give a multiple of 4"):
        four.check_batch_size(6)


@pytest.mark.parametrize(("count", "batch_size", "replicas", "steps"), [
    (9, 4, 2, 3), (18, 4, 2, 5), (9, 8, 8, 1), (4, 4, 4, 1), (100, 6, 3, 17)])
def test_every_validation_tile_goes_once_to_a_replica_and_no_replica_goes_empty(
        count, batch_size, replicas, steps):
    shares = replica_shares(count, batch_size, replicas)
    assert validation_steps(count, batch_size, replicas) == steps
    assert len(shares) == steps * replicas
    assert [tile for share in shares for tile in share] == list(range(count))
    assert min(map(len, shares)) >= 1
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(InputError, match="3 validation tile.* for 4 replicas"):
        validation_steps(3, 4, 4)


def test_a_worker_left_alone_stops_in_one_line_instead_of_waiting_forever(data, tmp_path):
    folder, scenes, config_path = data
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    env = {**os.environ, "TMPDIR": str(tmp_path), "GEOSEG_CLUSTER_TIMEOUT": "5",
           "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    started = time.monotonic()
    try:  # worker 0, the chief, never starts (as when it stops on an error before joining)
        run = subprocess.run([sys.executable, "-m", "geoseg", "train", str(config_path),
                              "--scene", str(scenes[0].image), "--labels",
                              str(scenes[0].labels), "--out", str(tmp_path / "out")],
                             env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the lone worker still waited after {TIMEOUT} s")
    print(f"lone worker stopped after {time.monotonic() - started:.1f} s")
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error: ")]
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(errors) == 1 and errors[0].startswith(
        "Error: TF_CONFIG: worker 1 of 2 waited 5 s for the others to join the cluster")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_the_cluster_timeout_must_be_whole_seconds(monkeypatch, value):
    monkeypatch.setenv(CLUSTER_TIMEOUT_VARIABLE, value)
    with pytest.raises(ConfigError, match="GEOSEG_CLUSTER_TIMEOUT must be a whole number"):
        cluster_timeout()
    monkeypatch.setenv(CLUSTER_TIMEOUT_VARIABLE, " 30 ")
    assert cluster_timeout() == 30
    monkeypatch.delenv(CLUSTER_TIMEOUT_VARIABLE)
    assert cluster_timeout() == CLUSTER_TIMEOUT
