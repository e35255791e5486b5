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

SCENARIOS = [
    "get admin all-time",
    "get admin all-time [own SQL]",
    "get admin last 90 days",
    "get coordinator median dept last 90 days",
    "get coordinator largest dept last 90 days",
    "get admin role=member last 90 days",
    "get admin all-time [base-table SQL floor]",
    "search first page",
    "search page 100 by offset",
    "search deep page by cursor (90% in)",
    "search coordinator median dept first page",
    "search coordinator median dept page 100 by offset",
    "export everything",
    "export everything [COPY floor]",
    "export everything [local S3 completing the upload]",
    "refresh all views",
    "cold start [bare Powertools handler]",
    *[f"cold start {op}" for op in ("get", "search", "problem", "resolve", "refresh", "export", "docs")],
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
    assert 0 < median["department_profiles"] <= largest["department_profiles"]
    export = report["results"]["export everything"]
    assert export["rows"] > 5_000 and export["peak_rss_mb"] > 0
    assert all(
        report["results"][f"cold start {op}"]["boto3_imported"] is False
        for op in ("get", "search", "problem", "resolve", "refresh", "docs")
    )
