"""The Dagster layer end to end on tiny generated data: values, metadata, checks, gating, sensor, API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from neuroflux_assets.api import load_predictor
from neuroflux_assets.cli.runner import materialize_models
from neuroflux_assets.cli.summaries import run_outcome
from neuroflux_assets.defs.jobs import MODEL_STAGE_KEYS, profile_models
from neuroflux_assets.defs.sensors import new_images
from neuroflux_assets.resources import DatasetResource
from neuroflux_assets.settings import file_dataset_config, file_model_config
from neuroflux_lib.evaluation.promotion import Gate, choose_production
from neuroflux_lib.paths import project_root
from neuroflux_lib.tracking import read_run
from tests.dagster_helpers import (
    ALL_ASSETS,
    MATERIALIZED_BY_DEFAULT,
    TINY_LEARNER,
    TINY_MODELS,
    TINY_STUCK,
    table_column,
    table_rows,
    tiny_defs,
    tiny_run_config,
)
from tests.factories import SUMMARY_SECTIONS

MODELS = TINY_MODELS  # resnet50 does not learn in its 2 tiny epochs, neuroflux_cnn does
LEARNS, STUCK = "neuroflux_cnn", "resnet50"
PROJECT_ROOT = project_root()


@pytest.fixture(scope="module")
def pipeline(demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every asset materialized once, in process, into a temporary instance."""
    storage = tmp_path_factory.mktemp("dagster_storage")
    defs = tiny_defs(storage)
    run_config = tiny_run_config(demo_dataset, storage)
    run_config["resources"]["tracking"] = {"config": {"mode": "offline"}}  # runs in <storage>/wandb
    with dg.instance_for_test() as instance:
        results = materialize_models(defs, instance, run_config, MODELS)
        dataset = DatasetResource(**run_config["resources"]["dataset"]["config"]).dataset_config()
        yield {"defs": defs, "instance": instance, "results": results, "storage": storage, "dataset": dataset}


def latest_metadata(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    assert records, f"{key}[{partition}] not materialized"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e
        for e in (
            ev.event_specific_data
            for ev in result.all_events
            if ev.event_type_value == "ASSET_CHECK_EVALUATION"
        )
    }


def test_runs_end_normally_and_a_model_that_did_not_learn_is_not_evaluated(pipeline) -> None:
    stuck, learns = pipeline["results"]
    assert learns.success and not stuck.success
    line, normal = run_outcome(STUCK, stuck)
    assert normal and "stopped by a check" in line and "did not learn" in line
    instance = pipeline["instance"]
    for key in MATERIALIZED_BY_DEFAULT:
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
    for model in MODELS:
        for key in ("tuned_hyperparameters", "trained_model"):
            latest_metadata(instance, key, model)
    latest_metadata(instance, "evaluation_report", LEARNS)
    with pytest.raises(AssertionError, match="not materialized"):
        latest_metadata(instance, "evaluation_report", STUCK)


def test_all_checks_ran_and_passed(pipeline) -> None:
    first, second = (check_results(r) for r in pipeline["results"])
    expected_first = {
        "raw_images:all_classes_present",
        "raw_images:min_images_per_class",
        "raw_images:unreadable_fraction",
        "raw_images:subject_ids_found",
        "dataset_splits:no_leakage",
        "dataset_splits:no_augmented_in_val_test",
        "dataset_splits:every_class_in_every_split",
        "balanced_train_set:classes_balanced",
        "balanced_train_set:augmented_only_from_train",
        "trained_model:weights_finite_and_logits_shape",
        "trained_model:model_learned",
    }
    assert set(first) == expected_first  # stopped at model_learned: no evaluation_report check
    assert set(second) == {
        "trained_model:weights_finite_and_logits_shape",
        "trained_model:model_learned",
        "evaluation_report:beats_best_baseline",
    }
    assert [k for k, v in first.items() if not v.passed] == ["trained_model:model_learned"]
    assert all(v.passed for v in second.values())
    verdict = first["trained_model:model_learned"].metadata["verdict"].value
    assert "did not learn" in verdict and "learning_rate" in verdict  # says what to try


