"""Decode-once image cache: every image is decoded and resized once, then memory-mapped.

Entries are content-addressed (`<root>/<size>/<sha256[:2]>/<sha256>.npy`), so a renamed file reuses
its entry and a changed file gets a new one; an epoch never decodes a JPEG again. Identical files share
one entry: pending writes are keyed by content, each write goes to a uniquely named temporary file and
is moved into place atomically, so two writers of the same entry (threads, or processes sharing a
cache) both succeed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from neuroflux_lib.data.discovery import sha256_file
from neuroflux_lib.data.imageio import load_grayscale_or_raise
from neuroflux_lib.data.transforms import resize_uint8


def entry_path(root: Path, sha256: str, image_size: int) -> Path:
    return root / str(image_size) / sha256[:2] / f"{sha256}.npy"


def _write_entry(job: tuple[str, str, str, int]) -> str:
    path, sha256, root, image_size = job
    target = entry_path(Path(root), sha256, image_size)
    if target.exists():  # another process sharing the cache wrote it meanwhile
        return str(target)
    pixels = resize_uint8(load_grayscale_or_raise(path), image_size)[0].numpy()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.stem}.{uuid.uuid4().hex}.tmp.npy")
    np.save(tmp, pixels)
    # Atomic: a killed run never leaves a half-written entry, and an entry another writer has just put
    # there is replaced by identical bytes.
    os.replace(tmp, target)
    return str(target)


def cached_arrays(
    paths: Sequence[str],
    image_size: int,
    root: str | Path,
    sha256s: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """(N, S, S) uint8 stack for `paths`, decoding only the images not cached yet."""
    root = Path(root)
    hashes = list(sha256s) if sha256s is not None else [sha256_file(p) for p in paths]
    # One pending write per content hash: identical files (exact duplicates) share an entry.
    missing = [
        (str(p), h, str(root), image_size)
        for h, p in dict(zip(hashes, paths, strict=True)).items()
        if not entry_path(root, h, image_size).exists()
    ]
    if missing:
        # Threads, not processes: decoding and resizing release the GIL, and a spawned pool would pay
        # seconds of torch imports per worker.
        with ThreadPoolExecutor(max(1, workers)) as pool:
            done = pool.map(_write_entry, missing)
            list(tqdm(done, total=len(missing), desc=f"caching {image_size}px", disable=not progress))
    stack = np.empty((len(paths), image_size, image_size), dtype=np.uint8)
    for i, sha in enumerate(hashes):
        stack[i] = np.load(entry_path(root, sha, image_size), mmap_mode="r")
    return stack
