"""Drift of a batch against the training set: warns on a real, large shift and on nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuroflux_lib.data.quality import STAT_COLUMNS
from neuroflux_lib.monitoring.drift import CLASS_MIX, PSI_THRESHOLD, drift_report, psi

SHARES = pd.Series({"PTE": 0.45, "LO": 0.2, "EO": 0.15, "IPTE": 0.13, "IO": 0.07})
COUNTS = (SHARES * 300).round().astype(int)  # e.g. a model's predictions on a 300-image test split


def statistics(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Statistics on their own scales (intensity ~ 60 grey levels, fractions in [0, 1])."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 60.0, len(STAT_COLUMNS))
    table = pd.DataFrame(rng.normal(scales * 2, scales / 5, (n, len(STAT_COLUMNS))), columns=STAT_COLUMNS)
    for name, sd in (shift or {}).items():
        table[name] += sd * scales[STAT_COLUMNS.index(name)] / 5
    return table


def labels(n: int, seed: int, shares: pd.Series = SHARES) -> list[str]:
    return list(np.random.default_rng(seed).choice(shares.index, size=n, p=shares.to_numpy()))


def test_an_unshifted_batch_does_not_warn() -> None:
    for seed in range(1, 6):
        report = drift_report(statistics(600, 0), COUNTS, statistics(40, seed), labels(40, seed))
        assert not report.drifted, report.summary()
        assert "no drift" in report.summary()


def test_a_shifted_statistic_warns_and_only_it_is_named() -> None:
    batch = statistics(40, 1, shift={"intensity": 3.0})
    report = drift_report(statistics(600, 0), COUNTS, batch, labels(40, 1))
    assert report.moved == ["intensity"]
    row = report.table.set_index("test").loc["intensity"]
    assert row["psi"] > PSI_THRESHOLD and row["p_bonferroni"] < 0.01
    assert "intensity" in report.summary() and "drift in 1 of 9" in report.summary()


def test_a_shifted_class_mix_warns() -> None:
    skewed = pd.Series({"PTE": 0.05, "LO": 0.05, "EO": 0.1, "IPTE": 0.1, "IO": 0.7})
    report = drift_report(statistics(600, 0), COUNTS, statistics(60, 2), labels(60, 2, skewed))
    assert report.moved == [CLASS_MIX]
    assert report.class_mix.loc["IO", "predicted"] > report.class_mix.loc["PTE", "predicted"]


def test_a_tiny_shift_in_a_huge_batch_is_significant_but_not_large_so_it_does_not_warn() -> None:
    batch = statistics(20000, 3, shift={"contrast": 0.15})
    report = drift_report(statistics(5000, 0), COUNTS, batch, labels(20000, 3))
    row = report.table.set_index("test").loc["contrast"]
    assert row["p_bonferroni"] < 0.01 and row["psi"] < PSI_THRESHOLD
    assert not report.drifted


def test_psi_sees_a_batch_leave_a_value_that_is_constant_in_training() -> None:
    """No training image has saturated pixels; a batch where most do has moved."""
    reference = np.zeros(300)
    assert psi(reference, np.zeros(50)) < 0.05
    assert psi(reference, np.r_[np.zeros(10), np.full(40, 0.05)]) > PSI_THRESHOLD


def test_few_images_cannot_warn_on_a_moderate_shift() -> None:
    """Three images: only the count changes, the rule stays (Bonferroni controls false alarms)."""
    report = drift_report(statistics(600, 0), COUNTS, statistics(3, 4, {"entropy": 1.0}), labels(3, 4))
    assert not report.drifted and int(report.table["n_batch"].max()) == 3
