"""Quality-statistics throughput: our pass vs the original's per-image loop, at the real dataset's size.

Usage: python benchmarks/bench_quality.py [--data DIR] [--scale S] [--repeats N]
Without --data, the demo set (scale 1.0 = 1,296 images of 256 px, like the real data) is generated into a
temporary folder. Ours computes 7 statistics plus a perceptual hash per image through the hardened decoder;
the original only its four. Both run in this process, interleaved, `--repeats` times; medians are reported.
At 1,296 images `compute_quality` stays in one process (a spawned pool costs about a second to start), so
the ratio measures per-image work; the forced 2-worker pool is timed once to show what it would cost.

glibc hands the original's 512 KB float64 temporaries back to the kernel after every image in a fresh
process (heap trimming), so it pays about 470 page faults per image and runs twice as slow as it does in a
process whose heap is already grown (as after generating the demo set). The allocator is therefore pinned
(no trimming, no mmap for arrays under 32 MB) before timing: the original's best case, the conservative
comparison. `--default-malloc` times the fresh-process state instead.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX
from neuroflux_lib.data.discovery import discover_images
from neuroflux_lib.data.quality import compute_quality
from neuroflux_lib.demo.generator import generate_demo_dataset

BENCH_DIR = str(Path(__file__).resolve().parent)
if BENCH_DIR not in sys.path:  # `python benchmarks/bench_quality.py` has it already as sys.path[0]
    sys.path.insert(0, BENCH_DIR)
from results import record  # noqa: E402


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


def pin_allocator() -> bool:
    """Stop glibc trimming the heap and mmapping large arrays, so no loop pays page faults per image."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to pin
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 32 << 20))


def images_per_second(func: Callable[[], object], n: int) -> tuple[float, float]:
    """Wall-clock and CPU-time rates; CPU time is the steadier one on a shared machine (one process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} img/s  (min {min(values):.1f}, max {max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="demo set size (1.0 = 1,296 images)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="for the forced-pool run")
    parser.add_argument("--default-malloc", action="store_true", help="do not pin the allocator")
    args = parser.parse_args()
    pinned = False if args.default_malloc else pin_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            summary = generate_demo_dataset(data, scale=args.scale, seed=0)
            print(f"generated demo set: {sum(summary.counts.values())} images in {summary.seconds:.1f} s")
        paths = discover_images(data, DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX).manifest["path"].tolist()
        n = len(paths)
        allocator = "pinned (no heap trimming)" if pinned else "default"
        print(
            f"{n} images, {os.cpu_count()} cores, {args.repeats} interleaved repeats, allocator {allocator}"
        )
        compute_quality(paths[:16], workers=1)  # warm imports and the page cache
        original_style(paths)
        runs: dict[str, list[tuple[float, float]]] = {"original": [], "ours": []}
        for _ in range(args.repeats):
            runs["original"].append(images_per_second(lambda: original_style(paths), n))
            runs["ours"].append(images_per_second(lambda: compute_quality(paths), n))
        original, original_cpu = (list(column) for column in zip(*runs["original"], strict=True))
        ours, ours_cpu = (list(column) for column in zip(*runs["ours"], strict=True))
        ratios = [o / b for o, b in zip(ours, original, strict=True)]
        cpu_ratios = [o / b for o, b in zip(ours_cpu, original_cpu, strict=True)]
        print(f"original loop (4 stats, 1 process)    wall {spread(original)}")
        print(f"                                      CPU  {spread(original_cpu)}")
        print(f"neuroflux compute_quality (default)   wall {spread(ours)}")
        print(f"                                      CPU  {spread(ours_cpu)}")
        pool, _ = images_per_second(
            lambda: compute_quality(paths, workers=args.workers, min_images_per_worker=1), n
        )
        print(f"neuroflux, {args.workers}-worker pool forced, 1 run  wall {pool:7.1f} img/s (with start-up)")
        print(
            f"ratio ours/original per repeat, wall: median {statistics.median(ratios):.2f}x "
            f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x); CPU time: median "
            f"{statistics.median(cpu_ratios):.2f}x (min {min(cpu_ratios):.2f}x, max {max(cpu_ratios):.2f}x)"
        )
        record(
            f"quality statistics, {n:,} images",
            round(statistics.median(original), 1),
            round(statistics.median(ours), 1),
            "img/s",
            target=">= 1.5",
            note=f"allocator {allocator}; median of {args.repeats} interleaved repeats; per-repeat ratio "
            f"{min(ratios):.2f}-{max(ratios):.2f}x (CPU time {statistics.median(cpu_ratios):.2f}x)",
        )


if __name__ == "__main__":
    main()
