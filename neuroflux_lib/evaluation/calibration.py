"""Calibrated probabilities: temperature scaling fitted on the validation split (Guo et al., 2017).

A network trained with cross-entropy is usually over-confident: its 90% answers are right far less than
90% of the time. Dividing every logit by one temperature T > 0 fitted on held-out images (minimum
negative log-likelihood) fixes most of that without changing a single prediction (the argmax of z / T is
the argmax of z). T is fitted on validation, stored in `model.json`, and applied wherever logits become
probabilities (`calibrated_probabilities`); the test split only measures the result (ECE before/after).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

# The predictor imports this module for `calibrated_probabilities`: sklearn (metrics) and matplotlib
# (plots) are imported where they are used, so loading a predictor stays light.

#: Bounds on T: beyond them the validation split is too small or too easy to say anything (a split
#: predicted perfectly drives T towards 0, one predicted at random towards infinity).
TEMPERATURE_BOUNDS = (0.05, 20.0)


def calibrated_probabilities(logits: torch.Tensor | np.ndarray, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / T) over the last axis: the one place logits become probabilities."""
    logits = torch.as_tensor(logits)
    return torch.softmax(logits.float() / float(temperature), dim=-1)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of the labels under softmax(logits / T)."""
    scaled = torch.as_tensor(logits).double() / float(temperature)
    return float(F.cross_entropy(scaled, torch.as_tensor(labels, dtype=torch.long)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of `labels` under softmax(logits / T).

    L-BFGS on log T (T stays positive; the loss is smooth and convex in 1/T, so one minimum), clipped to
    `TEMPERATURE_BOUNDS`."""
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on an empty split")
    z = torch.as_tensor(logits).double()
    y = torch.as_tensor(labels, dtype=torch.long)
    low, high = np.log(TEMPERATURE_BOUNDS)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.clamp(low, high).exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.exp(np.clip(log_t.item(), low, high)))


def temperature_scaling(logits: np.ndarray, labels: np.ndarray, split: str = "val") -> dict:
    """Fit T on one split's logits; what `model.json` records: T and the split's NLL and ECE before and
    after (before = T 1, the plain softmax)."""
    from neuroflux_lib.evaluation.metrics import calibration_bins

    temperature = fit_temperature(logits, labels)
    before = calibrated_probabilities(logits).numpy()
    after = calibrated_probabilities(logits, temperature).numpy()
    return {
        "method": "temperature scaling",
        "fitted_on": split,
        "n_images": len(labels),
        "temperature": temperature,
        "nll_before": negative_log_likelihood(logits, labels),
        "nll_after": negative_log_likelihood(logits, labels, temperature),
        "ece_before": calibration_bins(labels, before)["ece"],
        "ece_after": calibration_bins(labels, after)["ece"],
    }


def calibration_report(labels: np.ndarray, logits: np.ndarray, temperature: float) -> dict:
    """The report's `calibration`: ECE and reliability table of the calibrated probabilities (what users
    see), with `temperature` and `before`, the same for the plain softmax."""
    from neuroflux_lib.evaluation.metrics import calibration_bins

    after = calibration_bins(labels, calibrated_probabilities(logits, temperature).numpy())
    before = calibration_bins(labels, calibrated_probabilities(logits).numpy())
    return {**after, "temperature": float(temperature), "before": before}


class ReliabilityBins(BaseModel):
    """`calibration_bins`' result: the expected calibration error and the reliability table (None for an
    empty bin)."""

    model_config = ConfigDict(frozen=True)

    ece: float
    bins: int
    edges: list[float]
    count: list[int]
    accuracy: list[float | None]
    confidence: list[float | None]


class Calibration(ReliabilityBins):
    """`calibration_report`'s result: the calibrated probabilities' bins, T, and the plain softmax's bins."""

    temperature: float
    before: ReliabilityBins


def _reliability_panels(top: plt.Axes, bottom: plt.Axes, bins: ReliabilityBins, title: str) -> None:
    edges = np.asarray(bins.edges)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    accuracy = np.array([np.nan if a is None else a for a in bins.accuracy], dtype=float)
    confidence = np.array([np.nan if c is None else c for c in bins.confidence], dtype=float)
    top.bar(centres, np.nan_to_num(accuracy), width=width * 0.9, label="accuracy", color="#4c72b0")
    top.plot(confidence, accuracy, "o", color="#dd8452", label="mean confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfectly calibrated")
    top.set_ylim(0, 1)
    top.set_title(f"{title}: ECE {bins.ece:.3f}")
    bottom.bar(centres, bins.count, width=width * 0.9, color="#8c8c8c")
    bottom.set_xlabel("confidence of the predicted class")
    bottom.set_xlim(0, 1)


def reliability_png(calibration: ReliabilityBins, title: str = "") -> bytes:
    """Accuracy vs confidence per bin (the diagonal is perfect calibration) with bin counts underneath:
    before (plain softmax) and after temperature scaling side by side for a `Calibration`."""
    from neuroflux_lib.plots import figure_png, plt

    panels: Sequence[tuple[ReliabilityBins, str]] = [(calibration, "probabilities")]
    if isinstance(calibration, Calibration):
        after = f"after (T = {calibration.temperature:.2f})"
        panels = [(calibration.before, "before (softmax)"), (calibration, after)]
    fig, axes = plt.subplots(
        2, len(panels), figsize=(5.5 * len(panels), 6.5), height_ratios=[3, 1], sharex=True, squeeze=False
    )
    for column, (bins, name) in enumerate(panels):
        _reliability_panels(axes[0, column], axes[1, column], bins, name)
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("images")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title or "Reliability diagram")
    fig.tight_layout()
    return figure_png(fig)
