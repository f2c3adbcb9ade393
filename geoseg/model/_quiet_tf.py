"""Import TensorFlow without its C++ start-up chatter on the user's terminal.

TensorFlow's native libraries log to file descriptor 2 before any logging setting applies
(oneDNN notices, "could not find cuda drivers", cuInit failures on machines without a GPU).
Those lines are noise to users and look like errors, so the import and the first look for a
GPU (which initialises the devices) redirect the descriptor to /dev/null while they run.
Python exceptions still propagate normally.
Set ``GEOSEG_TF_LOGS=1`` to see the messages.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["quiet_native_stderr"]


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the duration of the block (unless GEOSEG_TF_LOGS=1)."""
    if os.environ.get("GEOSEG_TF_LOGS") == "1":
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with quiet_native_stderr():
    import tensorflow

    tensorflow.config.list_physical_devices("GPU")
