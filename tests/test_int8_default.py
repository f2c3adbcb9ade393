"""The default precision: int8 on a CPU with int8 instructions (VNNI, AMX) when the model has
an int8 version, float32 otherwise; the CPU's facts are mocked both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from geoseg.cli import cli
from geoseg.model import predictor, runtimes
from geoseg.model.bundled import resolve_model
from geoseg.model.model_archive import file_digest
from geoseg.model.predictor import ModelSpec
from geoseg.model.runtimes import INT8, cached_conversion, conversion_name, record_conversion

INT8_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_tile amx_int8\n"
PLAIN_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """Set the CPU's flags as Linux lists them (``None``: no /proc/cpuinfo at all); no GPU."""
    monkeypatch.setattr(predictor, "gpu_likely", lambda: False)

    def set_flags(text: str | None) -> None:
        path = tmp_path / "cpuinfo"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(runtimes, "CPUINFO", path)

    return set_flags


@pytest.fixture
def model_with_int8(tmp_path) -> Path:
    """A model file with a (stand-in) int8 version in its conversion cache, as its record
    vouches: resolving the precision looks no further than the cache."""
    model = tmp_path / "m.keras"
    model.write_bytes(b"a model's bytes")
    cache = tmp_path / runtimes.CACHE_FOLDER
    cache.mkdir()
    xml = cache / conversion_name(model, file_digest(model), INT8)
    xml.write_text("<net/>")
    xml.with_suffix(".bin").write_bytes(b"weights")
    record_conversion(xml, file_digest(model))
    return model


@pytest.mark.parametrize(("flags", "expected"), [
    (INT8_CPU, True),
    ("flags\t\t: fpu avx_vnni\n", True),
    ("flags\t\t: fpu amx_int8\n", True),
    (PLAIN_CPU, False),
    ("processor\t: 0\n", False),
    (None, False),  # not Linux
])
def test_int8_instructions_are_read_from_the_cpu_flags(cpu, flags, expected):
    cpu(flags)
    assert runtimes.cpu_has_int8() is expected


def test_the_default_is_int8_on_an_int8_cpu_when_the_model_has_an_int8_version(
        cpu, model_with_int8):
    cpu(INT8_CPU)
    spec = ModelSpec(model_with_int8)
    assert spec.precision == INT8
    assert spec.runtime().startswith("openvino int8:")  # in the resume journal too


@pytest.mark.parametrize("flags", [PLAIN_CPU, None])
def test_the_default_falls_back_to_float32_on_a_cpu_without_int8_instructions(
        cpu, model_with_int8, flags):
    cpu(flags)
    assert ModelSpec(model_with_int8).precision == "float32"


def test_the_default_is_float32_for_a_model_without_int8_version(cpu, model_with_int8):
    cpu(INT8_CPU)
    model = model_with_int8.with_name("other.keras")
    model.write_bytes(b"another model")
    assert ModelSpec(model).precision == "float32"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"precision": "float32"}, "float32"),
    ({"precision": "bfloat16"}, "bfloat16"),
    ({"backend": "keras"}, "float32"),
    ({"backend": "onnx"}, "float32"),
    ({"device": "gpu"}, "float32"),
    ({"backend": "openvino", "device": "cpu"}, INT8),
])
def test_an_explicit_precision_backend_or_gpu_decides(cpu, model_with_int8, kwargs, expected):
    cpu(INT8_CPU)
    assert ModelSpec(model_with_int8, **kwargs).precision == expected


def test_a_likely_gpu_keeps_float32(cpu, model_with_int8, monkeypatch):
    cpu(INT8_CPU)
    monkeypatch.setattr(predictor, "gpu_likely", lambda: True)
    assert ModelSpec(model_with_int8).precision == "float32"


@pytest.mark.parametrize("name", ["hokkaido-iburi", "sichuan-aerial"])
def test_bundled_models_ship_an_int8_version_their_record_vouches_for(cpu, name):
    path = resolve_model(name)
    found = cached_conversion(path, file_digest(path), INT8)
    assert found is not None and found.parent == path.parent / runtimes.CACHE_FOLDER
    assert "FakeQuantize" in found.read_text()
    cpu(INT8_CPU)
    assert ModelSpec(Path(name)).precision == INT8


def test_predict_help_tells_the_default():
    result = CliRunner().invoke(cli, ["predict", "--help"])
    assert "auto: int8 when the CPU has VNNI or AMX" in " ".join(result.output.split())
