"""The decisions the library owns: promotion, hyperparameter choice, URL masking, registry, paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from neuroflux_lib.config.resolve import load_model_config, model_config_path
from neuroflux_lib.evaluation.promotion import Gate, choose_production
from neuroflux_lib.evaluation.report import REPORT_FILES, read_report
from neuroflux_lib.models import MODEL_NAMES, REGISTRY, build_model, model_hyperparams
from neuroflux_lib.paths import StoragePaths, config_dir, project_root
from neuroflux_lib.serving.artifacts import ArtifactMeta, save_artifact
from neuroflux_lib.training.tuning import StudyResult, choose_hyperparameters, safe_url, search_space
from tests.factories import untyped_report


def tiny_artifact(folder: Path) -> Path:
    built = build_model("neuroflux_cnn", 5, {"conv_channels": 2}, image_size=32)
    meta = ArtifactMeta(
        architecture="neuroflux_cnn",
        class_names=["PTE", "LO", "EO", "IPTE", "IO"],
        image_size=32,
        normalization={"mean": [0.5] * 3, "std": [0.5] * 3},
        hyperparameters={"conv_channels": 2},
        weights_origin="random",
        pretrained=False,
    )
    return save_artifact(folder, built.model, meta)


def report(
    folder: Path, val: float, test: float, gain: tuple[float, float, float], version: str = "v1"
) -> Path:
    """A report.json as `evaluate_artifact` writes it, with the numbers promotion reads."""
    folder.mkdir(parents=True)
    estimate, low, high = gain
    body = untyped_report(model_name=folder.name, macro_f1=test, val_macro_f1=val, data_version=version)
    body["comparison"] |= {
        "difference": {"estimate": estimate, "low": low, "high": high},
        "best_baseline": "thumbnail",
    }
    (folder / REPORT_FILES["report"]).write_text(json.dumps(body))
    return folder


def test_the_model_to_promote_is_chosen_on_validation_and_gated_on_test(tmp_path):
    trained = {name: tiny_artifact(tmp_path / f"m-{name}") for name in ("a", "b", "c")}
    reports = {
        "a": report(tmp_path / "a", val=0.50, test=0.90, gain=(0.30, 0.20, 0.40)),  # best on test only
        "b": report(tmp_path / "b", val=0.60, test=0.70, gain=(0.10, 0.02, 0.18)),
        "c": report(tmp_path / "c", val=0.40, test=0.50, gain=(0.00, -0.1, 0.10)),
    }
    chosen = choose_production(trained, reports, Gate())
    assert chosen.model == "b" and "highest validation macro-F1 (0.600)" in chosen.why
    assert "beats the best baseline (thumbnail" in chosen.why
    assert set(chosen.others["model"]) == {"a", "c"}

    # The chosen model fails a stricter gate: nothing is promoted, the test split does not pick "a".
    strict = choose_production(trained, reports, Gate(min_gain=0.05))
    assert strict.model is None and "nothing promoted" in strict.why and "does not beat" in strict.why
    floor = choose_production(trained, reports, Gate(min_macro_f1=0.8))
    assert floor.model is None and "is below the floor 0.800" in floor.why


def test_reports_of_another_data_version_are_stale_and_never_chosen(tmp_path):
    trained = {name: tiny_artifact(tmp_path / f"m-{name}") for name in ("old", "new")}
    reports = {
        "old": report(tmp_path / "old", val=0.9, test=0.9, gain=(0.3, 0.2, 0.4), version="v0"),
        "new": report(tmp_path / "new", val=0.5, test=0.6, gain=(0.1, 0.05, 0.15), version="v1"),
    }
    chosen = choose_production(trained, reports, Gate(), data_version="v1")
    assert chosen.model == "new"
    stale = chosen.candidates.set_index("model").loc["old"]
    assert not stale["eligible"] and "stale: evaluated on data version v0" in stale["why"]


def test_a_broken_artifact_is_never_promoted(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    chosen = choose_production(
        {"a": broken}, {"a": report(tmp_path / "a", 0.9, 0.9, (0.3, 0.2, 0.4))}, Gate()
    )
    assert chosen.model is None
    assert "does not load" in chosen.candidates.loc[0, "why"]


def test_read_report_names_a_folder_that_is_not_a_report(tmp_path):
    with pytest.raises(ValueError, match="not an evaluation report"):
        read_report(tmp_path)


def study(best_params: dict) -> StudyResult:
    return StudyResult(
        name="s",
        storage="sqlite:///x",
        best_value=0.4 if best_params else None,
        best_trial=3 if best_params else None,
        best_params=best_params,
        counts={},
        trials=pd.DataFrame(),
        seconds=0.0,
    )


def test_tuned_values_are_used_only_when_asked_and_available():
    base = load_model_config(model_config_path("neuroflux_cnn"))
    best = {"learning_rate": 3e-4, "batch_size": 64, "num_epochs": 999}
    asked = base.model_copy(update={"use_tuned": True})
    chosen = choose_hyperparameters(asked, study(best))
    assert chosen.tuned and chosen.config.learning_rate == 3e-4 and chosen.config.batch_size == 64
    assert chosen.config.num_epochs == base.num_epochs  # not a searched key
    assert not choose_hyperparameters(base, study(best)).tuned
    assert "use_tuned is false" in choose_hyperparameters(base, study(best)).source
    assert "no completed trial" in choose_hyperparameters(asked, study({})).source
    assert "no study exists" in choose_hyperparameters(asked, None).source


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:secret@db:5432/optuna", "postgresql://user:***@db:5432/optuna"),
        ("postgresql+psycopg2://u:p%40ss@h/db", "postgresql+psycopg2://u:***@h/db"),
        ("sqlite:////tmp/optuna.db", "sqlite:////tmp/optuna.db"),
    ],
)
def test_storage_urls_are_masked(url, shown):
    assert safe_url(url) == shown


def test_each_registry_entry_is_a_whole_model():
    """Builder, config file, keys and search space: everything the platform needs, in one entry."""
    for name in MODEL_NAMES:
        spec = REGISTRY[name]
        config = load_model_config(model_config_path(name))
        assert config.model_name == name
        kwargs = model_hyperparams(name, config.model_dump())
        assert set(kwargs) <= set(spec.defaults)
        assert {"learning_rate", "batch_size", *spec.search_space} <= set(search_space(name))
    assert model_hyperparams("resnet50", {"pretrained": False, "lr": 1})["weights"] == "random"


def test_unknown_model_names_are_config_errors(tmp_path):
    """The registry checks names wherever a config is resolved: a model file, a name, a profile."""
    from neuroflux_lib.config.resolve import load_profile, resolve_config
    from neuroflux_lib.errors import ConfigError

    (tmp_path / "m.json").write_text('{"model_name": "resnet5"}')
    (tmp_path / "p.json").write_text('{"resnet5": {"num_epochs": 1}}')
    with pytest.raises(ConfigError, match="valid names: resnet50, neuroflux_cnn"):
        load_model_config(tmp_path / "m.json")
    with pytest.raises(ConfigError, match="valid names: resnet50, neuroflux_cnn"):
        resolve_config(model="resnet5")
    with pytest.raises(ConfigError, match="model_name: unknown model 'resnet5'"):
        load_profile(str(tmp_path / "p.json"))


def test_the_original_config_file_names_map_to_the_registry_files():
    assert load_model_config("configs/resnet50_config.json").model_name == "resnet50"
    assert load_model_config(Path("elsewhere") / "neuroflux_config.json").model_name == "neuroflux_cnn"


def test_paths_follow_the_environment_when_asked(monkeypatch, tmp_path):
    assert (project_root() / "configs" / "dataset_config.json").is_file()
    monkeypatch.setenv("NEUROFLUX_ROOT", str(tmp_path))
    assert config_dir() == tmp_path / "configs"
    storage = StoragePaths(tmp_path / "storage")
    assert storage.assets == tmp_path / "storage" / "assets"
    assert storage.work("run1", "x").parent.is_dir()
