"""Grad-CAM explanations: heatmaps on the image, that follow the evidence, and the report's gallery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from neuroflux_assets.cli import main
from neuroflux_lib.evaluation.gradcam_gallery import (
    GALLERY_FILE,
    explain_images,
    explain_report,
    faithfulness,
    gallery_rows,
)
from neuroflux_lib.evaluation.report import read_report
from neuroflux_lib.models import build_model
from neuroflux_lib.models.registry import MODEL_NAMES
from neuroflux_lib.serving.artifacts import ArtifactMeta, save_artifact
from neuroflux_lib.serving.predictor import Predictor
from tests.factories import untyped_report, write_gray

MODEL_SIZE = 32  # the model's input
IMAGE_SIZE = 48  # the files: resized to MODEL_SIZE, so heatmaps are mapped back
SQUARE = 6
CLASSES = ["square", "plain"]


def scan(corner: tuple[int, int] | None, seed: int) -> np.ndarray:
    """Dim noise, with a bright square at `corner` (top-left pixel) for the "square" class."""
    rng = np.random.default_rng(seed)
    image = rng.integers(30, 70, size=(IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
    if corner is not None:
        row, col = corner
        image[row : row + SQUARE, col : col + SQUARE] = 120
    return image


def random_corner(rng: np.random.Generator) -> tuple[int, int]:
    return tuple(int(v) for v in rng.integers(2, IMAGE_SIZE - SQUARE - 2, size=2))


def meta_for(name: str, built, class_names=CLASSES, hyperparameters=None) -> ArtifactMeta:
    return ArtifactMeta(
        architecture=name,
        class_names=list(class_names),
        image_size=MODEL_SIZE,
        normalization=built.normalization.to_dict(),
        hyperparameters={"weights": "random", **(hyperparameters or {})},
        weights_origin="random",
    )


@pytest.fixture(scope="module")
def square_artifact(tmp_path_factory) -> Path:
    """A registry CNN trained (a few seconds) to say "square" when a bright square is anywhere."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    hyperparameters = {"conv_channels": 8, "dropout": 0.0}
    built = build_model("neuroflux_cnn", 2, hyperparameters, image_size=MODEL_SIZE, normalization="original")
    meta = meta_for("neuroflux_cnn", built, hyperparameters=hyperparameters)
    predictor = Predictor(built.model, meta)  # its preprocessing, for training
    labels = np.arange(256) % 2
    images = [scan(random_corner(rng) if y == 0 else None, seed) for seed, y in enumerate(labels)]
    inputs = predictor.model_input(images)
    targets = torch.from_numpy(labels)
    model = built.model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(20):
        for batch in torch.randperm(len(labels)).split(32):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    out = tmp_path_factory.mktemp("explain") / "square_model"
    return save_artifact(out, model.eval(), meta)


@pytest.fixture(scope="module")
def predictor(square_artifact) -> Predictor:
    return Predictor.from_artifact(square_artifact, backend="torch")


def peak(heatmap: np.ndarray) -> np.ndarray:
    return np.array(np.unravel_index(heatmap.argmax(), heatmap.shape))


@pytest.mark.parametrize("corner", [(4, 4), (36, 38), (6, 34)])
def test_the_heatmap_peak_follows_the_discriminative_pixels(predictor, corner):
    prediction, heatmap = predictor.explain(scan(corner, seed=999))
    assert prediction.label == "square"
    centre = np.array(corner) + SQUARE / 2
    # Within one cell of the last conv block (8 px of the model's 32 = 12 px of this 48 px image).
    assert np.abs(peak(heatmap) - centre).max() <= 12, (peak(heatmap), centre)


def test_the_peak_moves_when_the_square_moves(predictor):
    left = peak(predictor.explain(scan((4, 4), seed=5))[1])
    right = peak(predictor.explain(scan((36, 36), seed=5))[1])
    assert np.abs(right - left).min() >= 16


def test_explain_gives_what_predict_gives(predictor):
    image = scan((10, 20), seed=3)
    prediction, _ = predictor.explain(image)
    expected = predictor.predict(image)
    assert prediction.label == expected.label
    assert prediction.probabilities == pytest.approx(expected.probabilities, abs=1e-5)


