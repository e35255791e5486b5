"""One OpenAPI 3.1 document for the seven functions, merged from their own Powertools resolvers.

Each function's `app` (APIGatewayHttpResolver with enable_validation=True) describes its route from the
same pydantic models that validate requests; OpenAPIMerge joins them and adds the security schemes.
Swagger UI is served by `activity serve` with its assets from the Powertools package: no CDN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer, Server

from glow_activity.routes import SECURITY

from . import lambdas

TITLE = "Glow Activity API"
VERSION = "5.0.0"
DESCRIPTION = (
    "Engagement of teaching assistants with the Glow AI trainer, for program coordinators and AI agents "
    "(send `X-MCP: 1`). Every operation is a POST with a JSON body. Errors have the body "
    "`{statusCode, message, detail?}`; `detail` (422 only) lists `{loc, msg, type}`."
)


SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": APIKey.model_validate(
        {"in": APIKeyIn.header, "name": "X-Api-Key", "description": "Raw API key; the service stores only its SHA-256."}
    ),
    "Bearer": HTTPBearer(
        bearerFormat="JWT",
        description="A JWT (HS256 with the deployment's secret, or RS256 from the identity provider's JWKS) naming "
        "the caller's profile by the first of its `JWT_IDENTITY_CLAIMS` it carries (default `profile_id`, `email` "
        "with `email_verified: true`, `sub`); `exp` required, `iss` and `aud` checked when configured.",
    ),
}


def merged_schema() -> dict[str, Any]:
    merge = OpenAPIMerge(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        servers=[Server(url="/")],
        security_schemes=SECURITY_SCHEMES,
        security=SECURITY,
        on_conflict="error",
    )
    mcp_path = None
    for spec in lambdas.functions():
        if not spec.path:  # the migration custom resource has no route
            continue
        module = lambdas.load_module(spec)
        if not hasattr(module, "app"):  # the MCP function speaks JSON-RPC, not a resolver's routes
            mcp_path = spec.path
            continue
        merge.add_schema(module.app.get_openapi_schema(title=TITLE, version=VERSION, security_schemes=SECURITY_SCHEMES))
    document = add_links(inline_request_bodies(json.loads(merge.get_openapi_json_schema())))
    if mcp_path:
        add_mcp(document, mcp_path)
    return document


def add_mcp(document: dict[str, Any], path: str) -> None:
    """The MCP endpoint: one JSON-RPC message per POST (mcp_server.py); GET and DELETE are refused."""
    import mcp_server

    from glow_activity.models import ErrorResponse

    def schema(model: Any) -> dict[str, Any]:
        produced = model.model_json_schema(ref_template="#/components/schemas/{model}")
        document["components"]["schemas"].update(produced.pop("$defs", {}))
        return produced

    error = {"$ref": "#/components/schemas/ErrorResponse"}
    document["components"]["schemas"].setdefault("ErrorResponse", ErrorResponse.model_json_schema())

    def refused(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": error}}}

    answer = {"$ref": "#/components/schemas/McpAnswer"}
    document["components"]["schemas"]["McpAnswer"] = schema(mcp_server.JsonRpcAnswer)
    document["paths"][path] = {
        "post": {
            "operationId": "activity.mcp",
            "summary": "MCP (Model Context Protocol)",
            "description": "The seven operations as MCP tools for AI agents: Streamable HTTP, stateless (no "
            "Mcp-Session-Id), JSON answers. Protocol versions " + ", ".join(mcp_server.PROTOCOL_VERSIONS) + ".",
            "tags": ["MCP"],
            "security": SECURITY,
            "parameters": [
                {
                    "name": "Accept",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "enum": ["application/json, text/event-stream", "application/json"]},
                },
                {
                    "name": "MCP-Protocol-Version",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "enum": list(mcp_server.PROTOCOL_VERSIONS)},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema(mcp_server.JsonRpcMessage)}},
            },
            "responses": {
                "200": {"description": "The answer to a request.", "content": {"application/json": {"schema": answer}}},
                "202": {"description": "A notification or a response: accepted, no body."},
                "400": {
                    "description": "Not one JSON-RPC message, or an unsupported MCP-Protocol-Version.",
                    "content": {"application/json": {"schema": {"anyOf": [answer, error]}}},
                },
                "401": refused("Missing or invalid credentials."),
                "403": refused("A foreign Origin or Host."),
                "406": refused("Accept lacks application/json."),
                "413": refused("The body is larger than 1 MiB."),
                "429": refused("Over the caller's limit (CALLER_REQUESTS_PER_MINUTE); retry after Retry-After."),
                "500": refused("Internal error; the body carries only the request id."),
                "503": refused("The database is unreachable; retry after Retry-After seconds."),
            },
        },
        **{
            method: {
                "operationId": f"activity.mcp.{method}",
                "summary": f"{method.upper()} is not served",
                "description": "The server is stateless: no SSE stream to open (GET), no session to end (DELETE).",
                "tags": ["MCP"],
                "responses": {"405": refused("This path takes POST.")},
            }
            for method in ("get", "delete")
        },
    }
    add_resource_metadata(document, refused)


def add_resource_metadata(document: dict[str, Any], refused: Any) -> None:
    """The MCP endpoint's protected-resource metadata (RFC 9728, mcp_oauth.py): public GETs."""
    import mcp_oauth

    document["components"]["schemas"]["ProtectedResourceMetadata"] = {
        "type": "object",
        "title": "ProtectedResourceMetadata",
        "required": ["resource", "authorization_servers", "bearer_methods_supported"],
        "properties": {
            "resource": {"type": "string", "format": "uri", "description": "The MCP endpoint's URL."},
            "authorization_servers": {
                "type": "array",
                "items": {"type": "string", "format": "uri"},
                "description": "[JWT_ISSUER]: where agent hosts sign their users in (Glow's Keycloak).",
            },
            "bearer_methods_supported": {"type": "array", "items": {"const": "header"}},
            "resource_name": {"type": "string"},
            "scopes_supported": {"type": "array", "items": {"type": "string"}},
        },
    }
    for n, path in enumerate(mcp_oauth.METADATA_PATHS):
        document["paths"][path] = {
            "get": {
                "operationId": f"activity.mcp.resource_metadata{'' if n == 0 else f'.{n}'}",
                "summary": "The MCP endpoint's protected-resource metadata (RFC 9728)",
                "description": "Public and cacheable: how an agent host finds the authorization server to sign its "
                "user in at. The MCP endpoint's 401 names the first of these paths in `resource_metadata`.",
                "tags": ["MCP"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metadata document.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ProtectedResourceMetadata"}}
                        },
                    },
                    "404": refused("No authorization server is configured (JWT_ISSUER)."),
                },
            }
        }


