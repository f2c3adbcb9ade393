"""A run killed outright leaves its temporary folders; the next run of the same output removes
them, and only them: never a folder without geoseg's marker, nor one of a run still alive."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import signal_once_rows_are_saved

from geoseg.model.flexunet import build_flexunet, save_model
from geoseg.raster.outputs import PARTIAL_MARKER, atomic_output, remove_stale_partials
from geoseg.settings import ModelSettings


def ended_process() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def partial(output: Path, tag: str, owner: dict | None) -> Path:
    folder = output.with_name(f".{output.name}.partial-{tag}")
    folder.mkdir()
    (folder / output.name).write_bytes(b"half")
    if owner is not None:
        (folder / PARTIAL_MARKER).write_text(json.dumps(owner))
    return folder


def test_only_partials_of_ended_runs_of_this_output_are_removed(tmp_path):
    out = tmp_path / "m.tif"
    here = socket.gethostname()
    gone = {"host": here, "pid": ended_process(), "started": None}
    stale = partial(out, "1-aaaaaaaa", gone)
    kept = [
        partial(out, "2-bbbbbbbb", None),  # a look-alike without the marker
        partial(out, "3-cccccccc", {**gone, "host": "another-machine"}),  # cannot tell
        partial(out, "4-dddddddd", {"host": here, "pid": os.getpid()}),  # alive: this process
        partial(tmp_path / "n.tif", "5-eeeeeeee", gone),  # another output's
    ]
    (tmp_path / ".m.tif.partial-6-ffffffff").write_text("a file, not a folder")
    assert remove_stale_partials(out) == [stale]
    assert not stale.exists()
    assert all(folder.exists() for folder in kept)
    assert (tmp_path / ".m.tif.partial-6-ffffffff").exists()


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/stat").exists(), reason="needs /proc")
def test_a_partial_of_a_process_id_used_again_is_removed(tmp_path):
    out = tmp_path / "m.tif"
    here = socket.gethostname()
    started = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    reused = partial(out, "1-aaaaaaaa", {"host": here, "pid": os.getpid(), "started": started - 1})
    mine = partial(out, "2-bbbbbbbb", {"host": here, "pid": os.getpid(), "started": started})
    assert remove_stale_partials(out) == [reused]
    assert mine.exists()


def test_every_atomic_output_removes_the_stale_partials_of_its_file(tmp_path):
    out = tmp_path / "slides.gpkg"
    stale = partial(out, "1-aaaaaaaa", {"host": socket.gethostname(), "pid": ended_process()})
    with atomic_output(out) as tmp:
        assert (tmp.parent / PARTIAL_MARKER).is_file()  # its own folder is marked
        tmp.write_text("polygons")
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slides.gpkg"]  # the marker stayed


def test_a_killed_runs_partials_go_with_the_next_run_of_its_output(make_raster, tmp_path):
    """SIGKILL part way through `geoseg predict` (nothing can clean up), then run again
    without --resume: the killed run's folders are gone, a look-alike is left."""
    settings = ModelSettings(image_size=128, num_layers=3, base_filters=16, overlap=16)
    model = save_model(build_flexunet(settings), settings, tmp_path / "m.keras")
    scene = make_raster(height=3000, width=256)
    env = {**os.environ, "GEOSEG_TF_LOGS": "0"}
    command = [sys.executable, "-m", "geoseg", "predict", str(scene), "--model", str(model),
               "--device", "cpu", "-q", "--batch-size", "2", "--out", str(tmp_path / "out.tif")]
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    journal = tmp_path / ".out.tif.resume"
    signal_once_rows_are_saved(run, journal, signal.SIGKILL)
    run.wait()
    assert list(tmp_path.glob(".out.tif.partial-*"))  # what the killed run left
    lookalike = tmp_path / ".out.tif.partial-12345-0badf00d"
    lookalike.mkdir()
    (lookalike / "out.tif").write_bytes(b"not geoseg's")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.glob(".out.tif.partial-*")) == [lookalike]
    assert not journal.exists()
