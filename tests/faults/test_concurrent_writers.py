"""Two writers of one model at once (a CLI run and a UI/daemon run share the storage folder): the second
waits or is refused in one line naming the first, and a `kill -9`ed holder never blocks the next run."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from neuroflux_lib.errors import BusyError
from neuroflux_lib.locks import hold, holder_of, lock_file
from tests.assets.test_cli import args, in_workspace, instance_at, materialized, workspace  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
LOCK = "model-neuroflux_cnn"
UI_RUN = "1a2b3c4d-0000-4000-8000-000000000000"  # a Dagster run id, as the UI's run would have

# Holds the lock as run argv[2] (waiting up to argv[3] s), says "held", and keeps it until a line arrives.
WRITER = textwrap.dedent(
    """
    import logging, sys
    from neuroflux_lib.locks import hold

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    storage, run_id, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    what = "training neuroflux_cnn"
    with hold(storage, "model-neuroflux_cnn", run_id=run_id, what=what, timeout_s=timeout):
        print("held", flush=True)
        sys.stdin.readline()
    """
)


class Writer:
    """A writer process; its output lines arrive on queues, so a test waits for a line, never sleeps."""

    def __init__(self, storage: Path, run_id: str, timeout_s: float = 0.0):
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(storage), run_id, str(timeout_s)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout, self.stderr = self._lines(self.process.stdout), self._lines(self.process.stderr)

    @staticmethod
    def _lines(stream: IO[str] | None) -> queue.Queue[str]:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in stream or ()], daemon=True).start()
        return lines

    @staticmethod
    def expect(lines: queue.Queue[str], text: str, timeout_s: float = 60.0) -> str:
        while True:
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout_s} s")
            if text in line:
                return line

    def release(self) -> int:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self.process.wait(timeout=60)


@pytest.fixture
def writers(tmp_path: Path) -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for writer in started:
        if writer.process.poll() is None:
            writer.process.kill()
        writer.process.wait()


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(tmp_path: Path, writers) -> None:
    first = Writer(tmp_path, UI_RUN)
    writers.append(first)
    Writer.expect(first.stdout, "held")
    with pytest.raises(BusyError) as refused, hold(tmp_path, LOCK, run_id="cli-run", what="training x"):
        pytest.fail("two writers hold the lock")
    message = str(refused.value)
    assert message.startswith(f"another run (id 1a2b3c4d, pid {first.process.pid}, started ")
    assert message.endswith(") is training neuroflux_cnn; wait or stop it") and "\n" not in message
    assert first.release() == 0
    with hold(tmp_path, LOCK, run_id="cli-run", what="training neuroflux_cnn"):
        pass  # free again once the holder is done


def test_a_waiting_writer_says_whom_it_waits_for_and_proceeds_once_released(tmp_path: Path, writers) -> None:
    with hold(tmp_path, LOCK, run_id=UI_RUN, what="evaluating neuroflux_cnn"):
        second = Writer(tmp_path, "cli-run", timeout_s=120)
        writers.append(second)
        waiting = Writer.expect(second.stderr, "waiting for it")
        assert f"another run (id 1a2b3c4d, pid {os.getpid()}, started " in waiting
        assert "is evaluating neuroflux_cnn: waiting for it, at most 120 s" in waiting
        assert second.stdout.empty()  # still waiting while the lock is held
    Writer.expect(second.stdout, "held")
    assert second.release() == 0


def test_a_writer_that_waits_past_its_timeout_is_refused(tmp_path: Path) -> None:
    refused = r"is tuning neuroflux_cnn \(waited 0.2 s\); wait or stop it$"
    with (
        hold(tmp_path, LOCK, run_id=UI_RUN, what="tuning neuroflux_cnn"),
        pytest.raises(BusyError, match=refused),
        hold(tmp_path, LOCK, run_id="cli-run", what="tuning neuroflux_cnn", timeout_s=0.2),
    ):
        pytest.fail("two writers hold the lock")


def test_a_killed_holder_frees_the_lock_at_once_and_its_details_are_overwritten(
    tmp_path: Path, writers
) -> None:
    first = Writer(tmp_path, UI_RUN)
    writers.append(first)
    Writer.expect(first.stdout, "held")
    os.kill(first.process.pid, signal.SIGKILL)
    assert first.process.wait(timeout=60) == -signal.SIGKILL
    assert holder_of(lock_file(tmp_path, LOCK)).run_id == UI_RUN  # the dead holder's details stay
    with hold(tmp_path, LOCK, run_id="next-run", what="training neuroflux_cnn") as me:  # timeout 0
        assert holder_of(lock_file(tmp_path, LOCK)) == me


# --- end to end: the `neuroflux` CLI while a UI run holds the model -------------------------------------


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.usefixtures("in_workspace")  # the CLI tests' config files (tiny model), run from their folder
def test_cli_train_is_refused_while_another_run_writes_the_model_and_leaves_its_artifact_whole(
    capsys, monkeypatch
) -> None:
    from neuroflux_assets.cli import main
    from neuroflux_assets.locking import LOCK_TIMEOUT_ENV
    from neuroflux_lib.serving.artifacts import load_artifact

    store = Path.cwd() / "store"
    assert main(["train", *args()]) == 0  # the model the other run is replacing
    artifact = store / "assets" / "trained_model" / "neuroflux_cnn"
    before = files_of(artifact), files_of(store / "checkpoints" / "neuroflux_cnn")
    capsys.readouterr()

    with hold(store, LOCK, run_id=UI_RUN, what="training neuroflux_cnn"):  # the UI's run, in training
        assert main(["train", *args()]) == 2
        refused = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
        assert len(refused) == 1, refused  # one line, naming the holder; the later steps did not run
        assert re.fullmatch(
            rf"step tuned_hyperparameters failed: another run \(id 1a2b3c4d, pid {os.getpid()}, "
            r"started \d\d:\d\d\) is training neuroflux_cnn; wait or stop it",
            refused[0],
        ), refused[0]
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0.5")  # the CLI waits when asked to, then gives up
        assert main(["train", *args()]) == 2
        assert "is training neuroflux_cnn (waited 0.5 s); wait or stop it" in capsys.readouterr().err

    assert (files_of(artifact), files_of(store / "checkpoints" / "neuroflux_cnn")) == before
    model, meta = load_artifact(artifact)
    assert meta.training["epochs_run"] == 10 and model is not None
    assert materialized(instance_at(Path.cwd()), "trained_model", "neuroflux_cnn") == 1
