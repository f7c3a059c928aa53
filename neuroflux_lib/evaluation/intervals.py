"""Bootstrap intervals that respect subjects, and paired intervals for differences between predictors.

Slices of one subject are correlated, so resampling images would make intervals too narrow. Here a
resample draws *groups* (subjects, or the split's leakage groups) with replacement and keeps all their
slices. ClinicaDL resamples images and bootstraps each model separately; we resample subjects and
compare two predictors on the *same* resamples (paired), which is what "A beats B" needs: the spread of
the difference, not two overlapping intervals.

Every resample is a weighted sum of per-group confusion matrices, so 1,000 resamples of every metric
cost one matrix product (milliseconds), and the metrics are computed from confusion matrices exactly as
scikit-learn computes them (zero_division=0; macro averages over every class of the class list).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
METRICS = ("macro_f1", "balanced_accuracy", "accuracy")


@dataclass(frozen=True)
class Interval:
    """A point estimate on the data as it is, and a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def metrics_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of confusion matrices (rows true, columns predicted), over any leading axes.

    `f1_<index>` per class; macro-F1 averages every class (an absent class scores 0, like sklearn with
    `labels=`); balanced accuracy averages recall over the classes present in the truth.
    """
    confusion = np.asarray(confusion, dtype=float)
    true_positives = np.diagonal(confusion, axis1=-2, axis2=-1)
    support = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(support + predicted > 0, 2 * true_positives / (support + predicted), 0.0)
        recall = np.where(support > 0, true_positives / support, np.nan)
        balanced = np.nanmean(recall, axis=-1)
        accuracy = true_positives.sum(axis=-1) / confusion.sum(axis=(-2, -1))
    metrics = {"macro_f1": f1.mean(axis=-1), "balanced_accuracy": balanced, "accuracy": accuracy}
    metrics.update({f"f1_{index}": f1[..., index] for index in range(confusion.shape[-1])})
    return metrics


def group_confusions(
    y_true: np.ndarray, y_pred: np.ndarray, group_index: np.ndarray, n_groups: int, n_classes: int
) -> np.ndarray:
    """(groups, classes, classes): one confusion matrix per group."""
    cells = (group_index * n_classes + y_true) * n_classes + y_pred
    counts = np.bincount(cells, minlength=n_groups * n_classes * n_classes)
    return counts.reshape(n_groups, n_classes, n_classes)


def resample_counts(n_groups: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, groups): how often each group is drawn in each resample (groups drawn with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    offsets = np.arange(resamples)[:, None] * n_groups
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_groups).reshape(resamples, n_groups)


@dataclass(frozen=True)
class Bootstrap:
    """Subject-level resamples of one evaluation set, shared by every predictor scored on it."""

    y_true: np.ndarray
    group_index: np.ndarray
    n_groups: int
    n_classes: int
    counts: np.ndarray  # (resamples, groups)
    level: float
    seed: int = DEFAULT_SEED

    @classmethod
    def of(
        cls,
        y_true: Sequence[int],
        groups: Sequence[object],
        n_classes: int,
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = DEFAULT_SEED,
        level: float = DEFAULT_LEVEL,
    ) -> Bootstrap:
        y_true = np.asarray(y_true, dtype=np.int64)
        if len(y_true) == 0:
            raise ValueError("cannot bootstrap an empty evaluation set")
        _, group_index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        n_groups = int(group_index.max()) + 1
        counts = resample_counts(n_groups, resamples, seed)
        return cls(y_true, group_index, n_groups, n_classes, counts, level, seed)

    def _resampled(self, y_pred: Sequence[int]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        y_pred = np.asarray(y_pred, dtype=np.int64)
        if y_pred.shape != self.y_true.shape:
            raise ValueError(f"expected {len(self.y_true)} predictions, got {len(y_pred)}")
        per_group = group_confusions(self.y_true, y_pred, self.group_index, self.n_groups, self.n_classes)
        flat = per_group.reshape(self.n_groups, -1)
        resampled = (self.counts @ flat).reshape(-1, self.n_classes, self.n_classes)
        point = {k: float(v) for k, v in metrics_from_confusion(per_group.sum(axis=0)).items()}
        return metrics_from_confusion(resampled), point

    def _interval(self, estimate: float, samples: np.ndarray) -> Interval:
        tail = (1 - self.level) / 2 * 100
        low, high = np.nanpercentile(samples, [tail, 100 - tail])
        return Interval(estimate, float(low), float(high))

    def intervals(self, y_pred: Sequence[int]) -> dict[str, Interval]:
        """Every metric of `metrics_from_confusion` with its interval."""
        samples, point = self._resampled(y_pred)
        return {key: self._interval(point[key], samples[key]) for key in point}

    def chance(self, y_pred: Sequence[int]) -> Interval:
        """Macro-F1 of a predictor with no information that predicts each class as often as this one:
        the predictions shuffled against the truth (as many shuffles as resamples); mean and central
        interval of that null distribution.

        1/K is chance only for a predictor that spreads its answers evenly; a model that says "PTE" to
        everything scores far below 1/K by construction, and is still exactly at chance."""
        y_pred = np.asarray(y_pred, dtype=np.int64)
        shuffles, k = self.counts.shape[0], self.n_classes
        rng = np.random.default_rng(self.seed)
        shuffled = np.stack([rng.permutation(y_pred) for _ in range(shuffles)])
        cells = (np.arange(shuffles)[:, None] * k + self.y_true[None, :]) * k + shuffled
        confusion = np.bincount(cells.ravel(), minlength=shuffles * k * k).reshape(shuffles, k, k)
        scores = metrics_from_confusion(confusion)["macro_f1"]
        return self._interval(float(scores.mean()), scores)

    def difference(
        self, y_pred_a: Sequence[int], y_pred_b: Sequence[int], metric: str = "macro_f1"
    ) -> Interval:
        """metric(a) - metric(b) on the same resamples: a paired interval."""
        samples_a, point_a = self._resampled(y_pred_a)
        samples_b, point_b = self._resampled(y_pred_b)
        return self._interval(point_a[metric] - point_b[metric], samples_a[metric] - samples_b[metric])


def named(intervals: Mapping[str, Interval], class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """JSON-ready intervals with per-class keys named (`f1_0` -> `f1_PTE`)."""
    out = {}
    for key, interval in intervals.items():
        if key.startswith("f1_") and key[3:].isdigit():
            key = f"f1_{class_names[int(key[3:])]}"
        out[key] = interval.as_dict()
    return out


class Scores(BaseModel):
    """What `named` returns, typed: the three headline intervals as fields, and each class's F1 as an
    extra field `f1_<class>` (class names are data, not schema)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, Interval] = Field(init=False)

    macro_f1: Interval
    balanced_accuracy: Interval
    accuracy: Interval

    def f1(self, class_name: str) -> Interval:
        """The F1 interval of one class (KeyError for a class the scores do not have)."""
        return self.__pydantic_extra__[f"f1_{class_name}"]
