"""Hyperparameter search with Optuna: validation only, pruned per epoch, resumable, many workers.

The original's tuning ignored the suggested batch size, stepped schedulers wrongly, never pruned and
computed test accuracy inside every trial. Here a trial is an ordinary `fit` (the same training loop
as the real run) on the balanced train split, scored by its best validation macro-F1; the test split is
not even loaded. Studies live in an Optuna storage (SQLite file by default, PostgreSQL or a journal
file for many processes) under a name derived from the model, image size and data version, with
`load_if_exists`, so a rerun or a crashed run adds trials to the same study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch

from neuroflux_lib.config import DatasetConfig, ModelConfig, with_overrides
from neuroflux_lib.models.registry import FloatRange, SearchSpace, model_spec
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.tracking import TrackingSettings, start_run
from neuroflux_lib.training.loop import fit

logger = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal:"


def search_space(model_name: str) -> SearchSpace:
    """The registry's search space for this model: the original's shared keys plus its own."""
    return model_spec(model_name).searched()


def searched_keys(model_name: str) -> tuple[str, ...]:
    return tuple(search_space(model_name))


def suggest(trial: optuna.Trial, model_name: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, space in search_space(model_name).items():
        if isinstance(space, FloatRange):
            params[key] = trial.suggest_float(key, space.low, space.high, log=space.log)
        else:
            params[key] = trial.suggest_categorical(key, space)
    return params


def in_space(model_name: str, key: str, value: Any) -> bool:
    space = search_space(model_name)[key]
    if isinstance(space, FloatRange):
        return space.low <= value <= space.high
    return value in space


def trial_config(base: ModelConfig, params: Mapping[str, Any], trial_number: int) -> ModelConfig:
    """The model config for one trial: its suggestions, the trial epoch budget, no early stop before it."""
    overrides = {
        **params,
        "num_epochs": base.tune_epochs,
        "early_stopping_patience": base.tune_epochs,
        "monitor": "val_macro_f1",  # the study maximises it, whatever the training run monitors
    }
    return with_overrides(base, overrides, f"trial {trial_number}")


def tuned_config(base: ModelConfig, best_params: Mapping[str, Any]) -> ModelConfig:
    """`base` with a study's best values for the searched keys (epochs etc. stay the config's)."""
    chosen = {k: v for k, v in best_params.items() if k in searched_keys(base.model_name)}
    return with_overrides(base, chosen, "tuned hyperparameters")


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    """An Optuna storage from a URL: `sqlite:///…`, `postgresql://…`, or `journal:<file>` (a journal
    file shared by processes on one machine or a shared file system). RDB storages get heartbeats so a
    crashed worker's trial is marked failed (and its parameters retried once) instead of running forever."""
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url.removeprefix(JOURNAL_PREFIX))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with _quiet_experimental():
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
            heartbeat_interval=60,
            grace_period=180,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Heartbeats and the matplotlib plots are "experimental" in Optuna, and have been for years."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def default_storage_url(storage_dir: str | Path) -> str:
    return f"sqlite:///{StoragePaths(storage_dir).optuna_db.resolve()}"


def make_pruner(config: ModelConfig) -> optuna.pruners.BasePruner:
    if config.tune_pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.tune_epochs)
    if config.tune_pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.tune_startup_trials, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


# Keys that change neither what a trial trains nor how it is scored (budgets, hardware, the final run).
NOT_OBJECTIVE = {
    "tune_trials",
    "tune_timeout_s",
    "use_tuned",
    "device",
    "num_workers",
    "num_epochs",
    "early_stopping_patience",
    "monitor",
    "tune_startup_trials",
    "tune_pruner",
    "cv_folds",
}


def study_name(config: ModelConfig, dataset: DatasetConfig, data_version: str) -> str:
    """`<model>-<size>px-<data version>-<settings digest>`: new data or a different trial setup (epochs,
    augmentation, frozen layers, ...) starts a new study instead of mixing incomparable trials."""
    fixed = {
        k: v
        for k, v in config.model_dump(mode="json").items()
        if k not in NOT_OBJECTIVE and k not in searched_keys(config.model_name)
    }
    fixed["image_size"] = config.resolved_image_size(dataset)
    digest = hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:6]
    return f"{config.model_name}-{fixed['image_size']}px-{data_version}-{digest}"


