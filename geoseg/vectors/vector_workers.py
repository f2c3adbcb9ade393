"""Polygonising a mask's blocks on several processes: this one and worker processes.

:func:`rasterio.features.shapes` holds the GIL, so threads would take turns. The workers are
plain ``python -c`` processes fed windows over pipes (:func:`serve_blocks`), not
:mod:`multiprocessing` or :mod:`concurrent.futures` ones: those start by re-running the
caller's ``__main__`` script, which would make every script that vectorises on more than one
core need an ``if __name__ == "__main__"`` guard, and forking would copy a process that may
run TensorFlow's or GDAL's threads. Results come back in the order of the windows, a worker's
error is raised at its window's turn, and no worker outlives the call.

This module never imports TensorFlow or click.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.vectors.vector_blocks import Pieces, log, vectorise_block

__all__ = ["serve_blocks", "vectorise_blocks"]


_WORKER = "from geoseg.vectors.vector_workers import serve_blocks; serve_blocks()"
"""What a worker process runs (``python -c``): it imports this module and nothing of the
caller's, so unlike :mod:`multiprocessing` it never re-runs the caller's ``__main__`` script
(no ``if __name__ == "__main__"`` guard is needed), and nothing is forked from a process
that may run TensorFlow's or GDAL's threads."""


def serve_blocks() -> None:
    """A worker process's loop: :func:`vectorise_block` for each window sent on stdin.

    Reads the pickled job ``(mask, probabilities, classes, connectivity, gdal_options,
    uncertainty)``,
    then windows until stdin closes, answering each with a pickled ``("ok", result)`` or
    ``("error", exception)`` on stdout. Ctrl-C is left to the parent, which ends its workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not mix in
    requests = sys.stdin.buffer
    mask, probabilities, classes, connectivity, gdal_options, uncertain = pickle.load(requests)
    with ExitStack() as stack:
        stack.enter_context(rasterio.Env(**gdal_options))
        src = stack.enter_context(rasterio.open(mask))
        prob = stack.enter_context(rasterio.open(probabilities)) if probabilities else None
        uncertainty = stack.enter_context(rasterio.open(uncertain)) if uncertain else None
        while True:
            try:
                window = pickle.load(requests)
            except EOFError:
                return
            try:
                answer: tuple[str, object] = (
                    "ok", vectorise_block(src, prob, window, classes, connectivity,
                                          uncertainty))
            except Exception as exc:  # reported by the parent, which raises it
                answer = ("error", exc)
            pickle.dump(answer, answers)
            answers.flush()


_AHEAD = 2
"""Windows a worker process holds at once: the next one is there when it answers, even
while this process holds the GIL in a long :func:`~rasterio.features.shapes` call."""


