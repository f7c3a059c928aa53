import hashlib
import re

import numpy as np
import pytest

from neuroflux_lib.data.discovery import discover_images, subject_id
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
    assert row["subject_id"] == "002_S_1155"
    assert row["size_bytes"] == path.stat().st_size
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_subject_falls_back_to_stem():
    assert subject_id("/x/EO/scan_without_id.png", re.compile(REGEX)) == "scan_without_id"
    assert subject_id("/x/EO/p_123_S_4567_.png", re.compile(REGEX)) == "123_S_4567"


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        discover_images(tmp_path / "absent", ["PTE"], REGEX)


def test_empty_class_folder_gives_empty_manifest(tmp_path):
    (tmp_path / "PTE").mkdir()
    found = discover_images(tmp_path, ["PTE"], REGEX)
    assert found.manifest.empty and list(found.manifest.columns)[:2] == ["path", "class_name"]
    assert np.issubdtype(found.manifest["size_bytes"].dtype, np.number) or found.manifest.empty