@dataclass(frozen=True)
class StudySpec:
    """Everything a worker process needs to run trials of one study (picklable)."""

    name: str
    storage: str
    base: ModelConfig
    dataset: DatasetConfig
    balanced: pd.DataFrame
    splits: pd.DataFrame
    tracking: TrackingSettings = field(default_factory=lambda: TrackingSettings(mode="disabled"))
    group: str | None = None
    tags: tuple[str, ...] = ()
    threads: int | None = None

    def load(self, worker: int = 0) -> optuna.Study:
        """Create or resume the study. On a local SQLite file the first worker's sampler is seeded (a
        single-process study is reproducible) with a seed that moves on with the trials already run, so a
        resumed study does not replay its suggestions; other workers, and shared storages that other
        machines may be sampling from with the same config, draw unseeded."""
        study = optuna.create_study(
            study_name=self.name,
            storage=open_storage(self.storage),
            pruner=make_pruner(self.base),
            direction="maximize",
            load_if_exists=True,
        )
        seeded = self.storage.startswith("sqlite") and worker == 0
        study.sampler = optuna.samplers.TPESampler(
            seed=self.base.seed + len(study.trials) if seeded else None
        )
        return study


class _ReportToTrial:
    """Epoch callback: report val macro-F1 to the trial and stop it when the pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.trial.report(float(metrics["val_macro_f1"]), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (val macro-F1 {metrics['val_macro_f1']:.3f})")


def objective(spec: StudySpec) -> Callable[[optuna.Trial], float]:
    from neuroflux_lib.training.steps import fit_inputs, prepare_training

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest(trial, spec.base.model_name)
        config = trial_config(spec.base, params, trial.number)
        built, train, val = prepare_training(config, spec.dataset, spec.balanced, spec.splits)
        plan = fit_inputs(built, train, val, config, spec.dataset.storage_dir)
        tracked = start_run(
            spec.tracking,
            name=f"{spec.name}-trial-{trial.number}",
            job_type="tune",
            group=spec.group or spec.name,
            tags=(config.model_name, *spec.tags),
            config={**config.model_dump(mode="json"), "study": spec.name, "trial": trial.number},
        )
        state = "failed"
        try:
            result = fit(
                plan.model,
                plan.train,
                plan.val,
                config,
                list(spec.dataset.class_names),
                inputs=plan.inputs,
                callbacks=[tracked, _ReportToTrial(trial)],
            )
            state = "complete"
            trial.set_user_attr("best_epoch", result.best_epoch)
            tracked.set_summary({"best_value": result.best_metric, "best_epoch": result.best_epoch})
            return result.best_metric
        except optuna.TrialPruned:
            state = "pruned"
            raise
        finally:
            tracked.set_summary({"state": state})
            trial.set_user_attr("wandb", tracked.finish(exit_code=0 if state != "failed" else 1))

    return run_trial


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    logger.info(
        "study %s trial %d %s: value %s %s",
        study.study_name,
        trial.number,
        trial.state.name,
        value,
        trial.params,
    )


def _optimize(
    spec: StudySpec, n_trials: int, timeout: float | None, worker: int = 0, study: optuna.Study | None = None
) -> None:
    """Run `n_trials` trials in this process (a worker loads its own `study`)."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    if worker and torch.cuda.is_available():
        torch.cuda.set_device(worker % torch.cuda.device_count())  # one worker per GPU, round robin
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study or spec.load(worker)
    # A diverging trial (non-finite loss) or one too big for the GPU is a failed trial, not a failed study.
    catch = (FloatingPointError, torch.cuda.OutOfMemoryError)
    study.optimize(objective(spec), n_trials=n_trials, timeout=timeout, callbacks=[_log_trial], catch=catch)


