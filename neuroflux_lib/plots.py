"""Pictures a person would rather look at than read; each function returns PNG bytes."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from neuroflux_lib.data.imageio import load_grayscale  # noqa: E402

if TYPE_CHECKING:
    from neuroflux_lib.evaluation.metrics import RocCurve


def figure_png(fig: plt.Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def class_colors(class_names: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(class_names)}


def quality_histograms(quality: pd.DataFrame, statistics: Sequence[str], class_names: Sequence[str]) -> bytes:
    """One histogram per statistic, stacked by class."""
    cols = 4
    rows = int(np.ceil(len(statistics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    colors = class_colors(class_names)
    for ax, stat in zip(axes.flat, statistics, strict=False):
        data = [quality.loc[quality["class_name"] == c, stat].dropna().to_numpy() for c in class_names]
        finite = [d[np.isfinite(d)] for d in data]
        ax.hist(
            finite, bins=30, stacked=True, label=list(class_names), color=[colors[c] for c in class_names]
        )
        ax.set_title(stat)
    for ax in list(axes.flat)[len(statistics) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Image quality statistics by class")
    return figure_png(fig)


def embedding_scatter(
    embedding: pd.DataFrame, classes: pd.Series, outlier_paths: Sequence[str], class_names: Sequence[str]
) -> bytes:
    """t-SNE scatter coloured by class; outliers ringed in black, DBSCAN noise drawn smaller."""
    fig, ax = plt.subplots(figsize=(7, 6))
    colors = class_colors(class_names)
    for name in class_names:
        points = embedding[classes.reindex(embedding.index) == name]
        ax.scatter(points["x"], points["y"], s=12, color=colors[name], label=name, alpha=0.8)
    marked = embedding[embedding.index.isin(set(outlier_paths))]
    ax.scatter(marked["x"], marked["y"], s=60, facecolors="none", edgecolors="black", label="outlier")
    n_clusters = len(set(embedding["cluster"]) - {-1})
    ax.set_title(f"t-SNE of quality statistics ({n_clusters} DBSCAN clusters)")
    ax.legend(fontsize=8, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    return figure_png(fig)


def image_gallery(items: pd.DataFrame, title: str, max_items: int = 24, cols: int = 6) -> bytes:
    """Thumbnails with captions; `items` has `path` and `caption` columns."""
    items = items.head(max_items)
    rows = max(1, int(np.ceil(len(items) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items.itertuples(), strict=False):
        result = load_grayscale(item.path)
        if result.array is not None:
            ax.imshow(result.array, cmap="gray", vmin=0, vmax=255)
        else:
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
        ax.set_title("\n".join(textwrap.wrap(str(item.caption), 32)[:4]), fontsize=6)
    if items.empty:
        axes.flat[0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    fig.suptitle(title)
    return figure_png(fig)


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str = ""
) -> bytes:
    """Counts and row-normalised (recall) side by side."""
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(matrix)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ConfusionMatrixDisplay(counts, display_labels=list(class_names)).plot(
        ax=axes[0], colorbar=False, cmap="Blues"
    )
    axes[0].set_title("counts")
    ConfusionMatrixDisplay(normalised, display_labels=list(class_names)).plot(
        ax=axes[1], colorbar=False, cmap="Blues", values_format=".2f"
    )
    axes[1].set_title("row-normalised (recall)")
    fig.suptitle(title or "Confusion matrix")
    return figure_png(fig)


def roc_curves_png(roc: Mapping[str, RocCurve], title: str = "") -> bytes:
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(6, 6))
    for name, curve in roc.items():
        if curve.auc is None:
            continue
        RocCurveDisplay(
            fpr=np.asarray(curve.fpr), tpr=np.asarray(curve.tpr), roc_auc=curve.auc, name=name
        ).plot(ax=ax)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_title(title or "ROC curves (one-vs-rest)")
    return figure_png(fig)


def training_curves_png(
    history: Sequence[dict[str, float]], class_names: Sequence[str], title: str = ""
) -> bytes:
    """Loss, accuracy, per-class validation F1 and learning rate per epoch; best epoch marked."""
    frame = pd.DataFrame(list(history))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    if frame.empty:
        for ax in axes.flat:
            ax.axis("off")
        return figure_png(fig)
    epochs = frame["epoch"]
    best = int(frame["best_epoch"].iloc[-1]) if "best_epoch" in frame else None
    for ax, metric in ((axes[0, 0], "loss"), (axes[0, 1], "accuracy")):
        ax.plot(epochs, frame[f"train_{metric}"], label="train")
        ax.plot(epochs, frame[f"val_{metric}"], label="val")
        ax.set_title(metric)
        ax.legend()
    for name in class_names:
        if f"val_f1_{name}" in frame:
            axes[1, 0].plot(epochs, frame[f"val_f1_{name}"], label=name)
    axes[1, 0].plot(epochs, frame["val_macro_f1"], "k--", label="macro")
    axes[1, 0].set_title("validation F1 per class")
    axes[1, 0].legend(fontsize=7)
    axes[1, 1].plot(epochs, frame["lr"])
    axes[1, 1].set_yscale("log")
    axes[1, 1].set_title("learning rate")
    for ax in axes.flat:
        ax.set_xlabel("epoch")
        if best:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1)
    fig.suptitle(title or f"Training curves (best epoch {best})")
    return figure_png(fig)


def intervals_png(rows: pd.DataFrame, title: str = "", chance: float | None = None) -> bytes:
    """A point per predictor with its 95% interval (columns `name`, `estimate`, `low`, `high`)."""
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.5))
    y = np.arange(len(rows))
    errors = np.vstack([rows["estimate"] - rows["low"], rows["high"] - rows["estimate"]])
    ax.errorbar(rows["estimate"], y, xerr=errors, fmt="o", capsize=4, color="#4c72b0")
    if chance is not None:
        ax.axvline(chance, color="grey", linestyle=":", label=f"chance {chance:.2f}")
        ax.legend(loc="lower right")
    ax.set_yticks(y, rows["name"])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("test macro-F1 (95% subject-bootstrap interval)")
    ax.set_title(title or "Model vs baselines")
    fig.tight_layout()
    return figure_png(fig)
