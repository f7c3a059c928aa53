"""Turning tables and PNG bytes into Dagster metadata that renders in the UI."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Iterable

import dagster as dg
import numpy as np
import pandas as pd

from neuroflux_lib.tracking import TrackedRun


def image(png: bytes, alt: str = "plot") -> dg.MetadataValue:
    """A PNG embedded in markdown, so the asset page shows the picture itself."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


# numpy dtype kinds -> the column types the UI shows; anything else (text, paths, mixed) is "string".
_COLUMN_TYPES = {"b": "bool", "i": "int", "u": "int", "f": "float", "M": "datetime"}


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and their types: the asset's Columns tab (`dagster/column_schema`) and the
    header of a table in its metadata."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(str(name), _COLUMN_TYPES.get(dtype.kind, "string"))
            for name, dtype in frame.dtypes.items()
        ]
    )


def _cell(value: object) -> str | int | float | bool | None:
    """A JSON-safe cell: missing values empty, floats to 4 significant digits (as the UI is read)."""
    if value is None or value is pd.NA or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(f"{value:.4g}")
    return str(value)


def table(frame: pd.DataFrame, index: bool = True, max_rows: int = 50) -> dg.TableMetadataValue:
    """A table the UI renders with typed columns; the index (when kept) becomes the first column. Only
    the first `max_rows` rows are kept, since the event log stores every metadata value."""
    shown = frame.head(max_rows)
    if index:
        shown = shown.reset_index()
    shown = shown.rename(columns=str)
    records = [
        dg.TableRecord({name: _cell(value) for name, value in row.items()})
        for row in shown.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records, schema=column_schema(shown))


def bullet_list(items: Iterable[str], empty: str = "none") -> dg.MetadataValue:
    lines = [f"- {item}" for item in items]
    return dg.MetadataValue.md("\n".join(lines) if lines else f"_{empty}_")


def digest(frame: pd.DataFrame, columns: list[str]) -> str:
    """A short, order-independent fingerprint of some columns (used as a data version)."""
    rows = frame[columns].astype(str).agg("\t".join, axis=1).sort_values()
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def run_link(tracked: TrackedRun) -> dg.MetadataValue:
    """Where the W&B run is: a URL online, the run folder offline, or why there is none."""
    if tracked.link.startswith("http"):
        return dg.MetadataValue.url(tracked.link)
    if tracked.link:
        return dg.MetadataValue.path(tracked.link)
    return dg.MetadataValue.text(
        f"not tracked ({tracked.error})" if tracked.error else f"not tracked (mode {tracked.settings.mode})"
    )


def table_asset(group: str, *kinds: str, code_version: str = "1") -> Callable:
    """`@dg.asset` for an unpartitioned table kept as Parquet (the data stages)."""
    return dg.asset(
        group_name=group,
        code_version=code_version,
        io_manager_key="parquet_io_manager",
        kinds={"pandas", "parquet", *kinds},
    )
