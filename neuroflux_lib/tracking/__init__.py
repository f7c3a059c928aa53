"""Experiment tracking: the W&B run wrapper, and a reader for the offline runs it leaves."""

from neuroflux_lib.tracking.offline import (
    OfflineRun,
    offline_run_folders,
    read_offline_run,
    runs_table,
    sync_command,
)
from neuroflux_lib.tracking.wandb_run import TrackedRun, TrackingSettings, start_run

__all__ = [
    "OfflineRun",
    "TrackedRun",
    "TrackingSettings",
    "offline_run_folders",
    "read_offline_run",
    "runs_table",
    "start_run",
    "sync_command",
]
