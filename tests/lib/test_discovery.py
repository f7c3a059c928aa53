import hashlib
import re

import numpy as np
import pytest

from neuroflux_lib.data.discovery import NO_SUBJECT, discover_images, no_subject_problem, subject_id
from neuroflux_lib.errors import DataError
from tests.factories import blob_image, write_gray

REGEX = r"\d{3}_S_\d{4}"


def test_finds_every_extension_in_any_case_and_reports_the_rest(tmp_path):
    image = blob_image()
    names = ["a_002_S_0001.jpg", "b_002_S_0002.JPEG", "c.png", "d.BMP", "e.tif", "f.TIFF"]
    for name in names:
        write_gray(tmp_path / "PTE" / "nested" / name, image)
    (tmp_path / "PTE" / "notes.txt").write_text("not an image")
    write_gray(tmp_path / "Unknown" / "x.jpg", image)

    found = discover_images(tmp_path, ["PTE", "LO"], REGEX)

    assert sorted(p.split("/")[-1] for p in found.manifest["path"]) == sorted(names)
    assert set(found.manifest["class_name"]) == {"PTE"}
    assert found.unknown_folders == ["Unknown"]
    assert found.missing_classes == ["LO"]
    assert [p.split("/")[-1] for p in found.ignored_files] == ["notes.txt"]


def test_record_fields(tmp_path):
    path = write_gray(tmp_path / "LO" / "neuroflux_002_S_1155_MR_x_I1.jpg", blob_image())
    row = discover_images(tmp_path, ["LO"], REGEX).manifest.iloc[0]
    assert row["subject_id"] == "002_S_1155" and row["subject_source"] == "filename"
    assert row["size_bytes"] == path.stat().st_size
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_subject_falls_back_to_the_relative_path_and_says_so():
    pattern = re.compile(REGEX)
    assert subject_id("scan_without_id.png", pattern) == ("scan_without_id", NO_SUBJECT)
    assert subject_id("p_123_S_4567_.png", pattern) == ("123_S_4567", "filename")
    # Two subjects' "slice_001" must not merge into one subject.
    assert subject_id("a/slice_001.jpg", pattern) == ("a/slice_001", NO_SUBJECT)


def test_subject_from_folder_file_name_first_nearest_folder_next():
    pattern = re.compile(REGEX)
    assert subject_id("002_S_1155/slice_001.jpg", pattern) == ("002_S_1155", "folder")
    assert subject_id("002_S_1155/x/slice_001.jpg", pattern) == ("002_S_1155", "folder")
    assert subject_id("site/002_S_1155/003_S_0001/s.jpg", pattern) == ("003_S_0001", "folder")
    assert subject_id("002_S_1155/n_009_S_0009.jpg", pattern) == ("009_S_0009", "filename")
    assert subject_id("002_S_1155/n_009_S_0009.jpg", pattern, "folder") == ("002_S_1155", "folder")
    assert subject_id("002_S_1155/slice_001.jpg", pattern, "filename")[1] == NO_SUBJECT
    # A folder name that does not follow the id scheme names the subject with a catch-all regex.
    assert subject_id("patient_A/slice_1.jpg", re.compile(".+"), "folder") == ("patient_A", "folder")


def test_folder_per_subject_layout_groups_slices_by_subject(tmp_path):
    """The reported failure: `EO/002_S_1155/slice_001.jpg` got subject `slice_001`."""
    for subject in ("002_S_1155", "003_S_4288"):
        for k in range(3):
            write_gray(tmp_path / "EO" / subject / f"slice_{k:03d}.jpg", blob_image(seed=k))
    manifest = discover_images(tmp_path, ["EO"], REGEX).manifest
    assert manifest.groupby("subject_id").size().to_dict() == {"002_S_1155": 3, "003_S_4288": 3}
    assert set(manifest["subject_source"]) == {"folder"}
    assert no_subject_problem(manifest, 0.05) is None


def test_too_many_files_without_subject_is_a_problem_naming_the_settings(tmp_path):
    for k in range(4):
        write_gray(tmp_path / "EO" / f"neuroflux_002_S_000{k}_MR.jpg", blob_image(seed=k))
    write_gray(tmp_path / "EO" / "scan.jpg", blob_image())
    manifest = discover_images(tmp_path, ["EO"], REGEX).manifest
    assert (manifest["subject_source"] == NO_SUBJECT).sum() == 1
    problem = no_subject_problem(manifest, 0.05)
    assert "1 of 5 files (20%)" in problem and "subject_from" in problem and "subject_regex" in problem
    assert no_subject_problem(manifest, 0.2) is None


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        discover_images(tmp_path / "absent", ["PTE"], REGEX)


def test_empty_class_folder_gives_empty_manifest(tmp_path):
    (tmp_path / "PTE").mkdir()
    found = discover_images(tmp_path, ["PTE"], REGEX)
    assert found.manifest.empty and list(found.manifest.columns)[:2] == ["path", "class_name"]
    assert np.issubdtype(found.manifest["size_bytes"].dtype, np.number) or found.manifest.empty
