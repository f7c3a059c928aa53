import numpy as np
import pandas as pd
import pytest

from neuroflux_lib.data.outliers import embed_statistics, find_outliers, z_scores
from neuroflux_lib.data.quality import STAT_COLUMNS


def table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = pd.DataFrame(rng.normal(100, 5, (n, len(STAT_COLUMNS))), columns=STAT_COLUMNS)
    values.index = [f"img{i:03d}.jpg" for i in range(n)]
    values["class_name"] = ["PTE", "LO"] * (n // 2)
    values["readable"] = True
    return values


def test_robust_rule_flags_extreme_with_reason_and_direction():
    data = table()
    data.loc["img005.jpg", "intensity"] = 10.0
    data.loc["img007.jpg", "sharpness"] = 500.0
    outliers, reasons = find_outliers(data, "robust", 3.5)
    assert set(outliers["path"]) == {"img005.jpg", "img007.jpg"}
    row = reasons.set_index("path").loc["img005.jpg"]
    assert row["statistic"] == "intensity" and row["direction"] == "low" and row["z"] < -3.5
    assert "sharpness high" in outliers.set_index("path").loc["img007.jpg", "reasons"]
    assert outliers.set_index("path").loc["img005.jpg", "class_name"] == "LO"


def test_original_rule_is_any_abs_z_above_two():
    data = table()
    z = (data[STAT_COLUMNS] - data[STAT_COLUMNS].mean()) / data[STAT_COLUMNS].std(ddof=0)
    expected = set(z.index[(z.abs() > 2).any(axis=1)])
    outliers, _ = find_outliers(data, "zscore")
    assert set(outliers["path"]) == expected and expected


def test_robust_rule_is_not_masked_by_one_huge_value():
    data = table()
    data.loc["img001.jpg", "contrast"] = 1e9  # with mean/std this hides the moderate outlier below
    data.loc["img002.jpg", "contrast"] = 160.0
    robust, _ = find_outliers(data, "robust", 3.5)
    classic, _ = find_outliers(data, "zscore", 2.0, statistics=["contrast"])
    assert {"img001.jpg", "img002.jpg"} <= set(robust["path"])
    assert "img002.jpg" not in set(classic["path"])


def test_undefined_statistic_is_a_reason_and_unreadable_rows_are_skipped():
    data = table()
    data.loc["img003.jpg", "snr"] = np.nan
    data.loc["img004.jpg", "readable"] = False
    data.loc["img004.jpg", STAT_COLUMNS] = np.nan
    outliers, reasons = find_outliers(data)
    assert "snr undefined" in outliers.set_index("path").loc["img003.jpg", "reasons"]
    assert "img004.jpg" not in set(reasons["path"])


def test_zero_mad_falls_back():
    values = pd.DataFrame({"a": [1.0] * 9 + [5.0]})
    z = z_scores(values, "robust")
    assert np.isfinite(z["a"]).all() and z["a"].iloc[-1] > 3.5


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown outlier rule"):
        find_outliers(table(), "magic")


def test_embedding_has_one_point_per_image_and_clusters():
    data = table(60)
    embedding = embed_statistics(data)
    assert list(embedding.index) == list(data.index)
    assert set(embedding.columns) == {"x", "y", "cluster"}
    assert embedding[["x", "y"]].notna().all().all()
