"""Bad input, faults, the auth matrix, concurrency and secrets: the service keeps working and lets no one in."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from conftest import harness_params
from factories import World, make_jwt

from activity_dev.events import scheduled_event
from glow_activity import db
from glow_activity.settings import get_settings

ENDPOINTS = ("get", "search", "problem", "resolve", "refresh", "export", "docs")
VALID_BODIES: dict[str, Any] = {
    "get": {},
    "search": {},
    "problem": {"type": "bug", "message": "hello"},
    "resolve": {"problem_id": None},
    "refresh": None,
    "export": {},
    "docs": {},
}

# ---------------------------------------------------------------- the auth matrix
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


def body_for(operation: str, problem_id: str) -> Any:
    body = VALID_BODIES[operation]
    return {"problem_id": problem_id} if operation == "resolve" else body


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


# ---------------------------------------------------------------- hostile input
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


@pytest.fixture
def admin(world: World) -> Any:
    return world.profile(roles=["admin"])


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
    invoke: Any, admin: Any, conn: Any, operation: str, field: str, kind: str
) -> None:
    base = {"problem": {"type": "bug", "message": "m"}, "resolve": {"problem_id": str(uuid.uuid4())}}.get(operation, {})
    for value in [*HOSTILE_STRINGS, "nul\x00byte", 12, True, None, {"$ne": 1}, ["x"]]:
        payload = [value] if kind == "list" and isinstance(value, str) else value
        before = table_counts(conn)
        res = invoke(operation, {**base, field: payload}, admin.headers)
        assert res.status < 500, (field, value, res.body)
        assert set(res.body or {}) >= ({"statusCode", "message"} if res.status >= 400 else set())
        if res.status >= 400:
            assert table_counts(conn) == before, (field, value)


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


# ---------------------------------------------------------------- faults
@pytest.fixture
def unreachable_database(monkeypatch: Any) -> Any:
    def go_away() -> None:
        monkeypatch.setenv("DATABASE_URL", "postgresql://glow@127.0.0.1:9/glow")
        monkeypatch.setenv("DB_CONNECT_ATTEMPTS", "1")
        get_settings.cache_clear()
        db.reset_connections()

    return go_away


@pytest.mark.parametrize("operation", ENDPOINTS)
def test_database_refusing_connections_is_503_then_recovers(
    invoke: Any, admin: Any, operation: str, unreachable_database: Any, monkeypatch: Any, runtime_url: str
) -> None:
    assert invoke("docs", {}, admin.headers).status == 200  # a warm container
    unreachable_database()
    body = body_for(operation, str(uuid.uuid4()))
    res = invoke(operation, body, admin.headers)
    assert res.status == 503
    assert res.headers["retry-after"].isdigit()
    assert res.body["statusCode"] == 503 and "database" in res.body["message"].lower()
    monkeypatch.setenv("DATABASE_URL", runtime_url)
    get_settings.cache_clear()
    assert invoke(operation, body, admin.headers).status in (200, 404)


def _terminate_service_connections(conn: Any) -> int:
    return len(
        conn.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'glow-activity' AND pid <> pg_backend_pid()"
        )
    )


def test_connection_dropped_while_idle_is_reopened_transparently(invoke: Any, admin: Any, conn: Any) -> None:
    assert invoke("get", {}, admin.headers).status == 200
    assert _terminate_service_connections(conn) >= 1
    assert invoke("get", {}, admin.headers).status == 200  # same process: no cold start


@pytest.mark.parametrize(
    "operation, body",
    [
        ("problem", {"type": "bug", "message": "killed mid-insert"}),
        ("get", {}),
        ("search", {}),
    ],
)
def test_a_connection_killed_during_its_statement_is_retried_once_on_a_new_one(
    invoke: Any, admin: Any, conn: Any, database_url: str, operation: str, body: dict[str, Any]
) -> None:
    import time
    from threading import Thread

    marker = f"{body.get('message', '')} {uuid.uuid4()}" if operation == "problem" else None
    if marker:
        body = {**body, "message": marker}
    # GIVEN the call's statement waiting on a lock (get and search read problems too)
    holder = db.open_connection(harness_params(database_url))
    holder.run("BEGIN")
    holder.run("LOCK TABLE problems IN ACCESS EXCLUSIVE MODE")
    results: list[Any] = []
    worker = Thread(target=lambda: results.append(invoke(operation, body, admin.headers)))
    worker.start()
    deadline = time.monotonic() + 30
    while not conn.run(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'glow-activity' AND wait_event_type = 'Lock'"
    )[0][0]:
        assert time.monotonic() < deadline, results
        time.sleep(0.05)
    # WHEN its connection is killed (an Aurora failover, a proxy restart), then the lock goes
    assert _terminate_service_connections(conn) >= 1
    holder.run("ROLLBACK")
    holder.close()
    worker.join(30)
    # THEN the caller sees a normal answer, run again on a new connection, and a problem was made once
    assert results[0].status == 200, results[0].body
    if marker:
        assert conn.run("SELECT count(*) FROM problems WHERE message = :m", m=marker) == [[1]]
        assert conn.run(
            "SELECT count(*) FROM activity.audit_log WHERE request_id = :r", r=results[0].headers["x-request-id"]
        ) == [[1]]


def test_an_error_midway_through_a_reply_is_500_and_the_next_call_works(
    invoke: Any, admin: Any, monkeypatch: Any
) -> None:
    """A value that fails to convert stops pg8000 in the middle of a statement's reply, the rest of it still
    on the wire: the call is a 500, and the container's next calls start on fresh connections instead of
    reading that leftover as their own answers."""
    real = db._fast_timestamptz
    failed: list[str] = []

    def fails_once(text: str) -> Any:
        if not failed:
            failed.append(text)
            raise ValueError("a timestamp that would not convert")
        return real(text)

    monkeypatch.setattr(db, "_fast_timestamptz", fails_once)  # registered as the container's connection opens
    first = invoke("get", {}, admin.headers)
    assert first.status == 500 and failed
    assert "Internal error" in first.body["message"]
    for _ in range(3):
        assert invoke("get", {}, admin.headers).status == 200
        assert invoke("search", {}, admin.headers).status == 200


def test_refresh_killed_midway_releases_the_lock(invoke: Any, admin: Any, conn: Any, database_url: str) -> None:
    from glow_activity.refresh import REFRESH_LOCK_KEY

    holder = db.open_connection(harness_params(database_url))
    holder.run("BEGIN")
    holder.run("SELECT pg_advisory_xact_lock(:k)", k=REFRESH_LOCK_KEY)
    from threading import Thread

    results: list[Any] = []
    worker = Thread(target=lambda: results.append(invoke("refresh", None, admin.headers)))
    worker.start()
    import time

    deadline = time.monotonic() + 30
    while not conn.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _terminate_service_connections(conn)  # the waiting refresh dies
    holder.run("COMMIT")
    holder.close()
    worker.join(30)
    assert results[0].status == 503
    assert conn.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0] == 0
    assert invoke("refresh", None, admin.headers).status == 200


# ---------------------------------------------------------------- concurrency
def test_fifty_parallel_invocations_lose_and_duplicate_nothing(
    invoke_concurrently: Any, world: World, conn: Any
) -> None:
    dept = world.department()
    admin = world.profile(roles=["admin"], departments=[dept])
    ta = world.profile(roles=["member"], departments=[dept])
    problems = [world.problem(ta, "2025-01-01T00:00:00") for _ in range(5)]
    key = f"parallel-{uuid.uuid4()}"
    calls: list[tuple[str, Any, dict[str, str]]] = []
    for i in range(50):
        kind = i % 8
        if kind == 0:
            calls.append(("get", {"department_ids": [dept]}, admin.headers))
        elif kind == 1:
            calls.append(("search", {"department_ids": [dept]}, admin.headers))
        elif kind == 2:
            calls.append(("problem", {"type": "bug", "message": f"unique {i}"}, ta.headers))
        elif kind == 3:
            calls.append(("problem", {"type": "bug", "message": "same"}, {**ta.headers, "Idempotency-Key": key}))
        elif kind == 4:
            calls.append(("resolve", {"problem_id": problems[i % 5], "resolved": i % 3 == 0}, admin.headers))
        elif kind == 5:
            calls.append(("refresh", None, admin.headers))
        elif kind == 6:
            calls.append(("export", {"department_ids": [dept]}, admin.headers))
        else:
            calls.append(("docs", {}, ta.headers))
    results = invoke_concurrently(calls)
    # the admin's six exports at once: one runs at a time for a caller, and a request while it runs answers it (202
    # as polling it would, or 200 once it is done): each answer names an export some answer started
    exports = [r for c, r in zip(calls, results, strict=True) if c[0] == "export"]
    assert {r.status for r in exports} <= {200, 202}
    assert all(r.body["upload_id"] in {e.body["upload_id"] for e in exports if e.status == 200} for r in exports)
    assert [r.status for c, r in zip(calls, results, strict=True) if c[0] != "export"] == [200] * 44, [
        (c[0], r.status, r.body) for c, r in zip(calls, results, strict=True) if r.status not in (200, 202)
    ]
    unique = [c for c in calls if c[0] == "problem" and "Idempotency-Key" not in c[2]]
    messages = [
        r[0]
        for r in conn.run(
            "SELECT message FROM problems WHERE reported_by = CAST(:p AS uuid) AND message <> 'test problem'", p=ta.id
        )
    ]
    assert sorted(messages) == sorted([c[1]["message"] for c in unique] + ["same"])
    request_ids = [r.headers["x-request-id"] for r in results]
    audited = conn.run(
        "SELECT request_id, count(*) FROM activity.audit_log"
        " WHERE request_id = ANY(CAST(:ids AS text[])) GROUP BY request_id",
        ids=request_ids,
    )
    assert len(audited) == 50 and all(n == 1 for _, n in audited)
    for qid in problems:
        resolved, at = conn.run("SELECT resolved, resolved_at FROM problems WHERE id = CAST(:id AS uuid)", id=qid)[0]
        assert (at is not None) == resolved


# ---------------------------------------------------------------- secrets
def test_no_secret_reaches_the_logs(invoke: Any, world: World, capsys: Any, caplog: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    admin = world.profile(roles=["admin"])
    token = make_jwt(admin.id)
    secrets_seen = [admin.key, token, token.split(".")[2]]
    export = invoke("export", {}, {**admin.headers, "Authorization": f"Bearer {token}"})
    signature = export.body["download_url"].split("Signature=")[-1].split("&")[0]
    secrets_seen.append(signature)
    for operation in ENDPOINTS:
        invoke(operation, body_for(operation, str(uuid.uuid4())), {"X-Api-Key": admin.key})
        invoke(operation, body_for(operation, str(uuid.uuid4())), {"Authorization": f"Bearer {token}"})
        invoke(operation, {}, {"X-Api-Key": admin.key + "-wrong"})
    invoke("refresh", event=scheduled_event())
    captured = capsys.readouterr()
    everything = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    assert everything  # the run did log
    for secret in secrets_seen:
        assert secret not in everything
    assert "password" not in everything.lower() or "password=" not in everything.lower()
