import json
from pathlib import Path

import pytest

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, ConfigError, DatasetConfig
from neuroflux_lib.config.resolve import load_config

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


def test_one_resolver_applies_file_then_profile_then_typed_values_then_compute(tmp_path):
    """Each layer wins over the one before, for the dataset and the model; num_classes follows the class
    list; relative folders become absolute against the given root."""
    from neuroflux_lib.config.resolve import resolve_config

    dataset_file = write(tmp_path, {"class_names": ["A", "B", "C"], "data_dir": "imgs", "image_size": 96})
    profile = tmp_path / "p.json"
    profile.write_text(
        json.dumps(
            {
                "dataset": {"image_size": 64, "storage_dir": "store"},
                "neuroflux_cnn": {"num_epochs": 3, "batch_size": 8, "device": "cuda"},
            }
        )
    )
    resolved = resolve_config(
        profile=str(profile),
        model="neuroflux_cnn",
        dataset_file=dataset_file,
        dataset_values={"image_size": None, "random_seed": 7},  # None: not typed
        model_values={"batch_size": 4, "num_epochs": None},
        compute={"device": "cpu", "num_workers": None},
        root=tmp_path,
    )
    data, model = resolved.dataset, resolved.model
    assert data.image_size == 64 and data.random_seed == 7  # profile over file; typed value applied
    assert data.data_dir == str(tmp_path / "imgs") and data.storage_dir == str(tmp_path / "store")
    assert model.num_epochs == 3 and model.batch_size == 4 and model.device == "cpu"
    assert model.num_classes == 3 and resolved.profile == str(profile)
    assert resolve_config(dataset_file=dataset_file, root=tmp_path).model is None


def test_profiles_are_merged_in_one_place():
    """One function applies a profile's blocks (the resolver); the CLI, assets and benchmarks call it."""
    import ast

    merges = []
    for path in [
        p for d in ("neuroflux_lib", "neuroflux_assets", "benchmarks") for p in (REPO / d).rglob("*.py")
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            merging = isinstance(node, ast.Attribute) and node.attr in {
                "apply_model",
                "apply_dataset",
                "models",
            }
            if merging and isinstance(node.value, ast.Name) and node.value.id in {"profile", "chosen"}:
                merges.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert merges and all(m.startswith("neuroflux_lib/config/resolve.py") for m in merges), merges
