"""A static file server on 127.0.0.1 that answers HTTP Range requests, as object stores and web
servers serving Cloud Optimized GeoTIFFs do: enough for GDAL's ``/vsicurl/`` in tests.

It runs in a process of its own (``python range_server.py ROOT``): rasterio holds the GIL while
GDAL opens a dataset, so a server thread in the test's process would never answer.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the files in ``root``, whole or by one byte range, with the
    ``Content-Length``, ``ETag`` and ``Last-Modified`` headers GDAL reads."""

    def __init__(self, *args: object, root: Path, **kwargs: object):
        self.root = root
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: tests read the served files, not the server's log."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        stat = path.stat()
        start, end = 0, len(data) - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if match and (match[1] or match[2]):
            if match[1]:
                start, end = int(match[1]), min(int(match[2] or end), end)
            else:  # the last N bytes
                start = max(0, len(data) - int(match[2]))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.end_headers()
        if body:
            self.wfile.write(data[start:end + 1])


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """Serve ``root`` on a free port of 127.0.0.1 from another process; yields the base URL."""
    server = subprocess.Popen([sys.executable, __file__, str(root)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(root: str) -> None:
    """Serve ``root`` until terminated, printing the base URL first."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(RangeHandler, root=Path(root)))
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
