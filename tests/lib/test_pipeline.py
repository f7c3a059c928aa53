"""The library's preprocessing end to end on generated demo data: subjects, exclusions, errors, summary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.pipeline import (
    detect_outliers,
    run_preprocess,
    scan_images,
    split_dataset,
    tables_summary,
)
from neuroflux_lib.demo.generator import FILENAME_REGEX, generate_demo_dataset, plan_dataset
from neuroflux_lib.errors import DataError
from tests.factories import SUMMARY_SECTIONS

BAD_SCALE, BAD_SIZE = 0.5, 48  # the smallest demo set with every kind of deliberately broken image


def config_for(data: Path, storage: Path, **overrides) -> DatasetConfig:
    values = {"image_size": 32, "num_workers": 1, "min_images_per_class": 3}
    return DatasetConfig(data_dir=str(data), storage_dir=str(storage), **{**values, **overrides})


def folder_per_subject_copy(flat: Path, out: Path) -> dict[str, str]:
    """`<CLASS>/<subject>/slice_NNN.jpg` with no subject id in the file name; {new path: flat path}."""
    mapping = {}
    for path in sorted(flat.rglob("*.jpg")):
        subject = FILENAME_REGEX.match(path.name)["subject"]
        folder = out / path.parent.name / subject
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"slice_{len(list(folder.iterdir())):03d}.jpg"
        shutil.copy(path, target)
        mapping[str(target)] = str(path)
    return mapping


def test_folder_per_subject_layout_gives_the_flat_layouts_subjects_and_leak_free_splits(
    demo_dataset, tmp_path
):
    """The reported failure: one folder per subject gave each slice its own subject (`slice_001`)."""
    mapping = folder_per_subject_copy(demo_dataset, tmp_path / "nested")
    flat = run_preprocess(config_for(demo_dataset, tmp_path / "s1"))
    nested = run_preprocess(config_for(tmp_path / "nested", tmp_path / "s2"))
    subjects = nested.images.assign(path=nested.images["path"].map(mapping)).set_index("path")["subject_id"]
    assert subjects.sort_index().equals(flat.images.set_index("path")["subject_id"].sort_index())
    assert set(nested.images["subject_source"]) == {"folder"}
    for result in (flat, nested):
        assert result.splits.groupby("subject_id")["split"].nunique().max() == 1
    assert (nested.splits["split"].value_counts() == flat.splits["split"].value_counts()).all()


@pytest.fixture(scope="module")
def bad_demo(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("bad_demo") / "data"
    generate_demo_dataset(out, scale=BAD_SCALE, seed=0, image_size=BAD_SIZE, workers=2)
    return out, plan_dataset(scale=BAD_SCALE, seed=0, image_size=BAD_SIZE)


def test_on_demo_data_exactly_the_deliberately_broken_images_are_excluded(bad_demo, tmp_path):
    data, specs = bad_demo
    planned = {str(data / s.rel_path): s.bad for s in specs if s.bad}
    assert set(planned.values()) == {"blank", "near_blank", "noise", "overexposed", "tiny", "truncated"}
    config = config_for(data, tmp_path)
    _, images = scan_images(config)
    flags, _ = detect_outliers(images, config)
    unreadable = set(images.loc[~images["readable"], "path"])
    excluded = set(flags.loc[flags["excluded"], "path"])
    assert excluded | unreadable == set(planned) and not excluded & unreadable
    bright = {str(data / s.rel_path) for s in specs if s.protocol == "bright" and not s.bad}
    kept = set(flags.loc[flags["kind"] == "outlier", "path"])
    assert kept and kept <= bright, "only the brighter protocol is far from the median, and it is kept"
    splits = split_dataset(images, flags, config)
    assert bright <= set(splits["path"])
    summary = tables_summary(images, flags, splits, splits.assign(augmented=False), config)
    assert f"Broken images (excluded, fixed rules): {len(excluded)} —" in summary
    assert f"Outliers (robust rule, threshold 3.5; kept, outlier_action keep): {len(kept)} —" in summary


def test_an_empty_class_stops_preprocessing_naming_the_class(demo_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    for path in (data / "EO").glob("*.jpg"):
        path.unlink()
    with pytest.raises(DataError, match=r"EO has 0 \(min_images_per_class 3\)"):
        run_preprocess(config_for(data, tmp_path / "storage"))


def test_too_few_images_stops_preprocessing_at_the_default_minimum(demo_dataset, tmp_path):
    with pytest.raises(DataError, match=r"IO has 7 \(min_images_per_class 10\)"):
        run_preprocess(config_for(demo_dataset, tmp_path, min_images_per_class=10))


def test_a_class_missing_from_a_split_stops_preprocessing(demo_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    io_files = sorted((data / "IO").glob("*.jpg"))
    for index, path in enumerate(io_files):  # every IO image becomes one subject's
        path.rename(path.with_name(f"neuroflux_001_S_0001_MR_x__br_raw_2019_{index}.jpg"))
    with pytest.raises(DataError, match=r"IO has no (val|test) images \(7 usable images from 1 subjects\)"):
        run_preprocess(config_for(data, tmp_path / "storage"))


def test_an_empty_or_missing_data_folder_says_so_in_one_line(tmp_path):
    (tmp_path / "data" / "notes").mkdir(parents=True)
    (tmp_path / "data" / "EO").mkdir()
    with pytest.raises(DataError, match=r"^no images in .*data: expected .* \(folders there: EO, notes\)$"):
        run_preprocess(config_for(tmp_path / "data", tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"\(folders there: none\)$"):
        run_preprocess(config_for(tmp_path / "empty", tmp_path))
    with pytest.raises(DataError, match="data folder not found"):
        run_preprocess(config_for(tmp_path / "absent", tmp_path))


def test_summary_from_the_asset_tables_shows_unknown_folders_subjects_and_exclusions(demo_dataset, tmp_path):
    """The CLI builds the summary from the stored tables, without the discovery object."""
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    shutil.copytree(data / "IO", data / "IO_old")
    config = config_for(data, tmp_path / "storage")
    result = run_preprocess(config)
    text = tables_summary(result.images, result.outliers, result.splits, result.balanced, config)
    for section in SUMMARY_SECTIONS:
        assert section in text
    assert f"Folders ignored (not in class_names): IO_old in {data}" in text
    n = len(result.images)
    assert f"subject_from auto): {n} files from the file name, 0 from a folder name, 0 with none" in text
    broken = result.outliers.loc[result.outliers["kind"] == "broken"]
    assert len(broken) == 1 and Path(broken["path"].iloc[0]).name in text
    counts = pd.Series(result.images["class_name"]).value_counts()
    cls = broken["class_name"].iloc[0]
    assert f"{cls} 1 ({1 / counts[cls]:.1%})" in text
