"""The bounds a request meets and what the caller is told: a statement the database cancels for its time is a 503
that changed nothing, a problem's message is bounded after trimming, and an admin's problem total counts exactly the
problems its list can show (a problem without a profile is in neither)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import harness_params
from factories import World

from activity_dev import embedded_pg
from glow_activity import db
from glow_activity.migrate import ensure_runtime_login
from glow_activity.settings import get_settings

SLOW_USER = "activity_app_hurried"


@pytest.fixture
def hurried(conn: Any, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The service as a runtime user whose statements may take 300 ms (DB_STATEMENT_TIMEOUT_MS as a role default)."""
    password = secrets.token_urlsafe(16)
    settings = dataclasses.replace(get_settings(), db_statement_timeout_ms=300)
    ensure_runtime_login(conn, SLOW_USER, password, settings=settings)
    monkeypatch.setenv("DATABASE_URL", embedded_pg.url_as(database_url, SLOW_USER, password))
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "300")
    get_settings.cache_clear()
    db.reset_connections()
    yield
    db.reset_connections()


class TableLock:
    """A table locked as a long migration of the platform's or a VACUUM FULL would lock it, until released."""

    def __init__(self, database_url: str) -> None:
        self.holder = db.open_connection(harness_params(database_url))
        self.held = False

    def lock(self, table: str) -> None:
        self.holder.run("BEGIN")
        self.holder.run(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.holder.run("ROLLBACK")
            self.held = False


@pytest.fixture
def locked(database_url: str) -> Iterator[TableLock]:
    table_lock = TableLock(database_url)
    yield table_lock
    table_lock.release()
    table_lock.holder.close()


@pytest.mark.parametrize(
    "operation, body, table",
    [("search", {}, "sessions"), ("problem", {"type": "bug", "message": "during a lock"}, "problems")],
)
def test_a_statement_cancelled_for_its_time_is_a_503_that_changed_nothing(
    invoke: Any, world: World, conn: Any, hurried: None, locked: TableLock, operation: str, body: Any, table: str
) -> None:
    coord = world.profile(roles=["instructional"], departments=[world.department()])
    assert invoke("docs", {}, coord.headers).status == 200  # a warm container, its caller known
    before = conn.run("SELECT count(*) FROM problems")[0][0]
    locked.lock(table)
    res = invoke(operation, body, coord.headers)
    locked.release()
    assert res.status == 503 and res.headers["retry-after"].isdigit()
    assert "nothing was changed" in res.body["message"]
    assert conn.run("SELECT count(*) FROM problems")[0][0] == before
    audited = conn.run(
        "SELECT status_code FROM activity.audit_log WHERE profile_id = CAST(:p AS uuid) AND operation = :o",
        p=coord.id,
        o=operation,
    )
    assert audited == [[503]]


def test_a_message_is_bounded_once_trimmed(invoke: Any, world: World) -> None:
    member = world.profile(roles=["member"])
    padded = "  " + "a" * 4000 + "\n\n"
    res = invoke("problem", {"type": "bug", "message": padded}, member.headers)
    assert res.status == 200
    too_long = invoke("problem", {"type": "bug", "message": " " + "a" * 4001}, member.headers)
    assert too_long.status == 422 and "4000" in too_long.body["message"]


def test_an_admins_problem_total_counts_what_its_list_shows(
    invoke: Any, world: World, empty_db: Any, refresh: Any
) -> None:
    # no profile is deleted (the NOT IN over an empty set), and one problem has no profile
    admin = world.profile(roles=["admin"])
    member = world.profile(roles=["member"])
    world.problem(member, "2025-03-01T10:00:00")
    world.problem(None, "2025-03-02T10:00:00")
    refresh()
    answer = invoke("get", {}, admin.headers).body
    assert answer["problems_total"] == len(answer["problems"]) == 1
