"""Artifacts round-trip exactly, never unpickle, and the predictor needs nothing else."""

import json

import numpy as np
import pytest
import torch

from neuroflux_lib.data.imageio import ImageLoadError
from neuroflux_lib.errors import ImageError
from neuroflux_lib.models import build_model
from neuroflux_lib.serving.artifacts import ArtifactError, ArtifactMeta, load_artifact, save_artifact
from neuroflux_lib.serving.predictor import Predictor
from tests.factories import blob_image, write_gray

CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]


def saved_cnn(path, image_size: int = 32):
    torch.manual_seed(0)
    built = build_model("neuroflux_cnn", 5, {"conv_channels": 4, "dropout": 0.3}, image_size=image_size)
    meta = ArtifactMeta(
        architecture="neuroflux_cnn",
        class_names=CLASSES,
        image_size=image_size,
        normalization={"mean": [0.5] * 3, "std": [0.5] * 3},
        hyperparameters={"conv_channels": 4, "dropout": 0.3},
        weights_origin=built.weights_origin,
        data_version="abc",
        test_metrics={"macro_f1": 0.5},
    )
    save_artifact(path, built.model, meta)
    return built.model.eval()


def test_round_trip_gives_identical_logits(tmp_path):
    original = saved_cnn(tmp_path / "model")
    loaded, meta = load_artifact(tmp_path / "model")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(original(x), loaded(x))
    assert meta.class_names == CLASSES and meta.image_size == 32 and meta.data_version == "abc"
    sidecar = json.loads((tmp_path / "model" / "model.json").read_text())
    assert {
        "architecture",
        "class_names",
        "image_size",
        "normalization",
        "hyperparameters",
        "weights_origin",
        "data_version",
        "test_metrics",
        "library_version",
    } <= set(sidecar)


def test_resnet_round_trip(tmp_path):
    built = build_model("resnet50", 5, {"weights": "random", "hidden_size": 16})
    meta = ArtifactMeta(
        "resnet50",
        CLASSES,
        64,
        {"mean": [0.5] * 3, "std": [0.5] * 3},
        {"hidden_size": 16, "freeze_until": "layer3"},
        "random",
    )
    save_artifact(tmp_path / "r", built.model, meta)
    loaded, _ = load_artifact(tmp_path / "r")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(built.model.eval()(x), loaded(x))


def test_overwrite_is_atomic_and_leaves_no_staging(tmp_path):
    saved_cnn(tmp_path / "model")
    saved_cnn(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_not_an_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path)


def test_predictor_on_path_array_and_batch(tmp_path):
    saved_cnn(tmp_path / "model")
    predictor = Predictor.from_artifact(tmp_path / "model")
    image = write_gray(tmp_path / "scan.jpg", blob_image(80, seed=3))
    prediction = predictor.predict(image)
    assert prediction.label in CLASSES
    assert list(prediction.probabilities) == CLASSES
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    from_array = predictor.predict(np.asarray(blob_image(80, seed=3)))
    batch = predictor.predict_batch([image, image])
    assert batch[0].probabilities == batch[1].probabilities
    assert from_array.label in CLASSES


def test_predictor_bad_image_names_file_and_reason(tmp_path):
    saved_cnn(tmp_path / "model")
    predictor = Predictor.from_artifact(tmp_path / "model")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageLoadError, match=r"broken\.jpg"):
        predictor.predict(bad)
    with pytest.raises(ImageLoadError, match="empty"):
        (tmp_path / "empty.png").write_bytes(b"")
        predictor.predict(tmp_path / "empty.png")


def test_predict_stream_works_in_batches_and_matches_one_big_batch(tmp_path, monkeypatch):
    """Any number of files in constant memory: at most `batch_size` images are decoded at a time."""
    saved_cnn(tmp_path / "model")
    predictor = Predictor.from_artifact(tmp_path / "model")
    paths = [write_gray(tmp_path / f"scan{i}.png", blob_image(40, seed=i)) for i in range(7)]
    expected = predictor.predict_batch(paths)
    sizes = []
    original = predictor.predict_batch
    monkeypatch.setattr(predictor, "predict_batch", lambda chunk: sizes.append(len(chunk)) or original(chunk))
    streamed = list(predictor.predict_stream(paths, batch_size=3))
    assert sizes == [3, 3, 1]
    for got, want in zip(streamed, expected, strict=True):
        assert got.source == want.source
        assert got.probabilities == pytest.approx(want.probabilities, abs=1e-6)


def test_predict_stream_checks_paths_first_and_stops_at_a_bad_file_after_the_good_ones(tmp_path):
    saved_cnn(tmp_path / "model")
    predictor = Predictor.from_artifact(tmp_path / "model")
    good = [write_gray(tmp_path / f"ok{i}.png", blob_image(40, seed=i)) for i in range(2)]
    with pytest.raises(ImageError, match="not found.*missing.png"):
        next(predictor.predict_stream([*good, tmp_path / "missing.png"]))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    stream = predictor.predict_stream([*good, bad], batch_size=2)
    assert [p.source for p in (next(stream), next(stream))] == [str(p) for p in good]
    with pytest.raises(ImageLoadError, match=r"broken\.jpg"):
        next(stream)
