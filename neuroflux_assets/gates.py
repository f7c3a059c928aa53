"""The rules a model must pass, in one place: the asset checks report them and `production_model`
re-applies them at run time, so a model that failed can never be promoted."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from neuroflux_lib.artifacts import load_artifact
from neuroflux_lib.transforms import eval_transform


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


def read_report(report_dir: str | Path) -> dict:
    return json.loads((Path(report_dir) / "report.json").read_text())


def meets_quality_bar(report: dict, min_macro_f1: float) -> tuple[bool, str]:
    macro_f1 = float(report["macro_f1"])
    passed = macro_f1 >= min_macro_f1
    verdict = "passes" if passed else "fails"
    return passed, f"test macro-F1 {macro_f1:.3f} {verdict} the bar of {min_macro_f1:.3f}"
