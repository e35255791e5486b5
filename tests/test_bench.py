"""The benchmark keeps working: `activity bench --scale small` on its own fresh embedded database produces
every scenario. No timing is asserted (speed is reported in docs/PERFORMANCE.md, measured at large scale)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activity_dev import REPO_ROOT

pytestmark = pytest.mark.slow

SHAPES = ("all-time", "last 30 days", "last 90 days", "ten months, date-time edges", "role=member last 90 days")
CALLERS = ("admin", "coordinator median dept", "coordinator largest dept")
FUNCTIONS = ("get", "search", "problem", "resolve", "refresh", "export", "docs", "mcp")
SCENARIOS = [
    *[f"get {who} {shape}" for who in CALLERS for shape in SHAPES],
    *[f"get {who} {shape} [own SQL]" for who in CALLERS for shape in SHAPES],
    "get admin Glow client page load (ten months, history, problems)",
    "get admin all-time [base-table SQL floor]",
    *[f"search {shape} first page" for shape in SHAPES],
    *[f"search {shape} deep page by cursor (90% in)" for shape in SHAPES],
    *[f"search {shape} page 100 by offset" for shape in SHAPES],
    "search coordinator median dept first page",
    "search coordinator median dept page 100 by offset",
    "export everything",
    "export everything [COPY floor]",
    "export everything [local S3 completing the upload]",
    "refresh light, nothing changed",
    "refresh light, after a five-minute delta",
    "refresh full pass",
    "mcp: get admin last 90 days over HTTP",
    "mcp: tools/call activity_get admin last 90 days",
    "import [bare: resolver, pydantic, pg8000]",
    "import [bare resolver module]",
    "import [bare: resolver, pydantic, pg8000] [no bytecode]",
    "import [bare resolver module] [no bytecode]",
    "cold start [bare resolver handler]",
    *[f"import {op}" for op in FUNCTIONS],
    *[f"import {op} [no bytecode]" for op in FUNCTIONS],
    *[f"cold start {op}" for op in FUNCTIONS],
]


def test_bench_runs_at_small_scale(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_ENDPOINT_URL", "EXPORT_BUCKET")}
    output = tmp_path / "latest.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "activity_dev.cli",
            "bench",
            "--scale",
            "small",
            "--iterations",
            "3",
            "--data-dir",
            str(tmp_path / "pg"),
            "--output",
            str(output),
        ],
        env=env,
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(output.read_text())
    assert report["rows"]["sessions"] == 5_000 and report["scale"] == "small"
    assert set(SCENARIOS) <= set(report["results"])
    median, largest = (report["results"][f"get coordinator {size} dept last 90 days"] for size in ("median", "largest"))
    assert report["results"]["mcp: tools/call activity_get admin last 90 days"]["vs_http_p50"] > 0
    assert 0 < median["department_profiles"] <= largest["department_profiles"]
    export = report["results"]["export everything"]
    assert export["rows"] > 5_000 and export["peak_rss_mb"] > 0
    assert all(
        report["results"][f"{kind} {op}"]["boto3_imported"] is False
        for kind in ("import", "cold start")
        for op in ("get", "search", "problem", "resolve", "refresh", "docs", "mcp")
    )
    assert all(report["results"][f"import {op}"]["vs_bare_module"] > 0 for op in FUNCTIONS)
    # the scaling table of docs/PERFORMANCE.md, from this report (twice, as two scales would be)
    table = subprocess.run(
        [sys.executable, "-m", "activity_dev.cli", "bench-table", str(output), str(output)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert table[0].startswith("| scenario | small (") and len(table) == 2 + len(
        [name for name in report["results"] if "[own SQL]" not in name]
    )
    assert "| get admin all-time | p95 " in "\n".join(table)
