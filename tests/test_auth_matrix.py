"""The contract's permission table and every bad credential, at every endpoint: who gets what status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from bodies import ENDPOINTS, body_for
from conftest import harness_params
from factories import World, make_jwt

from glow_activity import db

EXPECTED = {  # credential -> status per endpoint (the contract's permission table)
    "member": {"get": 403, "search": 403, "problem": 200, "resolve": 403, "refresh": 200, "export": 403, "docs": 200},
    "instructional": {
        "get": 200,
        "search": 200,
        "problem": 200,
        "resolve": 200,
        "refresh": 200,
        "export": 200,
        "docs": 200,
    },
    "admin": dict.fromkeys(ENDPOINTS, 200),
}
BAD_CREDENTIALS = [
    "none",
    "malformed-header",
    "expired-jwt",
    "jwt-other-key",
    "jwt-alg-none",
    "jwt-deleted-profile",
    "revoked-key",
    "expired-key",
]


@pytest.fixture(scope="module")
def matrix_world(database_url: str) -> dict[str, Any]:
    conn = db.open_connection(harness_params(database_url))
    world = World(conn)
    dept = world.department()
    people = {
        "member": world.profile(roles=["member"], departments=[dept]),
        "instructional": world.profile(roles=["instructional"], departments=[dept]),
        "admin": world.profile(roles=["admin"], departments=[dept]),
    }
    deleted = world.profile(roles=["admin"])
    deleted_token = make_jwt(deleted.id)
    conn.run("UPDATE profiles SET deleted_at = now() WHERE id = CAST(:id AS uuid)", id=deleted.id)
    revoked, _ = world.api_key(people["admin"].id, revoked=True)
    from datetime import UTC, datetime, timedelta

    expired, _ = world.api_key(people["admin"].id, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    import base64

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    none_token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': people['admin'].id, 'exp': 4102444800})}."
    bad = {
        "none": {},
        "malformed-header": {"Authorization": "Token abc"},
        "expired-jwt": {"Authorization": f"Bearer {make_jwt(people['admin'].id, exp_in=-60)}"},
        "jwt-other-key": {"Authorization": f"Bearer {make_jwt(people['admin'].id, secret='x' * 40)}"},
        "jwt-alg-none": {"Authorization": f"Bearer {none_token}"},
        "jwt-deleted-profile": {"Authorization": f"Bearer {deleted_token}"},
        "revoked-key": {"X-Api-Key": revoked},
        "expired-key": {"X-Api-Key": expired},
    }
    problem = world.problem(people["member"], "2025-01-01T00:00:00")
    yield {"people": people, "bad": bad, "problem": problem}
    conn.close()


@pytest.mark.parametrize("operation", ENDPOINTS)
@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
def test_bad_credentials_are_401_everywhere(
    invoke: Any, matrix_world: dict[str, Any], operation: str, credential: str
) -> None:
    res = invoke(operation, body_for(operation, matrix_world["problem"]), matrix_world["bad"][credential])
    assert res.status == 401
    message = (
        "Authentication is required." if credential == "none" else "The credentials are not valid or have expired."
    )
    assert res.body == {"statusCode": 401, "message": message}


@pytest.mark.parametrize("operation", ENDPOINTS)
@pytest.mark.parametrize("role", ["member", "instructional", "admin"])
def test_roles_get_exactly_the_contracts_status(
    invoke: Any, matrix_world: dict[str, Any], operation: str, role: str
) -> None:
    person = matrix_world["people"][role]
    res = invoke(operation, body_for(operation, matrix_world["problem"]), person.headers)
    assert res.status == EXPECTED[role][operation], res.body
