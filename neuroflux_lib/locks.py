"""One writer at a time per model (and for the production model) among the processes sharing a storage
folder: `hold(storage_dir, name, ...)`.

Why a kernel file lock (`fcntl.flock` on `<storage_dir>/locks/<name>.lock`): the CLI runs in process and
never passes through the Dagster run queue, so without it a CLI run and a UI, schedule or sensor run could
write the same checkpoints, Optuna study and asset values at once. The kernel drops the lock when its
process ends, however it ends (`kill -9` too), so a crashed run never blocks the next one: the lock file
stays, with the last holder's details in it, and the next holder overwrites them.

Limits: flock is reliable on a local file system; processes on different machines sharing the folder over
NFS are not reliably excluded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from neuroflux_lib.errors import BusyError
from neuroflux_lib.paths import StoragePaths

log = logging.getLogger(__name__)

#: How often a waiting writer tries the lock again (seconds).
POLL_S = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the run id finds the run (UI, `neuroflux runs`); pid and host, the process."""

    run_id: str
    what: str  # what the holder is doing, e.g. "training neuroflux_cnn"
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    since: float = field(default_factory=time.time)

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.since)
        when = started.strftime("%H:%M" if started.date() == datetime.now().date() else "%Y-%m-%d %H:%M")
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"another run (id {self.run_id[:8]}, pid {self.pid}{where}, started {when}) is {self.what}"


def lock_file(storage_dir: str | Path, name: str) -> Path:
    return StoragePaths(storage_dir).locks / f"{name}.lock"


def holder_of(path: Path) -> Holder | None:
    """The details a lock file holds; None while a new holder is writing them (or the file is foreign)."""
    try:
        return Holder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def hold(
    storage_dir: str | Path, name: str, *, run_id: str, what: str, timeout_s: float = 0.0
) -> Iterator[Holder]:
    """Hold the lock `name` of `storage_dir` for the block, recording who holds it in the lock file.

    When another process holds it: wait up to `timeout_s` (0: not at all), logging once per holder whom
    it waits for, then raise `BusyError`, one line naming the holder.
    """
    path = lock_file(storage_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout_s)
        holder = Holder(run_id, what)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        yield holder
    finally:
        os.close(fd)  # releases the lock (as the kernel does when the process dies)


def _acquire(fd: int, path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    announced: Holder | None = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = holder_of(path)
        busy = holder.describe() if holder else f"another run holds {path}"
        left = deadline - time.monotonic()
        if left <= 0:
            waited = f" (waited {timeout_s:g} s)" if timeout_s > 0 else ""
            raise BusyError(f"{busy}{waited}; wait or stop it")
        if holder is not None and holder != announced:
            log.warning(f"{busy}: waiting for it, at most {timeout_s:g} s")
            announced = holder
        time.sleep(min(POLL_S, left))
