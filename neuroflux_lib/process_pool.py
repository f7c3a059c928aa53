"""Worker processes that end when asked, whatever signal dispositions their parent had.

A process started in the background of a non-interactive shell (CI, `nohup`, `&`) starts with SIGINT
ignored, and Dagster maps SIGTERM to SIGINT's handler during a run, so both may be ignored; ignored
dispositions survive `exec`, so spawned workers would ignore the SIGTERM that ends them, and a pool
terminated that way waits for them forever. These pools end their workers with a sentinel (never a
signal), and each worker restores the default dispositions first, so a broken pool's SIGTERM works too.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


def restore_default_signals() -> None:
    """SIGINT raises KeyboardInterrupt and SIGTERM ends the process again, as in a foreground shell."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    restore_default_signals()
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A process pool of spawned (not forked: a fork of a process running OpenMP or torch threads can
    deadlock) workers with default signal dispositions; use it in a `with` block."""
    return ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(initializer, initargs),
    )
