"""Calibrated probabilities and the model card: temperature scaling, fitted on validation, fixes an
over-confident model without changing one prediction; artifacts from before it still load; every
artifact, report and production folder carries a card; the production model says how it reaches W&B."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from neuroflux_lib.evaluation.calibration import (
    Calibration,
    ReliabilityBins,
    calibrated_probabilities,
    calibration_report,
    fit_temperature,
    negative_log_likelihood,
    reliability_png,
    temperature_scaling,
)
from neuroflux_lib.evaluation.evaluate import evaluate_artifact, split_logits
from neuroflux_lib.evaluation.metrics import calibration_bins
from neuroflux_lib.evaluation.reference import baselines_of, reference_report
from neuroflux_lib.serving.artifacts import META_FILE, read_meta
from neuroflux_lib.serving.model_card import CARD_FILE
from neuroflux_lib.serving.predictor import Predictor
from neuroflux_lib.tracking import read_run
from neuroflux_lib.tracking.offline import UPLOAD_FILE
from neuroflux_lib.tracking.wandb_run import TrackingSettings, publish_model, start_run
from neuroflux_lib.training.steps import train_model
from tests.lib.test_artifacts import saved_cnn
from tests.lib.test_training import tiny_cnn_config

SECTIONS = (
    "## Intended use",
    "## Data",
    "## Split policy",
    "## Results against the baselines",
    "## Confound warning",
    "## Calibration",
    "## Known limitations",
    "## How it was trained",
)


def logistic_logits(scale: float, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(logits, labels) on val and test of a logistic regression on a 5-class Gaussian problem; the
    logits multiplied by `scale` (5: a deliberately over-confident model)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.0, (5, 8))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 5, n)
        return means[labels] + rng.normal(0, 1.5, (n, 8)), labels

    x_train, y_train = draw(1000)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    out = {}
    for split, n in (("val", 600), ("test", 1000)):
        x, y = draw(n)
        out[split] = (model.decision_function(x) * scale, y)
    return out


def test_temperature_scaling_calibrates_an_over_confident_model() -> None:
    data = logistic_logits(scale=5.0)
    val_logits, val_labels = data["val"]
    test_logits, test_labels = data["test"]
    temperature = fit_temperature(val_logits, val_labels)
    assert temperature > 2  # the logits were inflated 5x: T undoes most of it

    report = calibration_report(test_labels, test_logits, temperature)
    assert report["ece"] < report["before"]["ece"] / 2  # on the test split, which never saw the fit
    assert negative_log_likelihood(test_logits, test_labels, temperature) < negative_log_likelihood(
        test_logits, test_labels
    )
    # T > 0 never changes a prediction, so accuracy, macro-F1 and promotion are untouched.
    calibrated = calibrated_probabilities(test_logits, temperature).numpy()
    assert (calibrated.argmax(axis=1) == test_logits.argmax(axis=1)).all()
    assert np.allclose(calibrated.sum(axis=1), 1, atol=1e-5)


def test_a_calibrated_model_keeps_a_temperature_near_one() -> None:
    logits, labels = logistic_logits(scale=1.0)["val"]
    fitted = temperature_scaling(logits, labels)
    assert 0.75 < fitted["temperature"] < 1.33
    assert fitted["nll_after"] <= fitted["nll_before"] + 1e-9
    assert fitted["fitted_on"] == "val" and fitted["n_images"] == len(labels)


def test_the_reliability_diagram_shows_before_and_after() -> None:
    logits, labels = logistic_logits(scale=5.0)["test"]
    report = calibration_report(labels, logits, 3.0)
    assert report["temperature"] == 3.0 and sum(report["before"]["count"]) == len(labels)
    assert report["before"] == calibration_bins(labels, calibrated_probabilities(logits).numpy())
    assert reliability_png(Calibration.model_validate(report)).startswith(b"\x89PNG")
    before = ReliabilityBins.model_validate(report["before"])  # a report from before calibration
    assert reliability_png(before).startswith(b"\x89PNG")


def test_an_artifact_from_before_calibration_loads_with_temperature_one(tmp_path) -> None:
    saved_cnn(tmp_path / "model")
    sidecar = tmp_path / "model" / META_FILE
    values = json.loads(sidecar.read_text())
    for key in ("temperature", "calibration"):
        values.pop(key)
    sidecar.write_text(json.dumps(values))
    meta = read_meta(tmp_path / "model")
    assert meta.temperature == 1.0 and not meta.calibrated
    prediction = Predictor.from_artifact(tmp_path / "model").predict(np.zeros((32, 32), np.uint8))
    assert np.isclose(sum(prediction.probabilities.values()), 1, atol=1e-5)


@pytest.fixture(scope="module")
def evaluated(prepared, tmp_path_factory):
    """The tiny CNN trained and evaluated against the baselines on the demo set."""
    dataset, balanced, splits = prepared
    out = tmp_path_factory.mktemp("calibrated")
    trained = train_model(
        tiny_cnn_config(), dataset, balanced, splits, artifact_dir=out / "model", work_dir=out / "work"
    )
    training_card = (out / "model" / CARD_FILE).read_text()
    reference = reference_report(splits, dataset)
    evaluation = evaluate_artifact(
        trained.artifact_dir,
        dataset,
        splits,
        out / "report",
        baselines=baselines_of(reference),
        confound=reference["confound"],
    )
    return trained, evaluation, training_card, dataset, splits, out


def test_training_fits_the_temperature_on_validation_and_writes_the_card(evaluated) -> None:
    trained, _, training_card, _, splits, out = evaluated
    meta = read_meta(out / "model")
    assert meta.calibrated and meta.temperature == meta.calibration["temperature"] > 0
    assert meta.calibration["fitted_on"] == "val"
    assert meta.calibration["n_images"] == int((splits["split"] == "val").sum())
    assert meta.calibration["nll_after"] <= meta.calibration["nll_before"] + 1e-9
    assert meta.training["hardware"]
    assert all(section in training_card for section in SECTIONS)
    assert "Not evaluated yet" in training_card and "Not for diagnosis" in training_card
    assert f"T = {meta.temperature:.3f}" in training_card and meta.data_version in training_card


def test_the_report_measures_calibration_on_test_and_its_card_has_the_baselines(evaluated) -> None:
    trained, evaluation, _, dataset, splits, out = evaluated
    report = evaluation.report
    assert report.calibration.temperature == trained.meta.temperature
    assert report.calibration.ece >= 0 and report.calibration.before.ece >= 0
    assert read_meta(out / "model").test_metrics == report.headline()  # record_metrics
    labels, logits = split_logits(out / "model", dataset, splits, "test")
    # the report's predictions are the calibrated probabilities, and argmax is the uncalibrated one
    predicted = evaluation.predictions["predicted"].tolist()
    assert predicted == [trained.meta.class_names[i] for i in logits.argmax(axis=1)]
    expected = calibrated_probabilities(logits, trained.meta.temperature).numpy()
    assert np.allclose(evaluation.predictions[trained.meta.class_names].to_numpy(), expected, atol=1e-6)

    card = (out / "report" / CARD_FILE).read_text()
    assert all(section in card for section in SECTIONS)
    assert "Not evaluated yet" not in card
    assert report.comparison.verdict in card
    for name in report.comparison.baselines:
        assert f"baseline: {name}" in card
    assert f"{report.calibration.before.ece:.3f} before" in card


def test_the_predictor_shows_calibrated_probabilities(evaluated) -> None:
    trained, evaluation, _, _, _, out = evaluated
    row = evaluation.predictions.iloc[0]
    prediction = Predictor.from_artifact(out / "model").predict(row["path"])
    assert prediction.calibrated and prediction.temperature == trained.meta.temperature
    assert prediction.probability_kind.startswith("calibrated probabilities (temperature")
    shown = [prediction.probabilities[name] for name in trained.meta.class_names]
    assert np.allclose(shown, row[trained.meta.class_names].to_numpy(dtype=float), atol=1e-5)


def test_offline_the_production_folder_says_how_to_upload_it(tmp_path) -> None:
    (tmp_path / CARD_FILE).write_text("# Model card")
    line = publish_model(
        TrackingSettings(mode="offline", root=str(tmp_path / "wandb")),
        tmp_path,
        name="production_model",
        aliases=["production", "neuroflux_cnn"],
        card="# Model card",
        metadata={"model": "neuroflux_cnn"},
        run_name="neuroflux_cnn-promote",
    )
    note = (tmp_path / UPLOAD_FILE).read_text()
    assert UPLOAD_FILE in line
    assert "wandb artifact put --type model --name neuroflux/production_model" in note
    assert "--alias production --alias neuroflux_cnn" in note
    assert not (tmp_path / "wandb").exists()  # nothing logged offline: the note is the way


def test_the_model_artifact_call_records_an_artifact(tmp_path, isolated_wandb_env) -> None:
    """What `publish_model` does online, exercised in an offline run (no network here): wandb takes the
    artifact, and the run's record lists it with the files wandb's manifest holds."""
    saved_cnn(tmp_path / "model")
    (tmp_path / "model" / CARD_FILE).write_text("# Model card")
    tracked = start_run(
        TrackingSettings(mode="offline", root=str(tmp_path / "wandb")), name="promote", job_type="promote"
    )
    with tracked:
        tracked.log_model(tmp_path / "model", "production_model", ["production"], "# Model card", {"a": 1})
    assert tracked.error is None
    artifacts = read_run(tracked.link).artifacts
    assert [(a["name"], a["type"], a["aliases"]) for a in artifacts] == [
        ("production_model", "model", ["production"])
    ]
    assert set(artifacts[0]["files"]) >= {"model.safetensors", "model.json", CARD_FILE}
