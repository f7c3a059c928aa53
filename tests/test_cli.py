"""The CLI as a user runs it: preprocess, train, evaluate, predict, import-checkpoint, on demo data."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroflux_lib.cli import main
from neuroflux_lib.models import build_model
from tests.factories import SUMMARY_SECTIONS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(demo_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    dataset = json.loads((REPO / "configs" / "dataset_config.json").read_text())
    dataset.update(
        data_dir=str(demo_dataset), storage_dir=str(root / "storage"), image_size=32, num_workers=1
    )
    (root / "dataset.json").write_text(json.dumps(dataset))
    model = json.loads((REPO / "configs" / "neuroflux_config.json").read_text())
    model.update(num_epochs=2, conv_channels=4, batch_size=32, device="cpu")
    (root / "cnn.json").write_text(json.dumps(model))
    return root


def run(*argv: str) -> int:
    return main(list(argv))


def test_preprocess_prints_summary_and_writes_outputs(workspace, capsys):
    assert run("preprocess", "--dataset_config", str(workspace / "dataset.json")) == 0
    out = capsys.readouterr().out
    for expected in SUMMARY_SECTIONS:
        assert expected in out
    folder = workspace / "storage" / "preprocess"
    for name in (
        "images.parquet",
        "splits.parquet",
        "balanced_train.parquet",
        "outliers.parquet",
        "embedding.png",
        "outlier_gallery.png",
        "quality_histograms.png",
    ):
        assert (folder / name).stat().st_size > 0, name
    splits = pd.read_parquet(folder / "splits.parquet")
    balanced = pd.read_parquet(folder / "balanced_train.parquet")
    assert set(balanced["path"]) & set(splits.loc[splits["split"] != "train", "path"]) == set()
    assert balanced.groupby("class_name").size().nunique() == 1


def test_train_evaluate_predict(workspace, demo_dataset, capsys):
    args = [
        "--dataset_config",
        str(workspace / "dataset.json"),
        "--model_config",
        str(workspace / "cnn.json"),
    ]
    assert run("train", *args) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "macro avg" in out
    artifact = workspace / "storage" / "models" / "neuroflux_cnn"
    assert (artifact / "model.safetensors").exists()
    meta = json.loads((artifact / "model.json").read_text())
    assert meta["training"]["epochs_run"] == 2 and meta["class_names"] == ["PTE", "LO", "EO", "IPTE", "IO"]
    report_dir = workspace / "storage" / "reports" / "neuroflux_cnn"
    for name in (
        "report.json",
        "classification_report.txt",
        "confusion_matrix.png",
        "roc_curves.png",
        "training_curves.png",
    ):
        assert (report_dir / name).stat().st_size > 0

    assert run("evaluate", *args) == 0
    assert "macro avg" in capsys.readouterr().out

    image = next((demo_dataset / "EO").glob("*.jpg"))
    assert run("predict", *args, "--image_path", str(image), "--json") == 0
    predictions = json.loads(capsys.readouterr().out)
    assert predictions[0]["label"] in meta["class_names"]
    assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_without_dataset(workspace, tmp_path, capsys):
    """predict reads only the artifact: the data folder may be gone."""
    artifact = workspace / "storage" / "models" / "neuroflux_cnn"
    if not artifact.exists():
        pytest.skip("needs the trained model of test_train_evaluate_predict")
    moved = shutil.copytree(artifact, tmp_path / "model")
    from tests.factories import blob_image, write_gray

    image = write_gray(tmp_path / "one.png", blob_image(48))
    assert run("predict", "--artifact", str(moved), "--image_path", str(image)) == 0
    assert "one.png" in capsys.readouterr().out


def test_bad_config_key_exits_2_and_names_it(tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"data_dir": "data", "imgae_size": 64}))
    assert run("preprocess", "--dataset_config", str(tmp_path / "bad.json")) == 2
    assert "imgae_size" in capsys.readouterr().err


def test_import_checkpoint_and_refuse_pickle(tmp_path, capsys):
    built = build_model("neuroflux_cnn", 5, {"conv_channels": 4}, image_size=32)
    torch.save(built.model.state_dict(), tmp_path / "original.pth")
    assert (
        run(
            "import-checkpoint",
            str(tmp_path / "original.pth"),
            "--model",
            "neuroflux_cnn",
            "--out",
            str(tmp_path / "imported"),
            "--image-size",
            "32",
        )
        == 0
    )
    meta = json.loads((tmp_path / "imported" / "model.json").read_text())
    assert meta["weights_origin"] == "checkpoint" and meta["normalization"]["mean"] == [0.5] * 3

    torch.save(built.model, tmp_path / "whole_model.pth")  # a pickled module: must be refused
    assert (
        run(
            "import-checkpoint",
            str(tmp_path / "whole_model.pth"),
            "--model",
            "neuroflux_cnn",
            "--out",
            str(tmp_path / "nope"),
        )
        == 2
    )
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_training_twice_gives_the_same_model(workspace, tmp_path):
    """Same data, config and seed: identical weights (initialisation is seeded too)."""
    import pandas as pd

    from neuroflux_lib.config import DatasetConfig, ModelConfig, load_config
    from neuroflux_lib.modeling import train_model

    dataset = load_config(DatasetConfig, workspace / "dataset.json")
    model = load_config(ModelConfig, workspace / "cnn.json").model_copy(update={"num_epochs": 1})
    folder = workspace / "storage" / "preprocess"
    if not (folder / "splits.parquet").exists():
        assert run("preprocess", "--dataset_config", str(workspace / "dataset.json")) == 0
    balanced = pd.read_parquet(folder / "balanced_train.parquet")
    splits = pd.read_parquet(folder / "splits.parquet")
    runs = [
        train_model(
            model, dataset, balanced, splits, artifact_dir=tmp_path / f"a{i}", work_dir=tmp_path / f"w{i}"
        )
        for i in range(2)
    ]
    first, second = ((run.artifact_dir / "model.safetensors").read_bytes() for run in runs)
    assert first == second
