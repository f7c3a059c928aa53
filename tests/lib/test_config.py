import json
from pathlib import Path

import pytest

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, ConfigError, DatasetConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return path


def test_committed_config_matches_original_defaults():
    config = load_config(DatasetConfig, REPO / "configs" / "dataset_config.json")
    assert config.class_names == ("PTE", "LO", "EO", "IPTE", "IO") == DEFAULT_CLASS_NAMES
    assert config.train_val_test_split == (0.7, 0.15, 0.15)
    assert config.image_size == 224
    assert config.random_seed == 42


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="image_sise"):
        load_config(DatasetConfig, write(tmp_path, {"image_sise": 128}))


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match="image_size"):
        load_config(DatasetConfig, write(tmp_path, {"image_size": "224"}))


def test_split_ratios_must_sum_to_one(tmp_path):
    with pytest.raises(ConfigError, match="train_val_test_split"):
        load_config(DatasetConfig, write(tmp_path, {"train_val_test_split": [0.8, 0.15, 0.15]}))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(DatasetConfig, tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(DatasetConfig, bad)


def test_committed_config_sets_the_data_integrity_defaults():
    config = load_config(DatasetConfig, REPO / "configs" / "dataset_config.json")
    assert config.subject_from == "auto" and config.max_no_subject_fraction == 0.05
    assert config.min_images_per_class == 10 and config.outlier_action == "keep"


@pytest.mark.parametrize(
    "values",
    [
        {"subject_from": "path"},
        {"outlier_action": "drop"},
        {"min_images_per_class": 0},
        {"max_no_subject_fraction": 2},
    ],
)
def test_data_integrity_settings_are_validated(tmp_path, values):
    with pytest.raises(ConfigError, match=next(iter(values))):
        load_config(DatasetConfig, write(tmp_path, values))
