"""Shared fixtures: tiny images so the suite stays fast on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dataset from the real generator (scale 0.1, 48 px), shared by the session."""
    from neuroflux_lib.demo_data import generate_demo_dataset

    out = tmp_path_factory.mktemp("demo") / "data"
    generate_demo_dataset(out, scale=0.1, seed=0, image_size=48, workers=1)
    return out
