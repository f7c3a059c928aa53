"""Listing and syncing the offline W&B runs under a tracking root, from the project's own run records.

Each run folder holds `neuroflux-run.json` (`tracking.index`), written by our code; wandb's own log in
the folder is left to wandb (`wandb sync` uploads it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from neuroflux_lib.tracking.index import INDEX_FILE, folder_name_info, read_run
from neuroflux_lib.tracking.settings import TrackingSettings


def offline_run_folders(root: str | Path) -> list[Path]:
    return sorted(Path(root).glob("wandb/offline-run-*"))


RUN_TABLE_METRICS = ("test_macro_f1", "test_accuracy", "best_val_macro_f1", "best_epoch", "best_value")
RUN_TABLE_COLUMNS = ("started", "job_type", "model", "name", "group", *RUN_TABLE_METRICS, "synced", "folder")
_TIME = "%Y-%m-%d %H:%M"


def _synced(folder: Path) -> bool:
    """`wandb sync` leaves a `<log>.synced` marker beside each log it uploaded."""
    return any(folder.glob("*.wandb.synced"))


def _row(folder: Path) -> dict[str, Any]:
    try:
        run = read_run(folder)
    except FileNotFoundError:  # not started by our code: only the folder's name says something
        info = folder_name_info(folder)
        return {
            "started": info[1].strftime(_TIME) if info else "",
            "name": f"(no {INDEX_FILE}: not a neuroflux run)",
            "synced": _synced(folder),
            "folder": str(folder),
        }
    except Exception as error:  # noqa: BLE001 (one bad folder must not hide the others)
        return {"folder": str(folder), "name": f"(unreadable {INDEX_FILE}: {error})"}
    row = {
        "started": run.started.strftime(_TIME) if run.started else "",
        "job_type": run.job_type,
        "model": run.config.get("model_name", ""),
        "name": run.name,
        "group": run.group,
    }
    row.update({key: run.summary.get(key) for key in RUN_TABLE_METRICS})
    row["synced"] = _synced(folder)
    row["folder"] = str(folder)
    return row


def runs_table(root: str | Path) -> pd.DataFrame:
    """One row per offline run under `root` (columns `RUN_TABLE_COLUMNS`, blank where unknown): when (UTC),
    what, key metrics, synced or not, where. A folder with an unreadable record is listed with the reason,
    one without a record by what its name says."""
    rows = [_row(folder) for folder in offline_run_folders(root)]
    return pd.DataFrame(rows, columns=list(RUN_TABLE_COLUMNS))


def sync_command(root: str | Path) -> list[str]:
    """The `wandb sync` call that uploads every offline run not yet synced (needs W&B credentials)."""
    folders = [str(f) for f in offline_run_folders(root) if not _synced(f)]
    return ["wandb", "sync", *folders]


UPLOAD_FILE = "UPLOAD.md"


def upload_instructions(
    settings: TrackingSettings, name: str, aliases: Sequence[str], metadata: Mapping[str, Any]
) -> str:
    """`UPLOAD.md` for a model folder promoted while W&B was offline: the `wandb artifact put` call that
    logs it (run from the folder) as the model artifact an online run would have logged."""
    alias_flags = " ".join(f"--alias {alias}" for alias in aliases)
    details = "\n".join(f"- {key}: {value}" for key, value in metadata.items())
    return f"""# Uploading this model to Weights & Biases

Tracking was `{settings.mode}` when this model was promoted, so it is not in W&B yet. Online (with
`WANDB_API_KEY` set, or after `wandb login`) it is logged as the model artifact `{name}` of project
`{settings.project}`, with `model_card.md` as its description. To do that now, get a key at
https://wandb.ai/authorize and run, from this folder:

```bash
export WANDB_API_KEY=your-key   # and WANDB_ENTITY=team to log to a team
wandb artifact put --type model --name {settings.project}/{name} {alias_flags} \\
    --description "$(cat model_card.md)" .
```

(`wandb` is in the project's `.venv/bin/`.) `neuroflux runs --sync` uploads the training and evaluation
runs; this folder is uploaded by the command above.

What the online artifact's metadata holds:

{details}
"""
