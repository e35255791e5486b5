"""The Model Context Protocol's Streamable HTTP transport, stateless, with JSON answers (no SSE, no session).

Each POST carries one JSON-RPC message. A request gets its answer as `application/json`; a notification or a
response gets 202 and no body. Every message is authenticated as any endpoint's request is (`api.serve`); a
`tools/call` is audited once, by the operation it runs, and everything else as operation `mcp`. The protocol
checks that need no caller come first: 405 for any method but POST, 406 when `Accept` lacks application/json,
403 for a foreign `Origin` or `Host` (DNS rebinding), 400 for an unsupported `MCP-Protocol-Version`.
"""

from __future__ import annotations

import json
import os
import uuid
from functools import cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from mcp_oauth import challenge
from mcp_tools import RawJson, call_tool, operation_of, tools_for
from pydantic import BaseModel, ConfigDict, Field

from glow_activity.api import serve
from glow_activity.errors import BadRequest, Forbidden, MethodNotAllowed, NotAcceptable
from glow_activity.invocation import Invocation
from glow_activity.request_body import bounded_body
from glow_activity.responses import JSON

# Newest first; a client asking for one of these gets it, any other gets the newest.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
# What a request without MCP-Protocol-Version is taken to speak (the specification's rule).
ASSUMED_VERSION = "2025-03-26"
SERVER_INFO = {"name": "glow-activity", "title": "Glow Activity", "version": "5.0.0"}
INSTRUCTIONS = (
    "Glow Activity: how teaching assistants (TAs) engage with the Glow AI trainer - their training sessions, "
    "logins, access grants and emulations, and problems flagged on that activity. Each tool takes the JSON body of "
    "POST /api/v5/artifacts/activity/<operation> and answers what that endpoint answers; you see only the profiles "
    "your roles allow (admins all, coordinators their departments' members, everyone else themselves). "
    "Start with activity_docs (what every field means). activity_get gives counts and a per-profile summary for a "
    "window; activity_search lists sessions, newest first. Filters, shared by get, search and export: date_from and "
    "date_to are ISO dates or date-times in UTC (a date-only date_to includes that whole day; omit both for all "
    "time), department_ids and roles narrow the profiles (any of the listed ones). Paging: search's page is "
    "0-based with page_size up to 500; to walk far, pass the answer's next_cursor back as cursor with the same "
    "filters. get's profile_summary pages with summary_limit and summary_offset. activity_problem flags a problem "
    "(type feature, bug, question or other), activity_resolve resolves or reopens one by problem_id, "
    "activity_refresh brings the counts up to date, activity_export writes everything you can see as a ZIP of "
    "CSVs and answers a download_url. A refusal comes back as a tool error whose text is the endpoint's JSON error "
    "{statusCode, message, detail?}: read its message, fix the arguments, and call again."
)
LOOPBACK = ("localhost", "127.0.0.1", "::1")
METHODS = ("initialize", "notifications/initialized", "ping", "tools/list", "tools/call")


class JsonRpcMessage(BaseModel):
    """One JSON-RPC 2.0 message from an MCP client: a request (with `id`) or a notification (without)."""

    model_config = ConfigDict(title="McpMessage")
    jsonrpc: Literal["2.0"]
    id: Annotated[int, Field(ge=-(2**53), le=2**53)] | Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="Present on a request (answered with the same id); absent on a notification."
    )
    method: str = Field(
        max_length=100,
        description="initialize, notifications/initialized, ping, tools/list or tools/call (others: -32601).",
        json_schema_extra={"examples": list(METHODS)},
    )
    params: dict[str, Any] | None = Field(
        default=None, description="tools/call: {name: activity_<operation>, arguments: that operation's body}."
    )


class JsonRpcError(BaseModel):
    code: int
    message: str


class JsonRpcAnswer(BaseModel):
    """The answer to a request: `result` (initialize, ping, tools/list, tools/call) or `error`. A tool's refusal
    is a result with isError true and the endpoint's error body as its one text item, without structuredContent."""

    model_config = ConfigDict(title="McpAnswer")
    jsonrpc: Literal["2.0"]
    id: int | str | None
    result: dict[str, Any] | None = None
    error: JsonRpcError | None = None


PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


@cache
def _allowed_origins() -> frozenset[str]:
    return frozenset(o.strip() for o in os.environ.get("ALLOWED_ORIGINS", "").split(",") if o.strip())


def _host_of(value: str) -> str:
    return (urlsplit(f"//{value}").hostname or "").lower()


