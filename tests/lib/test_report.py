"""report.json is a typed contract: files written before the type existed read back with every value, and
what the platform writes reads back unchanged."""

from __future__ import annotations

import json

import pytest

from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.evaluation.intervals import Interval
from neuroflux_lib.evaluation.report import (
    REPORT_FILES,
    EvaluationReport,
    read_report,
    save_report,
    write_report,
)
from tests.factories import UNTYPED_REPORT, untyped_report


def test_a_report_written_before_the_type_existed_reads_back_with_the_same_values(tmp_path):
    (tmp_path / REPORT_FILES["report"]).write_text(UNTYPED_REPORT.read_text())
    raw = untyped_report()
    report = read_report(tmp_path)

    assert json.loads(report.to_json()) == raw  # every key and value, nothing added or lost
    assert report.headline() == {
        key: raw[key] for key in ("accuracy", "macro_f1", "weighted_f1", "macro_roc_auc", "n_test")
    }
    assert report.intervals.macro_f1 == Interval(**raw["intervals"]["macro_f1"])
    assert report.intervals.f1("IO") == Interval(**raw["intervals"]["f1_IO"])
    assert report.subject_level.n_subjects == raw["subject_level"]["n_subjects"]
    assert report.per_class["PTE"].f1_score == raw["per_class"]["PTE"]["f1-score"]
    assert report.calibration.before.ece == raw["calibration"]["before"]["ece"]
    assert report.confound.scores["year"] == Interval(**raw["confound"]["scores"]["year"])
    best = report.comparison.best_baseline
    description = raw["comparison"]["baselines"][best]["description"]
    assert report.comparison.baselines[best].description == description
    assert report.comparison.difference == Interval(**raw["comparison"]["difference"])
    assert report.explanations.faithfulness.meaningful is raw["explanations"]["faithfulness"]["meaningful"]


def test_unknown_keys_are_ignored_and_missing_ones_name_the_file(tmp_path):
    newer = untyped_report(written_by="a later version")
    newer["calibration"]["bins_by_class"] = {}
    today = EvaluationReport.from_json(UNTYPED_REPORT.read_text())
    assert EvaluationReport.from_json(json.dumps(newer)) == today

    broken = untyped_report()
    del broken["intervals"]
    (tmp_path / REPORT_FILES["report"]).write_text(json.dumps(broken))
    with pytest.raises(ArtifactError, match="intervals"):
        read_report(tmp_path)


@pytest.mark.parametrize("optional", [False, True], ids=["full", "without comparison and explanations"])
def test_write_then_read_is_identical(tmp_path, optional):
    report = EvaluationReport.from_json(UNTYPED_REPORT.read_text())
    if optional:
        report = report.model_copy(update={"comparison": None, "explanations": None})
    files = write_report(report, tmp_path, list(report.per_class), title="round trip")

    assert read_report(tmp_path) == report
    assert files["text"].read_text() == report.classification_report
    assert ("comparison" in files) is not optional
    again = tmp_path / "again"
    again.mkdir()
    assert save_report(read_report(tmp_path), again).read_text() == files["report"].read_text()
