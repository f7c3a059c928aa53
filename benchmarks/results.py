"""One table for `make bench`: every benchmark records its figures here, `summary.py` prints them.

A figure is the original project's way and ours measured in the same run on the same machine, the ratio
ours / original and the issue's target for that ratio (">= 1.5" or "<= 0.6"); a figure with no original
(the demo's wall time) has a target for the value itself ("<= 360" seconds). Without
$NEUROFLUX_BENCH_RESULTS set, `record` only prints the row, so each script still runs on its own.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS_ENV = "NEUROFLUX_BENCH_RESULTS"


def target_met(ratio: float, target: str | None) -> bool | None:
    if not target:
        return None
    op, limit = target.split()
    return ratio >= float(limit) if op == ">=" else ratio <= float(limit)


def record(
    figure: str,
    original: float | None,
    ours: float,
    unit: str,
    target: str | None = None,
    note: str = "",
) -> dict:
    """Print one figure and append it to $NEUROFLUX_BENCH_RESULTS (JSON lines) when that is set."""
    ratio = ours / original if original else None
    row = {
        "figure": figure,
        "original": original,
        "ours": ours,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "met": target_met(ours if ratio is None else ratio, target),
        "note": note,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    shown = f"{ratio:.2f}x" if ratio is not None else "-"
    print(f"[bench] {figure}: original {original} / ours {ours} {unit} -> {shown} (target {target or '-'})")
    path = os.environ.get(RESULTS_ENV)
    if path:
        with Path(path).open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    return row
