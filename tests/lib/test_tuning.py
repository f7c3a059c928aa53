"""Optuna tuning: the original's search space with its bugs fixed, pruning, resuming, many workers."""

import dataclasses
import json
from pathlib import Path

import optuna

from neuroflux_lib.config import ModelConfig, with_overrides
from neuroflux_lib.config.resolve import load_config
from neuroflux_lib.training.tuning import (
    StudySpec,
    existing_study,
    run_study,
    share,
    suggest,
    trial_config,
    tuned_config,
)

REPO = Path(__file__).resolve().parents[2]


def tiny_model(**overrides) -> ModelConfig:
    base = load_config(ModelConfig, REPO / "configs" / "models" / "neuroflux_cnn.json")
    values = {"device": "cpu", "num_workers": 0, "tune_epochs": 2, "tune_startup_trials": 1}
    return with_overrides(base, {**values, **overrides})


def spec_for(prepared, storage: str, name: str = "study", splits=None, **model) -> StudySpec:
    dataset, balanced, all_splits = prepared
    return StudySpec(
        name=name,
        storage=storage,
        base=tiny_model(**model),
        dataset=dataset,
        balanced=balanced,
        splits=all_splits if splits is None else splits,
        threads=1,
    )


def test_search_space_is_the_originals_and_the_batch_size_is_used():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, "resnet50")
        config = trial_config(tiny_model(model_name="resnet50"), params, trial.number)
        assert config.batch_size == params["batch_size"] in (16, 32, 64)  # the original ignored it
        assert config.hidden_size in (256, 512, 1024) and 0.3 <= config.dropout <= 0.7
        assert 1e-5 <= config.learning_rate <= 1e-3 and 1e-5 <= config.weight_decay <= 1e-3
        assert config.optimizer in ("Adam", "AdamW", "SGD", "RMSprop")
        assert config.scheduler in ("ReduceLROnPlateau", "CosineAnnealing", "OneCycle")
        assert config.num_epochs == config.tune_epochs  # schedulers span the trial, not the full run
        study.tell(trial, 0.0)
    assert "conv_channels" in suggest(optuna.create_study().ask(), "neuroflux_cnn")


def test_tuned_config_applies_only_searched_keys():
    base = tiny_model(num_epochs=30)
    tuned = tuned_config(base, {"learning_rate": 2e-4, "conv_channels": 16, "num_epochs": 3})
    assert tuned.learning_rate == 2e-4 and tuned.conv_channels == 16 and tuned.num_epochs == 30


def test_share_adds_up():
    assert share(5, 2) == [3, 2] and share(1, 4) == [1] and sum(share(50, 7)) == 50


def test_validation_only_baseline_first_and_resume(prepared, tmp_path):
    """The test split is never read (its files do not even exist here); trial 0 is the config's own
    values; a second run adds to the same study."""
    _, _, splits = prepared
    no_test_files = splits.copy()
    no_test_files.loc[no_test_files["split"] == "test", "path"] = "/nonexistent/test.png"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = spec_for(prepared, storage, splits=no_test_files, tune_pruner="none")
    first = run_study(spec, n_trials=3)
    assert first.counts == {"complete": 3}
    assert first.best_value is not None and set(first.best_params) >= {"batch_size", "conv_channels"}
    assert {"number", "state", "value", "duration"} <= set(first.trials.columns)
    baseline = first.trials.iloc[0]  # trial 0 is the config's own values: the study starts from them
    assert baseline["params_learning_rate"] == spec.base.learning_rate
    assert baseline["params_conv_channels"] == spec.base.conv_channels == 64

    second = run_study(spec, n_trials=2)
    assert second.counts == {"complete": 5} and second.name == first.name
    assert existing_study(spec).counts == second.counts
    assert existing_study(spec_for(prepared, storage, name="other")) is None


def test_pruned_trials_stop_early_and_their_wandb_runs_say_so(
    prepared, tmp_path, monkeypatch, isolated_wandb_env
):
    """Every epoch reports val macro-F1 to the pruner; a pruner that says stop ends the trial (a threshold
    no model reaches makes the pruning deterministic here)."""
    from neuroflux_lib.tracking import TrackingSettings, read_run
    from neuroflux_lib.training import tuning

    monkeypatch.setattr(tuning, "make_pruner", lambda config: optuna.pruners.ThresholdPruner(lower=1.01))
    spec = spec_for(prepared, f"sqlite:///{tmp_path / 'optuna.db'}", tune_epochs=3)
    spec = dataclasses.replace(spec, tracking=TrackingSettings(root=str(tmp_path / "wandb")))
    result = run_study(spec, n_trials=2)
    assert result.counts == {"pruned": 2} and result.best_value is None and result.best_params == {}
    for folder in result.trials["user_attrs_wandb"]:
        run = read_run(folder)
        assert run.job_type == "tune" and run.summary["state"] == "pruned"
        assert [row["epoch"] for row in run.history if "epoch" in row] == [1]  # stopped after epoch 1


def test_a_diverging_trial_fails_alone_and_a_running_one_is_summarised(prepared, tmp_path, monkeypatch):
    from neuroflux_lib.training import tuning

    def diverge(*args, **kwargs):
        raise FloatingPointError("training loss is nan at epoch 1; lower the learning rate")

    monkeypatch.setattr(tuning, "fit", diverge)
    spec = spec_for(prepared, f"sqlite:///{tmp_path / 'optuna.db'}")
    assert run_study(spec, n_trials=2).counts == {"fail": 2}  # the study and the asset go on

    study = spec.load()
    study.ask()  # a trial another worker is running right now
    assert tuning.summarise(study, spec.storage).counts == {"fail": 2, "running": 1}


def test_two_workers_share_one_study_and_lose_no_trial(prepared, tmp_path):
    journal = f"journal:{tmp_path / 'study.log'}"
    result = run_study(spec_for(prepared, journal, tune_pruner="none", tune_epochs=1), n_trials=4, workers=2)
    study = optuna.load_study(
        study_name="study",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
        ),
    )
    assert len(study.trials) == 4 and sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert result.counts == {"complete": 4}
    # The two workers ran with different sampler seeds: no duplicated suggestions.
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 4
