"""Grad-CAM for people: each image beside its heatmap for the predicted class, written as PNG files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from neuroflux_lib.data.imageio import load_grayscale_or_raise
from neuroflux_lib.serving.gradcam import explanation_png
from neuroflux_lib.serving.predictor import Prediction, Predictor


def caption(prediction: Prediction, path: str | Path, method: str = "gradcam") -> str:
    label = prediction.label
    return f"{Path(path).name}: {label} ({prediction.confidence:.1%}); {method} heatmap for {label}"


def write_explanations(
    predictor: Predictor, paths: Iterable[str | Path], out_dir: str | Path, method: str = "gradcam"
) -> Iterator[Prediction]:
    """Explain each image file and write `<out_dir>/<file stem>.png` (image | overlay, captioned with the
    prediction); yields the predictions as they are made. Stems that repeat get `-2`, `-3`..."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    used: dict[str, int] = {}
    for path in paths:
        gray = load_grayscale_or_raise(path)
        prediction, heatmap = predictor.explain(gray, method=method)
        stem = Path(path).stem
        used[stem] = used.get(stem, 0) + 1
        name = stem if used[stem] == 1 else f"{stem}-{used[stem]}"
        (out / f"{name}.png").write_bytes(explanation_png(gray, heatmap, caption(prediction, path, method)))
        yield replace(prediction, source=str(path))
