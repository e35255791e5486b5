"""The seven operations as MCP tools, generated from the one catalog (`glow_activity.catalog`): a tool's input
schema is its operation's request model, its output schema the response model, and its call is the operation's
own resolver (`glow_activity.endpoints.<operation>`), so permissions, numbers, idempotency, audit and errors are
the HTTP endpoint's."""

from __future__ import annotations

import importlib
import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from glow_activity.api import handle
from glow_activity.catalog import OPERATION_CATALOG, Operation, allowed
from glow_activity.models import ExportPending, ExportResponse
from glow_activity.routes import path_of

PREFIX = "activity_"

# Headers of the agent's request that an operation sees: its credentials and what shapes the answer of a write.
FORWARDED_HEADERS = ("x-api-key", "authorization", "idempotency-key", "user-agent", "host")


def tool_name(op: Operation) -> str:
    return PREFIX + op.name


def _schema(model: Any) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema(mode="serialization")
    schema.setdefault("type", "object")  # MCP: a tool's schemas describe objects
    return schema


@cache
def tool_definition(name: str) -> dict[str, Any]:
    op = next(op for op in OPERATION_CATALOG if op.name == name)
    output: Any = ExportResponse | ExportPending if op.name == "export" else op.response
    description = op.description
    if op.name == "export":
        description += " A large export answers {upload_id, status: running}: call again with that upload_id."
    return {
        "name": tool_name(op),
        "title": op.title,
        "description": f"{description} (POST {op.path}; needs scope {' or '.join(op.scopes)}.)",
        "inputSchema": TypeAdapter(op.request).json_schema(mode="validation"),
        "outputSchema": _schema(output),
        "annotations": {
            "title": op.title,
            "readOnlyHint": op.read_only,
            "destructiveHint": False,
            "idempotentHint": op.idempotent,
            "openWorldHint": False,
        },
    }


def tools_for(scope: str) -> list[dict[str, Any]]:
    """The tools a caller of this scope may call."""
    return [tool_definition(op.name) for op in OPERATION_CATALOG if allowed(op, scope)]


def operation_of(name: str) -> Operation | None:
    return next((op for op in OPERATION_CATALOG if tool_name(op) == name), None)


def call_tool(op: Operation, arguments: dict[str, Any], event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the operation exactly as its HTTP endpoint does: its own resolver, through `handle`, with an HTTP API
    event for its route that carries the agent's credentials, `X-MCP` (so its audit row says channel mcp), and the
    arguments as the JSON body. Returns the MCP tool result."""
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() in FORWARDED_HEADERS}
    path = path_of(op.name)
    context_http = {**(event.get("requestContext") or {}).get("http", {}), "method": "POST", "path": path}
    inner = {
        **event,
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {**headers, "x-mcp": "1", "content-type": "application/json"},
        "requestContext": {**(event.get("requestContext") or {}), "http": context_http, "routeKey": f"POST {path}"},
        "body": json.dumps(arguments),
        "isBase64Encoded": False,
    }
    app = importlib.import_module(op.route_module).app
    answer = handle(app, op.name, inner, context)  # plain JSON: no Accept-Encoding is forwarded
    body = RawJson(answer.get("body") or "null")
    if int(answer["statusCode"]) >= 400:
        # A refusal carries the endpoint's error body as text only: clients validate any structuredContent against
        # the tool's outputSchema, errors included (the TypeScript SDK throws on a mismatch, so an agent would see a
        # protocol error instead of our message).
        return {"content": [{"type": "text", "text": str(body)}], "isError": True}
    return {"content": [{"type": "text", "text": str(body)}], "structuredContent": body, "isError": False}


class RawJson(str):
    """The endpoint's JSON answer as it wrote it: the text item carries it as a string, and the structured content
    is spliced into the JSON-RPC answer as the value it is (`mcp_server.dumps`), never parsed and written again
    (which cost ~9 ms on get's 1,000-row page)."""
