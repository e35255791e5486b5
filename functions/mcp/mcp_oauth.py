"""Agents that sign in (MCP's authorization spec, 2025-06-18 and later; CONTRACT.md, POST /mcp): the protected
resource metadata of RFC 9728 that leads an agent host from our 401 to Glow's Keycloak, and the 401's
`WWW-Authenticate` challenge that names it.

A host calls the MCP endpoint without credentials, reads `resource_metadata` from the 401, fetches that document,
finds `authorization_servers: [JWT_ISSUER]`, discovers the authorization server there (RFC 8414 / OpenID
discovery), signs the user in and sends the access token as a Bearer token, which is verified like any token
(auth.py: JWKS, `iss`, `aud`). Hosts that do not read the header try the well-known paths themselves: path-aware
(`/.well-known/oauth-protected-resource/<the MCP path>`), at the root (`/.well-known/oauth-protected-resource`), or
after the MCP path (`<the MCP path>/.well-known/oauth-protected-resource`, as Cursor did); all three are routes of
this function. Without JWT_ISSUER there is no authorization server to name: the routes answer 404 and the 401 is
a bare `Bearer` challenge.
"""

from __future__ import annotations

import json
from typing import Any

from glow_activity import API_PREFIX
from glow_activity.responses import JSON
from glow_activity.settings import get_settings

WELL_KNOWN = "/.well-known/oauth-protected-resource"
MCP_PATH = f"{API_PREFIX}/mcp"
# The routes that answer the document (template.yaml): path-aware, root, and after the resource's path.
METADATA_PATHS = (f"{WELL_KNOWN}{MCP_PATH}", WELL_KNOWN, f"{MCP_PATH}{WELL_KNOWN}")
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
MAX_AGE_SECONDS = 3600


def _headers(event: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def _origin_and_prefix(event: dict[str, Any], route_path: str) -> tuple[str, str]:
    """The scheme and host the caller reached (API Gateway's domain, a custom domain, or loopback locally), and the
    path before the route (a named stage's `/dev`, a custom domain's base path), from the event."""
    headers = _headers(event)
    context = event.get("requestContext") or {}
    host = headers.get("host") or str(context.get("domainName") or "")
    loopback = host.split(":")[0] in LOOPBACK or host.startswith("[::1]")
    scheme = headers.get("x-forwarded-proto") or ("http" if loopback else "https")
    raw_path = str(event.get("rawPath") or "")
    prefix = raw_path[: -len(route_path)] if raw_path.endswith(route_path) else ""
    return f"{scheme}://{host}", prefix.rstrip("/")


def resource_url(event: dict[str, Any], route_path: str) -> str:
    """The MCP endpoint's own URL as the caller reached it (RFC 9728's `resource`)."""
    origin, prefix = _origin_and_prefix(event, route_path)
    return f"{origin}{prefix}{MCP_PATH}"


def metadata_url(event: dict[str, Any], route_path: str) -> str:
    """Where this resource's metadata document is served, reachable as the caller reached us (under the stage)."""
    origin, prefix = _origin_and_prefix(event, route_path)
    return f"{origin}{prefix}{WELL_KNOWN}{MCP_PATH}"


def metadata_route(event: dict[str, Any]) -> str | None:
    """The metadata route a GET event is for, or None."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    path = str(event.get("rawPath") or "")
    if method not in ("GET", "HEAD"):
        return None
    # the longest route first: the root one is also the end of the one after the MCP path
    return next((route for route in sorted(METADATA_PATHS, key=len, reverse=True) if path.endswith(route)), None)


def metadata_response(event: dict[str, Any], route_path: str) -> dict[str, Any]:
    """RFC 9728's document: unauthenticated, cacheable; 404 when no authorization server is configured."""
    settings = get_settings()
    if not settings.jwt_issuer:
        body = {"statusCode": 404, "message": "This deployment names no authorization server (JWT_ISSUER)."}
        return {"statusCode": 404, "headers": {"Content-Type": JSON}, "body": json.dumps(body)}
    document: dict[str, Any] = {
        "resource": resource_url(event, route_path),
        "authorization_servers": [settings.jwt_issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "Glow Activity",
    }
    if settings.mcp_scopes:
        document["scopes_supported"] = list(settings.mcp_scopes)
    return {
        "statusCode": 200,
        "headers": {
            "Content-Type": JSON,
            "Cache-Control": f"public, max-age={MAX_AGE_SECONDS}",
            "Access-Control-Allow-Origin": "*",  # public metadata: a browser-based host may read it from anywhere
        },
        "body": json.dumps(document, separators=(",", ":")),
    }


def challenge(event: dict[str, Any]) -> str:
    """The MCP endpoint's 401 challenge: where to sign in, and whether the token sent was refused."""
    if not get_settings().jwt_issuer:
        return "Bearer"
    parts = [f'resource_metadata="{metadata_url(event, MCP_PATH)}"']
    if get_settings().mcp_scopes:
        parts.append(f'scope="{" ".join(get_settings().mcp_scopes)}"')
    if _headers(event).get("authorization", "").strip():
        parts.append('error="invalid_token"')
    return "Bearer " + ", ".join(parts)
