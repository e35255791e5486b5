"""POST /problem and POST /resolve: permissions, validation, idempotency, concurrency, audit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from factories import World


def problem_rows(conn: Any, **where: str) -> list[tuple[Any, ...]]:
    column, value = next(iter(where.items()))
    return [
        tuple(r)
        for r in conn.run(
            f"SELECT id::text, type, message, session_id::text, profile_id::text,"
            f" reported_by::text, resolved FROM problems WHERE {column} = CAST(:v AS uuid)",
            v=value,
        )
    ]


@pytest.fixture
def team(world: World) -> dict[str, Any]:
    dept, other = world.department(), world.department()
    return {
        "dept": dept,
        "admin": world.profile(roles=["admin"]),
        "coord": world.profile(roles=["instructional"], departments=[dept]),
        "member": world.profile(roles=["member"], departments=[dept]),
        "ta2": world.profile(roles=["member"], departments=[dept]),
        "stranger": world.profile(roles=["member"], departments=[other]),
        "world": world,
    }


def test_create_about_own_activity(invoke: Any, team: dict[str, Any], conn: Any) -> None:
    res = invoke("problem", {"type": "BUG", "message": "  The AI repeated itself.  "}, team["member"].headers)
    assert res.status == 200
    body = res.body
    assert body["success"] is True and body["message"]
    rows = problem_rows(conn, id=body["problem_id"])
    assert rows == [
        (body["problem_id"], "bug", "The AI repeated itself.", None, team["member"].id, team["member"].id, False)
    ]


def test_create_about_a_session_takes_the_session_profile(invoke: Any, team: dict[str, Any], conn: Any) -> None:
    sid = team["world"].session(team["member"], "2025-01-01T00:00:00")
    res = invoke("problem", {"type": "question", "message": "why?", "session_id": sid}, team["coord"].headers)
    assert res.status == 200
    (row,) = problem_rows(conn, id=res.body["problem_id"])
    assert row[3:6] == (sid, team["member"].id, team["coord"].id)
    # the TA may report on its own session, not on another's; a stranger's coordinator cannot see it
    assert (
        invoke("problem", {"type": "other", "message": "mine", "session_id": sid}, team["member"].headers).status == 200
    )
    for who in ("ta2", "stranger"):
        before = conn.run("SELECT count(*) FROM problems")[0][0]
        res = invoke("problem", {"type": "other", "message": "x", "session_id": sid}, team[who].headers)
        assert res.status == 404 and res.body["statusCode"] == 404
        assert conn.run("SELECT count(*) FROM problems")[0][0] == before
    unknown = invoke("problem", {"type": "bug", "message": "x", "session_id": str(uuid.uuid4())}, team["admin"].headers)
    assert unknown.status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"type": "complaint", "message": "x"},
        {"type": "bug", "message": "   "},
        {"type": "bug", "message": "a" * 4001},
        {"type": "bug"},
        {"message": "x"},
        {"type": "bug", "message": "x", "session_id": "not-a-uuid"},
        {"type": "bug", "message": "x", "extra": True},
        {"type": "bug", "message": "nul \x00 byte"},
        {"type": 3, "message": "x"},
    ],
)
def test_invalid_problems_are_422_and_write_nothing(
    invoke: Any, team: dict[str, Any], conn: Any, body: dict[str, Any]
) -> None:
    before = conn.run("SELECT count(*) FROM problems")[0][0]
    res = invoke("problem", body, team["admin"].headers)
    assert res.status == 422, res.body
    assert res.body["detail"]
    assert conn.run("SELECT count(*) FROM problems")[0][0] == before


@pytest.mark.parametrize(
    "message",
    [
        "a" * 4000,
        "'; DROP TABLE problems; --",
        "Robert'); DELETE FROM profiles WHERE ('1'='1",
        "unicode: 日本語 ✓ émoji 🎓 \u200b zero-width",
        'quotes " and \\ backslashes, commas, and\nnewlines',
    ],
)
def test_hostile_messages_are_stored_exactly(invoke: Any, team: dict[str, Any], conn: Any, message: str) -> None:
    res = invoke("problem", {"type": "other", "message": message}, team["member"].headers)
    assert res.status == 200
    (row,) = problem_rows(conn, id=res.body["problem_id"])
    assert row[2] == message


def test_idempotency_key_replays_and_conflicts(invoke: Any, team: dict[str, Any], conn: Any) -> None:
    headers = {**team["member"].headers, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = invoke("problem", {"type": "bug", "message": "once"}, headers)
    again = invoke("problem", {"type": "bug", "message": "once"}, headers)
    assert first.status == again.status == 200
    assert again.body == first.body
    assert len(problem_rows(conn, reported_by=team["member"].id)) == 1
    conflict = invoke("problem", {"type": "bug", "message": "another body"}, headers)
    assert conflict.status == 409 and conflict.body["statusCode"] == 409
    # the same key from another caller is another key
    other = invoke(
        "problem",
        {"type": "bug", "message": "once"},
        {**team["ta2"].headers, "Idempotency-Key": headers["Idempotency-Key"]},
    )
    assert other.status == 200 and other.body["problem_id"] != first.body["problem_id"]
    assert len(problem_rows(conn, reported_by=team["member"].id)) == 1


def test_twenty_concurrent_creates_with_one_key_make_one_problem(
    invoke_concurrently: Any, team: dict[str, Any], conn: Any
) -> None:
    headers = {**team["member"].headers, "Idempotency-Key": f"burst-{uuid.uuid4()}"}
    results = invoke_concurrently([("problem", {"type": "bug", "message": "burst"}, headers)] * 20)
    assert {r.status for r in results} == {200}
    assert len({r.body["problem_id"] for r in results}) == 1
    assert len(problem_rows(conn, reported_by=team["member"].id)) == 1


def test_resolve_and_reopen(invoke: Any, team: dict[str, Any], conn: Any) -> None:
    qid = team["world"].problem(team["member"], "2025-01-01T00:00:00")
    res = invoke("resolve", {"problem_id": qid}, team["coord"].headers)
    assert res.status == 200
    assert res.body["problem_id"] == qid and res.body["resolved"] is True
    assert res.body["updated_at"].endswith("Z")
    resolved, at, by = conn.run(
        "SELECT resolved, resolved_at, resolved_by::text FROM problems WHERE id = CAST(:id AS uuid)", id=qid
    )[0]
    assert resolved is True and at is not None and by == team["coord"].id
    repeat = invoke("resolve", {"problem_id": qid, "resolved": True}, team["coord"].headers)
    assert repeat.status == 200 and repeat.body == res.body  # harmless
    reopened = invoke("resolve", {"problem_id": qid, "resolved": False}, team["admin"].headers)
    assert reopened.body["resolved"] is False
    assert conn.run("SELECT resolved, resolved_at, resolved_by FROM problems WHERE id = CAST(:id AS uuid)", id=qid)[
        0
    ] == [False, None, None]


def test_resolve_errors(invoke: Any, team: dict[str, Any], world: World, conn: Any) -> None:
    qid = world.problem(team["stranger"], "2025-01-01T00:00:00")
    snapshot = conn.run("SELECT resolved, updated_at FROM problems WHERE id = CAST(:id AS uuid)", id=qid)
    assert invoke("resolve", {"problem_id": qid}, team["coord"].headers).status == 404  # invisible
    assert invoke("resolve", {"problem_id": str(uuid.uuid4())}, team["admin"].headers).status == 404
    assert invoke("resolve", {"problem_id": "123"}, team["admin"].headers).status == 422
    assert invoke("resolve", {"problem_id": qid, "resolved": "yes"}, team["admin"].headers).status == 422
    assert invoke("resolve", {"problem_id": qid}, team["stranger"].headers).status == 403  # TAs may not
    assert conn.run("SELECT resolved, updated_at FROM problems WHERE id = CAST(:id AS uuid)", id=qid) == snapshot


def test_concurrent_resolve_and_reopen_leave_a_consistent_row(
    invoke_concurrently: Any, team: dict[str, Any], conn: Any
) -> None:
    qid = team["world"].problem(team["member"], "2025-01-01T00:00:00")
    results = invoke_concurrently(
        [("resolve", {"problem_id": qid, "resolved": i % 2 == 0}, team["admin"].headers) for i in range(20)]
    )
    assert {r.status for r in results} == {200}
    resolved, at, by = conn.run(
        "SELECT resolved, resolved_at, resolved_by FROM problems WHERE id = CAST(:id AS uuid)", id=qid
    )[0]
    assert (at is not None) == resolved and (by is not None) == resolved


def test_problem_shows_in_get_and_search_after_refresh(invoke: Any, team: dict[str, Any], refresh: Any) -> None:
    sid = team["world"].session(team["member"], "2025-06-01T10:00:00")
    refresh()
    query = {"department_ids": [team["dept"]], "date_from": "2025-06-01"}
    before = invoke("get", query, team["admin"].headers).body
    assert invoke("problem", {"type": "bug", "message": "m", "session_id": sid}, team["coord"].headers).status == 200
    refresh()
    after = invoke("get", {**query, "date_from": None}, team["admin"].headers).body
    row = next(r for r in after["profile_summary"] if r["profile_id"] == team["member"].id)
    assert row["problems_count"] == 1
    assert before["profile_summary"][0]["problems_count"] == 0
    search = invoke("search", {"department_ids": [team["dept"]]}, team["admin"].headers).body
    assert next(r for r in search["data"] if r["session_id"] == sid)["problem_count"] == 1


def audit_rows(conn: Any, request_id: str) -> list[list[Any]]:
    return conn.run(
        "SELECT operation, profile_id::text, api_key_id::text, channel, status_code FROM activity.audit_log"
        " WHERE request_id = :r",
        r=request_id,
    )


@pytest.mark.parametrize(
    "operation, body",
    [
        ("get", {}),
        ("search", {}),
        ("problem", {"type": "bug", "message": "audit"}),
        ("resolve", {"problem_id": str(uuid.UUID(int=1))}),
        ("refresh", None),
        ("export", {}),
        ("docs", {}),
    ],
)
def test_every_endpoint_writes_one_audit_row(
    invoke: Any, team: dict[str, Any], conn: Any, operation: str, body: Any
) -> None:
    admin = team["admin"]
    for channel, extra in (("api", {}), ("mcp", {"X-MCP": "1"})):
        res = invoke(operation, body, {**admin.headers, **extra})
        rows = audit_rows(conn, res.headers["x-request-id"])
        assert rows == [[operation, admin.id, admin.key_id, channel, res.status]]


def test_audit_records_failures_after_authentication_only(invoke: Any, team: dict[str, Any], conn: Any) -> None:
    forbidden = invoke("export", None, team["member"].headers)
    assert forbidden.status == 403
    assert audit_rows(conn, forbidden.headers["x-request-id"]) == [
        ["export", team["member"].id, team["member"].key_id, "api", 403]
    ]
    bearer = invoke("problem", {"type": "bug"}, team["member"].bearer())
    assert audit_rows(conn, bearer.headers["x-request-id"]) == [["problem", team["member"].id, None, "api", 422]]
    anonymous = invoke("get", {}, {})
    assert audit_rows(conn, anonymous.headers["x-request-id"]) == []
