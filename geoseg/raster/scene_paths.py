"""Where a scene is: a local file, a URL (``http(s)://``, ``s3://``, ``gs://``) or a GDAL
virtual path (``/vsicurl/...``, ``/vsis3/...``, ``/vsizip/...``), and the path GDAL opens it by.

Every command that takes a scene accepts all three; :func:`gdal_path` turns a URL into GDAL's
virtual path for it (``https://host/a.tif`` -> ``/vsicurl/https://host/a.tif``, ``s3://b/k``
-> ``/vsis3/b/k``, ``gs://b/k`` -> ``/vsigs/b/k``), and leaves anything else as it is. Outputs
stay local: an output named after a scene takes the stem of its file name
(:func:`scene_stem`, the URL's path without its query). A scene on a web server is
fingerprinted for the resume journal by what the server says of it (:func:`server_facts`:
size, ``ETag``, ``Last-Modified``). This module never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import PurePosixPath
from urllib.parse import urlsplit

__all__ = ["URL_PREFIXES", "gdal_path", "is_local", "is_remote", "scene_name", "scene_stem",
           "server_facts"]

URL_PREFIXES = {"http://": "/vsicurl/", "https://": "/vsicurl/", "s3://": "/vsis3/",
                "gs://": "/vsigs/"}
"""The URLs a scene may be given as, and the GDAL virtual file system that reads each."""

_URL = re.compile(r"^(https?|s3|gs)://", re.IGNORECASE)
_NETWORK = re.compile(r"/vsi(curl|s3|gs|az|adls|oss|swift|hdfs|webhdfs)(_streaming)?[/?]")
_CURL_URL = re.compile(r"^/vsicurl/(https?://.*)$", re.IGNORECASE)
SERVER_TIMEOUT = 30.0
"""Seconds to wait for a web server to say what it serves (:func:`server_facts`)."""


def gdal_path(scene: str | os.PathLike[str]) -> str:
    """The path GDAL opens a scene by: a URL's virtual path, anything else as given.

    >>> gdal_path("https://example.com/scenes/a.tif")
    '/vsicurl/https://example.com/scenes/a.tif'
    >>> gdal_path("s3://bucket/scenes/a.tif"), gdal_path("scene.tif")
    ('/vsis3/bucket/scenes/a.tif', 'scene.tif')
    """
    text = os.fspath(scene)
    match = _URL.match(text)
    if match is None:
        return text
    scheme = match.group(1).lower()
    prefix = URL_PREFIXES[f"{scheme}://"]
    return prefix + (text if scheme.startswith("http") else text[match.end():])


def is_local(scene: str | os.PathLike[str]) -> bool:
    """Whether a scene is a file on this machine's file systems: not a URL, not a GDAL virtual
    path (``/vsizip/`` archives are read through GDAL, so they count as virtual too)."""
    text = os.fspath(scene)
    return _URL.match(text) is None and not text.startswith("/vsi")


def is_remote(scene: str | os.PathLike[str]) -> bool:
    """Whether reading a scene goes over a network: a URL, or a GDAL virtual path through a
    network file system (inside an archive too: ``/vsizip//vsicurl/...``).

    >>> is_remote("https://example.com/a.tif"), is_remote("/vsis3/b/a.tif")
    (True, True)
    >>> is_remote("/vsizip/a.zip/a.tif"), is_remote("a.tif")
    (False, False)
    """
    return _NETWORK.search(gdal_path(scene)) is not None


def scene_name(scene: str | os.PathLike[str]) -> str:
    """A scene's file name, a URL's query (``?token=...``) left out.

    >>> scene_name("https://example.com/a/scene.tif?X-Amz-Date=2026.12"), scene_name("b/c.tif")
    ('scene.tif', 'c.tif')
    """
    text = gdal_path(scene)
    curl = _CURL_URL.match(text)
    path = urlsplit(curl.group(1)).path if curl is not None else text
    return PurePosixPath(path.replace("\\", "/")).name


def scene_stem(scene: str | os.PathLike[str]) -> str:
    """A scene's file name without its extension (:func:`scene_name`), for the names of outputs
    made from it.

    >>> scene_stem("/vsicurl/http://example.com/d.tif?token=a.b"), scene_stem("s3://b/e.tif")
    ('d', 'e')
    """
    return PurePosixPath(scene_name(scene)).stem


def server_facts(scene: str | os.PathLike[str]) -> dict[str, str]:
    """What a web server says of a scene it serves: its size in bytes, ``ETag`` and
    ``Last-Modified``, those it reports; empty for a scene not served over HTTP(S), or when
    the server does not answer (the caller then relies on the scene's pixels alone).

    One request for the first byte (a ``HEAD`` is refused by presigned URLs), whose answer
    tells the whole size (``Content-Range``).
    """
    curl = _CURL_URL.match(gdal_path(scene))
    if curl is None:
        return {}
    request = urllib.request.Request(curl.group(1), headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT) as answer:
            headers = answer.headers
    except (OSError, ValueError):  # URLError is an OSError
        return {}
    size = headers.get("Content-Range", "").rpartition("/")[2]
    if not size.isdigit():
        size = headers.get("Content-Length", "") if answer.status == 200 else ""
    facts = {"size": size, "etag": headers.get("ETag", ""),
             "last_modified": headers.get("Last-Modified", "")}
    return {key: value for key, value in facts.items() if value}