def _worker_logging() -> None:
    """Worker processes print their trial lines to stderr (the parent's log handlers do not follow)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s[worker]: %(message)s")


def share(n_trials: int, workers: int) -> list[int]:
    """Split a trial budget over workers so the total adds up exactly."""
    base, extra = divmod(n_trials, workers)
    budgets = [base + (1 if i < extra else 0) for i in range(workers)]
    return [budget for budget in budgets if budget]


@dataclass(frozen=True)
class StudyResult:
    name: str
    storage: str
    best_params: dict[str, Any]
    best_value: float | None
    best_trial: int | None
    trials: pd.DataFrame
    counts: dict[str, int]
    seconds: float
    history_png: bytes | None = None
    importance_png: bytes | None = None
    importances: dict[str, float] = field(default_factory=dict)


def run_study(spec: StudySpec, n_trials: int, timeout: float | None = None, workers: int = 1) -> StudyResult:
    """Add `n_trials` trials to the study (split over `workers` processes) and summarise all of it."""
    started = time.perf_counter()
    study = spec.load()  # create the study (and its tables) once, before workers race to
    if not study.trials:
        # Trial 0 is the config's own values: the study's best is never worse than the baseline at the
        # same budget, so `use_tuned` cannot pick something a plain run would beat.
        baseline = {k: getattr(spec.base, k) for k in searched_keys(spec.base.model_name)}
        study.enqueue_trial(
            {k: v for k, v in baseline.items() if in_space(spec.base.model_name, k, v)}, skip_if_exists=True
        )
    budgets = share(n_trials, max(1, workers))
    if len(budgets) <= 1:
        _optimize(spec, n_trials, timeout, study=study)
    else:
        cores = spec.threads or len(os.sched_getaffinity(0))
        worker_spec = dataclasses.replace(spec, threads=max(1, cores // len(budgets)))
        context = multiprocessing.get_context("spawn")  # torch and OpenMP do not survive fork
        pool = ProcessPoolExecutor(len(budgets), mp_context=context, initializer=_worker_logging)
        try:
            jobs = [pool.submit(_optimize, worker_spec, n, timeout, i) for i, n in enumerate(budgets)]
            for job in jobs:
                job.result()
        except BaseException:
            # A failed worker or a cancelled run: stop the others now instead of after their budgets.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return summarise(study, spec.storage, time.perf_counter() - started)  # storages read fresh


def existing_study(spec: StudySpec) -> StudyResult | None:
    """The study's summary without adding trials; None when it does not exist yet."""
    storage = open_storage(spec.storage)
    if spec.name not in optuna.study.get_all_study_names(storage):
        return None
    return summarise(optuna.load_study(study_name=spec.name, storage=storage), spec.storage)


def summarise(study: optuna.Study, storage: str, seconds: float = 0.0) -> StudyResult:
    trials = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration", "user_attrs"))
    if not trials.empty and "duration" in trials:  # NaT while a trial runs
        trials["duration"] = pd.to_timedelta(trials["duration"]).dt.total_seconds().round(1)
    states = [t.state.name.lower() for t in study.trials]
    counts = {state: states.count(state) for state in sorted(set(states))}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if complete else None
    importances = _importances(study) if len(complete) >= 2 else {}
    return StudyResult(
        name=study.study_name,
        storage=storage,
        best_params=dict(best.params) if best else {},
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        trials=trials,
        counts=counts,
        seconds=seconds,
        history_png=_figure_png(optuna.visualization.matplotlib.plot_optimization_history, study)
        if complete
        else None,
        importance_png=_figure_png(optuna.visualization.matplotlib.plot_param_importances, study)
        if importances
        else None,
        importances=importances,
    )


def _importances(study: optuna.Study) -> dict[str, float]:
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError) as error:  # e.g. every trial chose the same values
        logger.info("parameter importance not available: %s", error)
        return {}


def _figure_png(plot: Callable, study: optuna.Study) -> bytes | None:
    from neuroflux_lib.plots import figure_png

    try:
        with _quiet_experimental():
            axes = plot(study)
    except (RuntimeError, ValueError) as error:
        logger.info("%s not drawn: %s", plot.__name__, error)
        return None
    axes.figure.set_size_inches(8, 4.5)
    return figure_png(axes.figure)


def safe_url(url: str) -> str:
    """A storage URL fit for logs and metadata: any password masked, whatever the URL looks like."""
    return re.sub(r"://([^/]*)@", lambda m: f"://{m.group(1).split(':')[0]}:***@", url, count=1)


@dataclass(frozen=True)
class HyperparameterChoice:
    """What training uses, and a sentence saying why."""

    config: ModelConfig
    tuned: bool
    source: str


def choose_hyperparameters(config: ModelConfig, study: StudyResult | None) -> HyperparameterChoice:
    """The study's best values when `use_tuned` and the study has a completed trial; else the config's."""
    if study is not None and study.best_params and config.use_tuned:
        source = (
            f"tuned: study {study.name}, best trial {study.best_trial} (val macro-F1 {study.best_value:.4f})"
        )
        return HyperparameterChoice(tuned_config(config, study.best_params), True, source)
    if study is None:
        source = "config values (tune_trials is 0 and no study exists for this model and data)"
    elif not study.best_params:
        source = f"config values (study {study.name} has no completed trial yet)"
    else:
        source = f"config values (use_tuned is false; study {study.name} is shown for comparison)"
    return HyperparameterChoice(config, False, source)