def test_values_are_stored_as_parquet_json_and_folders(pipeline, demo_dataset: Path) -> None:
    base = pipeline["storage"] / "assets"
    raw = pd.read_parquet(base / "raw_images.parquet")
    files = [p for p in demo_dataset.rglob("*") if p.is_file()]
    assert len(raw) == len(files)
    assert {"path", "class_name", "subject_id", "size_bytes", "sha256", "readable", "reason"} <= set(
        raw.columns
    )
    splits = pd.read_parquet(base / "dataset_splits.parquet")
    assert set(splits["split"]) == {"train", "val", "test"}
    outliers = pd.read_parquet(base / "outliers.parquet")
    excluded = set(outliers.loc[outliers["excluded"], "path"])
    assert excluded and not excluded & set(splits["path"]), "broken images must be left out of the splits"
    assert set(outliers.loc[~outliers["excluded"], "path"]) <= set(splits["path"]), "kept outliers stay in"
    balanced = pd.read_parquet(base / "balanced_train_set.parquet")
    assert balanced["augmented"].any() and set(balanced["split"]) == {"train"}
    assert balanced.groupby("class_name").size().nunique() == 1
    params = json.loads((base / "tuned_hyperparameters" / "neuroflux_cnn.json").read_text())[
        "hyperparameters"
    ]
    assert params["conv_channels"] == 16 and params["num_epochs"] == 10  # launchpad values won
    assert params["weight_decay"] == file_model_config("neuroflux_cnn").weight_decay  # the rest: the file
    for model in MODELS:
        assert (base / "trained_model" / model / "model.safetensors").is_file()
    assert (base / "evaluation_report" / LEARNS / "report.json").is_file()
    assert not (base / "evaluation_report" / STUCK).exists()
    assert (base / "production_model" / "model.json").is_file()
    assert (base / "production_model" / "model.onnx").is_file()  # exported to serve with ONNX Runtime
    assert not (base / "trained_model" / LEARNS / "model.onnx").exists()  # only what serves is exported
    assert not list(base.rglob("*.pkl")) and not list(base.rglob("*.pickle"))


def test_metadata_explains_each_asset(pipeline) -> None:
    instance = pipeline["instance"]
    baselines = latest_metadata(instance, "baselines")
    assert "thumbnail" in table_column(baselines["baselines"], "baseline")
    assert "year" in table_column(baselines["confound_scores"], "field")
    assert "PTE" in table_column(baselines["class_by_year"], "class")
    raw = latest_metadata(instance, "raw_images")
    table = pd.read_parquet(pipeline["storage"] / "assets" / "raw_images.parquet")
    assert "PTE" in table_column(raw["images_per_class"], "class")
    assert raw["unreadable"] == int((~table["readable"]).sum())
    assert "unreadable_files" in raw and "unknown_folders" in raw
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_images"))
    assert event.asset_materialization.tags["dagster/data_version"] == raw["manifest_digest"]
    for key, image_key in (
        ("image_quality", "histograms"),
        ("outliers", "gallery"),
        ("outliers", "tsne_dbscan"),
    ):
        assert latest_metadata(instance, key)[image_key].startswith("![")
        assert "data:image/png;base64," in latest_metadata(instance, key)[image_key]
    assert "train" in table_column(latest_metadata(instance, "dataset_splits")["subjects_per_split"], "split")
    assert table_column(latest_metadata(instance, "balanced_train_set")["counts_before_after"], "before")
    tuned = latest_metadata(instance, "tuned_hyperparameters", STUCK)
    assert tuned["hyperparameters_source"].startswith("config values (tune_trials is 0")
    trained = latest_metadata(instance, "trained_model", STUCK)
    assert trained["epochs_run"] == 2 and 1 <= trained["best_epoch"] <= 2
    assert (
        trained["weights_origin"].startswith("random")
        and "data:image/png;base64," in trained["training_curves"]
    )
    assert trained["frozen_layers"] == "none (every layer trained)"  # random weights are never frozen
    assert "did not learn" in trained["learn_check"]
    learned = latest_metadata(instance, "trained_model", LEARNS)
    assert learned["normalization"].startswith("per-image") and learned["learn_check"].startswith("learned")
    assert learned["augmentation"] == "off"
    report = latest_metadata(instance, "evaluation_report", "neuroflux_cnn")
    assert 0.0 <= report["macro_f1"] <= 1.0 and report["n_test"] > 0
    assert (
        "data:image/png;base64," in report["confusion_matrix"]
        and "data:image/png;base64," in report["roc_curves"]
    )
    production = latest_metadata(instance, "production_model")
    assert production["model"] == LEARNS and "macro-F1" in production["why"]
    assert table_column(production["candidates"], "model") == [LEARNS]
    assert production["serving"].startswith("ONNX Runtime")
    assert production["model_card"].count("- precision: ") == 1


