"""The data assets in Dagster: blocking data checks stop the graph, and the UI shows what was excluded."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.dagster_helpers import table_column, tiny_defs, tiny_run_config
from tests.factories import blob_image, write_gray

DATA_KEYS = [dg.AssetKey(k) for k in ("raw_images", "image_quality", "outliers", "dataset_splits")]
CLASSES = ("PTE", "LO", "EO", "IPTE", "IO")


def materialize_data(data: Path, storage: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return (
        tiny_defs(storage)
        .resolve_job_def("full_pipeline")
        .execute_in_process(
            run_config=tiny_run_config(data, storage),
            instance=instance,
            asset_selection=DATA_KEYS,
            raise_on_error=False,
        )
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_files_without_subject_ids_fail_a_blocking_check_that_names_the_settings(tmp_path):
    for cls in CLASSES:
        for k in range(4):
            write_gray(tmp_path / "data" / cls / f"scan_{k}.png", blob_image(seed=k))
    with dg.instance_for_test() as instance:
        result = materialize_data(tmp_path / "data", tmp_path / "storage", instance)
    check = checks(result)["subject_ids_found"]
    assert not check.passed and check.blocking
    problem = check.metadata["problem"].value
    assert "20 of 20 files (100%) have no subject id" in problem and "subject_from" in problem
    assert materialized(result) == {"raw_images"}, "nothing downstream of a failed blocking check"


def test_an_empty_class_folder_fails_blocking_checks_naming_the_class(demo_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    for path in (data / "EO").glob("*.jpg"):
        path.unlink()
    with dg.instance_for_test() as instance:
        result = materialize_data(data, tmp_path / "storage", instance)
    found = checks(result)
    assert not found["all_classes_present"].passed and found["all_classes_present"].blocking
    assert "EO: 0 readable images" in found["min_images_per_class"].metadata["below_minimum"].value
    assert "dataset_splits" not in materialized(result)


@pytest.fixture(scope="module")
def data_run(demo_dataset, tmp_path_factory):
    storage = tmp_path_factory.mktemp("data_assets")
    with dg.instance_for_test() as instance:
        result = materialize_data(demo_dataset, storage, instance)
        metadata = {
            key.to_user_string(): {
                k: v.value
                for k, v in instance.get_latest_materialization_event(
                    key
                ).asset_materialization.metadata.items()
            }
            for key in DATA_KEYS
        }
    return result, metadata, storage / "assets"


def test_broken_images_are_excluded_and_outliers_kept_and_the_ui_says_so(data_run):
    result, metadata, base = data_run
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    flags = pd.read_parquet(base / "outliers.parquet")
    splits = pd.read_parquet(base / "dataset_splits.parquet")
    broken = flags.loc[flags["kind"] == "broken"]
    assert len(broken) == 1 and broken["excluded"].all() and not set(broken["path"]) & set(splits["path"])
    assert set(flags.loc[flags["kind"] == "outlier", "path"]) <= set(splits["path"])
    shown = metadata["outliers"]
    assert shown["broken_excluded"] == 1 and shown["outlier_action"] == "keep"
    assert sum(table_column(shown["per_class"], "broken")) == 1  # a table the UI renders, one row a class
    assert set(table_column(shown["per_class"], "class")) == set(CLASSES)
    assert "data:image/png;base64," in shown["broken_gallery"]
    assert metadata["dataset_splits"]["excluded_images"] == 1
    raw = metadata["raw_images"]
    assert raw["files_without_subject_id"] == 0 and "filename" in table_column(
        raw["subject_ids_from"], "subject id from"
    )


def test_every_table_asset_shows_its_stored_columns_and_their_types(data_run):
    _result, metadata, base = data_run
    for key in DATA_KEYS:
        name = key.to_user_string()
        columns = metadata[name]["dagster/column_schema"].columns
        assert [c.name for c in columns] == list(pd.read_parquet(base / f"{name}.parquet").columns), name
    types = {c.name: c.type for c in metadata["raw_images"]["dagster/column_schema"].columns}
    assert types["path"] == "string" and types["size_bytes"] == "int" and types["dup_group"] == "int"
