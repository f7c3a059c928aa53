"""Cross-validation: every train+val subject is held out exactly once, never the test split."""

import pandas as pd
import pytest

from neuroflux_lib.config import with_overrides
from neuroflux_lib.config.resolve import load_model_config
from neuroflux_lib.errors import ConfigError
from neuroflux_lib.evaluation.cross_validation import cross_validate, fold_tables, mean_interval
from neuroflux_lib.paths import config_dir


def test_folds_hold_out_each_subject_once_and_keep_subjects_whole(prepared):
    _, _, splits = prepared
    tables = fold_tables(splits, 3, seed=0)
    pool = splits.loc[splits["split"] != "test"]
    held = pd.concat([t.loc[t["split"] == "test"] for t in tables])
    assert sorted(held["path"]) == sorted(pool["path"])  # each image held out exactly once
    assert not set(held["path"]) & set(splits.loc[splits["split"] == "test", "path"])
    for table in tables:
        assert set(table["split"]) == {"train", "val", "test"}
        assert (table.groupby("group")["split"].nunique() == 1).all()  # no group straddles roles
    with pytest.raises(ConfigError, match="at least 3"):
        fold_tables(splits, 2, seed=0)


def test_mean_interval_uses_a_t_quantile():
    interval = mean_interval([0.5, 0.6, 0.7])
    assert interval["estimate"] == pytest.approx(0.6)
    assert interval["high"] - interval["estimate"] == pytest.approx(4.303 * 0.1 / 3**0.5, rel=1e-3)


def test_cross_validation_scores_model_and_baselines_per_fold(prepared, tmp_path):
    dataset, _, splits = prepared
    model = with_overrides(
        load_model_config(config_dir() / "models" / "neuroflux_cnn.json"),
        {"num_epochs": 1, "conv_channels": 4, "batch_size": 32, "device": "cpu", "num_workers": 0},
    )
    result = cross_validate(model, dataset, splits, 3, tmp_path)
    assert result["estimate"] == "cross-validation (train+val, 3 subject-grouped folds)"
    assert [row["fold"] for row in result["folds"]] == [0, 1, 2]
    assert {"model", "majority", "thumbnail", "metadata"} <= set(result["macro_f1"])
    for interval in result["macro_f1"].values():
        assert interval["low"] <= interval["estimate"] <= interval["high"]
