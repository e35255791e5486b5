"""template.yaml, the handlers and events/ agree; each event runs through its handler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

from activity_dev import REPO_ROOT, lambdas
from activity_dev.events import LambdaContext
from glow_activity import API_PREFIX, OPERATIONS

EVENTS = REPO_ROOT / "events"


def test_one_function_per_operation_with_its_exact_route() -> None:
    specs = [s for s in lambdas.functions() if s.path]
    assert sorted(s.operation for s in specs) == sorted([*OPERATIONS, "mcp"])
    for spec in specs:
        assert spec.method == "POST"
        assert spec.path == f"{API_PREFIX}/{spec.operation}"
        # the MCP endpoint also takes GET and DELETE, to refuse them with 405 as the transport requires
        expected = {"POST", "GET", "DELETE"} if spec.operation == "mcp" else {"POST"}
        assert {method for method, _ in spec.http_routes} == expected


def test_every_handler_imports_and_its_module_name_is_unique() -> None:
    modules = [s.handler.rsplit(".", 1)[0] for s in lambdas.functions()]
    assert len(set(modules)) == len(modules)
    for spec in lambdas.functions():
        assert callable(lambdas.load_handler(spec))


def test_the_layer_is_built_for_python_313_and_functions_run_arm64() -> None:
    template = lambdas.load_template()
    layer = template["Resources"]["CommonLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["ContentUri"] == "layers/common/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]


def test_every_route_has_an_event_in_events_dir(database_url: str, world: Any) -> None:
    admin = world.profile(roles=["admin"])
    for spec in lambdas.functions():
        if not spec.path:
            continue
        path = EVENTS / f"{spec.operation}.json"
        assert path.exists(), path
        event = json.loads(path.read_text())
        assert event["version"] == "2.0"
        assert event["routeKey"] == f"POST {spec.path}"
        assert event["rawPath"] == spec.path
        assert event["requestContext"]["http"]["method"] == "POST"
        body = json.loads(event.get("body") or "{}")
        if spec.operation == "resolve":  # the problem the event names, so that it resolves as a user's would
            world.conn.run(
                "INSERT INTO problems (id, type, message, profile_id, reported_by, created_at, updated_at)"
                " VALUES (CAST(:id AS uuid), 'bug', 'events/resolve.json', CAST(:p AS uuid), CAST(:p AS uuid),"
                " now(), now()) ON CONFLICT (id) DO NOTHING",
                id=body["problem_id"],
                p=admin.id,
            )
        # run it through the handler with real credentials: each event is a call that succeeds
        event["headers"]["x-api-key"] = admin.key
        result = lambdas.load_handler(spec)(event, LambdaContext(spec.logical_id))
        assert result["statusCode"] == 200, (spec.operation, result)
        answer = Result(result["statusCode"], {k.lower(): v for k, v in result["headers"].items()}, result).body
        if spec.operation == "mcp":
            assert answer["result"]["isError"] is False, answer  # the tool ran
        elif spec.operation == "resolve":
            assert answer["problem_id"] == body["problem_id"] and answer["resolved"] is True, answer


@pytest.mark.slow
def test_the_layer_build_ships_arm64_wheels_and_unchecked_bytecode(tmp_path: Path) -> None:
    """What `sam build` runs for the layer (layers/common/Makefile), into a scratch ARTIFACTS_DIR."""
    subprocess.run(
        ["make", "--no-print-directory", "build-CommonLayer", f"ARTIFACTS_DIR={tmp_path}", f"PYTHON={sys.executable}"],
        cwd=REPO_ROOT / "layers" / "common",
        check=True,
        capture_output=True,
    )
    site = tmp_path / "python"
    ours = sorted(p.stem for p in (site / "glow_activity").rglob("*.py"))
    compiled = sorted(p.name.split(".")[0] for p in (site / "glow_activity").rglob("__pycache__/*.cpython-313.pyc"))
    assert ours and compiled == ours  # every module, and no stale bytecode from a working copy
    assert sorted(p.name for p in (site / "glow_activity" / "migrations").glob("*.sql")) == sorted(
        p.name for p in (REPO_ROOT / "layers" / "common" / "glow_activity" / "migrations").glob("*.sql")
    )
    for module in ("glow_activity/api.py", "pydantic/main.py", "pg8000/core.py", "aws_lambda_powertools/__init__.py"):
        source = site / module
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, (module, flags)  # hash-based, source not checked (PEP 552)
    assert list(site.glob("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so"))
