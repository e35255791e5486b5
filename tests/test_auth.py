"""Authentication: X-Api-Key and Bearer JWT, every failure the same 401."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from factories import World, make_jwt

UNAUTHORIZED = {"statusCode": 401, "message": "Authentication is required."}
INVALID = {"statusCode": 401, "message": "The credentials are not valid or have expired."}


def assert_401(res: Any, *, missing: bool = False) -> None:
    """Missing credentials and failed ones are told apart; which part failed never is."""
    assert res.status == 401
    assert res.body == (UNAUTHORIZED if missing else INVALID)
    assert res.headers["www-authenticate"] == "Bearer"
    assert res.headers["x-request-id"]


def unsigned_token(sub: str) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': sub, 'exp': exp})}."


@pytest.fixture
def admin(world: World) -> Any:
    return world.profile(roles=["admin"])


def test_valid_key_and_valid_bearer(invoke: Any, admin: Any) -> None:
    assert invoke("get", {}, admin.headers).status == 200
    assert invoke("get", {}, admin.bearer()).status == 200
    assert invoke("get", {}, {**admin.headers, **admin.bearer()}).status == 200


def test_bearer_identity_wins_when_both_are_valid(invoke: Any, world: World, admin: Any) -> None:
    ta = world.profile(roles=["member"])
    # key of a TA + token of an admin -> the admin
    assert invoke("get", {}, {**ta.headers, **admin.bearer()}).status == 200
    assert invoke("get", {}, {**admin.headers, **ta.bearer()}).status == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.jwt"},
        {"X-Api-Key": ""},
        {"X-Api-Key": "unknown-key"},
    ],
    ids=["none", "basic", "empty-bearer", "garbage-token", "empty-key", "unknown-key"],
)
def test_missing_or_malformed_credentials(invoke: Any, headers: dict[str, str]) -> None:
    assert_401(invoke("get", {}, headers), missing=not headers)


def test_bad_tokens(invoke: Any, admin: Any) -> None:
    cases = {
        "expired": make_jwt(admin.id, exp_in=-120),
        "wrong-signature": make_jwt(admin.id, secret="another-secret-another-secret-another"),
        "alg-none": unsigned_token(admin.id),
        "sub-not-uuid": make_jwt("admin"),
        "unknown-profile": make_jwt("00000000-0000-4000-8000-000000000000"),
        "no-exp": jwt.encode({"sub": admin.id}, "test-secret-0123456789abcdef0123456789abcdef", algorithm="HS256"),
    }
    for name, token in cases.items():
        res = invoke("get", {}, {"Authorization": f"Bearer {token}"})
        assert res.status == 401, name
        assert res.body == INVALID, name


def test_bad_keys(invoke: Any, world: World, admin: Any) -> None:
    revoked, _ = world.api_key(admin.id, revoked=True)
    expired, _ = world.api_key(admin.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    future, _ = world.api_key(admin.id, expires_at=datetime.now(UTC) + timedelta(days=1))
    assert_401(invoke("get", {}, {"X-Api-Key": revoked}))
    assert_401(invoke("get", {}, {"X-Api-Key": expired}))
    assert invoke("get", {}, {"X-Api-Key": future}).status == 200


def test_deleted_profile_is_401_for_key_and_token(invoke: Any, world: World, conn: Any) -> None:
    p = world.profile(roles=["admin"])
    token_headers = p.bearer()
    conn.run("UPDATE profiles SET deleted_at = now() WHERE id = CAST(:id AS uuid)", id=p.id)
    assert_401(invoke("get", {}, p.headers))
    assert_401(invoke("get", {}, token_headers))


def test_both_headers_must_be_valid(invoke: Any, admin: Any) -> None:
    assert_401(invoke("get", {}, {"X-Api-Key": "wrong", **admin.bearer()}))
    assert_401(invoke("get", {}, {**admin.headers, "Authorization": "Bearer nope"}))


def test_permissions_come_from_the_database_not_claims(invoke: Any, world: World) -> None:
    ta = world.profile(roles=["member"])
    res = invoke("get", {}, {"Authorization": f"Bearer {make_jwt(ta.id, roles=['admin'], scope='admin')}"})
    assert res.status == 403


def test_401_happens_before_body_validation(invoke: Any) -> None:
    assert_401(invoke("get", {"page_size": "nonsense-and-unknown"}), missing=True)
    assert_401(invoke("get", raw_body="{broken"), missing=True)


# ---------------------------------------------------------------- ROLE_SCOPES
def test_role_scopes_decide_who_sees_what(
    invoke: Any, world: World, monkeypatch: pytest.MonkeyPatch, refresh: Any
) -> None:
    from glow_activity.settings import get_settings

    dept = world.department()
    lead = world.profile(roles=["custom"], departments=[dept])
    peer = world.profile(roles=["member"], departments=[dept])
    world.session(peer, "2025-06-01T10:00:00")
    root = world.profile(roles=["superadmin"])
    refresh()
    # the default: superadmin sees everything, custom only itself
    assert invoke("get", {}, root.headers).status == 200
    assert invoke("get", {}, lead.headers).status == 403
    # WHEN a deployment gives custom a department scope and superadmin none
    monkeypatch.setenv("ROLE_SCOPES", '{"all": ["admin"], "departments": ["instructional", "custom"]}')
    get_settings.cache_clear()
    # THEN custom reads its departments, and superadmin is refused
    res = invoke("search", {"date_from": "2025-06-01", "date_to": "2025-06-01"}, lead.headers)
    assert res.status == 200 and [row["profile_id"] for row in res.body["data"]] == [peer.id]
    assert invoke("get", {}, root.headers).status == 403


@pytest.mark.parametrize(
    "value, starts",
    [
        ('{"all": ["admin"], "departments": ["custom"]}', True),
        ('{"all": ["ta"]}', False),
        ('{"everyone": ["admin"]}', False),
        ("not json", False),
        ('{"all": ["admin"], "departments": ["admin"]}', False),
    ],
)
def test_an_invalid_role_scopes_fails_the_containers_start(value: str, starts: bool) -> None:
    import subprocess
    import sys

    from activity_dev import REPO_ROOT

    # a fresh interpreter imports a handler as Lambda's init phase does
    code = "import sys; sys.path[:0] = ['functions/get', 'layers/common']; import get_handler"
    env = {"ROLE_SCOPES": value, "PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if starts:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        assert "ROLE_SCOPES" in result.stderr