def test_load_predictor_reads_the_instance(pipeline, demo_dataset: Path) -> None:
    kwargs = {"instance": pipeline["instance"], "defs": pipeline["defs"]}
    image = next(demo_dataset.glob("PTE/*.jpg"))
    production = load_predictor(**kwargs)
    prediction = production.predict(image)
    assert production.backend == "onnxruntime"  # the production folder carries its export
    assert prediction.label in file_dataset_config().class_names
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-4
    assert load_predictor(STUCK, **kwargs).meta.architecture == STUCK  # trained, even if not promoted
    with dg.instance_for_test() as empty, pytest.raises(LookupError, match="not been materialized"):
        load_predictor(instance=empty, defs=pipeline["defs"])


def test_a_model_that_does_not_beat_its_baselines_is_not_promoted_and_the_run_succeeds(
    pipeline, demo_dataset, tmp_path
) -> None:
    """A required gain of 1.0 cannot be met: the check warns, production_model is not materialized, the
    run still succeeds (blocked is a normal outcome), and the library's rule rejects every candidate."""
    storage = tmp_path / "storage"
    shutil.copytree(pipeline["storage"] / "assets", storage / "assets")
    defs = tiny_defs(storage)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("full_pipeline").execute_in_process(
            run_config=tiny_run_config(demo_dataset, storage, min_gain=1.0),
            instance=instance,
            partition_key="neuroflux_cnn",
            asset_selection=MODEL_STAGE_KEYS,
            raise_on_error=False,
        )
        checks = check_results(result)
        check = checks["evaluation_report:beats_best_baseline"]
        assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
        assert "does not beat the best baseline" in check.metadata["verdict"].value
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("evaluation_report")) is not None
        assert instance.get_latest_materialization_event(dg.AssetKey("production_model")) is None
        observations = instance.fetch_observations(dg.AssetKey("production_model"), limit=1).records
        assert "nothing promoted" in observations[0].asset_observation.metadata["why"].value
    base = storage / "assets"
    promotion = choose_production(
        {m: base / "trained_model" / m for m in MODELS},
        {LEARNS: base / "evaluation_report" / LEARNS},
        Gate(min_gain=1.0),
    )
    table = promotion.candidates
    assert promotion.model is None and list(table["model"]) == [LEARNS]
    assert table["eligible"].all() and not table["passes_gate"].any()
    # The learn check is part of eligibility: STUCK's artifact with LEARNS's report is never eligible.
    mixed = choose_production(
        {LEARNS: base / "trained_model" / STUCK}, {LEARNS: base / "evaluation_report" / LEARNS}, Gate(-1.0)
    )
    assert mixed.model is None and "did not learn" in mixed.candidates["why"].iloc[0]


def _sensor_tick(data_dir: Path, cursor: str | None):
    context = dg.build_sensor_context(
        cursor=cursor, resources={"dataset": DatasetResource(data_dir=str(data_dir))}
    )
    return new_images(context)