def _in_workers(
    src: rasterio.io.DatasetReader,
    prob: rasterio.io.DatasetReader | None,
    windows: Sequence[Window],
    classes: Sequence[int] | None,
    connectivity: int,
    children: int,
    gdal_options: dict[str, int],
    uncertainty: rasterio.io.DatasetReader | None,
) -> Generator[tuple[Pieces, np.ndarray], None, None]:
    """:func:`vectorise_block` for each window, in order, here and in ``children`` processes.

    A thread per worker process (:func:`serve_blocks`) keeps it supplied with windows; this
    process polygonises a window itself whenever the next result it must yield is not ready.
    """
    job = (src.name, prob.name if prob is not None else None, classes, connectivity,
           gdal_options, uncertainty.name if uncertainty is not None else None)
    here = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [here, os.environ.get("PYTHONPATH")]))}
    answers: dict[int, tuple[str, object]] = {}
    done = threading.Condition()
    queue = iter(enumerate(windows))
    taking = threading.Lock()

    stopping = threading.Event()

    def ready(index: int) -> Callable[[], bool]:
        return lambda: index in answers or -1 in answers

    def take() -> tuple[int, Window | None]:
        with taking:
            return (-1, None) if stopping.is_set() else next(queue, (-1, None))

    def feed(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        sent: deque[int] = deque()
        try:
            pickle.dump(job, proc.stdin)
            while True:
                while len(sent) < _AHEAD and (task := take())[1] is not None:
                    pickle.dump(task[1], proc.stdin)
                    sent.append(task[0])
                proc.stdin.flush()
                if not sent:
                    return
                answer = pickle.load(proc.stdout)
                with done:
                    answers[sent.popleft()] = answer
                    done.notify_all()
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            if stopping.is_set():
                return  # ended by the finally clause below
            with done:  # the worker ended: said in place of the next result
                answers[-1] = ("died", proc.wait())
                done.notify_all()

    procs: list[subprocess.Popen[bytes]] = []
    threads: list[threading.Thread] = []
    try:
        for _ in range(children):
            procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            threads.append(threading.Thread(target=feed, args=(procs[-1],), daemon=True))
            threads[-1].start()
        for index in range(len(windows)):
            while True:
                with done:
                    if index in answers or -1 in answers:
                        break
                mine, window = take()
                if window is None:
                    with done:
                        done.wait_for(ready(index))
                    break
                pieces = vectorise_block(src, prob, window, classes, connectivity, uncertainty)
                with done:
                    answers[mine] = ("ok", pieces)
            with done:
                status, value = answers.pop(index) if index in answers else answers[-1]
            if status == "error":
                raise value  # type: ignore[misc]
            if status == "died":
                raise RuntimeError(f"a vectorising worker process ended with exit code {value}")
            yield value  # type: ignore[misc]
    finally:
        # Done, or given up (an error, Ctrl-C): either way no worker's work is needed now.
        stopping.set()
        for proc in procs:
            with suppress(OSError, ValueError):
                proc.stdin.close()  # type: ignore[union-attr]  # an idle worker ends
            proc.kill()
            proc.wait()
        for thread in threads:
            thread.join()


def vectorise_blocks(
    src: rasterio.io.DatasetReader,
    prob: rasterio.io.DatasetReader | None,
    windows: Sequence[Window],
    classes: Sequence[int] | None,
    connectivity: int,
    workers: int,
    gdal_options: dict[str, int] | None = None,
    uncertainty: rasterio.io.DatasetReader | None = None,
) -> Generator[tuple[Pieces, np.ndarray], None, None]:
    """:func:`vectorise_block` for each window, in order, on up to ``workers`` processes.

    :func:`rasterio.features.shapes` holds the GIL, so threads would take turns: this process
    and ``workers - 1`` worker processes (:func:`serve_blocks`, each opening the rasters by
    name) polygonise blocks at the same time. With one worker, one window, or no Python
    executable to start (an embedded interpreter), the blocks are polygonised here, one after
    another. Either way the results are the same.

    Parameters
    ----------
    src, prob : rasterio datasets
        The class mask and the probabilities (or None), opened by the caller.
    windows : sequence of Window
        The blocks.
    classes, connectivity :
        As :func:`vectorise_block`.
    workers : int
        Processes to use, this one included, at least 1.
    gdal_options : dict, optional
        GDAL settings (such as ``GDAL_CACHEMAX``) for the workers' reads; the caller's
        ``rasterio.Env`` does not reach them.
    uncertainty : rasterio dataset, optional
        As :func:`vectorise_block`, opened by the caller.

    Yields
    ------
    pieces, cut :
        As :func:`vectorise_block`, in the order of ``windows``.

    Raises
    ------
    InputError
        As :func:`vectorise_block`, from whichever process read the block.
    RuntimeError
        A worker process ended without answering (killed, out of memory).
    """
    workers = min(workers, len(windows))
    if workers <= 1 or not sys.executable:  # an embedded interpreter cannot start a worker
        for window in windows:
            yield vectorise_block(src, prob, window, classes, connectivity, uncertainty)
        return
    log.info("vectorising %d blocks on %d processes", len(windows), workers)
    yield from _in_workers(src, prob, windows, classes, connectivity, workers - 1,
                           gdal_options or {}, uncertainty)
