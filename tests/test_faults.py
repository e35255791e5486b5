"""Faults: the database away, connections dropped or killed midway, a refresh killed: the service recovers and
loses nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from bodies import ENDPOINTS, body_for
from conftest import harness_params

from glow_activity import db
from glow_activity.settings import get_settings


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