def test_new_images_sensor_fires_on_added_changed_or_removed_files(
    demo_dataset: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_dataset / "IO", data / "IO")
    baseline = _sensor_tick(data, None)
    assert not baseline.run_requests and baseline.cursor
    unchanged = _sensor_tick(data, baseline.cursor)
    assert isinstance(unchanged, dg.SkipReason) or not unchanged.run_requests

    new_file = data / "IO" / "neuroflux_999_S_9999_MR_new__I1.jpg"
    shutil.copy(next((data / "IO").glob("*.jpg")), new_file)
    added = _sensor_tick(data, baseline.cursor)
    assert [r.partition_key for r in added.run_requests] == profile_models()  # the profile's `trains`
    assert added.run_requests[0].asset_selection is None  # whole job first
    assert added.run_requests[1].asset_selection == MODEL_STAGE_KEYS  # then the model stage only
    assert added.cursor != baseline.cursor

    new_file.write_bytes(new_file.read_bytes() + b"\0")
    os.utime(new_file, ns=(1, 1))
    assert _sensor_tick(data, added.cursor).run_requests  # changed
    new_file.unlink()
    assert _sensor_tick(data, added.cursor).run_requests  # removed
    (data / "IO" / "notes.txt").write_text("not an image")
    assert not getattr(_sensor_tick(data, baseline.cursor), "run_requests", None)


def test_definitions_load_and_validate() -> None:
    from neuroflux_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == set(ALL_ASSETS)
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["raw_images"] == "data_quality" and groups["balanced_train_set"] == "dataset"
    assert groups["trained_model"] == "modeling" and groups["production_model"] == "deployment"
    assert graph.get(dg.AssetKey("trained_model")).pools == {"gpu"}
    assert {job.name for job in defs.jobs} >= {"full_pipeline", "retrain"}
    assert defs.resolve_schedule_def("weekly_retrain").default_status == dg.DefaultScheduleStatus.STOPPED
    completed = subprocess.run(
        [Path(sys.executable).parent / "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DAGSTER_HOME": ""},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_instance_config_in_dagster_yaml(tmp_path: Path) -> None:
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path), config_dir=str(PROJECT_ROOT)))
    assert instance.nux_enabled is False and instance.telemetry_enabled is False
    assert instance.run_monitoring_enabled is True
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_launchpad_fields_are_unset_and_show_the_file_values() -> None:
    """Every launchpad field defaults to unset (None: the file's or the profile's value applies) and its
    description shows the file's value."""
    resource_fields = DatasetResource.model_fields
    for key, value in file_dataset_config().model_dump().items():
        shown = list(value) if isinstance(value, tuple) else value
        assert resource_fields[key].default is None, key
        assert repr(shown) in resource_fields[key].description, key
    from neuroflux_assets.settings import MODEL_SETTINGS

    for model in MODELS:
        file_values = file_model_config(model).model_dump()
        for key, field in MODEL_SETTINGS[model].model_fields.items():
            assert field.default is None, (model, key)
            assert repr(file_values[key]) in field.description, (model, key)


def test_a_launchpad_value_is_applied_even_when_it_equals_the_file_value(monkeypatch) -> None:
    """cpu-demo sets batch_size 32; typing the file's own 16 on the launchpad must give 16."""
    from neuroflux_assets.settings import MODEL_SETTINGS, typed_values
    from neuroflux_lib.config import ModelConfig
    from neuroflux_lib.config.resolve import resolve_config

    def batch_size(typed: dict) -> int:
        return resolve_config(profile="cpu-demo", model="neuroflux_cnn", model_values=typed).model.batch_size

    base = file_model_config("neuroflux_cnn")
    assert batch_size({}) == 32 != base.batch_size
    settings = MODEL_SETTINGS["neuroflux_cnn"](batch_size=base.batch_size)
    assert batch_size(typed_values(settings, ModelConfig.model_fields)) == base.batch_size
    assert batch_size(typed_values(MODEL_SETTINGS["neuroflux_cnn"](), ["batch_size"])) == 32


def test_the_profile_comes_from_the_environment_when_used_not_at_import(monkeypatch) -> None:
    resource = DatasetResource()
    monkeypatch.setenv("NEUROFLUX_PROFILE", "cpu-demo")
    assert resource.profile_name == "cpu-demo"
    monkeypatch.setenv("NEUROFLUX_PROFILE", "full")
    assert resource.profile_name == "full"
    assert DatasetResource(profile="none").profile_name == "none"


