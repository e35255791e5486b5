"""POST /mcp: the seven operations as MCP tools. Raw JSON-RPC events into the handler from template.yaml for the
transport's rules, and the official MCP SDK's client over Streamable HTTP against the local gateway (what
`activity serve` runs) for the tools themselves, each answer held against the HTTP endpoint's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import local_gateway
from factories import World

from activity_dev.events import http_event
from glow_activity import API_PREFIX

MCP = f"{API_PREFIX}/mcp"
ACCEPT = {"Accept": "application/json, text/event-stream"}
ALL_TOOLS = [f"activity_{op}" for op in ("get", "search", "problem", "resolve", "refresh", "export", "docs")]


@pytest.fixture
def people(world: World, refresh: Any) -> dict[str, Any]:
    dept = world.department("MCP Physics")
    people = {
        "admin": world.profile("Mo Admin", roles=["admin"]),
        "coord": world.profile("Mo Coord", roles=["instructional"], departments=[dept]),
        "member": world.profile("Mo Member", roles=["member"], departments=[dept]),
    }
    world.session(people["member"], "2025-04-01T10:00:00", message_count=3)
    refresh()
    return {**people, "dept": dept}


def rpc(invoke: Any, message: Any, headers: dict[str, str], *, method: str = "POST") -> Any:
    event = http_event(MCP, message, {**ACCEPT, **headers}, method=method)
    return invoke("mcp", event=event)


def request(method: str, params: dict[str, Any] | None = None, message_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "method": method, **({"params": params} if params else {})}


def audit_rows(conn: Any, request_id: str) -> list[list[Any]]:
    return conn.run(
        "SELECT operation, profile_id::text, channel, status_code FROM activity.audit_log"
        " WHERE request_id = :r ORDER BY id",
        r=request_id,
    )


# ---------------------------------------------------------------- the transport
@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_initialize_negotiates_the_clients_version(invoke: Any, people: dict[str, Any], version: str) -> None:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    res = rpc(invoke, request("initialize", params), people["admin"].headers)
    assert res.status == 200 and res.headers["content-type"] == "application/json"
    result = res.body["result"]
    assert (res.body["jsonrpc"], res.body["id"]) == ("2.0", 1)
    assert result["protocolVersion"] == version
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "glow-activity" and result["instructions"]
    # later requests carry the negotiated version
    headers = {**people["admin"].headers, "MCP-Protocol-Version": version}
    assert rpc(invoke, request("ping", message_id=2), headers).body == {"jsonrpc": "2.0", "id": 2, "result": {}}
    # a version the server does not speak: it answers with its newest
    params["protocolVersion"] = "2024-01-01"
    assert rpc(invoke, request("initialize", params), people["admin"].headers).body["result"]["protocolVersion"] == (
        "2025-11-25"
    )


def test_notifications_and_responses_are_accepted_without_a_body(invoke: Any, people: dict[str, Any]) -> None:
    for message in (
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "id": 7, "result": {}},
    ):
        res = rpc(invoke, message, people["admin"].headers)
        assert (res.status, res.raw["body"]) == (202, "")


@pytest.mark.parametrize(
    "who, tools",
    [
        ("admin", ALL_TOOLS),
        ("coord", ALL_TOOLS),
        ("member", ["activity_problem", "activity_refresh", "activity_docs"]),
    ],
)
def test_tools_list_follows_the_callers_scope(invoke: Any, people: dict[str, Any], who: str, tools: list[str]) -> None:
    listed = rpc(invoke, request("tools/list"), people[who].headers).body["result"]["tools"]
    assert [tool["name"] for tool in listed] == tools
    by_name = {tool["name"]: tool for tool in listed}
    for tool in listed:
        assert tool["description"] and tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"
        assert tool["annotations"]["destructiveHint"] is False
    if who == "admin":
        from glow_activity.models import GetActivityRequest

        assert set(by_name["activity_get"]["inputSchema"]["properties"]) == set(GetActivityRequest.model_fields)
        assert "profile_summary" in by_name["activity_get"]["outputSchema"]["properties"]
        hints = {name: tool["annotations"] for name, tool in by_name.items()}
        assert [n for n in ALL_TOOLS if hints[n]["readOnlyHint"]] == [
            "activity_get",
            "activity_search",
            "activity_export",
            "activity_docs",
        ]
        assert hints["activity_resolve"]["idempotentHint"] and hints["activity_refresh"]["idempotentHint"]
        assert not hints["activity_problem"]["idempotentHint"]


def test_a_tool_call_is_the_endpoints_answer_and_audited_as_its_operation(
    invoke: Any, people: dict[str, Any], conn: Any
) -> None:
    body = {"department_ids": [people["dept"]], "date_from": "2025-04-01", "date_to": "2025-04-01"}
    http = invoke("get", body, people["coord"].headers).body
    res = rpc(invoke, request("tools/call", {"name": "activity_get", "arguments": body}), people["coord"].headers)
    result = res.body["result"]
    assert result["isError"] is False
    assert result["structuredContent"] == http and http["sessions_count"] == 1
    assert json.loads(result["content"][0]["text"]) == http
    assert audit_rows(conn, res.headers["x-request-id"]) == [["get", people["coord"].id, "mcp", 200]]
    listed = rpc(invoke, request("tools/list"), people["coord"].headers)
    assert audit_rows(conn, listed.headers["x-request-id"]) == [["mcp", people["coord"].id, "mcp", 200]]


@pytest.mark.parametrize(
    "who, name, arguments, status",
    [
        ("member", "activity_get", {}, 403),
        ("admin", "activity_resolve", {"problem_id": "00000000-0000-4000-8000-000000000000"}, 404),
        ("admin", "activity_search", {"page_size": 0}, 422),
        ("admin", "activity_get", {"unknown_field": 1}, 422),
    ],
)
def test_refusals_are_tool_errors(
    invoke: Any, people: dict[str, Any], conn: Any, who: str, name: str, arguments: dict[str, Any], status: int
) -> None:
    res = rpc(invoke, request("tools/call", {"name": name, "arguments": arguments}), people[who].headers)
    assert res.status == 200
    result = res.body["result"]
    # a refusal: the endpoint's error body as the one text item, and no structuredContent (clients validate any
    # against the tool's outputSchema, errors included)
    assert result["isError"] is True and "structuredContent" not in result
    (item,) = result["content"]
    error = json.loads(item["text"])
    assert item["type"] == "text" and error["statusCode"] == status and error["message"]
    if status == 422:
        assert error["detail"]
    operation = name.removeprefix("activity_")
    assert audit_rows(conn, res.headers["x-request-id"]) == [[operation, people[who].id, "mcp", status]]


def test_unknown_tools_and_methods_are_json_rpc_errors(invoke: Any, people: dict[str, Any]) -> None:
    unknown = rpc(invoke, request("tools/call", {"name": "activity_drop", "arguments": {}}), people["admin"].headers)
    assert unknown.status == 200 and unknown.body["error"]["code"] == -32602
    method = rpc(invoke, request("resources/list"), people["admin"].headers)
    assert method.body["error"]["code"] == -32601
    batch = rpc(invoke, [request("ping")], people["admin"].headers)
    assert batch.status == 400 and batch.body["error"]["code"] == -32600
    broken = invoke("mcp", event=http_event(MCP, raw_body="{nope", headers={**ACCEPT, **people["admin"].headers}))
    assert broken.status == 400 and broken.body["error"]["code"] == -32700


@pytest.mark.parametrize("method", ["initialize", "tools/call"])
def test_401_without_credentials(invoke: Any, conn: Any, method: str) -> None:
    params = {"name": "activity_docs", "arguments": {}} if method == "tools/call" else {"protocolVersion": "2025-06-18"}
    res = rpc(invoke, request(method, params), {})
    assert res.status == 401 and res.headers["www-authenticate"] == "Bearer"
    assert res.body == {"statusCode": 401, "message": "Authentication is required."}
    assert audit_rows(conn, res.headers["x-request-id"]) == []


def test_protocol_checks(invoke: Any, people: dict[str, Any]) -> None:
    headers = people["admin"].headers
    for method in ("GET", "DELETE"):
        res = rpc(invoke, None, headers, method=method)
        assert res.status == 405 and res.headers["allow"] == "POST" and res.body["statusCode"] == 405
    assert rpc(invoke, request("ping"), {**headers, "Accept": "text/event-stream"}).status == 406
    assert rpc(invoke, request("ping"), {**headers, "Accept": "application/json"}).status == 200
    wrong = rpc(invoke, request("ping"), {**headers, "MCP-Protocol-Version": "2099-01-01"})
    assert wrong.status == 400 and "MCP-Protocol-Version" in wrong.body["message"]
    # DNS rebinding: a foreign Origin or Host is refused; API Gateway's own host name (requestContext.domainName)
    # and loopback are this API
    assert rpc(invoke, request("ping"), {**headers, "Origin": "https://evil.example"}).status == 403
    assert rpc(invoke, request("ping"), {**headers, "Host": "evil.example"}).status == 403
    assert rpc(invoke, request("ping"), {**headers, "Origin": "http://localhost:3000"}).status == 200
    event = http_event(
        MCP, request("ping"), {**ACCEPT, **headers, "Host": "abc123.execute-api.us-east-1.amazonaws.com"}
    )
    event["requestContext"]["domainName"] = "abc123.execute-api.us-east-1.amazonaws.com"
    assert invoke("mcp", event=event).status == 200


# ---------------------------------------------------------------- a real MCP client
@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[str]:
    with local_gateway() as url:
        yield url


def http_post(base: str, operation: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    import requests

    res = requests.post(f"{base}{API_PREFIX}/{operation}", json=body, headers=headers, timeout=60)
    return res.json()


async def session_calls(base: str, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> Any:
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http_client,
        streamable_http_client(f"{base}{MCP}", http_client=http_client, terminate_on_close=False) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
        tools = await session.list_tools()
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
        return initialized, tools, results


def test_the_mcp_sdk_client_gets_the_http_endpoints_answers(served: str, people: dict[str, Any]) -> None:
    headers = people["admin"].headers
    window = {"department_ids": [people["dept"]], "date_from": "2025-01-01", "date_to": "2025-12-31"}
    reads = [("get", window), ("search", {**window, "page_size": 5}), ("docs", {"entity_id": people["member"].id})]
    # GIVEN the HTTP answers of the read operations
    expected = {op: http_post(served, op, body, headers) for op, body in reads}
    # WHEN an agent initializes, lists the tools and calls all seven
    calls = [(f"activity_{op}", body) for op, body in reads]
    calls += [
        ("activity_problem", {"type": "question", "message": "asked by an agent"}),
        ("activity_refresh", {}),
        ("activity_export", window),
    ]
    initialized, tools, results = asyncio.run(session_calls(served, headers, calls))
    assert initialized.protocolVersion in ("2025-06-18", "2025-11-25")
    assert [tool.name for tool in tools.tools] == ALL_TOOLS
    by_name = dict(zip([name for name, _ in calls], results, strict=True))
    assert not any(result.isError for result in results), [r.content for r in results if r.isError]
    # THEN each read is the HTTP endpoint's answer
    for op, _ in reads:
        assert by_name[f"activity_{op}"].structuredContent == expected[op], op
    # and the writes did what their endpoints do
    problem = by_name["activity_problem"].structuredContent
    assert problem["success"] is True
    resolved = asyncio.run(
        session_calls(served, headers, [("activity_resolve", {"problem_id": problem["problem_id"]})])
    )
    resolve = resolved[2][0].structuredContent
    assert resolve == http_post(served, "resolve", {"problem_id": problem["problem_id"]}, headers)  # idempotent
    assert resolve["resolved"] is True
    assert by_name["activity_refresh"].structuredContent["success"] is True
    export = by_name["activity_export"].structuredContent
    http_export = http_post(served, "export", window, headers)
    assert export["row_count"] == http_export["row_count"] and export["download_url"]


def test_an_id_that_is_neither_string_nor_number_is_an_invalid_request(invoke: Any, people: dict[str, Any]) -> None:
    for bad_id in (False, [1], {"a": 1}, 1.5):
        res = rpc(invoke, {"jsonrpc": "2.0", "id": bad_id, "method": "ping"}, people["admin"].headers)
        assert res.status == 400 and res.body["id"] is None and res.body["error"]["code"] == -32600, bad_id
    # 7.0 is the number 7
    assert rpc(invoke, {"jsonrpc": "2.0", "id": 7.0, "method": "ping"}, people["admin"].headers).body["id"] == 7


def test_the_endpoints_json_is_spliced_into_the_answer_as_it_is() -> None:
    from activity_dev import lambdas

    spec = next(s for s in lambdas.functions() if s.operation == "mcp")
    lambdas.load_handler(spec)  # the function's code directory on the path, as Lambda has it
    from mcp_server import dumps
    from mcp_tools import RawJson

    raw = RawJson('{"name":"Zoë \\"Z\\" raw-json-0","n":[1,2.5,null],"deep":{"a":[]}}')
    result = {"content": [{"type": "text", "text": str(raw)}], "structuredContent": raw, "isError": False}
    text = dumps({"jsonrpc": "2.0", "id": 7, "result": result})
    message = json.loads(text)
    assert message["result"]["structuredContent"] == json.loads(raw)
    assert message["result"]["content"][0]["text"] == raw and "Zoë" in text
    assert message["id"] == 7 and message["result"]["isError"] is False
