"""Find the images of a `data/<CLASS>/**` tree and describe each file once.

The class is the top folder. Folders that are not configured classes are reported instead of being
silently used or dropped; every common image extension is found in any case (the original only saw
`*.jpg`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neuroflux_lib.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
MANIFEST_COLUMNS = ["path", "class_name", "subject_id", "size_bytes", "sha256"]


@dataclass(frozen=True)
class Discovery:
    """The manifest plus what was found but not used, so a user can see why."""

    manifest: pd.DataFrame
    unknown_folders: list[str] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)


def subject_id(path: str | Path, pattern: re.Pattern[str]) -> str:
    """The subject id in the file name, else the file stem (one image = one subject)."""
    name = Path(path).name
    match = pattern.search(name)
    return match.group(0) if match else Path(name).stem


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _list_class_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
    images, ignored = [], []
    for root, dirs, files in os.walk(class_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            target = images if Path(name).suffix.lower() in IMAGE_EXTENSIONS else ignored
            target.append(Path(root) / name)
    return images, ignored


def discover_images(
    data_dir: str | Path,
    class_names: Sequence[str],
    subject_regex: str,
    workers: int | None = None,
) -> Discovery:
    """Walk `data_dir` and return one manifest row per image file, sorted by path.

    Raises FileNotFoundError when `data_dir` does not exist, so a wrong path is not mistaken for an
    empty dataset.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir.resolve()} (set data_dir in the dataset config)")
    pattern = re.compile(subject_regex)
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [name for name in folders if name not in class_names]
    missing = [name for name in class_names if name not in folders]

    rows: list[tuple[str, str]] = []
    ignored: list[str] = []
    for class_name in class_names:
        if class_name not in folders:
            continue
        images, other = _list_class_files(data_dir / class_name)
        rows.extend((str(p), class_name) for p in images)
        ignored.extend(str(p) for p in other)

    paths = [path for path, _ in rows]
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        digests = list(pool.map(sha256_file, paths))
    manifest = pd.DataFrame(
        {
            "path": paths,
            "class_name": [c for _, c in rows],
            "subject_id": [subject_id(p, pattern) for p in paths],
            "size_bytes": [os.path.getsize(p) for p in paths],
            "sha256": digests,
        },
        columns=MANIFEST_COLUMNS,
    )
    manifest = manifest.sort_values("path", ignore_index=True)
    return Discovery(manifest, unknown, missing, ignored)
