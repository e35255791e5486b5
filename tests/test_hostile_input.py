"""Hostile input at every field: a clear 4xx that changes nothing, or a 2xx whose answer is exact."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from factories import World

HOSTILE_STRINGS = [
    "'; DROP TABLE profiles; --",
    '" OR 1=1 --',
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00%27",
    "💥" * 50,
    "a" * 100_000,
]


def table_counts(conn: Any) -> dict[str, int]:
    return {
        t: conn.run(f"SELECT count(*) FROM {t}")[0][0]
        for t in (
            "problems",
            "activity.uploads",
            "activity.idempotency_records",
            "activity.refresh_runs",
            "profiles",
            "sessions",
        )
    }


def _equivalent(base: dict[str, Any], field: str, payload: Any) -> dict[str, Any]:
    """The plain request a 2xx with `payload` must answer exactly like: null is the field left out, and a list of
    names that exist nowhere is any other such list."""
    if payload is None:
        return {name: value for name, value in base.items() if name != field}
    assert isinstance(payload, list), f"{field}={payload!r} was accepted, and is neither null nor a list of names"
    return {**base, field: [f"no-such-{field}"]}


def _sessions_in(operation: str, body: dict[str, Any]) -> int:
    return int(
        {"get": body.get("sessions_count"), "search": body.get("total_count")}.get(operation, body.get("row_count"))
    )


def _the_answer(operation: str, body: dict[str, Any]) -> Any:
    """What two equivalent requests must agree on (an export's own id, link and time differ by nature)."""
    return body["row_count"] if operation == "export" else body


@pytest.mark.parametrize(
    "operation, field, kind",
    [
        ("get", "date_from", "str"),
        ("get", "date_to", "str"),
        ("get", "department_ids", "list"),
        ("get", "roles", "list"),
        ("search", "sort_order", "str"),
        ("search", "cursor", "str"),
        ("search", "department_ids", "list"),
        ("problem", "type", "str"),
        ("problem", "message", "str"),
        ("problem", "session_id", "str"),
        ("resolve", "problem_id", "str"),
        ("export", "date_from", "str"),
        ("export", "roles", "list"),
        ("export", "upload_id", "str"),
        ("docs", "entity_id", "str"),
    ],
)
def test_hostile_values_get_a_4xx_or_an_exact_answer(
    invoke: Any, world: World, admin: Any, conn: Any, operation: str, field: str, kind: str
) -> None:
    member = world.profile(roles=["member"], departments=[world.department()])
    world.session(member, "2025-03-01T10:00:00")  # something to count, so that "nothing matched" is an answer
    base = {"problem": {"type": "bug", "message": "m"}, "resolve": {"problem_id": str(uuid.uuid4())}}.get(operation, {})
    for value in [*HOSTILE_STRINGS, "nul\x00byte", 12, True, None, {"$ne": 1}, ["x"]]:
        payload = [value] if kind == "list" and isinstance(value, str) else value
        before = table_counts(conn)
        res = invoke(operation, {**base, field: payload}, admin.headers)
        assert res.status < 500, (field, value, res.body)
        if res.status >= 400:
            assert {"statusCode", "message"} <= set(res.body), res.body
            assert table_counts(conn) == before, (field, value)
        elif operation == "problem":  # stored exactly as sent (trimmed), about the caller's own profile
            stored = conn.run(
                "SELECT message, session_id, profile_id::text FROM problems WHERE id = CAST(:id AS uuid)",
                id=res.body["problem_id"],
            )
            sent = {**base, field: payload}
            assert stored == [[sent["message"].strip(), None, admin.id]], (field, value, stored)
        else:
            plain = invoke(operation, _equivalent(base, field, payload), admin.headers)
            assert plain.status == res.status, (field, value, plain.body)
            assert _the_answer(operation, res.body) == _the_answer(operation, plain.body), (field, value)
            if isinstance(payload, list):  # names that exist nowhere match nothing, the member's session included
                assert _sessions_in(operation, plain.body) == 0, (field, value, plain.body)


def test_huge_arrays_and_bodies(invoke: Any, admin: Any) -> None:
    huge = invoke("get", {"department_ids": [f"d{i}" for i in range(5000)]}, admin.headers)
    assert huge.status == 422
    too_big = invoke("get", headers=admin.headers, raw_body=json.dumps({"roles": ["x" * (1024 * 1024)]}))
    assert too_big.status == 413 and too_big.body["statusCode"] == 413


def test_deeply_nested_json_and_non_objects(invoke: Any, admin: Any) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    assert invoke("get", headers=admin.headers, raw_body=deep).status in (400, 413)
    nested = invoke("get", headers=admin.headers, raw_body="[" * 5000 + "]" * 5000)
    assert nested.status in (400, 422)
    for raw in ("[]", "3", '"text"', "null", "true"):
        res = invoke("get", headers=admin.headers, raw_body=raw)
        assert res.status == 422, raw
    assert invoke("get", headers=admin.headers, raw_body=b"\xff\xfe garbage").status == 400


def test_non_json_content_types_are_415(invoke: Any, admin: Any) -> None:
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ):
        res = invoke("get", headers={**admin.headers, "Content-Type": content_type}, raw_body="a=b")
        assert res.status == 415, content_type
        assert res.body["statusCode"] == 415
    assert (
        invoke(
            "get", headers={**admin.headers, "Content-Type": "application/json; charset=utf-8"}, raw_body="{}"
        ).status
        == 200
    )
