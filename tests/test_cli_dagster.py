"""The `neuroflux` console script as a user runs it: every mode goes through a Dagster instance."""

import json
from pathlib import Path

import dagster as dg
import pytest

from neuroflux_assets.cli import main
from tests.factories import SUMMARY_SECTIONS

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]


@pytest.fixture(scope="module")
def workspace(demo_dataset, tmp_path_factory):
    """Config files as a user writes them: relative storage folder, tiny images and epochs."""
    root = tmp_path_factory.mktemp("dagster_cli")
    dataset = json.loads((REPO / "configs" / "dataset_config.json").read_text())
    dataset.update(data_dir=str(demo_dataset), storage_dir="store", image_size=32, num_workers=1)
    (root / "dataset.json").write_text(json.dumps(dataset))
    model = json.loads((REPO / "configs" / "neuroflux_config.json").read_text())
    model.update(num_epochs=2, conv_channels=4, batch_size=32, device="cpu")
    (root / "cnn.json").write_text(json.dumps(model))
    return root


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    """Run from the workspace with no DAGSTER_HOME: the instance lives in the config's storage_dir."""
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return workspace


def args(*extra: str) -> list[str]:
    return ["--dataset_config", "dataset.json", "--model_config", "cnn.json", *extra]


def instance_at(root: Path) -> dg.DagsterInstance:
    from neuroflux_assets.api import project_instance

    return project_instance(root / "store")


def materialized(instance: dg.DagsterInstance, name: str, partition: str | None = None) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(name), asset_partitions=[partition] if partition else None
        ),
        limit=100,
    )
    return len(records.records)


def test_train_on_a_fresh_store_preprocesses_first_then_trains_and_evaluates(in_workspace, capsys):
    assert main(["train", *args()]) == 0
    out = capsys.readouterr().out
    assert "preprocessing first" in out
    assert "macro avg" in out and "neuroflux_cnn: 2 epochs on cpu" in out
    instance = instance_at(in_workspace)
    for name in ("raw_images", "balanced_train_set"):
        assert materialized(instance, name) == 1
    for name in ("tuned_hyperparameters", "trained_model", "evaluation_report"):
        assert materialized(instance, name, "neuroflux_cnn") == 1
    assert materialized(instance, "trained_model", "resnet50") == 0
    artifact = in_workspace / "store" / "assets" / "trained_model" / "neuroflux_cnn"
    meta = json.loads((artifact / "model.json").read_text())
    assert meta["training"]["epochs_run"] == 2 and meta["image_size"] == 32


def test_preprocess_rematerializes_the_data_assets_and_prints_the_summary(in_workspace, capsys):
    assert main(["preprocess", "--dataset_config", "dataset.json"]) == 0
    out = capsys.readouterr().out
    for section in SUMMARY_SECTIONS:
        assert section in out
    assert materialized(instance_at(in_workspace), "dataset_splits") == 2


def test_evaluate_and_predict_use_the_trained_model_asset(in_workspace, demo_dataset, capsys):
    assert main(["evaluate", *args()]) == 0
    assert "macro avg" in capsys.readouterr().out
    assert materialized(instance_at(in_workspace), "evaluation_report", "neuroflux_cnn") == 2

    image = next((demo_dataset / "EO").glob("*.jpg"))
    assert main(["predict", *args("--image_path", str(image), "--json")]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert predictions[0]["label"] in CLASSES
    assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_says_clearly_what_is_missing(in_workspace, demo_dataset, capsys):
    image = str(next((demo_dataset / "EO").glob("*.jpg")))
    assert main(["predict", *args("--image_path", image, "--production")]) == 2
    assert "production_model has not been materialized" in capsys.readouterr().err
    resnet = json.loads((REPO / "configs" / "resnet50_config.json").read_text())
    (in_workspace / "resnet.json").write_text(json.dumps(resnet))
    argv = [
        "predict",
        "--dataset_config",
        "dataset.json",
        "--model_config",
        "resnet.json",
        "--image_path",
        image,
    ]
    assert main(argv) == 2
    assert "trained_model[resnet50] has not been materialized" in capsys.readouterr().err


def test_bad_config_key_exits_2_and_names_it(in_workspace, capsys):
    (in_workspace / "bad.json").write_text(json.dumps({"data_dir": "data", "imgae_size": 64}))
    assert main(["preprocess", "--dataset_config", "bad.json"]) == 2
    assert "imgae_size" in capsys.readouterr().err


def test_tune_adds_trials_to_the_study_and_train_uses_it(in_workspace, capsys):
    assert main(["tune", *args("--n_trials", "2", "--workers", "1")]) == 0
    out = capsys.readouterr().out
    assert "study neuroflux_cnn-32px-" in out and "best hyperparameters" in out
    assert (in_workspace / "store" / "optuna" / "optuna.db").is_file()
    value = json.loads(
        (in_workspace / "store" / "assets" / "tuned_hyperparameters" / "neuroflux_cnn.json").read_text()
    )
    assert sum(value["study"]["trials"].values()) == 2 and not value["use_tuned"]


def test_runs_lists_offline_runs_and_sync_needs_a_key(in_workspace, capsys, isolated_wandb_env):
    from neuroflux_lib.tracking import TrackingSettings, start_run

    assert main(["runs", "--dataset_config", "dataset.json"]) == 0
    assert "No offline W&B runs" in capsys.readouterr().out
    root = in_workspace / "store" / "wandb"
    settings = TrackingSettings(root=str(root))
    start_run(
        settings, name="study-trial-0", job_type="tune", config={"model_name": "neuroflux_cnn"}
    ).finish()
    assert main(["runs", "--dataset_config", "dataset.json"]) == 0  # only trials: nothing to show but them
    assert "1 tuning-trial runs" in capsys.readouterr().out
    with start_run(
        settings, name="neuroflux_cnn-train-abc", job_type="train", config={"model_name": "neuroflux_cnn"}
    ) as tracked:
        tracked.set_summary({"best_epoch": 3})
    assert main(["runs", "--dataset_config", "dataset.json"]) == 0
    out = capsys.readouterr().out
    assert "neuroflux_cnn-train-abc" in out and "study-trial-0" not in out and str(root) in out
    assert (
        "study-trial-0"
        in (main(["runs", "--dataset_config", "dataset.json", "--all"]), capsys.readouterr().out)[1]
    )
    assert main(["runs", "--dataset_config", "dataset.json", "--sync"]) == 2
    assert "wandb sync " + str(root) in capsys.readouterr().out


def test_workers_must_be_positive(in_workspace, capsys):
    with pytest.raises(SystemExit):
        main(["tune", *args("--workers", "0")])
    assert "must be at least 1" in capsys.readouterr().err
