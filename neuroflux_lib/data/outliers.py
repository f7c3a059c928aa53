"""Outlier detection on the quality statistics, each outlier with the reason it was flagged.

Two rules: the original's (any |z| > 2 with mean / std, which a single extreme image distorts for
everyone) and the robust default (modified z-score 0.6745 * (x - median) / MAD, Iglewicz & Hoaglin).
A statistic that is undefined for an image (SNR of a constant image) is itself a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN
from sklearn.manifold import TSNE
from sklearn.preprocessing import RobustScaler
from threadpoolctl import threadpool_limits

from neuroflux_lib.data.quality import STAT_COLUMNS

OutlierRule = Literal["robust", "zscore"]
DEFAULT_THRESHOLDS: dict[str, float] = {"robust": 3.5, "zscore": 2.0}
OUTLIER_COLUMNS = ["path", "class_name", "n_reasons", "max_abs_z", "reasons"]
REASON_COLUMNS = ["path", "statistic", "direction", "value", "z"]


def z_scores(values: pd.DataFrame, rule: OutlierRule) -> pd.DataFrame:
    """Per-statistic z-scores under `rule`; a zero spread gives z = 0 except for differing values."""
    if rule == "zscore":
        center, spread = values.mean(), values.std(ddof=0)
        scale = 1.0
    elif rule == "robust":
        center = values.median()
        spread = (values - center).abs().median()
        # MAD is 0 when over half the values tie; fall back to the mean absolute deviation.
        fallback = (values - center).abs().mean() * 1.2533
        spread = spread.where(spread > 0, fallback)
        scale = 0.6745
    else:
        raise ValueError(f"unknown outlier rule {rule!r}; use 'robust' or 'zscore'")
    safe = spread.where(spread > 0, np.inf)
    return scale * (values - center) / safe


def find_outliers(
    quality: pd.DataFrame,
    rule: OutlierRule = "robust",
    threshold: float | None = None,
    statistics: Sequence[str] = STAT_COLUMNS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flag readable images whose statistics are extreme.

    `quality` is indexed by path with a `class_name` column and the statistic columns. Returns
    (outliers: one row per flagged path, reasons: one row per (path, statistic) violation).
    """
    if rule not in DEFAULT_THRESHOLDS:
        raise ValueError(f"unknown outlier rule {rule!r}; use one of {sorted(DEFAULT_THRESHOLDS)}")
    threshold = DEFAULT_THRESHOLDS[rule] if threshold is None else threshold
    readable = quality[quality["readable"].astype(bool)] if "readable" in quality else quality
    values = readable[list(statistics)].astype(float)
    z = z_scores(values, rule)
    violations = (z.abs() > threshold) | values.isna()

    reasons = []
    for path, stat in zip(*np.nonzero(violations.to_numpy()), strict=True):
        key, name = values.index[path], values.columns[stat]
        zval = float(z.iat[path, stat])
        direction = "undefined" if np.isnan(values.iat[path, stat]) else ("high" if zval > 0 else "low")
        reasons.append((key, name, direction, float(values.iat[path, stat]), zval))
    reason_table = pd.DataFrame(reasons, columns=REASON_COLUMNS)

    def describe(group: pd.DataFrame) -> str:
        parts = [
            f"{row.statistic} undefined"
            if row.direction == "undefined"
            else f"{row.statistic} {row.direction} (z={row.z:+.1f})"
            for row in group.itertuples()
        ]
        return "; ".join(parts)

    if reason_table.empty:
        return pd.DataFrame(columns=OUTLIER_COLUMNS), reason_table
    grouped = reason_table.groupby("path", sort=True)
    outliers = pd.DataFrame(
        {
            "n_reasons": grouped.size(),
            "max_abs_z": grouped["z"].apply(
                lambda s: float(np.nanmax(np.abs(s))) if s.notna().any() else np.inf
            ),
            "reasons": grouped[["statistic", "direction", "z"]].apply(describe),
        }
    )
    outliers["class_name"] = readable.loc[outliers.index, "class_name"] if "class_name" in readable else ""
    outliers = outliers.rename_axis("path").reset_index()[OUTLIER_COLUMNS]
    return outliers.sort_values(
        ["max_abs_z", "path"], ascending=[False, True], ignore_index=True
    ), reason_table


def embed_statistics(
    quality: pd.DataFrame,
    statistics: Sequence[str] = STAT_COLUMNS,
    perplexity: float = 30.0,
    eps: float = 3.0,
    min_samples: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """t-SNE of the robust-scaled statistics and DBSCAN clusters on the embedding (-1 = noise).

    Undefined values take the median and extremes are clipped, so one blank image cannot collapse
    the picture. Perplexity shrinks for tiny datasets, where t-SNE requires perplexity < n.
    """
    values = quality[list(statistics)].astype(float)
    values = values.fillna(values.median()).fillna(0.0)
    n = len(values)
    if n < 3:
        return pd.DataFrame(
            {"x": np.zeros(n), "y": np.zeros(n), "cluster": -np.ones(n, int)}, index=values.index
        )
    scaled = np.clip(RobustScaler().fit_transform(values.to_numpy()), -10, 10)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), random_state=seed, init="pca")
    # OpenMP threads spin-wait against each other on small inputs: one thread is ~25x faster here.
    with threadpool_limits(limits=1):
        xy = tsne.fit_transform(scaled)
    clusters = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(xy)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cluster": clusters}, index=values.index)
