"""Find the images of a `data/<CLASS>/**` tree and describe each file once.

The class is the top folder. Folders that are not configured classes are reported instead of being
silently used or dropped; every common image extension is found in any case (the original only saw
`*.jpg`).

The subject id is searched in the path below the class folder, not only in the file name: a dataset
kept as `EO/002_S_1155/slice_001.jpg` must group that subject's slices, or one subject lands in train
and test. A file with no match becomes a subject of its own (its path below the class folder) and is
counted (`subject_source` "none"), because such files make the split's leak-freedom unverifiable.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal

import pandas as pd

from neuroflux_lib.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
MANIFEST_COLUMNS = ["path", "class_name", "subject_id", "subject_source", "size_bytes", "sha256"]
SubjectFrom = Literal["auto", "filename", "folder"]
NO_SUBJECT = "none"


@dataclass(frozen=True)
class Discovery:
    """The manifest plus what was found but not used, so a user can see why."""

    manifest: pd.DataFrame
    unknown_folders: list[str] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)


def subject_id(
    relative: str | PurePath, pattern: re.Pattern[str], subject_from: SubjectFrom = "auto"
) -> tuple[str, str]:
    """(subject id, where it was found) for a path relative to its class folder.

    `auto` searches the file name, then the folders from the nearest up; `filename` and `folder` search
    only there. Without a match the id is the relative path without its suffix (one file = one subject)
    and the source is "none".
    """
    relative = PurePath(relative)
    places = {
        "filename": [("filename", relative.name)],
        "folder": [("folder", part) for part in reversed(relative.parent.parts)],
    }
    order = ["filename", "folder"] if subject_from == "auto" else [subject_from]
    for source, text in (place for key in order for place in places[key]):
        match = pattern.search(text)
        if match:
            return match.group(0), source
    return relative.with_suffix("").as_posix(), NO_SUBJECT


def no_subject_problem(manifest: pd.DataFrame, max_fraction: float) -> str | None:
    """Why the subject ids cannot be trusted (too many files without one), else None."""
    missing = int((manifest["subject_source"] == NO_SUBJECT).sum()) if len(manifest) else 0
    fraction = missing / len(manifest) if len(manifest) else 0.0
    if fraction <= max_fraction:
        return None
    example = manifest.loc[manifest["subject_source"] == NO_SUBJECT, "path"].iloc[0]
    return (
        f"{missing} of {len(manifest)} files ({fraction:.0%}) have no subject id (e.g. {example}), more than "
        f"max_no_subject_fraction {max_fraction:.0%}: each counts as its own subject, so one subject's "
        "slices may sit in two splits. Set subject_regex / subject_from (auto, filename, folder) in the "
        "dataset config so ids are found, or raise max_no_subject_fraction if the files really are "
        "one subject each"
    )


def class_folders(data_dir: str | Path, class_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(folders that are not classes, classes without a folder) of `data_dir`."""
    data_dir = Path(data_dir)
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [name for name in folders if name not in class_names], [
        name for name in class_names if name not in folders
    ]


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def list_image_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
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
    subject_from: SubjectFrom = "auto",
) -> Discovery:
    """Walk `data_dir` and return one manifest row per image file, sorted by path.

    Raises DataError when `data_dir` does not exist, so a wrong path is not mistaken for an empty
    dataset. Subject ids come from the path below the class folder (see `subject_id`).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir.resolve()} (set data_dir in the dataset config)")
    pattern = re.compile(subject_regex)
    unknown, missing = class_folders(data_dir, class_names)

    rows: list[tuple[str, str]] = []
    ignored: list[str] = []
    for class_name in class_names:
        if class_name in missing:
            continue
        images, other = list_image_files(data_dir / class_name)
        rows.extend((str(p), class_name) for p in images)
        ignored.extend(str(p) for p in other)

    paths = [path for path, _ in rows]
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        digests = list(pool.map(sha256_file, paths))
    subjects = [subject_id(Path(p).relative_to(data_dir / c), pattern, subject_from) for p, c in rows]
    manifest = pd.DataFrame(
        {
            "path": paths,
            "class_name": [c for _, c in rows],
            "subject_id": [s for s, _ in subjects],
            "subject_source": [source for _, source in subjects],
            "size_bytes": [os.path.getsize(p) for p in paths],
            "sha256": digests,
        },
        columns=MANIFEST_COLUMNS,
    )
    manifest = manifest.sort_values("path", ignore_index=True)
    return Discovery(manifest, unknown, missing, ignored)
