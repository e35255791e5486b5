"""`activity bench-table`: the scaling table of docs/PERFORMANCE.md, every scenario of several `activity bench`
results side by side (one column per scale), so that how each cost grows with the data can be read at a glance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The figure a row shows, the first of these that its result has, and how it is written.
FIGURES = (
    ("p95_ms", "p95 {:g} ms"),
    ("median_ms", "{:g} ms"),
    ("median_s", "{:g} s"),
    ("seconds", "{:g} s"),
)
EXTRAS = (
    ("rows_per_s", "{:,.0f} rows/s"),
    ("vs_bare", "{:g}x bare"),
    ("vs_bare_module", "{:g}x bare module"),
    ("export_vs_floor", "{:g}x floor"),
    ("export_vs_floor_without", "{:g}x floor without it"),
    ("vs_http_p50", "{:g}x HTTP (p50)"),
    ("requests_per_s", "{:g} req/s"),
    ("errors", "{:d} errors"),
)


def cell(result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)
    shown = [fmt.format(result[key]) for key, fmt in FIGURES if key in result][:1]
    shown += [fmt.format(result[key]) for key, fmt in EXTRAS if key in result]
    return ", ".join(shown) or "-"


def scaling_table(reports: list[dict[str, Any]]) -> str:
    """A Markdown table: a row per scenario (in the first report's order, then any others'), a column per report."""
    names: list[str] = []
    for report in reports:
        names += [name for name in report["results"] if name not in names and "[own SQL]" not in name]
    events = ("sessions", "logins", "grants", "problems")
    header = [
        f"{r['scale']} ({r['rows']['profiles']:,} profiles, {sum(r['rows'][t] for t in events):,} events)"
        for r in reports
    ]
    lines = ["| scenario | " + " | ".join(header) + " |", "|---|" + "---|" * len(reports)]
    for name in names:
        cells = [cell(r["results"][name]) if name in r["results"] else "-" for r in reports]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(paths: list[Path]) -> str:
    return scaling_table([json.loads(path.read_text(encoding="utf-8")) for path in paths])
