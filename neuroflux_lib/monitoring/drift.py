"""Drift of a batch of new scans away from the training set, per quality statistic and in the class mix.

One rule decides, for every statistic and for the predicted-class mix: it **moved** when the shift is both
real and large.

- real: a two-sample Kolmogorov-Smirnov test (statistics) or a chi-square test of homogeneity of the
  reference's class counts and the batch's predicted classes (class mix) has a p-value below `ALPHA` =
  0.01 after a Bonferroni correction over every test of the batch (9 tests: 8 statistics and the class
  mix), so an unchanged population raises a false alarm in at most 1% of batches, whatever their size;
- large: the population stability index (PSI) is above `PSI_THRESHOLD` = 0.25, the conventional "major
  shift". PSI uses `PSI_BINS` = 10 bins at the training deciles (the classes for the mix), so a huge
  batch whose statistics moved by a hair, significant but harmless, does not warn either.

A batch where something moved is what says a retrain is due (docs/incoming.md wires it to `retrain`).
With a few images only large shifts can be significant; the report says how many images it compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from neuroflux_lib.data.quality import STAT_COLUMNS

ALPHA = 0.01
PSI_THRESHOLD = 0.25
PSI_BINS = 10
#: Added to every bin's count before PSI: an empty bin would make the index infinite, and a tiny floor
#: instead makes a small batch (a few images in 10 bins, some necessarily empty) look like a huge shift.
PSI_PSEUDO_COUNT = 0.5
CLASS_MIX = "predicted_class_mix"
DRIFT_COLUMNS = [
    "test",
    "n_reference",
    "n_batch",
    "reference_median",
    "batch_median",
    "psi",
    "test_statistic",
    "p_value",
    "p_bonferroni",
    "moved",
]


def psi_from_counts(expected: np.ndarray, observed: np.ndarray) -> float:
    """PSI = sum over bins of (observed share - expected share) x ln(observed share / expected share),
    with `PSI_PSEUDO_COUNT` added to every bin of both."""
    expected = np.asarray(expected, dtype=float) + PSI_PSEUDO_COUNT
    observed = np.asarray(observed, dtype=float) + PSI_PSEUDO_COUNT
    expected, observed = expected / expected.sum(), observed / observed.sum()
    return float(np.sum((observed - expected) * np.log(observed / expected)))


def psi(reference: Sequence[float], batch: Sequence[float], bins: int = PSI_BINS) -> float:
    """Population stability index of `batch` against `reference`, in bins at the reference's quantiles.

    Bins are (-inf, e1], (e1, e2], ..., (ek, inf); tied quantiles merge, so a statistic that is constant on
    the training set (e.g. no saturated pixels) still shows a batch that leaves that value.
    """
    reference = np.asarray(reference, dtype=float)
    batch = np.asarray(batch, dtype=float)
    reference, batch = reference[~np.isnan(reference)], batch[~np.isnan(batch)]
    if not len(reference) or not len(batch):
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    count = len(edges) + 1
    expected = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=count)
    observed = np.bincount(np.searchsorted(edges, batch, side="left"), minlength=count)
    return psi_from_counts(expected, observed)


def _row(
    test: str,
    n_ref: int,
    n_batch: int,
    ref_median: float,
    batch_median: float,
    index: float,
    statistic: float,
    p_value: float,
) -> dict[str, object]:
    return {
        "test": test,
        "n_reference": n_ref,
        "n_batch": n_batch,
        "reference_median": ref_median,
        "batch_median": batch_median,
        "psi": index,
        "test_statistic": statistic,
        "p_value": p_value,
    }


def statistic_rows(
    reference: pd.DataFrame, batch: pd.DataFrame, statistics: Sequence[str] = STAT_COLUMNS
) -> list[dict[str, object]]:
    """PSI and the two-sample KS test of each statistic (rows without Bonferroni or verdict yet)."""
    rows = []
    for name in statistics:
        ref = reference[name].astype(float).dropna().to_numpy()
        new = batch[name].astype(float).dropna().to_numpy()
        if len(ref) and len(new):
            ks = stats.ks_2samp(ref, new)
            statistic, p_value = float(ks.statistic), float(ks.pvalue)
        else:
            statistic, p_value = float("nan"), float("nan")
        rows.append(
            _row(
                name,
                len(ref),
                len(new),
                float(np.median(ref)) if len(ref) else float("nan"),
                float(np.median(new)) if len(new) else float("nan"),
                psi(ref, new),
                statistic,
                p_value,
            )
        )
    return rows


def class_mix_row(reference_counts: pd.Series, predicted: Sequence[str]) -> dict[str, object]:
    """PSI of the class shares and the chi-square test of homogeneity of the reference's class counts and
    the batch's predicted classes (both are samples: a reference of a few hundred test predictions is
    itself uncertain, which a goodness-of-fit test against its shares would ignore).

    The median columns hold the share of the reference's most common class, in the reference and the batch.
    """
    reference = reference_counts.astype(float)
    counts = pd.Series(list(predicted), dtype=object).value_counts().reindex(reference.index, fill_value=0)
    n = int(counts.sum())
    shares = reference / max(float(reference.sum()), 1.0)
    top = shares.idxmax()
    if n == 0:
        return _row(
            CLASS_MIX, int(reference.sum()), 0, float(shares[top]), float("nan"), *(float("nan"),) * 3
        )
    table = np.vstack([reference.to_numpy(), counts.to_numpy(dtype=float)])
    table = table[:, table.sum(axis=0) > 0]  # a class neither predicted nor in the reference says nothing
    if table.shape[1] < 2:
        statistic, p_value = 0.0, 1.0
    else:
        test = stats.chi2_contingency(table, correction=False)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    return _row(
        CLASS_MIX,
        int(reference.sum()),
        n,
        float(shares[top]),
        float(counts[top] / n),
        psi_from_counts(reference.to_numpy(), counts.to_numpy()),
        statistic,
        p_value,
    )


@dataclass(frozen=True)
class DriftReport:
    """One row per test (`DRIFT_COLUMNS`) and the class counts behind the class-mix test."""

    table: pd.DataFrame
    class_mix: pd.DataFrame

    @property
    def moved(self) -> list[str]:
        return self.table.loc[self.table["moved"], "test"].tolist()

    @property
    def drifted(self) -> bool:
        return bool(self.moved)

    def summary(self) -> str:
        """One sentence: what moved and by how much, or that nothing did."""
        n = int(self.table["n_batch"].max()) if len(self.table) else 0
        if not self.drifted:
            return (
                f"no drift: {n} images in line with the training set (PSI <= {PSI_THRESHOLD} or Bonferroni "
                f"p >= {ALPHA} for every test)"
            )
        parts = [
            f"{row.test} (PSI {row.psi:.2f}, p {row.p_bonferroni:.1g}, median {row.reference_median:.3g} -> "
            f"{row.batch_median:.3g})"
            for row in self.table.loc[self.table["moved"]].itertuples()
        ]
        return f"drift in {len(parts)} of {len(self.table)} tests on {n} images: " + "; ".join(parts)


def drift_report(
    reference_quality: pd.DataFrame,
    reference_class_counts: pd.Series,
    batch_quality: pd.DataFrame,
    predicted: Sequence[str],
    statistics: Sequence[str] = STAT_COLUMNS,
) -> DriftReport:
    """Every statistic and the predicted-class mix of a batch against the training set, with the verdict
    of the module's rule (Bonferroni over all tests of the batch)."""
    rows = [*statistic_rows(reference_quality, batch_quality, statistics)]
    rows.append(class_mix_row(reference_class_counts, predicted))
    table = pd.DataFrame(rows)
    p_value = table["p_value"].astype(float)
    table["p_bonferroni"] = (p_value * len(table)).clip(upper=1.0)
    table["moved"] = ((table["p_bonferroni"] < ALPHA) & (table["psi"] > PSI_THRESHOLD)).astype(bool)
    shares = reference_class_counts.astype(float) / max(float(reference_class_counts.sum()), 1.0)
    counts = pd.Series(list(predicted), dtype=object).value_counts().reindex(shares.index, fill_value=0)
    mix = pd.DataFrame(
        {
            "reference_share": shares,
            "predicted": counts.astype(int),
            "predicted_share": counts / max(int(counts.sum()), 1),
        }
    ).rename_axis("class")
    return DriftReport(table[DRIFT_COLUMNS], mix)
