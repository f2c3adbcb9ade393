"""The conversion cache trusts a conversion only as far as its record vouches for it.

A file named like a model's conversion is used when its record says it was made from a model
of that digest and the file still has the digest recorded; anything else is left out, so the
model is converted (or quantised) again. No TensorFlow: the "conversions" here are files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from geoseg.model.model_archive import file_digest
from geoseg.model.runtimes import (
    CACHE_FOLDER,
    INT8,
    cached_conversion,
    conversion_name,
    record_conversion,
)


@pytest.fixture()
def model(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "model.keras"
    path.write_bytes(b"a model")
    return path, file_digest(path)


def converted(model: Path, digest: str, kind: str = "onnx") -> Path:
    """A 'conversion' of ``model`` in its cache folder, as the converter leaves it."""
    target = model.parent / CACHE_FOLDER / conversion_name(model, digest, kind)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"converted " + digest.encode())
    if kind == INT8:
        target.with_suffix(".bin").write_bytes(b"int8 weights")
    return target


def test_a_recorded_conversion_is_found(model):
    path, digest = model
    conversion = converted(path, digest)
    record = record_conversion(conversion, digest)
    assert record.name == conversion.name + ".json"
    assert json.loads(record.read_text()) == {
        "model": digest, "files": {conversion.name: file_digest(conversion)}}
    assert cached_conversion(path, digest, "onnx") == conversion
    assert cached_conversion(path, digest, "openvino") == conversion  # the same ONNX file


def test_a_file_merely_named_like_the_conversion_is_not_used(model, caplog):
    path, digest = model
    converted(path, digest)  # no record: an older geoseg's, or put there by anyone
    with caplog.at_level(logging.WARNING, logger="geoseg.model.runtimes"):
        assert cached_conversion(path, digest, "onnx") is None
    assert "not used" in caplog.text


def test_a_conversion_changed_since_its_record_is_not_used(model):
    path, digest = model
    conversion = converted(path, digest)
    record_conversion(conversion, digest)
    conversion.write_bytes(b"something else")
    assert cached_conversion(path, digest, "onnx") is None


def test_a_record_of_another_model_is_not_trusted(model):
    """Two models whose digests share the 16 characters in the file name."""
    path, digest = model
    conversion = converted(path, digest)
    other = digest[:16] + "0" * 48
    assert other != digest
    record_conversion(conversion, other)
    assert cached_conversion(path, digest, "onnx") is None


def test_an_int8_version_is_checked_with_its_weights(model):
    path, digest = model
    xml = converted(path, digest, INT8)
    record_conversion(xml, digest)
    assert cached_conversion(path, digest, INT8) == xml
    xml.with_suffix(".bin").write_bytes(b"other weights")
    assert cached_conversion(path, digest, INT8) is None


def test_a_broken_record_is_not_trusted(model):
    path, digest = model
    conversion = converted(path, digest)
    record_conversion(conversion, digest).write_text("{not json")
    assert cached_conversion(path, digest, "onnx") is None
