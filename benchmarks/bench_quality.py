"""Quality-statistics throughput: our parallel streaming pass vs the original's per-image loop.

Usage: python benchmarks/bench_quality.py [--data DIR] [--workers N]
Without --data, the full-size demo set (scale 1.0, 256 px) is generated into a temporary folder.
Ours computes 7 statistics plus a perceptual hash per image; the baseline only the original four.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX
from neuroflux_lib.data.discovery import discover_images
from neuroflux_lib.data.quality import compute_quality
from neuroflux_lib.demo.generator import generate_demo_dataset


def original_style(paths: list[str]) -> list[dict]:
    """The original project's way: open with PIL, numpy statistics, one file at a time."""
    rows = []
    for path in paths:
        try:
            image = np.array(Image.open(path).convert("L"), dtype=np.float64)
        except Exception:
            continue
        hist, _ = np.histogram(image, bins=256, range=(0, 256))
        p = hist / hist.sum()
        p = p[p > 0]
        mean, std = image.mean(), image.std()
        rows.append(
            {
                "intensity": mean,
                "contrast": std,
                "snr": mean / std if std else 0.0,
                "entropy": -(p * np.log2(p)).sum(),
            }
        )
    return rows


def timed(label: str, func, n: int) -> float:
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"{label:<40} {seconds:7.2f} s  {n / seconds:8.1f} images/s")
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--scale", type=float, default=1.0, help="demo set size (1.0 = 1,296 images)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            summary = generate_demo_dataset(data, scale=args.scale, seed=0)
            print(f"generated demo set: {sum(summary.counts.values())} images in {summary.seconds:.1f} s")
        paths = discover_images(data, DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX).manifest["path"].tolist()
        print(f"{len(paths)} images, {args.workers} workers, {os.cpu_count()} cores")
        compute_quality(paths[:16], workers=1)  # warm imports and the page cache
        original_style(paths[:16])
        baseline = timed("original loop (4 stats, 1 process)", lambda: original_style(paths), len(paths))
        ours = timed(
            f"neuroflux compute_quality ({args.workers} workers)",
            lambda: compute_quality(paths, workers=args.workers),
            len(paths),
        )
        serial = timed(
            "neuroflux compute_quality (1 worker)", lambda: compute_quality(paths, workers=1), len(paths)
        )
        print(f"ratio ours/original: {ours / baseline:.2f}x  (1 worker: {serial / baseline:.2f}x)")


if __name__ == "__main__":
    main()
