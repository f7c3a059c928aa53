"""Which model may be promoted, and which one is: the rules in one place. The asset checks report them
and `production_model` re-applies them at run time, so a model that failed can never be promoted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from neuroflux_lib.artifacts import load_artifact
from neuroflux_lib.data.transforms import eval_transform
from neuroflux_lib.evaluation.report import read_report

CANDIDATE_COLUMNS = ["model", "macro_f1", "accuracy", "n_test", "passed", "why"]


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
    normalization = (meta.normalization["mean"], meta.normalization["std"])
    blank = torch.zeros(1, meta.image_size, meta.image_size, dtype=torch.uint8)
    with torch.inference_mode():
        logits = model(eval_transform(meta.image_size, normalization)(blank).unsqueeze(0))
    if tuple(logits.shape) != (1, meta.num_classes):
        problems.append(f"logits shape {tuple(logits.shape)}, expected (1, {meta.num_classes})")
    elif not torch.isfinite(logits).all():
        problems.append("non-finite logits on a blank image")
    return problems


def meets_quality_bar(report: Mapping, min_macro_f1: float) -> tuple[bool, str]:
    macro_f1 = float(report["macro_f1"])
    passed = macro_f1 >= min_macro_f1
    verdict = "passes" if passed else "fails"
    return passed, f"test macro-F1 {macro_f1:.3f} {verdict} the bar of {min_macro_f1:.3f}"


def compare_models(
    trained: Mapping[str, Path], reports: Mapping[str, Path], min_macro_f1: float
) -> pd.DataFrame:
    """One row per model with an evaluation: metrics and whether it passes every rule."""
    rows = []
    for name, report_dir in sorted(reports.items()):
        report = read_report(report_dir)
        passed, why = meets_quality_bar(report, min_macro_f1)
        problems = artifact_problems(trained[name]) if name in trained else ["no trained_model artifact"]
        rows.append(
            {
                "model": name,
                "macro_f1": float(report["macro_f1"]),
                "accuracy": float(report["accuracy"]),
                "n_test": int(report["n_test"]),
                "passed": passed and not problems,
                "why": "; ".join([why, *problems]),
            }
        )
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


@dataclass(frozen=True)
class Promotion:
    """The decision: which model (None when nothing may be promoted), why, and every candidate."""

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
    trained: Mapping[str, Path], reports: Mapping[str, Path], min_macro_f1: float
) -> Promotion:
    """The passing model with the highest test macro-F1 (accuracy breaks ties)."""
    table = compare_models(trained, reports, min_macro_f1)
    if table.empty or not table["passed"].any():
        return Promotion(None, "no model passed its checks: nothing promoted", table)
    best = table.loc[table["passed"]].sort_values(["macro_f1", "accuracy"], ascending=False).iloc[0]
    why = f"highest test macro-F1 ({best['macro_f1']:.3f}) of {int(table['passed'].sum())} passing model(s)"
    return Promotion(str(best["model"]), why, table)
