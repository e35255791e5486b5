"""The Glow web client's toolchain against our schema: openapi-typescript (pinned in clients/glow-web) generates
types from openapi.json and `tsc --noEmit` compiles the page's reads (clients/glow-web/activity-page.ts) with the
client's own strict flags. `make install` runs `npm ci` there."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from activity_dev import REPO_ROOT

CLIENT = REPO_ROOT / "clients" / "glow-web"
BIN = CLIENT / "node_modules" / ".bin"


def compile_against(spec: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Generate types from `spec` into `workdir` beside a copy of the page and its tsconfig, then type-check."""
    for name in ("activity-page.ts", "tsconfig.json"):
        shutil.copy(CLIENT / name, workdir / name)
    generated = subprocess.run(
        [str(BIN / "openapi-typescript"), str(spec), "--output", str(workdir / "generated" / "activity.d.ts")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    return subprocess.run(
        [str(BIN / "tsc"), "--noEmit", "-p", str(workdir)], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def toolchain() -> None:
    if not (BIN / "tsc").exists() or not (BIN / "openapi-typescript").exists():
        pytest.fail("clients/glow-web has no node_modules: `make install` runs `npm ci` there (Node 20 and npm needed)")


def test_the_pages_reads_compile_against_openapi_json(toolchain: None, tmp_path: Path) -> None:
    result = compile_against(REPO_ROOT / "openapi.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "schema, field",
    [("SessionHistory", "total_pages"), ("ProblemListItem", "profile_name"), ("PageText", "title")],
)
def test_a_dropped_field_breaks_the_clients_build(toolchain: None, tmp_path: Path, schema: str, field: str) -> None:
    document = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
    target = document["components"]["schemas"][schema]
    del target["properties"][field]
    target["required"] = [name for name in target.get("required", []) if name != field]
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document), encoding="utf-8")
    result = compile_against(spec, tmp_path)
    assert result.returncode != 0 and field in result.stdout, result.stdout
