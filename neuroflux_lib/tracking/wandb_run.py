"""Experiment tracking with Weights & Biases: offline by default, and never able to break a training.

Every W&B call goes through `TrackedRun`, which logs a failure once and then stops tracking, so a full
disk, a bad key or a dead network costs the run its tracking, not its model. Each run also keeps our own
record of what it was given (`neuroflux-run.json` in its folder, `tracking.index`): offline runs are
plain folders under `<root>/wandb/offline-run-*`, and `neuroflux runs` lists them from those records.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from neuroflux_lib.tracking.index import RunRecord
from neuroflux_lib.tracking.offline import UPLOAD_FILE, upload_instructions
from neuroflux_lib.tracking.settings import TrackingSettings

logger = logging.getLogger(__name__)

# Predictions logged with thumbnails per evaluation run: enough to browse, small enough to sync.
MAX_TABLE_ROWS = 200
THUMBNAIL_PX = 64


def _guarded(method: Callable) -> Callable:
    """Run a W&B call; on any error log it once, stop tracking, and let the caller go on."""

    @functools.wraps(method)
    def wrapper(self: TrackedRun, *args, **kwargs):
        if self.run is None:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 (tracking must never fail the work it tracks)
            logger.warning("W&B %s failed, tracking stops for this run: %s", method.__name__, error)
            self.error = f"{method.__name__}: {error}"
            self.finish(exit_code=1)  # close what can be closed (writer, threads); never raises
            return None

    return wrapper


@dataclass
class TrackedRun:
    """One W&B run, or nothing (disabled / failed to start). Also a training `EpochCallback`. `record`
    keeps what each call gave wandb once wandb took it; it is written when the run starts and finishes."""

    run: Any = None
    settings: TrackingSettings = field(default_factory=TrackingSettings)
    error: str | None = None
    link: str = ""
    record: RunRecord | None = None

    @property
    def active(self) -> bool:
        return self.run is not None

    def _log(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """`run.log`, then the same step in the record (media by their wandb type's name)."""
        self.run.log(dict(values), step=step)
        if self.record is not None:
            self.record.history.append(
                {key: value if _is_number(value) else type(value).__name__ for key, value in values.items()}
            )

    def _write_record(self) -> None:
        """Our record of the run; failing to write it costs the run its line in `neuroflux runs`, no more."""
        try:
            self.record.write()
        except Exception as error:  # noqa: BLE001 (record keeping must never fail the work it records)
            logger.warning("neuroflux run record not written: %s", error)

    @_guarded
    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._log({k: float(v) for k, v in metrics.items() if _is_number(v)}, step=epoch)

    @_guarded
    def update_config(self, values: Mapping[str, Any]) -> None:
        self.run.config.update(dict(values), allow_val_change=True)
        if self.record is not None:
            self.record.config.update(values)

    @_guarded
    def set_summary(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.run.summary[key] = value
        if self.record is not None:
            self.record.summary.update(values)

    @_guarded
    def log_images(self, images: Mapping[str, str | Path | bytes]) -> None:
        """PNG files or PNG bytes (the plots the reports already hold)."""
        import wandb
        from PIL import Image

        def image(value: str | Path | bytes) -> wandb.Image:
            return wandb.Image(Image.open(io.BytesIO(value)) if isinstance(value, bytes) else str(value))

        self._log({name: image(value) for name, value in images.items()})

    @_guarded
    def log_evaluation(self, predictions: pd.DataFrame, class_names: Sequence[str]) -> None:
        """Confusion matrix and a table of test predictions with thumbnails (`predictions`: path,
        true, predicted, confidence, one probability column per class)."""
        import wandb
        from PIL import Image

        index = {name: i for i, name in enumerate(class_names)}
        matrix = wandb.plot.confusion_matrix(
            y_true=predictions["true"].map(index).tolist(),
            preds=predictions["predicted"].map(index).tolist(),
            class_names=list(class_names),
        )
        table = wandb.Table(columns=["image", "file", "true", "predicted", "confidence", *class_names])
        for row in predictions.head(MAX_TABLE_ROWS).itertuples(index=False):
            with Image.open(row.path) as image:
                thumb = image.convert("L")
                thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                table.add_data(
                    wandb.Image(np.asarray(thumb)),
                    Path(row.path).name,
                    row.true,
                    row.predicted,
                    float(row.confidence),
                    *(float(getattr(row, name)) for name in class_names),
                )
        self._log({"confusion_matrix": matrix, "test_predictions": table})

    @_guarded
    def log_model(
        self, folder: str | Path, name: str, aliases: Sequence[str], description: str, metadata: Mapping
    ) -> None:
        """Every file of a model folder (weights, model.json, model card) as a W&B `model` artifact;
        `description` (the model card) is what W&B shows on the artifact's page."""
        import wandb

        artifact = wandb.Artifact(name, type="model", description=description, metadata=dict(metadata))
        artifact.add_dir(str(folder))
        self.run.log_artifact(artifact, aliases=list(aliases))
        if self.record is not None:
            files = sorted(artifact.manifest.entries)
            self.record.artifacts.append(
                {"name": name, "type": "model", "aliases": list(aliases), "files": files}
            )

    @_guarded
    def log_table(self, key: str, table: pd.DataFrame) -> None:
        """A plain table (e.g. model vs baselines with intervals), comparable across runs in the UI."""
        import wandb

        shown = table.astype(object).where(table.notna(), None)
        self._log({key: wandb.Table(columns=[str(c) for c in shown.columns], data=shown.values.tolist())})

    def finish(self, exit_code: int = 0) -> str:
        """Close the run; returns where to find it (URL online, run folder offline)."""
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish(exit_code=exit_code)
            except Exception as error:  # noqa: BLE001
                logger.warning("W&B finish failed: %s", error)
                self.error = self.error or f"finish: {error}"
            if self.record is not None:
                self.record.finished = datetime.now(UTC)
                self.record.state = "finished" if exit_code == 0 and not self.error else "failed"
                self.record.error = self.error
                self._write_record()
        return self.link

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.finish(exit_code=0 if kind is None else 1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def start_run(
    settings: TrackingSettings,
    *,
    name: str,
    job_type: Literal["train", "tune", "evaluate", "promote"],
    group: str | None = None,
    tags: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> TrackedRun:
    """A W&B run, or an inactive `TrackedRun` when tracking is disabled or W&B cannot start."""
    if settings.mode == "disabled":
        return TrackedRun(None, settings)
    try:
        environment = settings.environment()
        os.environ.update(environment)
        Path(environment["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
        import wandb

        run = wandb.init(
            mode=settings.mode,
            dir=environment["WANDB_DIR"],
            project=settings.project,
            entity=settings.entity,
            name=name,
            job_type=job_type,
            group=group,
            tags=list(tags),
            config=dict(config or {}),
            reinit="create_new",
            # No console capture (Dagster owns the output) and no metadata: the command line it would
            # record can hold a storage URL with a password.
            settings=wandb.Settings(console="off", silent=True, x_disable_meta=True),
        )
    except Exception as error:  # noqa: BLE001 (no tracking is better than no training)
        logger.warning("W&B run could not start (%s): going on without tracking", error)
        return TrackedRun(None, settings, error=f"start: {error}")
    folder = Path(run.dir).parent
    record = RunRecord(
        folder=folder,
        run_id=run.id,
        name=name,
        job_type=job_type,
        group=group or "",
        tags=list(tags),
        mode=settings.mode,
        started=datetime.now(UTC),
        config=dict(config or {}),
    )
    link = run.url if settings.mode == "online" and run.url else str(folder)
    tracked = TrackedRun(run, settings, link=link, record=record)
    tracked._write_record()
    return tracked


def publish_model(
    settings: TrackingSettings,
    folder: str | Path,
    *,
    name: str,
    aliases: Sequence[str],
    card: str,
    metadata: Mapping[str, Any],
    run_name: str,
    tags: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> str:
    """Online: the model folder as W&B model artifact `name` (with its card) in a `promote` run; returns
    the run's URL, or why it failed. Offline or disabled: `UPLOAD.md` in the folder says how to upload it
    later; returns a line saying so. Like every W&B call here, a failure never fails the caller."""
    if settings.mode != "online":
        note = upload_instructions(settings, name, aliases, metadata)
        (Path(folder) / UPLOAD_FILE).write_text(note)
        return f"not uploaded (tracking {settings.mode}): {UPLOAD_FILE} in the folder says how"
    tracked = start_run(settings, name=run_name, job_type="promote", tags=tags, config=config)
    with tracked:
        tracked.log_model(folder, name, aliases, card, metadata)
    if tracked.error:
        return f"not uploaded: W&B {tracked.error}"
    return tracked.link
