"""Reading offline W&B runs back from wandb's transaction log (LevelDB log format of protobuf records).

wandb has no Python reader for `run-*.wandb` files; `neuroflux runs` lists runs with this one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from neuroflux_lib.tracking.wandb_run import TrackingSettings

_BLOCK = 32768
_HEADER = 7  # file header ":W&B" + magic + version; record header crc32 + length + type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    records, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if pos + _HEADER + length > len(data):  # a run still being written, or cut off by a crash
            break
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == _FULL:
            records.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            records.append(pending + chunk)
    return records


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _json(text: str) -> Any:

    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class OfflineRun:
    folder: Path
    run_id: str
    name: str
    job_type: str
    group: str
    tags: list[str]
    started: datetime | None
    config: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def read_offline_run(folder: str | Path) -> OfflineRun:
    """Config, per-step history and summary of a run folder, read from its `run-*.wandb` log."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    folder = Path(folder)
    logs = sorted(folder.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"no run-*.wandb file in {folder}")
    info: dict[str, Any] = {
        "run_id": "",
        "name": "",
        "job_type": "",
        "group": "",
        "tags": [],
        "started": None,
    }
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for raw in _records(logs[0]):
        record = pb.Record()
        try:
            record.ParseFromString(raw)
        except DecodeError:  # a damaged record: keep what the rest of the log says
            continue
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            started = run.start_time.seconds
            fields = {
                "run_id": run.run_id,
                "name": run.display_name,
                "job_type": run.job_type,
                "group": run.run_group,
                "tags": list(run.tags),
                "started": datetime.fromtimestamp(started, UTC) if started else None,
            }
            # A later run record (an update) may carry only some fields: never let it blank the others.
            info.update({key: value for key, value in fields.items() if value})
            config.update({_item_key(i): _json(i.value_json) for i in run.config.update})
        elif kind == "config":
            config.update({_item_key(i): _json(i.value_json) for i in record.config.update})
        elif kind == "history":
            history.append({_item_key(i): _json(i.value_json) for i in record.history.item})
        elif kind == "summary":
            summary.update({i.key: _json(i.value_json) for i in record.summary.update if i.key})
    config.pop("_wandb", None)
    return OfflineRun(folder=folder, config=config, history=history, summary=summary, **info)


def offline_run_folders(root: str | Path) -> list[Path]:
    return sorted(Path(root).glob("wandb/offline-run-*"))


RUN_TABLE_METRICS = ("test_macro_f1", "test_accuracy", "best_val_macro_f1", "best_epoch", "best_value")


def runs_table(root: str | Path) -> pd.DataFrame:
    """One row per offline run under `root`: when, what, key metrics, where. Unreadable runs (e.g. still
    being written) are listed with the reason instead of being skipped silently."""
    rows = []
    for folder in offline_run_folders(root):
        try:
            run = read_offline_run(folder)
        except Exception as error:  # noqa: BLE001 (one bad folder must not hide the others)
            rows.append({"folder": str(folder), "name": f"(unreadable: {error})"})
            continue
        row = {
            "started": run.started.strftime("%Y-%m-%d %H:%M") if run.started else "",
            "job_type": run.job_type,
            "model": run.config.get("model_name", ""),
            "name": run.name,
            "group": run.group,
        }
        row.update({key: run.summary.get(key) for key in RUN_TABLE_METRICS})
        row["synced"] = (folder / f"run-{run.run_id}.wandb.synced").exists()
        row["folder"] = str(folder)
        rows.append(row)
    return pd.DataFrame(rows)


def sync_command(root: str | Path) -> list[str]:
    """The `wandb sync` call that uploads every offline run not yet synced (needs WANDB_API_KEY)."""
    folders = [str(f) for f in offline_run_folders(root) if not list(f.glob("*.wandb.synced"))]
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
`WANDB_API_KEY` set) it is logged as the model artifact `{name}` of project `{settings.project}`, with
`model_card.md` as its description. To do that now, get a key at https://wandb.ai/authorize and run,
from this folder:

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
