import numpy as np
import pandas as pd
import pytest

from neuroflux_lib.data.broken import BROKEN_RULES, broken_reasons
from neuroflux_lib.data.outliers import (
    embed_statistics,
    excluded_paths,
    find_outliers,
    flag_images,
    flags_per_class,
    z_scores,
)
from neuroflux_lib.data.quality import STAT_COLUMNS, compute_quality
from tests.factories import blob_image, bright_image, broken_images, write_gray


def table(n: int = 40, seed: int = 0, spread: float = 5.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = pd.DataFrame(rng.normal(100, spread, (n, len(STAT_COLUMNS))), columns=STAT_COLUMNS)
    values.index = [f"img{i:03d}.jpg" for i in range(n)]
    values["class_name"] = ["PTE", "LO"] * (n // 2)
    values["readable"] = True
    return values


@pytest.fixture(scope="module")
def two_regimes(tmp_path_factory) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """36 standard images, 4 of a brighter protocol with no background (10 %, as in the real data), and
    one image per broken-image rule: (quality table, {path: broken rule}, bright paths)."""
    root = tmp_path_factory.mktemp("regimes")
    standard = [write_gray(root / "PTE" / f"std{i:02d}.png", blob_image(seed=i)) for i in range(36)]
    bright = [write_gray(root / "LO" / f"bright{i}.png", bright_image(seed=i)) for i in range(4)]
    broken = {
        str(write_gray(root / "LO" / f"{rule}.png", image)): rule for rule, image in broken_images().items()
    }
    paths = [str(p) for p in standard + bright] + list(broken)
    quality = compute_quality(paths, workers=1)
    quality["class_name"] = [p.split("/")[-2] for p in quality.index]
    return quality, broken, [str(p) for p in bright]


def test_only_broken_images_are_excluded_by_default_and_outliers_are_kept(two_regimes):
    """The reported failure: a legitimate brighter protocol was flagged and removed (11 % of the data)."""
    quality, broken, bright = two_regimes
    flags, _ = flag_images(quality)
    assert set(excluded_paths(flags)) == set(broken)
    kept = flags.loc[flags["kind"] == "outlier"]
    assert set(bright) & set(kept["path"]), "the brighter protocol should be reported as outliers"
    assert not kept["excluded"].any() and kept["reasons"].str.contains("intensity high").any()


def test_outlier_action_exclude_also_leaves_out_statistical_outliers(two_regimes):
    quality, broken, _ = two_regimes
    flags, _ = flag_images(quality, action="exclude")
    assert set(excluded_paths(flags)) == set(flags["path"]) > set(broken)


def test_each_broken_rule_catches_its_image_and_names_itself(two_regimes):
    quality, broken, bright = two_regimes
    reasons = broken_reasons(quality)
    for path, rule in broken.items():
        assert f"{rule} (" in reasons[path], (rule, reasons[path])
    assert (reasons.drop(index=list(broken)) == "").all(), "a legitimate image was called broken"
    assert "tiny (shorter side px 16 < 32)" in reasons[next(p for p, r in broken.items() if r == "tiny")]
    assert {rule.name for rule in BROKEN_RULES} >= set(broken.values())


def test_broken_rules_do_not_depend_on_the_rest_of_the_dataset(two_regimes):
    quality, broken, _ = two_regimes
    alone = pd.concat([broken_reasons(quality.loc[[path]]) for path in quality.index])
    assert alone.equals(broken_reasons(quality))


def test_near_zero_spread_cannot_make_an_outlier_on_its_own():
    """Real data: the background fraction's MAD was tiny, so ordinary slices got z = -5.5."""
    data = table()
    rng = np.random.default_rng(1)
    data["background_fraction"] = 0.30 + rng.normal(0, 0.0005, len(data))
    data.loc["img009.jpg", "background_fraction"] = 0.27
    outliers, _ = find_outliers(data, "robust", 3.5)
    assert "img009.jpg" not in set(outliers["path"])
    data.loc["img009.jpg", "background_fraction"] = 0.02  # a real difference still counts
    outliers, _ = find_outliers(data, "robust", 3.5)
    assert "background_fraction low" in outliers.set_index("path").loc["img009.jpg", "reasons"]


def test_zero_spread_still_flags_a_large_difference():
    values = pd.DataFrame({"a": [1.0] * 9 + [5.0]})
    z = z_scores(values, "robust")
    assert np.isfinite(z["a"]).all() and z["a"].iloc[-1] > 3.5 and (z["a"].iloc[:-1] == 0).all()


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
    data = table(spread=20.0)  # spreads well above the floors: the original's plain mean / std rule
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


def test_per_class_shares():
    flags = pd.DataFrame(
        {
            "path": ["a", "b", "c"],
            "class_name": ["PTE", "PTE", "LO"],
            "kind": ["broken", "outlier", "outlier"],
        }
    )
    images = pd.DataFrame({"class_name": ["PTE"] * 4 + ["LO"] * 2})
    table_ = flags_per_class(flags, images, ["PTE", "LO", "EO"])
    assert table_.loc["PTE", "broken_share"] == 0.25 and table_.loc["LO", "outliers_share"] == 0.5
    assert table_.loc["EO"].tolist() == [0, 0, 0.0, 0, 0.0]


def test_unknown_rule_and_action():
    with pytest.raises(ValueError, match="unknown outlier rule"):
        find_outliers(table(), "magic")
    with pytest.raises(ValueError, match="unknown outlier action"):
        flag_images(table(), action="drop")


def test_embedding_has_one_point_per_image_and_clusters():
    data = table(60)
    embedding = embed_statistics(data)
    assert list(embedding.index) == list(data.index)
    assert set(embedding.columns) == {"x", "y", "cluster"}
    assert embedding[["x", "y"]].notna().all().all()
