"""Scoring new scans through Dagster: the sensor adds a partition per batch folder, the asset scores it
with the production model and flags what it cannot trust, the drift check warns on a shifted batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neuroflux_assets.cli import main
from neuroflux_assets.cli.runner import materialize_models
from neuroflux_assets.defs.sensors import new_incoming_batches
from neuroflux_assets.resources import DatasetResource
from tests.dagster_helpers import table_column, tiny_defs, tiny_run_config
from tests.factories import broken_images, write_gray

REPO = Path(__file__).resolve().parents[2]
MODEL = "neuroflux_cnn"  # learns in its tiny epochs (TINY_LEARNER), so it is promoted
CHECK = "no_drift_from_training"


def dataset_settings(demo_dataset: Path, root: Path) -> dict:
    return tiny_run_config(demo_dataset, root / "store")["resources"]["dataset"]["config"] | {
        "incoming_dir": str(root / "incoming")
    }


@pytest.fixture(scope="module")
def scored(demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """A promoted tiny model in an instance under `<root>/store`, two batch folders made of validation
    images (one as they are plus a broken scan, one brightened and flattened like another scanner), both
    picked up by the sensor and scored by the job it requests."""
    root = tmp_path_factory.mktemp("incoming_workspace")
    storage = root / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME", raising=False)
        from neuroflux_assets.instance import project_instance

        instance = project_instance(storage)
    defs = tiny_defs(storage)
    config = tiny_run_config(demo_dataset, storage)
    config["resources"]["dataset"]["config"]["incoming_dir"] = str(root / "incoming")
    config["ops"] = {
        "tuned_hyperparameters": {"config": {MODEL: config["ops"]["tuned_hyperparameters"]["config"][MODEL]}}
    }
    [trained] = materialize_models(defs, instance, config, [MODEL])
    assert trained.success
    splits = pd.read_parquet(storage / "assets" / "dataset_splits.parquet")
    val = splits.loc[splits["split"] == "val", "path"].tolist()
    same, shifted = root / "incoming" / "same", root / "incoming" / "shifted"
    same.mkdir(parents=True)
    for path in val:
        shutil.copy(path, same)
        pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
        write_gray(shifted / Path(path).name, np.clip(pixels * 0.5 + 110, 0, 255))
    write_gray(same / "noise.png", broken_images(size=48)["noise"])

    context = dg.build_sensor_context(
        instance=instance, resources={"dataset": DatasetResource(**dataset_settings(demo_dataset, root))}
    )
    tick = new_incoming_batches(context)
    job = defs.resolve_job_def("score_incoming")
    results = {}
    for request in tick.run_requests:
        instance.add_dynamic_partitions("incoming_batches", [request.partition_key])
        results[request.partition_key] = job.execute_in_process(
            run_config={"resources": {"dataset": {"config": dataset_settings(demo_dataset, root)}}},
            instance=instance,
            partition_key=request.partition_key,
        )
    second = new_incoming_batches(context)
    return {"root": root, "defs": defs, "instance": instance, "tick": tick, "second": second,
            "results": results, "val": val, "context": context}  # fmt: skip


def drift(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK]
    return evaluation


def test_the_sensor_adds_a_partition_per_new_folder_and_requests_its_run_once(scored) -> None:
    tick = scored["tick"]
    assert sorted(r.partition_key for r in tick.run_requests) == ["same", "shifted"]
    [add] = tick.dynamic_partitions_requests
    assert add.partitions_def_name == "incoming_batches" and sorted(add.partition_keys) == ["same", "shifted"]
    assert isinstance(scored["second"], dg.SkipReason)  # nothing new on the next tick
    assert new_incoming_batches.default_status == dg.DefaultSensorStatus.STOPPED


def test_a_broken_image_is_flagged_and_the_rest_scored_by_the_production_model(scored) -> None:
    result = scored["results"]["same"]
    assert result.success
    table = scored["defs"].load_asset_value(
        "incoming_predictions", partition_key="same", instance=scored["instance"]
    )
    assert len(table) == len(scored["val"]) + 1
    noise = table.set_index("file").loc["noise.png"]
    assert noise["out_of_distribution"] and noise["ood_kind"] == "broken" and not noise["scored"]
    rest = table.loc[table["file"] != "noise.png"]
    assert rest["scored"].all() and rest["label"].notna().all()
    production = scored["root"] / "store" / "assets" / "production_model"
    meta = json.loads((production / "model.json").read_text())
    assert table["model_version"].str.startswith(meta["architecture"] + "-").all()
    assert (table["model_data_version"] == meta["data_version"]).all()
    stored = scored["root"] / "store" / "assets" / "incoming_predictions" / "same.parquet"
    assert stored.is_file()
    materialization = result.asset_materializations_for_node("incoming_predictions")[0]
    assert {"summary", "class_counts", "flagged", "model_version"} <= set(materialization.metadata)
    assert table_column(materialization.metadata["flagged"], "file") == ["noise.png"]
    columns = materialization.metadata["dagster/column_schema"].value.columns
    assert [c.name for c in columns] == list(pd.read_parquet(stored).columns)


def test_the_drift_check_passes_an_unshifted_batch_and_warns_on_a_shifted_one(scored) -> None:
    same, shifted = drift(scored["results"]["same"]), drift(scored["results"]["shifted"])
    assert same.passed, same.metadata["verdict"].value
    assert not shifted.passed and shifted.severity == dg.AssetCheckSeverity.WARN
    assert scored["results"]["shifted"].success  # a warning, not a failed run
    moved = shifted.metadata["moved"].value
    assert "intensity" in moved and "contrast" in moved
    assert "drift in" in shifted.metadata["verdict"].value
    assert "test-split predictions" in shifted.metadata["class_mix_reference"].value


def test_the_sensor_waits_for_a_production_model(demo_dataset: Path, tmp_path: Path) -> None:
    write_gray(tmp_path / "incoming" / "b1" / "x.png", broken_images()["noise"])
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            resources={"dataset": DatasetResource(**dataset_settings(demo_dataset, tmp_path))},
        )
        result = new_incoming_batches(context)
        assert isinstance(result, dg.SkipReason) and "no production_model" in result.skip_message
        assert instance.get_dynamic_partitions("incoming_batches") == []


def test_cli_predict_batch_scores_a_folder_through_dagster(scored, monkeypatch, capsys) -> None:
    root = scored["root"]
    dataset = json.loads((REPO / "configs" / "dataset_config.json").read_text())
    dataset.update(dataset_settings(Path(scored["val"][0]).parents[1], root))
    dataset.pop("profile")
    (root / "dataset.json").write_text(json.dumps(dataset))
    batch = root / "elsewhere" / "cli_batch"
    batch.mkdir(parents=True)
    for path in scored["val"][:5]:
        shutil.copy(path, batch)
    monkeypatch.chdir(root)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["predict", "--dataset_config", "dataset.json", "--batch", str(batch)]) == 0
    out = capsys.readouterr().out
    assert "5 images: 5 scored by" in out and f"{CHECK}:" in out
    assert "cli_batch" in scored["instance"].get_dynamic_partitions("incoming_batches")
    assert (root / "store" / "assets" / "incoming_predictions" / "cli_batch.parquet").is_file()
