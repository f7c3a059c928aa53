"""The project's own record of each W&B run: `neuroflux-run.json` in the run folder, beside wandb's files.

wandb's offline log is wandb's private format (it has no reader for it); what `neuroflux runs` lists
comes from this record instead, written by `start_run` when the run starts and rewritten when it
finishes, each time whole and atomically (a temporary file, then `os.replace`), so a reader never sees
half a file. One file per run folder: parallel tuning workers never write the same file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FILE = "neuroflux-run.json"
FORMAT = 1
# wandb names run folders `[offline-]run-<local time>-<run id>`.
_FOLDER_NAME = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-(\w+)")


@dataclass
class RunRecord:
    """What our code gave wandb for one run: config, the per-step values it logged (media by type name),
    summary, artifacts, and whether the run finished."""

    folder: Path
    run_id: str
    name: str
    job_type: str
    group: str = ""
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"
    started: datetime | None = None
    finished: datetime | None = None
    state: str = "running"  # then "finished" or "failed"
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    def write(self) -> Path:
        """(Re)write `neuroflux-run.json` atomically; returns its path."""
        data: dict[str, Any] = {"format": FORMAT}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "folder":
                data[item.name] = value.isoformat() if isinstance(value, datetime) else value
        text = json.dumps(data, indent=1, default=_plain)
        path = self.folder / INDEX_FILE
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{INDEX_FILE}.")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def _plain(value: Any) -> Any:
    """JSON for what wandb accepts and json does not (numpy values, paths and the like)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)


def read_run(folder: str | Path) -> RunRecord:
    """The record of a run folder; FileNotFoundError when it has none (a run not started by neuroflux),
    ValueError when it is not one this code wrote."""
    folder = Path(folder)
    data = json.loads((folder / INDEX_FILE).read_text())
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise ValueError(f"{folder / INDEX_FILE} is not a format-{FORMAT} neuroflux run record")
    for key in ("started", "finished"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    try:
        return RunRecord(folder=folder, **data)
    except TypeError as error:
        raise ValueError(f"{folder / INDEX_FILE}: {error}") from None


def folder_name_info(folder: str | Path) -> tuple[str, datetime] | None:
    """(run id, local start time) as wandb's folder name says, or None for another name: all that is
    known of a run folder without our record."""
    match = _FOLDER_NAME.fullmatch(Path(folder).name)
    if not match:
        return None
    return match.group(2), datetime.strptime(match.group(1), "%Y%m%d_%H%M%S")
