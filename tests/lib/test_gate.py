"""The platform tells the truth about a model: labels readable from the file names are flagged, and a
model that does not beat the baselines, or that learned nothing, is never promoted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroflux_lib.config import DatasetConfig, with_overrides
from neuroflux_lib.config.resolve import load_config, load_model_config
from neuroflux_lib.data.pipeline import run_preprocess
from neuroflux_lib.evaluation.evaluate import evaluate_artifact
from neuroflux_lib.evaluation.promotion import Gate, choose_production, passes_gate
from neuroflux_lib.evaluation.reference import baselines_of, reference_report
from neuroflux_lib.evaluation.report import EvaluationReport
from neuroflux_lib.paths import config_dir
from neuroflux_lib.training.steps import train_model
from tests.factories import blob_image, write_gray

CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]


def write_dataset(root: Path, classes: list[int], years: list[int], slices: int = 2, seed: int = 0) -> Path:
    """One subject per entry: its class, its scan year in every file name; the pixels carry no class
    signal (every image is drawn from the same distribution)."""
    rng = np.random.default_rng(seed)
    for subject, (label, year) in enumerate(zip(classes, years, strict=True)):
        for index in range(slices):
            image_id = subject * 10 + index
            name = (
                f"neuroflux_{subject % 7:03d}_S_{subject:04d}_MR_Axial_T2_Star__br_raw_"
                f"{year}0101120000000_22_S{image_id}_I{image_id}.jpg"
            )
            write_gray(root / CLASSES[label] / name, blob_image(48, seed=int(rng.integers(1 << 30))))
    return root


def prepared(root: Path, tmp_path: Path):
    dataset = with_overrides(
        load_config(DatasetConfig, config_dir() / "dataset_config.json"),
        {
            "data_dir": str(root),
            "storage_dir": str(tmp_path / "storage"),
            "image_size": 32,
            "num_workers": 1,
            "min_images_per_class": 3,
        },
    )
    result = run_preprocess(dataset)
    return dataset, result.balanced, result.splits


def trained_and_evaluated(dataset, balanced, splits, reference, tmp_path: Path) -> EvaluationReport:
    model = with_overrides(
        load_model_config(config_dir() / "models" / "neuroflux_cnn.json"),
        {"num_epochs": 2, "conv_channels": 4, "batch_size": 32, "device": "cpu", "num_workers": 0},
    )
    trained = train_model(
        model, dataset, balanced, splits, artifact_dir=tmp_path / "model", work_dir=tmp_path / "work"
    )
    evaluation = evaluate_artifact(
        trained.artifact_dir,
        dataset,
        splits,
        tmp_path / "report",
        baselines=baselines_of(reference),
        confound=reference["confound"],
    )
    return evaluation.report


def test_labels_fully_determined_by_the_scan_year_are_flagged_and_nothing_is_promoted(tmp_path):
    classes = [k for k in range(5) for _ in range(14)]
    root = write_dataset(tmp_path / "data", classes, [2015 + k for k in classes])
    dataset, balanced, splits = prepared(root, tmp_path)
    reference = reference_report(splits, dataset)

    metadata = reference["summary"]["metadata"]["test"]["macro_f1"]
    assert metadata["estimate"] > 0.95
    assert reference["confound"]["scores"]["year"]["estimate"] > 0.95
    assert reference["confound"]["cramers_v"]["year"] > 0.95
    assert reference["confound"]["cramers_v"]["sequence"] == 0.0  # one protocol for everyone
    warning = reference["confound"]["warning"]
    assert warning and "scan year alone" in warning and "instead of anatomy" in warning

    report = trained_and_evaluated(dataset, balanced, splits, reference, tmp_path)
    assert report.comparison.best_baseline == "metadata"
    assert report.confound_warning == warning
    passed, why = passes_gate(report, Gate())
    assert not passed and "does not beat the best baseline (metadata" in why
    promotion = choose_production(
        {"neuroflux_cnn": tmp_path / "model"}, {"neuroflux_cnn": tmp_path / "report"}, Gate()
    )
    assert promotion.model is None and "nothing promoted" in promotion.why


def test_with_random_labels_nothing_is_promoted_and_the_interval_covers_chance(tmp_path):
    rng = np.random.default_rng(5)
    classes = [k for k in range(5) for _ in range(18)]
    years = rng.integers(2015, 2021, len(classes)).tolist()
    root = write_dataset(tmp_path / "data", classes, years, slices=2, seed=1)
    dataset, balanced, splits = prepared(root, tmp_path)
    reference = reference_report(splits, dataset)
    assert reference["confound"]["warning"] is None

    report = trained_and_evaluated(dataset, balanced, splits, reference, tmp_path)
    interval, chance = report.intervals.macro_f1, report.chance.estimate
    assert interval.low <= chance <= interval.high
    assert report.comparison.difference.low <= 0
    assert not passes_gate(report, Gate())[0]
    promotion = choose_production({"m": tmp_path / "model"}, {"m": tmp_path / "report"}, Gate())
    assert promotion.model is None


def test_the_report_has_intervals_subject_results_and_calibration(tmp_path):
    classes = [k for k in range(5) for _ in range(10)]
    root = write_dataset(tmp_path / "data", classes, [2018] * len(classes), slices=3)
    dataset, balanced, splits = prepared(root, tmp_path)
    report = trained_and_evaluated(dataset, balanced, splits, reference_report(splits, dataset), tmp_path)
    test_subjects = splits.loc[splits["split"] == "test", "subject_id"].nunique()
    assert report.subject_level.n_subjects == test_subjects
    assert 0 <= report.calibration.ece <= 1 and sum(report.calibration.count) == report.n_test
    scores = report.intervals
    for interval in (scores.macro_f1, scores.balanced_accuracy, scores.accuracy, scores.f1("PTE")):
        assert interval.low <= interval.estimate <= interval.high
    assert report.held_out is True and report.data_version == report.trained_on_data_version
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 0
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 0
    assert report.comparison.resampling.resamples >= 1000


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "neuroflux_037_S_4028_MR_AX_T2_STAR_br_raw_20150604114630013_22_S262071_I495897.jpg",
            ("037", "AX_T2_STAR", "2015"),
        ),
        (
            "neuroflux_003_S_4288_MR_Axial_T2_STAR__raw_20190912172455811_22_S872909_I1226301.jpg",
            ("003", "AXIAL_T2_STAR", "2019"),
        ),
        (
            "neuroflux_114_S_6039_MR__br_raw_20190820093048732_22_S587863_I879212.jpg",
            ("114", "(empty)", "2019"),
        ),
        (
            "neuroflux_002_S_1155_MR_Axial_T2-Star__br_raw_20150106121009713_22_S244439_I467647.jpg",
            ("002", "AXIAL_T2_STAR", "2015"),
        ),
        ("scan_0001.jpg", ("(unparsed)", "(unparsed)", "(unparsed)")),
    ],
)
def test_the_default_metadata_regex_parses_every_real_name(name, expected):
    from neuroflux_lib.config import DEFAULT_METADATA_REGEX
    from neuroflux_lib.evaluation.baselines import acquisition_fields

    fields = acquisition_fields([f"data/EO/{name}"], DEFAULT_METADATA_REGEX)
    assert tuple(fields.loc[0, ["site", "sequence", "year"]]) == expected
