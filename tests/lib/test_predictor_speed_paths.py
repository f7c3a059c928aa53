"""The predictor's fast paths (ONNX Runtime, channels_last, preallocated input) predict what the plain
eager model predicts, and a stale or missing ONNX export is never used silently."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroflux_assets.cli import main
from neuroflux_lib.data.normalization import InputNormalization
from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.models import build_model
from neuroflux_lib.serving.artifacts import ArtifactMeta, save_artifact
from neuroflux_lib.serving.export import ONNX_FILE, export_for_serving, export_onnx
from neuroflux_lib.serving.predictor import Predictor
from tests.factories import blob_image, write_gray

CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]
PER_IMAGE_RGB = InputNormalization("per_image", 3)


def save_model(path: Path, name: str = "neuroflux_cnn", normalization=PER_IMAGE_RGB, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    hyperparameters = {"conv_channels": 4, "dropout": 0.3, "weights": "random"}
    built = build_model(name, len(CLASSES), hyperparameters, image_size=32)
    meta = ArtifactMeta(name, CLASSES, 32, normalization.to_dict(), hyperparameters, "random")
    return save_artifact(path, built.model, meta)


def images(count: int = 4) -> list[np.ndarray]:
    return [blob_image(40 + 4 * i, seed=i) for i in range(count)]


def plain_eager_probabilities(predictor: Predictor, arrays: list[np.ndarray]) -> np.ndarray:
    """The predictor before the fast paths: stack, normalise, contiguous eager forward, softmax."""
    batch = torch.stack([predictor.transform(torch.from_numpy(a).unsqueeze(0)) for a in arrays])
    with torch.inference_mode():
        logits = predictor.model(predictor.normalization(batch).contiguous())
    return torch.softmax(logits, dim=1).numpy()


def as_matrix(predictions) -> np.ndarray:
    return np.array([list(p.probabilities.values()) for p in predictions])


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    path = save_model(tmp_path_factory.mktemp("onnx") / "model")
    export_onnx(path)
    return path


def assert_onnx_logits_match_eager(path: Path) -> None:
    onnx = Predictor.from_artifact(path)
    assert onnx.backend == "onnxruntime"
    eager = Predictor.from_artifact(path, backend="torch")
    inputs = onnx.model_input(images(5))
    with torch.inference_mode():
        np.testing.assert_allclose(onnx.logits(inputs), eager.logits(inputs), rtol=0, atol=1e-4)


def test_onnx_logits_match_eager_pytorch_within_1e_4(exported):
    assert_onnx_logits_match_eager(exported)


def test_onnx_logits_match_for_a_one_channel_resnet_with_batchnorm(tmp_path):
    path = save_model(tmp_path / "model", "resnet18_gray", InputNormalization("per_image", 1))
    assert export_onnx(path) == path / ONNX_FILE
    assert_onnx_logits_match_eager(path)


def test_every_path_predicts_what_the_plain_eager_model_predicts(exported):
    arrays = images()
    onnx = Predictor.from_artifact(exported)
    eager = Predictor.from_artifact(exported, backend="torch")
    assert (onnx.backend, eager.backend) == ("onnxruntime", "torch")
    expected = plain_eager_probabilities(eager, arrays)
    for predictor in (onnx, eager):
        predictions = predictor.predict_batch(arrays)
        np.testing.assert_allclose(as_matrix(predictions), expected, rtol=0, atol=1e-5)
        assert [p.label for p in predictions] == [CLASSES[i] for i in expected.argmax(axis=1)]
        single = predictor.predict(arrays[1])  # one image: the same row as in the batch
        np.testing.assert_allclose(list(single.probabilities.values()), expected[1], rtol=0, atol=1e-5)


def test_the_eager_model_stays_available_with_onnx(exported):
    """Grad-CAM and anything else that needs gradients use `model`, whatever runs the predictions."""
    predictor = Predictor.from_artifact(exported)
    assert predictor.backend == "onnxruntime"
    inputs = predictor.model_input(images(1)).requires_grad_()
    predictor.model(inputs).sum().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0


def test_a_stale_export_is_not_used(exported, tmp_path, caplog):
    """Weights replaced after the export: ONNX Runtime must not answer for the old weights."""
    path = save_model(tmp_path / "model", seed=1)
    shutil.copy(exported / ONNX_FILE, path / ONNX_FILE)
    with caplog.at_level(logging.WARNING, logger="neuroflux_lib.serving.export"):
        predictor = Predictor.from_artifact(path)
    assert predictor.backend == "torch"
    assert "stale" in caplog.text
    np.testing.assert_allclose(
        as_matrix(predictor.predict_batch(images())),
        plain_eager_probabilities(predictor, images()),
        atol=1e-5,
    )
    with pytest.raises(ArtifactError, match="stale"):
        Predictor.from_artifact(path, backend="onnx")


def test_onnx_backend_without_an_export_says_how_to_make_one(tmp_path):
    path = save_model(tmp_path / "model")
    assert Predictor.from_artifact(path).backend == "torch"
    with pytest.raises(ArtifactError, match="neuroflux export --format onnx"):
        Predictor.from_artifact(path, backend="onnx")


def test_a_failed_serving_export_leaves_a_working_pytorch_model_and_says_why(tmp_path, monkeypatch):
    """Promotion exports the production folder; an exporter failure must not cost the promotion."""
    path = save_model(tmp_path / "model")

    def broken_exporter(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken_exporter)
    served = export_for_serving(path)
    assert served.startswith("PyTorch (ONNX export failed: RuntimeError: unsupported operator")
    assert not (path / ONNX_FILE).exists() and not list(path.glob(f".{ONNX_FILE}*"))
    predictor = Predictor.from_artifact(path)
    assert predictor.backend == "torch" and predictor.predict(images(1)[0]).label in CLASSES


def test_export_command_writes_the_onnx_file_that_predict_then_uses(tmp_path, capsys):
    path = save_model(tmp_path / "model")
    assert main(["export", "--format", "onnx", "--artifact", str(path)]) == 0
    assert f"Exported {path / ONNX_FILE}" in capsys.readouterr().out
    assert Predictor.from_artifact(path).backend == "onnxruntime"
    image = write_gray(tmp_path / "scan.png", blob_image(48, seed=2))
    assert main(["predict", "--artifact", str(path), "--image_path", str(image), "--json"]) == 0
    assert '"label"' in capsys.readouterr().out


def test_export_command_on_a_missing_artifact_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "--format", "onnx", "--artifact", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "neuroflux export: error:" in err and "nowhere is not a model artifact" in err
