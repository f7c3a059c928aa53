"""Experiment tracking: the W&B run wrapper, the mode `auto` picks, and our own record of each run.

Modules import one way: `settings`, `index` (neither imports the others) <- `offline` <- `wandb_run`.
"""

from neuroflux_lib.tracking.index import RunRecord, read_run
from neuroflux_lib.tracking.offline import offline_run_folders, runs_table, sync_command
from neuroflux_lib.tracking.settings import TrackingSettings, choose_mode, find_credentials
from neuroflux_lib.tracking.wandb_run import TrackedRun, start_run

__all__ = [
    "RunRecord",
    "TrackedRun",
    "TrackingSettings",
    "choose_mode",
    "find_credentials",
    "offline_run_folders",
    "read_run",
    "runs_table",
    "start_run",
    "sync_command",
]
