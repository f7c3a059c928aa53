"""The `neuroflux` console script as a user runs it: every mode goes through a Dagster instance."""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from neuroflux_assets.cli import main
from tests.dagster_helpers import TINY_LEARNER
from tests.factories import SUMMARY_SECTIONS

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]


@pytest.fixture(scope="module")
def workspace(demo_dataset, tmp_path_factory):
    """Config files as a user writes them: relative storage folder, tiny images and epochs."""
    root = tmp_path_factory.mktemp("dagster_cli")
    dataset = json.loads((REPO / "configs" / "dataset_config.json").read_text())
    dataset.update(
        data_dir=str(demo_dataset), storage_dir="store", image_size=32, num_workers=1, min_images_per_class=3
    )
    (root / "dataset.json").write_text(json.dumps(dataset))
    model = json.loads((REPO / "configs" / "models" / "neuroflux_cnn.json").read_text())
    model.update(TINY_LEARNER)  # learns in about a second, so evaluation is not stopped by model_learned
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
    from neuroflux_assets.instance import project_instance

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
    assert "macro avg" in out and "neuroflux_cnn: 10 epochs on cpu" in out
    instance = instance_at(in_workspace)
    for name in ("raw_images", "balanced_train_set"):
        assert materialized(instance, name) == 1
    for name in ("tuned_hyperparameters", "trained_model", "evaluation_report"):
        assert materialized(instance, name, "neuroflux_cnn") == 1
    assert materialized(instance, "trained_model", "resnet50") == 0
    artifact = in_workspace / "store" / "assets" / "trained_model" / "neuroflux_cnn"
    meta = json.loads((artifact / "model.json").read_text())
    assert meta["training"]["epochs_run"] == 10 and meta["image_size"] == 32
    assert meta["training"]["learn_check"]["passed"] and "Did it learn? learned" in out


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
    resnet = json.loads((REPO / "configs" / "models" / "resnet50.json").read_text())
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


def test_preprocess_stores_leak_free_tables_in_the_asset_storage(in_workspace):
    """What the library CLI wrote to storage/preprocess now lives in the instance's asset storage."""
    import pandas as pd

    assets = in_workspace / "store" / "assets"
    if not (assets / "dataset_splits.parquet").exists():
        assert main(["preprocess", "--dataset_config", "dataset.json"]) == 0
    for name in ("raw_images", "outliers", "dataset_splits", "balanced_train_set"):
        assert (assets / f"{name}.parquet").stat().st_size > 0, name
    splits = pd.read_parquet(assets / "dataset_splits.parquet")
    balanced = pd.read_parquet(assets / "balanced_train_set.parquet")
    assert set(balanced["path"]) & set(splits.loc[splits["split"] != "train", "path"]) == set()
    assert balanced.groupby("class_name").size().nunique() == 1


def test_train_writes_the_report_files_and_a_self_describing_artifact(in_workspace):
    report_dir = in_workspace / "store" / "assets" / "evaluation_report" / "neuroflux_cnn"
    if not (report_dir / "report.json").exists():
        assert main(["train", *args()]) == 0
    for name in (
        "report.json",
        "classification_report.txt",
        "confusion_matrix.png",
        "roc_curves.png",
        "training_curves.png",
    ):
        assert (report_dir / name).stat().st_size > 0, name
    artifact = in_workspace / "store" / "assets" / "trained_model" / "neuroflux_cnn"
    meta = json.loads((artifact / "model.json").read_text())
    assert meta["class_names"] == CLASSES


def test_evaluate_and_predict_a_model_folder_outside_the_assets(in_workspace, tmp_path, capsys):
    """`--artifact` takes any folder; its report goes to storage/reports, never into the folder; predict
    needs only the folder (the data may be gone)."""
    import shutil

    from tests.factories import blob_image, write_gray

    artifact = in_workspace / "store" / "assets" / "trained_model" / "neuroflux_cnn"
    if not artifact.exists():
        assert main(["train", *args()]) == 0
    moved = shutil.copytree(artifact, tmp_path / "my_model")
    before = sorted(p.name for p in moved.iterdir())
    assert main(["evaluate", *args("--artifact", str(moved))]) == 0
    assert "macro avg" in capsys.readouterr().out
    assert sorted(p.name for p in moved.iterdir()) == before
    assert (in_workspace / "store" / "reports" / "my_model" / "report.json").is_file()

    image = write_gray(tmp_path / "one.png", blob_image(48))
    assert main(["predict", "--artifact", str(moved), "--image_path", str(image)]) == 0
    assert "one.png" in capsys.readouterr().out


def test_the_original_model_config_paths_still_work(in_workspace):
    from neuroflux_assets.cli import parser
    from neuroflux_assets.cli.options import resolve

    for legacy, model in (("resnet50_config.json", "resnet50"), ("neuroflux_config.json", "neuroflux_cnn")):
        parsed = parser().parse_args(
            ["train", "--dataset_config", "dataset.json", "--model_config", f"configs/{legacy}"]
        )
        assert resolve(parsed).model.model_name == model


def test_relative_folders_are_relative_to_the_working_directory(in_workspace):
    from neuroflux_assets.cli import parser
    from neuroflux_assets.cli.options import resolve

    dataset = resolve(parser().parse_args(["preprocess", "--dataset_config", "dataset.json"])).dataset
    assert Path(dataset.storage_dir) == in_workspace / "store"


