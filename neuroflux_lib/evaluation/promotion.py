"""Which model may be promoted, and which one is: the rules in one place.

1. Candidates are the evaluated models whose artifact loads and predicts, that passed the "did it
   learn?" check (training/learn_check.py), and whose report is of the current data version (others are
   listed as stale: their test split was another one).
2. The candidate to promote is the one with the highest *validation* macro-F1: the test split never
   chooses.
3. It is promoted only when, on the *test* split, its paired 95% interval against the best baseline lies
   above `min_gain` (default 0), and, when set, its test macro-F1 reaches `min_macro_f1`. Otherwise
   nothing is promoted: a normal outcome, said in one line.

The asset checks report these rules and `production_model` re-applies them at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.evaluation.comparison import verdict
from neuroflux_lib.evaluation.report import EvaluationReport, read_report
from neuroflux_lib.serving.artifacts import load_artifact, read_meta
from neuroflux_lib.training.learn_check import recorded_learn_check

CANDIDATE_COLUMNS = [
    "model",
    "val_macro_f1",
    "test_macro_f1",
    "gain_vs_best_baseline",
    "eligible",
    "passes_gate",
    "why",
]


@dataclass(frozen=True)
class Gate:
    """The bar a chosen model must clear on the test split."""

    min_gain: float = 0.0
    min_macro_f1: float | None = None


def artifact_problems(artifact_dir: str | Path) -> list[str]:
    """Empty when the artifact loads, every weight is finite and a forward pass gives (1, n_classes)."""
    try:
        model, meta = load_artifact(artifact_dir)
    except Exception as error:  # any load failure is a reason not to ship
        return [f"artifact does not load: {error}"]
    problems = [
        f"non-finite values in {name}"
        for name, t in model.state_dict().items()
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    blank = torch.zeros(1, 1, meta.image_size, meta.image_size, dtype=torch.uint8)
    with torch.inference_mode():
        logits = model(meta.input_normalization(blank))
    if tuple(logits.shape) != (1, meta.num_classes):
        problems.append(f"logits shape {tuple(logits.shape)}, expected (1, {meta.num_classes})")
    elif not torch.isfinite(logits).all():
        problems.append("non-finite logits on a blank image")
    return problems


def learn_problems(artifact_dir: str | Path) -> list[str]:
    """The "did it learn?" verdict recorded at training time, as a reason not to promote."""
    try:
        learned = recorded_learn_check(read_meta(artifact_dir).training)
    except ArtifactError as error:
        return [str(error)]
    return [] if learned is None or learned.passed else [learned.message]


def passes_gate(report: EvaluationReport, gate: Gate) -> tuple[bool, str]:
    """Whether the test split supports the model: its paired interval against the best baseline lies
    above `gate.min_gain` (and its macro-F1 reaches the optional floor)."""
    comparison = report.comparison
    name = report.model_name
    if comparison is None:
        return False, f"{name} has no comparison with the baselines (evaluate it again)"
    difference = comparison.difference
    best = comparison.best_baseline
    description = comparison.baselines[best].description
    line = verdict(name, difference, best, description, gate.min_gain)
    passed = difference.low > gate.min_gain
    if gate.min_macro_f1 is not None:
        macro_f1 = report.macro_f1
        floor_ok = macro_f1 >= gate.min_macro_f1
        line += (
            f"; test macro-F1 {macro_f1:.3f} {'reaches' if floor_ok else 'is below'} the floor "
            f"{gate.min_macro_f1:.3f}"
        )
        passed = passed and floor_ok
    return passed, line


def compare_models(
    trained: Mapping[str, Path],
    reports: Mapping[str, Path],
    gate: Gate,
    data_version: str | None = None,
) -> pd.DataFrame:
    """One row per evaluated model: validation and test scores, eligibility and the gate's verdict."""
    rows = []
    for name, report_dir in sorted(reports.items()):
        report = read_report(report_dir)
        passed, why = passes_gate(report, gate)
        problems = (
            artifact_problems(trained[name]) + learn_problems(trained[name])
            if name in trained
            else ["no trained_model artifact"]
        )
        if data_version is not None and report.data_version != data_version:
            problems.append(f"stale: evaluated on data version {report.data_version}, not {data_version}")
        if report.val_macro_f1 is None:
            problems.append("no validation macro-F1 recorded")
        rows.append(
            {
                "model": name,
                "val_macro_f1": report.val_macro_f1,
                "test_macro_f1": report.macro_f1,
                "gain_vs_best_baseline": str(report.comparison.difference) if report.comparison else "",
                "eligible": not problems,
                "passes_gate": passed,
                "why": "; ".join([why, *problems]),
            }
        )
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


@dataclass(frozen=True)
class Promotion:
    """The decision: which model (None when nothing is promoted), why, and every candidate."""

    model: str | None
    why: str
    candidates: pd.DataFrame

    @property
    def winner(self) -> pd.Series:
        return self.candidates.set_index("model").loc[self.model]

    @property
    def others(self) -> pd.DataFrame:
        return self.candidates.loc[self.candidates["model"] != self.model]


def choose_production(
    trained: Mapping[str, Path],
    reports: Mapping[str, Path],
    gate: Gate,
    data_version: str | None = None,
) -> Promotion:
    """Choose by validation macro-F1 among eligible models, then promote only if the gate passes."""
    table = compare_models(trained, reports, gate, data_version)
    eligible = table.loc[table["eligible"]]
    if eligible.empty:
        return Promotion(None, "no eligible model (see each candidate's reason): nothing promoted", table)
    chosen = eligible.sort_values("val_macro_f1", ascending=False).iloc[0]
    how = f"{chosen['model']} has the highest validation macro-F1 ({chosen['val_macro_f1']:.3f})"
    if not chosen["passes_gate"]:
        return Promotion(None, f"nothing promoted: {how}, but {chosen['why']}", table)
    return Promotion(str(chosen["model"]), f"{how}, and {chosen['why']}", table)
