"""Scoring a batch folder: broken, unreadable and never-seen-like images are flagged, the rest scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroflux_lib.data.discovery import sha256_file
from neuroflux_lib.data.quality import compute_quality
from neuroflux_lib.errors import DataError
from neuroflux_lib.models import build_model
from neuroflux_lib.serving.artifacts import WEIGHTS_FILE, ArtifactMeta, save_artifact
from neuroflux_lib.serving.incoming import (
    TrainingReference,
    batch_folders,
    batch_summary,
    class_counts,
    score_batch,
    training_reference,
    with_model_class_mix,
)
from tests.factories import blob_image, bright_image, broken_images, untyped_report, write_gray

CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """30 training images (train split) and 10 test images of one protocol, as the stored tables hold them."""
    root = tmp_path_factory.mktemp("train")
    paths = [str(write_gray(root / f"t{i:02d}.png", blob_image(seed=i))) for i in range(40)]
    quality = compute_quality(paths, workers=1).reset_index()
    splits = pd.DataFrame(
        {
            "path": paths,
            "class_name": [CLASSES[i % 5] for i in range(40)],
            "split": ["train"] * 30 + ["test"] * 10,
            "sha256": [sha256_file(p) for p in paths],
        }
    )
    return training_reference(quality, splits, CLASSES)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    built = build_model("neuroflux_cnn", 5, {"conv_channels": 2}, image_size=32)
    meta = ArtifactMeta(
        architecture="neuroflux_cnn",
        class_names=CLASSES,
        image_size=32,
        normalization={"method": "per_image", "channels": 3},
        hyperparameters={"conv_channels": 2},
        weights_origin="random",
        data_version="abc123",
    )
    return save_artifact(tmp_path_factory.mktemp("model") / "model", built.model, meta)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Six good scans (one in a sub-folder), a noise image, a truncated file, a brighter protocol, a note."""
    folder = tmp_path_factory.mktemp("incoming") / "2024-06-01"
    for i in range(5):
        write_gray(folder / f"scan{i}.png", blob_image(seed=100 + i))
    write_gray(folder / "ward2" / "scan5.png", blob_image(seed=105))
    write_gray(folder / "noise.png", broken_images()["noise"])
    write_gray(folder / "bright.png", bright_image(seed=3))
    good = (folder / "scan0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 3])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_a_batch_scores_the_good_images_and_flags_the_others_with_reasons(batch, artifact, reference):
    table = score_batch(batch, artifact, reference, workers=1).set_index("file")
    assert sorted(table.index) == sorted(
        ["bright.png", "noise.png", "scan0.png", "scan1.png", "scan2.png", "scan3.png", "scan4.png",
         "truncated.png", "ward2/scan5.png"]
    )  # fmt: skip
    assert table.loc["noise.png", "ood_kind"] == "broken" and "noise" in table.loc["noise.png", "ood_reason"]
    assert table.loc["truncated.png", "ood_kind"] == "unreadable" and table.loc["truncated.png", "ood_reason"]
    assert table.loc["bright.png", "ood_kind"] == "out_of_range"
    assert "above the training range" in table.loc["bright.png", "ood_reason"]
    flagged = table.loc[table["out_of_distribution"]]
    assert set(flagged.index) == {"noise.png", "truncated.png", "bright.png"}
    assert not flagged["scored"].any() and flagged["label"].isna().all() and flagged["p_PTE"].isna().all()
    scored = table.loc[table["scored"]]
    assert len(scored) == 6 and scored["label"].isin(CLASSES).all()
    probabilities = scored[[f"p_{c}" for c in CLASSES]].sum(axis=1)
    assert np.allclose(probabilities, 1.0, atol=1e-5)
    assert np.allclose(scored[[f"p_{c}" for c in CLASSES]].max(axis=1), scored["confidence"])
    weights = sha256_file(artifact / WEIGHTS_FILE)
    assert (table["model_version"] == f"neuroflux_cnn-{weights[:12]}").all()
    assert (table["model_data_version"] == "abc123").all()
    assert table.loc["scan0.png", "intensity"] > 0 and np.isnan(table.loc["truncated.png", "intensity"])


def test_class_counts_and_summary_say_what_was_scored_and_flagged(batch, artifact, reference):
    table = score_batch(batch, artifact, reference, workers=1)
    counts = class_counts(table, CLASSES)
    assert counts.loc[CLASSES, "images"].sum() == 6
    assert counts.loc["flagged: broken", "images"] == 1 and counts.loc["flagged: unreadable", "images"] == 1
    summary = batch_summary(table)
    assert summary.startswith("9 images: 6 scored by neuroflux_cnn-") and "3 flagged" in summary


def test_batch_folders_are_the_visible_sub_folders_holding_images(tmp_path: Path, batch: Path) -> None:
    assert batch_folders(tmp_path / "missing") == []
    write_gray(tmp_path / "b2" / "x.png", blob_image())
    write_gray(tmp_path / ".copying" / "x.png", blob_image())
    (tmp_path / "empty").mkdir()
    (tmp_path / "text_only").mkdir()
    (tmp_path / "text_only" / "a.txt").write_text("x")
    assert batch_folders(tmp_path) == ["b2"]
    with pytest.raises(DataError, match="no image files"):
        score_batch(tmp_path / "text_only", tmp_path, None)


def test_the_class_mix_reference_is_this_models_test_predictions_else_the_labels(
    tmp_path: Path, artifact: Path, reference
) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    for folder, digest, predicted in ((mine, sha256_file(artifact / WEIGHTS_FILE), "IO"), (other, "x", "LO")):
        folder.mkdir()
        (folder / "report.json").write_text(json.dumps(untyped_report(artifact_digest=digest)))
        pd.DataFrame({"path": ["a", "b"], "predicted": [predicted, "PTE"]}).to_csv(
            folder / "predictions.csv", index=False
        )
    chosen = with_model_class_mix(reference, artifact, {"a": other, "b": mine})
    counts = chosen.class_counts
    assert counts["IO"] == 1 and counts["PTE"] == 1 and counts["LO"] == 0
    assert "test-split predictions" in chosen.class_source and "[b]" in chosen.class_source
    assert chosen.model_version.startswith("neuroflux_cnn-")
    fallback = with_model_class_mix(reference, artifact, {"a": other})
    assert fallback.class_counts.equals(reference.class_counts) and "labels" in fallback.class_source
    stored = TrainingReference.from_dict(json.loads(json.dumps(chosen.to_dict())))
    assert stored.class_counts.equals(chosen.class_counts) and np.allclose(stored.quality, chosen.quality)
