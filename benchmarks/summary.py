"""Print the one table `make bench` promises: every recorded figure, original's way vs ours, same run.

Usage: python benchmarks/summary.py RESULTS.jsonl   (written by the benchmarks through results.record)
The Markdown it prints (date and machine included) is what goes into benchmarks/README.md.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import date
from pathlib import Path


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| figure | original's way | ours | unit | ours / original | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(
            f"| {row['figure']} | {fmt(row['original'])} | {fmt(row['ours'])} | {row['unit']} | {ratio} | "
            f"{row['target'] or '-'} | {met} | {row['note']} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    path = Path(argv[0])
    rows = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
    if not rows:
        print(f"no figures recorded in {path}")
        return 1
    machine = rows[0]["machine"]
    python = platform.python_version()
    print(f"\n{date.today().isoformat()}, {machine}, Python {python}, one `make bench` run:\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
