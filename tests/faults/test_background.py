"""Started in the background (SIGINT ignored) after Dagster mapped SIGTERM onto it: nothing hangs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import signal, sys
    # A background job of a non-interactive shell, after Dagster's capture_interrupts: both ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from neuroflux_lib.data.quality import compute_quality
    from neuroflux_lib.demo.generator import generate_demo_dataset

    summary = generate_demo_dataset(sys.argv[1], scale=0.03, image_size=64, workers=2)
    paths = sorted(str(p) for p in summary.out_dir.rglob("*.jpg"))
    table = compute_quality(paths, workers=2, min_images_per_worker=1)
    print(len(paths), len(table))
    """
)


def test_worker_pools_finish_when_the_parent_ignores_sigint_and_sigterm(tmp_path: Path) -> None:
    """The demo generator's and the quality statistics' pools end their workers without SIGTERM (which
    such workers inherit as ignored), so the call returns instead of waiting forever (it hung `make test`
    started with `&`)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the worker pools hung with SIGINT and SIGTERM ignored")
    assert done.returncode == 0, done.stderr[-2000:]
    images, rows = map(int, done.stdout.split())
    assert images == rows > 0
