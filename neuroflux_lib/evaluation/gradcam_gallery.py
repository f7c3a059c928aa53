"""The evaluation report's "why did it say that?": a Grad-CAM gallery and a faithfulness number.

The gallery shows, per true class, the test image the model was most sure of and right, and the one it
was most sure of and wrong, each with the heatmap of the class it predicted. A heatmap can look
convincing and mean nothing, so beside it stands a deletion test: blur the hottest `fraction` of the
pixels and see how much the predicted class's probability drops, against blurring a random region of
the same size inside the head. A model whose heatmaps point at its evidence drops more for the heatmap;
the paired difference carries a subject-bootstrap interval, like every other number in the report.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from neuroflux_lib.data.imageio import load_grayscale_or_raise
from neuroflux_lib.data.normalization import FOREGROUND_FRACTION
from neuroflux_lib.evaluation.comparison import group_keys
from neuroflux_lib.evaluation.intervals import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Interval, resample_counts
from neuroflux_lib.evaluation.report import REPORT_FILES, ExplanationsSummary, read_report, save_report
from neuroflux_lib.models.registry import model_spec
from neuroflux_lib.serving.gradcam import cam_layer, class_heatmaps, overlay, resize_heatmap
from neuroflux_lib.serving.predictor import Prediction, Predictor

GALLERY_FILE = "gradcam_gallery.png"
#: Share of the image blurred in the deletion test.
DELETED_FRACTION = 0.2
#: Test images the deletion test explains (a fixed-seed sample; each costs a forward and backward pass).
FAITHFULNESS_IMAGES = 40
#: Images explained per backward pass (memory: activations of a batch with their gradients).
CAM_BATCH = 16
#: Random regions per image, averaged: the baseline a heatmap has to beat.
RANDOM_REGIONS = 5
#: Blur sigma as a share of the image's longer side: structures under about a fifth of the image
#: (lesions, ventricles) are gone, the head's outline and brightness stay. At 0.05 a small bright spot
#: survives the blur, and the test could not tell a good heatmap from a bad one (docs/evaluation.md).
BLUR_SIGMA = 0.1
#: Random regions are blobs on a grid this coarse, about the size of a last-conv-block heatmap's cells.
RANDOM_GRID = 8


def gallery_rows(predictions: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """Per true class, the most confident correct and the most confident wrong prediction (when there is
    one): `predictions` as `evaluation.report.predictions_table` writes it; adds `kind` (correct/wrong)."""
    rows = []
    for name in class_names:
        of_class = predictions[predictions["true"] == name]
        for kind, chosen in (
            ("correct", of_class[of_class["predicted"] == name]),
            ("wrong", of_class[of_class["predicted"] != name]),
        ):
            if len(chosen):
                rows.append({**chosen.loc[chosen["confidence"].idxmax()].to_dict(), "kind": kind})
    return pd.DataFrame(rows, columns=[*predictions.columns, "kind"])


def foreground(gray: np.ndarray) -> np.ndarray:
    """The head: pixels above `FOREGROUND_FRACTION` of the 99th percentile (the normalisation's rule)."""
    return gray > FOREGROUND_FRACTION * np.percentile(gray, 99)


def top_mask(scores: np.ndarray, fraction: float) -> np.ndarray:
    """The `fraction` of pixels with the highest scores (ties broken by position, fixed)."""
    k = max(1, int(round(fraction * scores.size)))
    order = np.argsort(-scores.ravel(), kind="stable")[:k]
    mask = np.zeros(scores.size, dtype=bool)
    mask[order] = True
    return mask.reshape(scores.shape)


def random_region(gray: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random blobby region of `fraction` of the pixels, inside the head first: a heatmap must beat
    blurring some other part of the head, not the empty background."""
    field = cv2.resize(rng.random((RANDOM_GRID, RANDOM_GRID)).astype(np.float32), gray.shape[::-1])
    return top_mask(np.where(foreground(gray), field, field - 2.0), fraction)


def blur_region(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`gray` with the pixels of `mask` replaced by a Gaussian blur of the image."""
    sigma = BLUR_SIGMA * max(gray.shape)
    blurred = cv2.GaussianBlur(gray, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.where(mask, blurred, gray).astype(np.uint8)


def explain_images(
    predictor: Predictor, grays: Sequence[np.ndarray], batch_size: int = CAM_BATCH
) -> tuple[list[Prediction], list[np.ndarray]]:
    """`Predictor.explain` for many decoded images, `batch_size` at a time (same input, same layer)."""
    predictions = predictor.predict_batch(grays)
    layer = cam_layer(predictor.model, predictor.meta.architecture)
    heatmaps = []
    for start in range(0, len(grays), batch_size):
        chunk = grays[start : start + batch_size]
        classes = [predictor.class_names.index(p.label) for p in predictions[start : start + batch_size]]
        maps = class_heatmaps(predictor.model, predictor.model_input(chunk), layer, classes)
        heatmaps += [resize_heatmap(m, gray.shape) for m, gray in zip(maps, chunk, strict=True)]
    return predictions, heatmaps


@dataclass(frozen=True)
class Faithfulness:
    """Mean drop of the predicted class's probability when the heatmap's top pixels are blurred, when a
    random region of the same size is, and their paired difference (heatmap minus random)."""

    heatmap_drop: Interval
    random_drop: Interval
    difference: Interval
    n_images: int
    fraction: float

    @property
    def meaningful(self) -> bool:
        """The heatmap's pixels matter more than random ones: the difference's interval is above 0."""
        return self.difference.low > 0

    def describe(self) -> str:
        share = f"{self.fraction:.0%}"
        reading = (
            "the heatmaps point at pixels the model relies on"
            if self.meaningful
            else "no evidence that the heatmaps point at what the model relies on"
        )
        return (
            f"Blurring the top {share} heatmap pixels lowers the predicted class's probability by "
            f"{self.heatmap_drop}, a random {share} of the head by {self.random_drop}: difference "
            f"{self.difference} ({self.n_images} test images, 95% subject-bootstrap intervals): {reading}."
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "meaningful": self.meaningful, "summary": self.describe()}


def _group_interval(
    values: np.ndarray, group_index: np.ndarray, counts: np.ndarray, level: float = DEFAULT_LEVEL
) -> Interval:
    """Mean of `values` with a percentile interval over resamples of their groups (`counts`: resamples x
    groups, as `intervals.resample_counts` draws them)."""
    n_groups = counts.shape[1]
    sums = np.bincount(group_index, weights=values, minlength=n_groups)
    sizes = np.bincount(group_index, minlength=n_groups)
    means = (counts @ sums) / np.maximum(counts @ sizes, 1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def faithfulness(
    predictor: Predictor,
    paths: Sequence[str | Path],
    groups: Sequence[object] | None = None,
    *,
    fraction: float = DELETED_FRACTION,
    random_regions: int = RANDOM_REGIONS,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> Faithfulness:
    """The deletion test on `paths` (their `groups`, e.g. subjects, are what the bootstrap resamples;
    default: each image its own group). Each image is explained for its predicted class, then predicted
    again with its top `fraction` heatmap pixels blurred and with `random_regions` random regions
    blurred; the drops are in that class's probability."""
    if not paths:
        raise ValueError("the deletion test needs at least one image")
    rng = np.random.default_rng(seed)
    grays = [load_grayscale_or_raise(path) for path in paths]
    predictions, heatmaps = explain_images(predictor, grays)
    perturbed = []
    for gray, heatmap in zip(grays, heatmaps, strict=True):
        masks = [top_mask(heatmap, fraction)]
        masks += [random_region(gray, fraction, rng) for _ in range(random_regions)]
        perturbed += [blur_region(gray, mask) for mask in masks]
    # One row per image: the heatmap's region, then the random ones.
    after = np.reshape([p.probabilities for p in predictor.predict_stream(perturbed)], (len(grays), -1))
    drops = np.array(
        [
            [before.confidence - p[before.label] for p in row]
            for before, row in zip(predictions, after, strict=True)
        ]
    )
    heatmap_drops, random_drops = drops[:, 0], drops[:, 1:].mean(axis=1)
    keys = [str(g) for g in groups] if groups is not None else [str(p) for p in paths]
    _, group_index = np.unique(np.asarray(keys), return_inverse=True)
    counts = resample_counts(int(group_index.max()) + 1, resamples, seed)
    return Faithfulness(
        heatmap_drop=_group_interval(heatmap_drops, group_index, counts),
        random_drop=_group_interval(random_drops, group_index, counts),
        difference=_group_interval(heatmap_drops - random_drops, group_index, counts),
        n_images=len(paths),
        fraction=fraction,
    )


def gallery_png(
    items: pd.DataFrame, overlays: Sequence[np.ndarray], class_names: Sequence[str], title: str
) -> bytes:
    """One row per class, columns "most confident correct" and "most confident wrong"; each cell the
    overlay captioned true -> predicted (confidence)."""
    from neuroflux_lib.plots import figure_png, plt

    fig, axes = plt.subplots(len(class_names), 2, figsize=(5.6, 2.8 * len(class_names)), squeeze=False)
    for (row, column), ax in np.ndenumerate(axes):
        ax.axis("off")
        missing = f"no {'correct' if column == 0 else 'wrong'} {class_names[row]} image"
        ax.text(0.5, 0.5, missing, ha="center", va="center", color="gray", transform=ax.transAxes)
    for item, picture in zip(items.itertuples(index=False), overlays, strict=True):
        ax = axes[list(class_names).index(item.true), 0 if item.kind == "correct" else 1]
        ax.texts[0].remove()
        ax.imshow(picture)
        ax.set_title(f"{item.true} -> {item.predicted} ({item.confidence:.0%})", fontsize=8)
    axes[0, 0].set_title(f"most confident correct\n{axes[0, 0].get_title()}", fontsize=8)
    axes[0, 1].set_title(f"most confident wrong\n{axes[0, 1].get_title()}", fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, 80)), fontsize=8)
    return figure_png(fig)


@dataclass(frozen=True)
class Explanations:
    gallery: Path  # the PNG in the report folder
    faithfulness: Faithfulness
    items: pd.DataFrame  # the gallery's rows: path, true, predicted, confidence, kind


def explain_report(
    artifact_dir: str | Path,
    predictions: pd.DataFrame,
    report_dir: str | Path,
    splits: pd.DataFrame | None = None,
    *,
    max_images: int = FAITHFULNESS_IMAGES,
    seed: int = 0,
) -> Explanations:
    """Gallery and deletion test for a model's test predictions (`predictions_table`'s rows); writes
    `gradcam_gallery.png` and adds `explanations` to the folder's report.json. With `splits` (rows with
    `path` and `group`/`subject_id`) the bootstrap resamples subjects rather than images."""
    predictor = Predictor.from_artifact(artifact_dir)
    class_names = predictor.class_names
    items = gallery_rows(predictions, class_names)
    grays = [load_grayscale_or_raise(path) for path in items["path"]]
    overlays = [
        overlay(gray, heatmap)
        for gray, heatmap in zip(grays, explain_images(predictor, grays)[1], strict=True)
    ]
    sample = predictions.sample(n=min(max_images, len(predictions)), random_state=seed)
    groups = None
    if splits is not None:
        keys = dict(zip(splits["path"], group_keys(splits), strict=True))
        groups = [keys.get(path, path) for path in sample["path"]]
    result = faithfulness(predictor, sample["path"].tolist(), groups, seed=seed)
    out = Path(report_dir)
    gallery = out / GALLERY_FILE
    title = f"{predictor.meta.architecture}: Grad-CAM for the predicted class. {result.describe()}"
    gallery.write_bytes(gallery_png(items, overlays, class_names, title))
    if (out / REPORT_FILES["report"]).is_file():
        explanations = ExplanationsSummary.model_validate(
            {
                "method": "gradcam",
                "layer": model_spec(predictor.meta.architecture).cam_layer or "last Conv2d",
                "gallery": items[["path", "true", "predicted", "confidence", "kind"]].to_dict("records"),
                "faithfulness": result.as_dict(),
            }
        )
        save_report(read_report(out).model_copy(update={"explanations": explanations}), out)
    return Explanations(gallery, result, items)
