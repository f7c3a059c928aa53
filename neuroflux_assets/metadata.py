"""Turning tables and PNG bytes into Dagster metadata that renders in the UI."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Iterable

import dagster as dg
import pandas as pd

from neuroflux_lib.tracking import TrackedRun


def image(png: bytes, alt: str = "plot") -> dg.MetadataValue:
    """A PNG embedded in markdown, so the asset page shows the picture itself."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, index: bool = True, max_rows: int = 50) -> str:
    """A markdown table (no tabulate dependency); long tables are cut with a note."""
    shown = frame.head(max_rows)
    if index:
        shown = shown.reset_index()
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = [f"\n_{len(frame) - max_rows} more rows not shown_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def table(frame: pd.DataFrame, index: bool = True, max_rows: int = 50) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, index, max_rows))


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