def test_pipeline_prints_the_data_summary_from_the_assets(pipeline) -> None:
    """`make demo` shows the preprocessing summary built from the materialized data assets."""
    from neuroflux_assets.cli.summaries import data_summary

    text = data_summary(pipeline["defs"], pipeline["instance"], pipeline["dataset"])
    for expected in SUMMARY_SECTIONS:
        assert expected in text


def latest_record(instance: dg.DagsterInstance, key: str, partition: str) -> dg.EventLogRecord:
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records[0]


def test_every_training_and_evaluation_is_an_offline_wandb_run_linked_both_ways(pipeline) -> None:
    instance, storage = pipeline["instance"], pipeline["storage"]
    for model in [LEARNS]:  # the evaluated one; STUCK's training run is checked the same way up to evaluation
        trained = latest_record(instance, "trained_model", model)
        folder = Path(trained.asset_materialization.metadata["wandb_run"].value)
        assert folder.is_relative_to(storage / "wandb") and folder.is_dir()
        run = read_run(folder)
        assert run.job_type == "train" and run.group == trained.run_id and model in run.tags
        assert run.config["dagster_run_id"] == trained.run_id  # and back: W&B -> Dagster
        assert run.config["model_name"] == model and run.config["data_version"]
        assert run.config["weights_origin"] == "random" and run.config["split_sizes"]["test"] > 0
        epochs = [row for row in run.history if "epoch" in row]
        assert [row["epoch"] for row in epochs] == list(range(1, 11))
        assert {"train_loss", "val_loss", "val_macro_f1", "lr", "train_images_per_s"} <= set(epochs[0])
        assert 1 <= run.summary["best_epoch"] <= 10 and run.summary["learned"] is True

        report = latest_record(instance, "evaluation_report", model)
        evaluated = read_run(report.asset_materialization.metadata["wandb_run"].value)
        assert evaluated.job_type == "evaluate" and evaluated.group == report.run_id
        macro_f1 = report.asset_materialization.metadata["macro_f1"].value
        assert evaluated.summary["test_macro_f1"] == pytest.approx(macro_f1)
        logged = set().union(*evaluated.history)
        assert {"confusion_matrix", "test_predictions", "roc_curves"} <= logged
        assert {"model_vs_baselines", "confound"} <= logged  # model and baselines side by side
        assert "the best baseline" in evaluated.summary["verdict"]
        assert evaluated.summary["gain_low"] <= evaluated.summary["gain_vs_best_baseline"]
        metadata = report.asset_materialization.metadata
        assert "the best baseline" in metadata["verdict"].value
        assert "baseline: thumbnail" in table_column(metadata["model_vs_baselines"].value, "name")
        assert "all fields" in table_column(metadata["confound"].value, "field")


def test_study_resumes_and_use_tuned_trains_with_its_best_values(pipeline, demo_dataset, tmp_path) -> None:
    storage = tmp_path / "storage"
    shutil.copytree(pipeline["storage"] / "assets", storage / "assets")
    defs = tiny_defs(storage)
    job = defs.resolve_job_def("full_pipeline")

    def run(keys: list[str], **model) -> dg.ExecuteInProcessResult:
        config = tiny_run_config(demo_dataset, storage)
        config["ops"]["tuned_hyperparameters"]["config"]["neuroflux_cnn"].update(model)
        return job.execute_in_process(
            run_config=config,
            instance=instance,
            partition_key="neuroflux_cnn",
            asset_selection=[dg.AssetKey(k) for k in keys],
            raise_on_error=False,  # the study's values may not learn in a tiny run: the files are checked
        )

    with dg.instance_for_test() as instance:
        tuning = {"tune_trials": 2, "tune_epochs": 1, "tune_pruner": "none"}
        for expected in (2, 4):  # the second materialization resumes the same study
            run(["tuned_hyperparameters"], **tuning)
            metadata = latest_metadata(instance, "tuned_hyperparameters", "neuroflux_cnn")
            assert {"state": "complete", "trials": expected} in table_rows(metadata["trials_by_state"])
            assert metadata["optimization_history"].startswith("![")
            assert metadata["hyperparameters_source"].startswith("config values (use_tuned is false")
        study_db = storage / "optuna" / "optuna.db"
        assert study_db.is_file()

        run(["tuned_hyperparameters"], tune_trials=0, use_tuned=True)  # another trial setup: another study
        other = latest_metadata(instance, "tuned_hyperparameters", "neuroflux_cnn")["hyperparameters_source"]
        assert other.startswith("config values (tune_trials is 0 and no study exists")

        run(["tuned_hyperparameters", "trained_model"], tune_trials=0, tune_epochs=1, use_tuned=True)
        value = json.loads((storage / "assets" / "tuned_hyperparameters" / "neuroflux_cnn.json").read_text())
        assert value["use_tuned"] and value["study"]["trials"] == {"complete": 4}  # no new trials
        meta = json.loads((storage / "assets" / "trained_model" / "neuroflux_cnn" / "model.json").read_text())
        for key, best in value["best_params"].items():
            assert meta["hyperparameters"][key] == best, key
        trained = latest_metadata(instance, "trained_model", "neuroflux_cnn")
        assert trained["hyperparameters_source"].startswith("tuned: study neuroflux_cnn-32px-")