def test_the_report_explains_in_batches_what_explain_gives_one_at_a_time(predictor):
    grays = [scan((4, 30), 1), scan(None, 2), scan((30, 4), 3)]
    predictions, heatmaps = explain_images(predictor, grays, batch_size=2)
    for gray, prediction, heatmap in zip(grays, predictions, heatmaps, strict=True):
        single, single_heatmap = predictor.explain(gray)
        assert prediction.label == single.label
        np.testing.assert_allclose(heatmap, single_heatmap, atol=1e-3)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_every_registry_model_gives_a_heatmap_the_size_of_the_image(name, method):
    torch.manual_seed(0)
    built = build_model(name, 3, {"weights": "random"}, image_size=MODEL_SIZE)
    model = Predictor(built.model, meta_for(name, built, ["a", "b", "c"]))
    image = np.random.default_rng(0).integers(0, 255, size=(40, 56)).astype(np.uint8)  # not square
    prediction, heatmap = model.explain(image, method=method)
    assert heatmap.shape == (40, 56) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert prediction.label in ("a", "b", "c")
    assert all(p.grad is None for p in built.model.parameters())  # the model is left as it was


def test_the_heatmap_pixels_matter_more_than_random_ones(predictor, tmp_path):
    rng = np.random.default_rng(1)
    paths = [write_gray(tmp_path / f"{i}.png", scan(random_corner(rng), 100 + i)) for i in range(12)]
    result = faithfulness(predictor, paths, resamples=200)
    assert result.n_images == 12 and result.fraction == 0.2
    assert result.difference.low > 0 and result.meaningful, result.describe()
    assert result.heatmap_drop.estimate > result.random_drop.estimate


def test_the_gallery_takes_the_most_confident_right_and_wrong_per_class():
    predictions = pd.DataFrame(
        {
            "path": ["a", "b", "c", "d", "e"],
            "true": ["square", "square", "square", "plain", "plain"],
            "predicted": ["square", "square", "plain", "plain", "plain"],
            "confidence": [0.7, 0.9, 0.8, 0.6, 0.95],
        }
    )
    rows = gallery_rows(predictions, CLASSES)
    assert rows[["path", "kind"]].values.tolist() == [
        ["b", "correct"],
        ["c", "wrong"],
        ["e", "correct"],
    ]  # no wrong "plain" image: nothing to show there


def test_explain_report_writes_the_gallery_and_the_faithfulness_into_the_report(
    square_artifact, predictor, tmp_path
):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(8):
        truth = CLASSES[i % 2]
        path = write_gray(
            tmp_path / f"{i}.png", scan(random_corner(rng) if truth == "square" else None, 200 + i)
        )
        p = predictor.predict(path)
        rows.append({"path": str(path), "true": truth, "predicted": p.label, "confidence": p.confidence})
    body = untyped_report(macro_f1=1.0)
    del body["explanations"]
    (tmp_path / "report.json").write_text(json.dumps(body))
    splits = pd.DataFrame({"path": [r["path"] for r in rows], "subject_id": [f"s{i // 2}" for i in range(8)]})
    result = explain_report(square_artifact, pd.DataFrame(rows), tmp_path, splits, max_images=6)
    assert result.gallery == tmp_path / GALLERY_FILE
    assert result.gallery.read_bytes().startswith(b"\x89PNG")
    report = read_report(tmp_path)
    assert report.macro_f1 == 1.0  # the rest of the report is kept
    explanations = report.explanations
    assert explanations.layer == "conv4" and explanations.faithfulness.n_images == 6
    assert explanations.faithfulness.difference == result.faithfulness.difference
    assert {item.kind for item in explanations.gallery} <= {"correct", "wrong"}


def test_predict_explain_writes_one_overlay_per_image(square_artifact, tmp_path, capsys):
    images = [write_gray(tmp_path / "in" / f"scan{i}.png", scan((8, 8 + 10 * i), i)) for i in range(3)]
    out = tmp_path / "overlays"
    argv = ["predict", "--artifact", str(square_artifact), "--image_path", *map(str, images)]
    assert main([*argv, "--explain", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [row["label"] for row in printed] == ["square"] * 3
    assert sorted(p.name for p in out.iterdir()) == ["scan0.png", "scan1.png", "scan2.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in out.iterdir())