def test_import_checkpoint_and_refuse_pickle(tmp_path, capsys):
    import torch

    from neuroflux_lib.models import build_model

    built = build_model("neuroflux_cnn", 5, {"conv_channels": 4}, image_size=32)
    torch.save(built.model.state_dict(), tmp_path / "original.pth")
    argv = ["import-checkpoint", str(tmp_path / "original.pth"), "--model", "neuroflux_cnn"]
    assert main([*argv, "--out", str(tmp_path / "imported"), "--image-size", "32"]) == 0
    meta = json.loads((tmp_path / "imported" / "model.json").read_text())
    assert meta["weights_origin"] == "checkpoint" and meta["normalization"]["mean"] == [0.5] * 3

    torch.save(built.model, tmp_path / "whole_model.pth")  # a pickled module: must be refused
    argv = ["import-checkpoint", str(tmp_path / "whole_model.pth"), "--model", "neuroflux_cnn"]
    assert main([*argv, "--out", str(tmp_path / "nope")]) == 2
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_only_the_projects_own_errors_are_one_line_anything_else_keeps_its_traceback(
    in_workspace, monkeypatch, capsys
):
    import dataclasses

    from neuroflux_assets import cli

    (in_workspace / "missing.json").unlink(missing_ok=True)
    assert main(["preprocess", "--dataset_config", "missing.json"]) == 2
    assert "config file not found" in capsys.readouterr().err

    def bug(args):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    modes = [dataclasses.replace(m, run=bug) if m.name == "demo-data" else m for m in cli.MODES]
    monkeypatch.setattr(cli, "MODES", modes)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        main(["demo-data", "--out", "nowhere"])


def test_the_storage_url_reaches_the_run_through_the_environment_and_is_restored(monkeypatch):
    from neuroflux_assets.cli.runner import storage_url_in_env

    monkeypatch.delenv("NEUROFLUX_OPTUNA_STORAGE", raising=False)
    with storage_url_in_env("postgresql://u:secret@db/optuna") as config:
        assert config == {"storage": {"env": "NEUROFLUX_OPTUNA_STORAGE"}}
        assert os.environ["NEUROFLUX_OPTUNA_STORAGE"].endswith("@db/optuna")
    assert "NEUROFLUX_OPTUNA_STORAGE" not in os.environ


def test_unusable_data_stops_preprocess_with_exit_2_and_says_which_class(tmp_path, demo_dataset, capsys):
    """An empty class folder is not a model result: the split step stops with the class and its count."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    for image in (data / "EO").iterdir():
        image.unlink()
    dataset = json.loads((REPO / "configs" / "dataset_config.json").read_text())
    dataset.update(
        data_dir=str(data), storage_dir=str(tmp_path / "store"), image_size=32, min_images_per_class=3
    )
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    assert main(["preprocess", "--dataset_config", str(tmp_path / "dataset.json")]) == 2
    err = capsys.readouterr().err
    assert "EO" in err and "Images per class" not in capsys.readouterr().out


def test_every_mode_module_is_a_subcommand_and_demo_has_its_help(capsys):
    """The parser is built from `MODES`: a mode module left out of it would be unreachable."""
    import pkgutil

    import neuroflux_assets.cli as cli
    from neuroflux_assets.cli import MODES, parser

    modules = [name for _, name, _ in pkgutil.iter_modules(cli.__path__)]
    declared = {getattr(cli, name).MODE.name for name in modules if hasattr(getattr(cli, name, None), "MODE")}
    names = [mode.name for mode in MODES]
    assert declared == set(names) and len(names) == len(set(names))
    assert "{" + ",".join(names) + "}" in parser().format_usage()
    with pytest.raises(SystemExit) as done:
        main(["demo", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: neuroflux demo") and "--profile" in out and "cpu-demo" in out


def test_the_cli_and_the_dagster_resource_resolve_the_same_configs(monkeypatch):
    """Same profile, same root: `neuroflux train --profile cpu-demo` and the launchpad's `dataset` resource
    resolve the same configs, and what the runner hands to the run resolves back to exactly them."""
    from neuroflux_assets.cli import parser
    from neuroflux_assets.cli.runner import run_config
    from neuroflux_assets.cli.train import train_config
    from neuroflux_assets.resources import DatasetResource
    from neuroflux_assets.settings import MODEL_SETTINGS, typed_values
    from neuroflux_lib.config import ModelConfig

    monkeypatch.chdir(REPO)  # the CLI's root is the working directory, the resource's the project root
    monkeypatch.delenv("NEUROFLUX_PROFILE", raising=False)
    name = "neuroflux_cnn"
    cli = train_config(parser().parse_args(["train", "--profile", "cpu-demo"]))
    resource = DatasetResource(profile="cpu-demo").resolve(name, model_values={"tune_trials": 0})
    assert (cli.dataset, cli.model, cli.profile) == (resource.dataset, resource.model, resource.profile)
    assert cli.model.image_size == 64 and cli.model.optimizer == "AdamW"  # the profile's values applied

    config = run_config(cli.dataset, [cli.model], cli.profile)
    settings = MODEL_SETTINGS[name](**config["ops"]["tuned_hyperparameters"]["config"][name])
    in_run = DatasetResource(**config["resources"]["dataset"]["config"]).resolve(
        name, model_values=typed_values(settings, ModelConfig.model_fields)
    )
    assert (in_run.dataset, in_run.model) == (cli.dataset, cli.model)
