"""template.yaml, the handlers and events/ agree; each event runs through its handler."""

from __future__ import annotations

import json
from typing import Any

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
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Properties"]["ContentUri"] == "layers/common/"
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
        json.loads(event.get("body") or "{}")
        # run it through the handler with real credentials
        event["headers"]["x-api-key"] = admin.key
        result = lambdas.load_handler(spec)(event, LambdaContext(spec.logical_id))
        assert result["statusCode"] < 500, (spec.operation, result)
