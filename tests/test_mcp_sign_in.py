"""Agents that sign in (CONTRACT.md, POST /mcp): the MCP endpoint's protected-resource metadata (RFC 9728) and its
401 challenge lead an agent host to Glow's Keycloak; the access token it brings back is verified like any token.
End to end with the official TypeScript SDK's own discovery helpers and auth() flow, against a small local
authorization server (tests/authorization_server.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from authorization_server import MCP_AUDIENCE, AuthorizationServer
from conftest import local_gateway
from factories import World
from identity_provider import ISSUER, identity_provider
from test_mcp import MCP, request, rpc

from activity_dev.events import http_event
from glow_activity import API_PREFIX
from glow_activity.settings import get_settings

WELL_KNOWN = "/.well-known/oauth-protected-resource"
METADATA_PATHS = (f"{WELL_KNOWN}{MCP}", WELL_KNOWN, f"{MCP}{WELL_KNOWN}")
API_GATEWAY = {"Host": "abc.execute-api.example", "X-Forwarded-Proto": "https"}  # what API Gateway passes on


@pytest.fixture
def coordinator(world: World, refresh: Any) -> Any:
    dept = world.department("Signed-in Physics")
    coord = world.profile("Si Coord", roles=["instructional"], departments=[dept])
    world.session(world.profile("Si Member", roles=["member"], departments=[dept]), "2025-04-01T10:00:00")
    refresh()
    return coord


# ---------------------------------------------------------------- Python: the document and the challenge


@pytest.mark.parametrize("path", METADATA_PATHS)
def test_the_protected_resource_metadata_names_the_issuer(
    invoke: Any, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("MCP_SCOPES", "openid, mcp-resource")
    res = invoke("mcp", event=http_event(path, method="GET", headers=API_GATEWAY))
    assert res.status == 200 and res.headers["cache-control"].startswith("public, max-age=")
    assert res.body == {
        "resource": f"https://abc.execute-api.example{MCP}",
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "resource_name": "Glow Activity",
        "scopes_supported": ["openid", "mcp-resource"],
    }


def test_the_resource_is_the_url_the_caller_reached_under_a_named_stage(
    invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    event = http_event(f"{WELL_KNOWN}{MCP}", method="GET", headers=API_GATEWAY)
    event["rawPath"] = f"/dev{WELL_KNOWN}{MCP}"  # an HTTP API's named stage is in the path the caller used
    res = invoke("mcp", event=event)
    assert res.body["resource"] == f"https://abc.execute-api.example/dev{MCP}"
    assert "scopes_supported" not in res.body


def test_without_an_issuer_there_is_no_document_and_a_bare_challenge(
    invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWT_ISSUER", raising=False)
    assert invoke("mcp", event=http_event(WELL_KNOWN, method="GET")).status == 404
    res = rpc(invoke, request("tools/list"), {})
    assert res.status == 401 and res.headers["www-authenticate"] == "Bearer"


def test_the_mcp_401_points_to_the_document_and_says_when_a_token_was_refused(
    invoke: Any, monkeypatch: pytest.MonkeyPatch, coordinator: Any
) -> None:
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    metadata = f'resource_metadata="http://localhost{WELL_KNOWN}{MCP}"'
    res = rpc(invoke, request("tools/list"), {"Host": "localhost"})
    assert res.status == 401 and res.headers["www-authenticate"] == f"Bearer {metadata}"
    res = rpc(invoke, request("tools/list"), {"Host": "localhost", "Authorization": "Bearer not.a.token"})
    assert res.headers["www-authenticate"] == f'Bearer {metadata}, error="invalid_token"'
    # the other endpoints' 401s are unchanged
    assert invoke("get", {}, {}).headers["www-authenticate"] == "Bearer"


def test_an_access_token_for_the_mcp_resource_is_accepted_and_an_unlisted_audience_refused(
    invoke: Any, monkeypatch: pytest.MonkeyPatch, coordinator: Any
) -> None:
    with identity_provider(monkeypatch, JWT_AUDIENCE=f"glow-web,{MCP_AUDIENCE}") as idp:

        def access_token(audience: str) -> dict[str, str]:
            return idp.bearer(aud=audience, azp="claude-desktop", typ="Bearer", profile_id=coordinator.id)

        listed = rpc(invoke, request("tools/list"), access_token(MCP_AUDIENCE))
        assert listed.status == 200
        by_key = rpc(invoke, request("tools/list"), coordinator.headers)
        assert listed.body["result"] == by_key.body["result"]  # exactly as with an API key
        call = request("tools/call", {"name": "activity_search", "arguments": {"page_size": 5}})
        with_token = rpc(invoke, call, access_token(MCP_AUDIENCE)).body["result"]
        with_key = rpc(invoke, call, coordinator.headers).body["result"]
        assert with_token["isError"] is False and with_token["structuredContent"] == with_key["structuredContent"]
        refused = rpc(invoke, request("tools/list"), access_token("some-other-client"))
        assert refused.status == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


# ---------------------------------------------------------------- the TypeScript SDK, end to end


@pytest.fixture
def signed_in_gateway(
    database_url: str, coordinator: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, AuthorizationServer]]:
    """The local gateway (what `activity serve` runs) configured for a local authorization server."""
    server = AuthorizationServer(coordinator.id)
    monkeypatch.setenv("JWT_JWKS_URL", server.jwks_url)
    monkeypatch.setenv("JWT_ISSUER", server.issuer)
    monkeypatch.setenv("JWT_AUDIENCE", f"glow-web,{MCP_AUDIENCE}")
    get_settings.cache_clear()
    try:
        with local_gateway() as url:
            yield url, server
    finally:
        server.close()


def test_the_typescript_sdk_signs_in_and_calls_a_tool(
    signed_in_gateway: tuple[str, AuthorizationServer], coordinator: Any
) -> None:
    from test_mcp_clients import CLIENTS

    base, server = signed_in_gateway
    node = shutil.which("node")
    assert node, "Node is needed (make install installs it)"
    plan = {
        "url": f"{base}{MCP}",
        "clientId": "vscode-mcp",
        "redirectUrl": "http://127.0.0.1:33418/callback",
        "call": {"name": "activity_search", "arguments": {"page_size": 5}},
    }
    done = subprocess.run(
        [node, str(CLIENTS / "sdk-auth.mjs")],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    document = {
        "resource": f"{base}{MCP}",
        "authorization_servers": [server.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "Glow Activity",
    }
    assert report["unauthenticated"] == "UnauthorizedError"
    assert report["status"] == 401 and report["resourceMetadataUrl"] == f"{base}{WELL_KNOWN}{MCP}"
    assert report["byHeader"] == document and report["pathAware"] == document
    assert report["firstConnect"] == "UnauthorizedError" and report["authorizationUrl"].startswith(server.issuer)
    assert report["tokenType"] == "Bearer"
    assert set(report["tools"]) == {
        f"activity_{op}" for op in ("get", "search", "problem", "resolve", "refresh", "export", "docs")
    }
    assert report["call"]["isError"] is False and report["call"]["structuredContent"]["total_count"] >= 1
    # the host asked for a token for this resource, and got one for the MCP audience, naming the user
    (issued,) = server.issued
    assert issued["resource"] == f"{base}{MCP}" and issued["aud"] == MCP_AUDIENCE
    assert issued["profile_id"] == coordinator.id and API_PREFIX in issued["resource"]
