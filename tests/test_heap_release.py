"""Memory the allocator keeps once freed goes back to the system as a run streams, so that a
run's peak does not grow with the scene's width (``bench/memory_scaling.py`` measures it)."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from conftest import PixelwisePredictor

from geoseg.prediction import row_stream
from geoseg.prediction.heap_release import release_freed_memory
from geoseg.prediction.predict import PredictOptions, predict_scene
from geoseg.prediction.prediction_outputs import OUTPUT_BLOCK
from geoseg.settings import ModelSettings


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_freed_buffers_kept_by_the_allocator_go_back_to_the_system():
    big = np.ones(24 * 2**20, dtype=np.uint8)  # freeing it raises glibc's mmap threshold
    del big
    rows = [np.ones(2**20, dtype=np.uint8) for _ in range(96)]  # now carved from the heap
    last = rows.pop()  # holds the heap's top: the buffers below cannot shrink it
    before = _resident_mib()
    del rows
    kept = _resident_mib()
    assert kept > before - 16  # freed, but still resident
    assert release_freed_memory()
    assert _resident_mib() < kept - 48  # given back
    del last


def test_the_stream_gives_memory_back_as_each_block_row_is_written(make_raster, tmp_path,
                                                                    monkeypatch):
    calls = []
    monkeypatch.setattr(row_stream, "release_freed_memory", lambda: calls.append(1) or True)
    scene = make_raster(height=3 * OUTPUT_BLOCK + 10, width=70)
    settings = ModelSettings(image_size=64, num_layers=3, base_filters=4, overlap=8)
    predict_scene(scene, tmp_path / "m.tif", PixelwisePredictor(), settings, PredictOptions())
    assert len(calls) == 4  # the scene's four block rows
