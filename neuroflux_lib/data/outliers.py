"""Which images to leave out and which to show: broken images (excluded) and statistical outliers
(reported with reasons; kept unless `outlier_action` is "exclude").

Broken images follow fixed rules (`neuroflux_lib.data.broken`). Statistical outliers follow one of two
rules on the quality statistics: the original's (any |z| > 2 with mean / std, which a single extreme
image distorts for everyone) and the robust default (modified z-score 0.6745 * (x - median) / MAD,
Iglewicz & Hoaglin, threshold 3.5). A statistic that is undefined for an image (SNR of a constant image)
is itself a reason.

They are kept by default because on real data most of them are legitimate: a brighter sequence variant
or a scan with less background (about 11 % of the real images) sits far from the median, and removing
them would also remove them from the test set. For the same reason a statistic whose spread is
near zero cannot flag an image on its own: the spread is floored at `RELATIVE_SPREAD_FLOOR` of the
median's magnitude and at `SPREAD_FLOORS[statistic]`, so at the robust threshold an image must differ
from the median by at least ~5 floors (e.g. 21 grey levels of intensity, 0.21 of background fraction).
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

from neuroflux_lib.data.broken import broken_reasons
from neuroflux_lib.data.quality import STAT_COLUMNS

OutlierRule = Literal["robust", "zscore"]
OutlierAction = Literal["keep", "exclude"]
DEFAULT_THRESHOLDS: dict[str, float] = {"robust": 3.5, "zscore": 2.0}
OUTLIER_COLUMNS = ["path", "class_name", "n_reasons", "max_abs_z", "reasons"]
FLAG_COLUMNS = ["path", "class_name", "kind", "excluded", "reasons", "n_reasons", "max_abs_z"]
REASON_COLUMNS = ["path", "statistic", "direction", "value", "z"]
# Smallest spread a statistic may have, in its own unit (grey levels, bits, shares of pixels).
SPREAD_FLOORS: dict[str, float] = {
    "intensity": 4.0,
    "contrast": 4.0,
    "snr": 0.05,
    "entropy": 0.15,
    "dynamic_range": 8.0,
    "background_fraction": 0.04,
    "saturated_fraction": 0.02,
}
RELATIVE_SPREAD_FLOOR = 0.05


def spread_floor(values: pd.DataFrame, center: pd.Series) -> pd.Series:
    """Per column: max(RELATIVE_SPREAD_FLOOR * |center|, SPREAD_FLOORS[column] or 0)."""
    absolute = pd.Series({name: SPREAD_FLOORS.get(name, 0.0) for name in values.columns}, dtype=float)
    return np.maximum(RELATIVE_SPREAD_FLOOR * center.abs(), absolute)


def z_scores(values: pd.DataFrame, rule: OutlierRule) -> pd.DataFrame:
    """Per-statistic z-scores under `rule`, with the spread floored (see the module docstring)."""
    if rule == "zscore":
        center, spread = values.mean(), values.std(ddof=0)
        scale = 1.0
    elif rule == "robust":
        center = values.median()
        spread = (values - center).abs().median()
        scale = 0.6745
    else:
        raise ValueError(f"unknown outlier rule {rule!r}; use 'robust' or 'zscore'")
    spread = np.maximum(spread.fillna(0.0), spread_floor(values, center.fillna(0.0)))
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


def flag_images(
    quality: pd.DataFrame,
    rule: OutlierRule = "robust",
    threshold: float | None = None,
    action: OutlierAction = "keep",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Broken images and statistical outliers in one table (FLAG_COLUMNS), one row per flagged path.

    `quality` is indexed by path (readable images, with `class_name`, height, width and statistics).
    Broken images are always excluded and left out of the outlier statistics, so they cannot shift
    the median for everyone else; outliers are excluded only with `action` "exclude". Returns
    (flags, reasons: one row per (path, statistic) violation of the outlier rule).
    """
    if action not in ("keep", "exclude"):
        raise ValueError(f"unknown outlier action {action!r}; use 'keep' or 'exclude'")
    readable = quality[quality["readable"].astype(bool)] if "readable" in quality else quality
    broken = broken_reasons(readable)
    broken = broken[broken != ""]
    outliers, reasons = find_outliers(readable.drop(index=broken.index), rule, threshold)
    broken_rows = pd.DataFrame(
        {
            "path": broken.index,
            "class_name": readable.loc[broken.index, "class_name"].to_numpy() if len(broken) else [],
            "kind": "broken",
            "excluded": True,
            "reasons": broken.to_numpy(),
            "n_reasons": broken.str.count("; ").to_numpy() + 1,
            "max_abs_z": np.nan,
        }
    )
    outlier_rows = outliers.assign(kind="outlier", excluded=action == "exclude")
    frames = [frame for frame in (broken_rows, outlier_rows) if len(frame)]
    if not frames:
        return pd.DataFrame(columns=FLAG_COLUMNS).astype({"excluded": bool}), reasons
    flags = pd.concat(frames, ignore_index=True)[FLAG_COLUMNS]
    return flags.astype({"excluded": bool, "n_reasons": int}), reasons


def excluded_paths(flags: pd.DataFrame) -> list[str]:
    """Paths the splits leave out (a table without `excluded`, from before this column, excludes all)."""
    if "excluded" not in flags:
        return flags["path"].tolist()
    return flags.loc[flags["excluded"].astype(bool), "path"].tolist()


def flags_per_class(flags: pd.DataFrame, images: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """Per class: images, broken and outlier counts and their shares of the class's images."""
    names = list(class_names)
    table = pd.DataFrame({"images": images.groupby("class_name").size().reindex(names, fill_value=0)})
    kinds = flags["kind"] if "kind" in flags else pd.Series("outlier", index=flags.index)
    for kind, column in (("broken", "broken"), ("outlier", "outliers")):
        counts = flags.loc[kinds == kind].groupby("class_name").size().reindex(names, fill_value=0)
        table[column] = counts.astype(int)
        table[f"{column}_share"] = (counts / table["images"].where(table["images"] > 0)).fillna(0.0)
    return table.rename_axis("class")


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