def test_cross_validation_is_opt_in_and_runs_when_asked(pipeline, demo_dataset, tmp_path) -> None:
    storage = tmp_path / "storage"
    shutil.copytree(pipeline["storage"] / "assets", storage / "assets")
    defs = tiny_defs(storage)
    run_config = tiny_run_config(demo_dataset, storage)
    keys = [dg.AssetKey("tuned_hyperparameters"), dg.AssetKey("cross_validation")]
    job = defs.resolve_job_def("full_pipeline")
    with dg.instance_for_test() as instance:

        def run() -> dg.ExecuteInProcessResult:
            return job.execute_in_process(
                run_config=run_config, instance=instance, partition_key="neuroflux_cnn", asset_selection=keys
            )

        assert run().success
        assert instance.get_latest_materialization_event(dg.AssetKey("cross_validation")) is None
        cnn = run_config["ops"]["tuned_hyperparameters"]["config"]["neuroflux_cnn"]
        cnn.update(cv_folds=3, num_epochs=1)
        assert run().success
        metadata = latest_metadata(instance, "cross_validation", "neuroflux_cnn")
        assert metadata["estimate"] == "cross-validation (train+val, 3 subject-grouped folds)"
        assert "model" in table_column(metadata["macro_f1"], "name")


def test_the_demo_entry_point_prints_verdicts_and_exits_0_when_nothing_is_promoted(
    demo_dataset: Path, tmp_path: Path
) -> None:
    """`make demo`'s command end to end on tiny data in its own instance: a model that did not learn is
    reported and stops only its own run, the terminal shows the model next to its baselines with the
    verdict, and a blocked promotion is exit 0 with the reason in one line (no stack trace)."""
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "configs", root / "configs")
    (root / "storage").mkdir(parents=True)
    (root / "storage" / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    profile = {
        "description": "tiny",
        "trains": TINY_MODELS,
        "dataset": {"data_dir": str(demo_dataset), "image_size": 32, "min_images_per_class": 3},
        "resnet50": TINY_STUCK,
        "neuroflux_cnn": TINY_LEARNER,
    }
    (root / "tiny.json").write_text(json.dumps(profile))
    env = {
        **os.environ,
        "NEUROFLUX_ROOT": str(root),
        "DAGSTER_HOME": str(root / "storage"),
        "NEUROFLUX_TRACKING": "disabled",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "neuroflux"), "demo", "--profile", str(root / "tiny.json")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "training resnet50, neuroflux_cnn" in out  # the profile's `trains`
    assert out.count("succeeded") == 1 and "(resnet50): stopped by a check" in out and "did not learn" in out
    assert "baseline: thumbnail" in out and "baseline: metadata" in out and "test macro-F1 [95% CI]" in out
    assert "the best baseline" in out  # the verdict
    assert "acquisition field -> class" in out  # the confound table
    assert "No model promoted" in out or "Production model:" in out
    assert "Traceback" not in out + done.stderr