_SEARCH_FILTERS = ("date_from", "date_to", "department_ids", "roles", "active", "sort_order", "page_size")

# What one operation's answer feeds into the next (OpenAPI links): generated clients, schemathesis' stateful
# phase and AI agents reading the document can follow them.
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("activity.problem", "200"): {
        "ResolveTheProblem": {
            "operationId": "activity.resolve",
            "description": "Resolve (or, with resolved false, reopen) the problem just reported.",
            "requestBody": {"problem_id": "$response.body#/problem_id", "resolved": True},
        }
    },
    ("activity.search", "200"): {
        "NextPage": {
            "operationId": "activity.search",
            "description": "The next page: next_cursor as cursor, with the same filters, active, sort_order and "
            "page_size (a cursor sent with other ones is a 422). No next_cursor: this was the last page.",
            "requestBody": {
                "cursor": "$response.body#/next_cursor",
                **{name: f"$request.body#/{name}" for name in _SEARCH_FILTERS},
            },
        }
    },
    ("activity.export", "202"): {
        "PollTheExport": {
            "operationId": "activity.export",
            "description": "Poll the running export with its upload_id until it answers 200 with download_url.",
            "requestBody": {"upload_id": "$response.body#/upload_id"},
        }
    },
}


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    by_id = {op["operationId"]: op for item in document["paths"].values() for op in item.values()}
    for (operation_id, status), links in LINKS.items():
        by_id[operation_id]["responses"][status]["links"] = links
    return document


def inline_request_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """Each operation's request body schema stands inline instead of as a `$ref` to a component.

    The Glow web client generates its types with openapi-typescript, which makes a property with a `default`
    *required* in a component (right for responses: the field is always there) but optional under a
    `requestBody`: inline, the fields a client may leave out are optional in its types, as they are here. A body
    whose fields are all optional may be left out altogether (it means `{}`)."""
    schemas = document["components"]["schemas"]
    for item in document["paths"].values():
        for operation in item.values():
            body = operation.get("requestBody")
            if not body:
                continue
            content = body["content"]["application/json"]
            ref = content["schema"].get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                content["schema"] = schemas.pop(ref.rsplit("/", 1)[1])
            body["required"] = bool(content["schema"].get("required"))
    text = json.dumps(document)
    dangling = sorted({ref for ref in re.findall(r'"#/components/schemas/([^"]+)"', text) if ref not in schemas})
    if dangling:
        raise ValueError(f"request schemas also used elsewhere, cannot be inlined: {dangling}")
    return document


def openapi_json() -> str:
    return json.dumps(merged_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def install_swagger(gateway: Any) -> None:
    """Serve /swagger (Swagger UI), its assets and /openapi.json from the gateway."""
    import aws_lambda_powertools.event_handler.openapi.swagger_ui as swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = Path(swagger_ui.__file__).parent
    spec = openapi_json()
    html = generate_swagger_html(
        spec.replace("</", "<\\/"),
        "/swagger/swagger-ui-bundle.min.js",
        "/swagger/swagger-ui.min.css",
        "/swagger",
        None,
        persist_authorization=True,
    )
    gateway.extra_get.update(
        {
            "/swagger": ("text/html; charset=utf-8", html.encode()),
            "/swagger/swagger-ui-bundle.min.js": (
                "application/javascript",
                (assets / "swagger-ui-bundle.min.js").read_bytes(),
            ),
            "/swagger/swagger-ui.min.css": ("text/css", (assets / "swagger-ui.min.css").read_bytes()),
            "/openapi.json": ("application/json", spec.encode()),
        }
    )
