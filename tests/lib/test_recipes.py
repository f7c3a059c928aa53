"""The training recipes end to end on tiny demo data: what `model.json` records (normalisation, weights,
augmentation, the "did it learn?" verdict), that a new process predicts exactly as evaluation does,
and that a model that did not learn is never promoted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroflux_lib.config import ModelConfig
from neuroflux_lib.evaluation.evaluate import predict_split
from neuroflux_lib.evaluation.promotion import learn_problems
from neuroflux_lib.serving.artifacts import read_meta
from neuroflux_lib.training.steps import train_model
from tests.lib.test_training import config


def recipe(**overrides) -> ModelConfig:
    """The training tests' tiny config, as resnet18_gray's recipe (AdamW, warm-up + cosine, clipping)."""
    values = dict(
        model_name="resnet18_gray",
        image_size=32,
        num_epochs=2,
        batch_size=32,
        optimizer="AdamW",
        scheduler="CosineAnnealing",
        warmup_epochs=0.5,
        grad_clip_norm=2.0,
        learning_rate=2e-3,
        num_workers=0,
    )
    return config(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    dataset, balanced, splits = prepared
    out = tmp_path_factory.mktemp("recipes")
    result = train_model(
        recipe(), dataset, balanced, splits, artifact_dir=out / "model", work_dir=out / "work"
    )
    return result, dataset, splits


def test_model_json_records_the_recipe(trained) -> None:
    result, _, _ = trained
    meta = read_meta(result.artifact_dir)
    assert meta.normalization == {"method": "per_image", "channels": 1}
    assert meta.weights_origin == "random" and meta.frozen_layers == []
    assert meta.hyperparameters["augmentation"]["gamma"] == 0.2  # recorded as trained
    check = meta.training["learn_check"]
    assert set(check) >= {"passed", "train_loss", "chance_loss", "val_predicted_classes", "message"}
    assert "val_predicted_classes" in meta.training["history"][0]


def test_a_new_process_predicts_exactly_like_evaluation(trained) -> None:
    """The predictor rebuilds the per-image normalisation from model.json alone."""
    result, dataset, splits = trained
    labels, expected = predict_split(result.artifact_dir, dataset, splits, "test")
    paths = splits.loc[splits["split"] == "test", "path"].tolist()[:6]
    script = (
        "import json, sys\n"
        "from neuroflux_lib.serving.predictor import Predictor\n"
        "p = Predictor.from_artifact(sys.argv[1])\n"
        "print(json.dumps([list(x.probabilities.values()) for x in p.predict_batch(sys.argv[2:])]))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, str(result.artifact_dir), *paths],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert np.allclose(np.array(json.loads(output)), expected[: len(paths)], atol=1e-5)


def test_a_model_that_cannot_learn_fails_the_check_and_is_not_promoted(prepared, tmp_path: Path) -> None:
    """The original CNN recipe's symptom: a learning rate that leaves the loss at ln(K)."""
    dataset, balanced, splits = prepared
    stuck = recipe(model_name="neuroflux_cnn", conv_channels=4, learning_rate=1e-9, num_epochs=1)
    result = train_model(
        stuck, dataset, balanced, splits, artifact_dir=tmp_path / "m", work_dir=tmp_path / "w"
    )
    assert not result.learned.passed and "not clearly below chance" in result.learned.message
    problems = learn_problems(result.artifact_dir)
    assert problems and "did not learn" in problems[0]