def protocol_checks(headers: dict[str, str], event: dict[str, Any]) -> None:
    """What the transport requires before anyone is authenticated."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")).upper()
    if method != "POST":
        raise MethodNotAllowed("The MCP endpoint is stateless and answers POST only (no SSE stream, no session).")
    if not any(
        part.split(";")[0].strip() in ("application/json", "application/*", "*/*")
        for part in headers.get("accept", "").split(",")
    ):
        raise NotAcceptable("The Accept header must include application/json (this server answers JSON, not SSE).")
    # DNS rebinding: the Host must be this API's own domain (API Gateway's, or a custom one) or loopback, and a
    # browser's Origin must be that host or an allowed origin.
    own = _host_of(str((event.get("requestContext") or {}).get("domainName", "")))
    host = _host_of(headers.get("host", ""))
    if host and host not in (own, *LOOPBACK):
        raise Forbidden("The Host header does not name this API.")
    origin = headers.get("origin")
    if origin and origin not in _allowed_origins():
        origin_host = (urlsplit(origin).hostname or "").lower()
        if origin_host not in (own, host, *LOOPBACK) or not origin_host:
            raise Forbidden("Requests from this Origin are not allowed.")
    version = headers.get("mcp-protocol-version")
    if version is not None and version.strip() not in PROTOCOL_VERSIONS:
        raise BadRequest(f"Unsupported MCP-Protocol-Version {version!r}; supported: {', '.join(PROTOCOL_VERSIONS)}.")


def _answer(status: int, message: dict[str, Any] | None = None) -> dict[str, Any]:
    if message is None:
        return {"statusCode": status, "isBase64Encoded": False, "headers": {}, "body": ""}
    return {"statusCode": status, "isBase64Encoded": False, "headers": {"Content-Type": JSON}, "body": dumps(message)}


def dumps(message: dict[str, Any]) -> str:
    """The message as JSON, with a tool result's structured content (`RawJson`, the endpoint's own JSON text) in
    place as it is."""
    result = message.get("result")
    raw = result.get("structuredContent") if isinstance(result, dict) else None
    if not isinstance(result, dict) or not isinstance(raw, RawJson):
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    marker = f"raw-json-{uuid.uuid4().hex}"  # a string no JSON text here can contain by chance
    spliced = {**message, "result": {**result, "structuredContent": marker}}
    text = json.dumps(spliced, separators=(",", ":"), ensure_ascii=False)
    return text.replace(f'"{marker}"', raw, 1)


def _result(message_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return _answer(200, {"jsonrpc": "2.0", "id": message_id, "result": result})


def _error(message_id: Any, code: int, text: str, status: int = 200) -> dict[str, Any]:
    return _answer(status, {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": text}})


def _message(event: dict[str, Any]) -> Any:
    return json.loads(bounded_body(event).decode("utf-8"))


def respond(inv: Invocation, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The answer to one authenticated JSON-RPC message."""
    try:
        message = _message(event)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _error(None, PARSE_ERROR, "The body is not valid JSON.", 400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, INVALID_REQUEST, "Send one JSON-RPC 2.0 message (an object) per request.", 400)
    if "method" not in message:  # a response to something we never ask: accepted, nothing to say
        return _answer(202)
    method, params, message_id = message["method"], message.get("params") or {}, message.get("id")
    if "id" not in message:  # a notification (notifications/initialized, cancelled, ...)
        return _answer(202)
    if isinstance(message_id, float) and message_id.is_integer():
        message_id = int(message_id)  # 710.0 is the number 710 (JSON Schema's integer too)
    if isinstance(message_id, bool) or not isinstance(message_id, (int, str, type(None))):
        return _error(None, INVALID_REQUEST, "id must be a string or a number.", 400)
    if not isinstance(method, str) or not isinstance(params, dict):
        return _error(message_id, INVALID_REQUEST, "method must be a string and params an object.", 400)
    caller = inv.authenticated
    if method == "initialize":
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        return _result(
            message_id,
            {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS,
            },
        )
    if method == "ping":
        return _result(message_id, {})
    if method == "tools/list":
        return _result(message_id, {"tools": tools_for(caller.scope)})
    if method == "tools/call":
        name, arguments = params.get("name"), params.get("arguments") or {}
        op = operation_of(name) if isinstance(name, str) else None
        if op is None:
            return _error(message_id, INVALID_PARAMS, f"Unknown tool: {name!r}.")
        if not isinstance(arguments, dict):
            return _error(message_id, INVALID_PARAMS, "arguments must be an object.")
        inv.audited = True  # the operation's own handling writes this call's audit row
        return _result(message_id, call_tool(op, arguments, event, context))
    return _error(message_id, METHOD_NOT_FOUND, f"Method not found: {method}.")


def serve_mcp(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def answer(inv: Invocation, event: dict[str, Any]) -> dict[str, Any]:
        return respond(inv, event, context)

    result = serve("mcp", event, answer, before_auth=protocol_checks, channel="mcp")
    if result.get("statusCode") == 401:  # lead an agent host to where its user signs in
        result.setdefault("headers", {})["WWW-Authenticate"] = challenge(event)
    return result
