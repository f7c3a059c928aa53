"""Tiny factories for tests: images, and a report.json as older code wrote it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# What the preprocessing summary shows, whether printed by the CLI or built from the Dagster assets.
SUMMARY_SECTIONS = (
    "Images per class",
    "Subject ids",
    "Unreadable files",
    "Broken images",
    "Outliers",
    "Split sizes",
    "augmented images added",
)


#: A report.json as `evaluate_artifact` wrote it before the report was typed (a demo run's, verbatim).
UNTYPED_REPORT = Path(__file__).parent / "data" / "untyped_report.json"


def untyped_report(**changes: object) -> dict:
    """That report.json as a dict, with the top-level keys in `changes` replaced."""
    return json.loads(UNTYPED_REPORT.read_text()) | changes


def write_gray(path: Path, array: np.ndarray, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path, **save_kwargs)
    return path


def blob_image(size: int = 48, seed: int = 0, radius: float = 12.0) -> np.ndarray:
    """A bright disc on a dark background with noise: brain-like enough for statistics."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cx, cy = size / 2 + rng.uniform(-4, 4, 2)
    disc = 150.0 * (((xx - cx) ** 2 + (yy - cy) ** 2) < radius**2)
    texture = 40 * np.sin(xx / rng.uniform(2, 6)) * np.cos(yy / rng.uniform(2, 6))
    return np.clip(disc + texture * (disc > 0) + rng.normal(0, 8, (size, size)) + 10, 0, 255).astype(np.uint8)


def bright_image(size: int = 48, seed: int = 0) -> np.ndarray:
    """Another protocol, legitimately: brighter, larger disc, no background (not saturated)."""
    return np.clip(blob_image(size, seed=seed, radius=19) * 1.1 + 25, 0, 255).astype(np.uint8)


def broken_images(size: int = 48, seed: int = 0) -> dict[str, np.ndarray]:
    """One image per broken-image rule, keyed by the rule that must catch it."""
    rng = np.random.default_rng(seed)
    saturated = blob_image(size, seed=seed, radius=size / 3)
    saturated[saturated > 60] = 255
    return {
        "constant": np.full((size, size), 128, np.uint8),
        "near_blank": np.clip(rng.normal(3.0, 1.5, (size, size)), 0, 255).astype(np.uint8),
        "noise": rng.integers(0, 256, (size, size), dtype=np.uint8),
        "saturated": saturated,
        "tiny": blob_image(16, seed=seed, radius=5),
    }
