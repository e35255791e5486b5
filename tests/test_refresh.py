"""Refresh: the rollups, the schedule, locking, failure, and HTTP caching."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import World

from activity_dev.events import scheduled_event
from glow_activity import db, refresh
from glow_activity.refresh import REFRESH_LOCK_KEY, REFRESH_SQL, ROLLUPS


@pytest.fixture
def scene(world: World, refresh: Any) -> dict[str, Any]:
    dept = world.department()
    admin = world.profile(roles=["admin"])
    ta = world.profile(roles=["member"], departments=[dept])
    world.session(ta, "2025-05-01T10:00:00")
    refresh()
    return {"dept": dept, "admin": admin, "member": ta, "world": world}


def test_refresh_makes_new_rows_visible(invoke: Any, scene: dict[str, Any]) -> None:
    q = {"department_ids": [scene["dept"]]}
    assert invoke("get", q, scene["admin"].headers).body["sessions_count"] == 1
    scene["world"].session(scene["member"], "2025-05-02T10:00:00")
    scene["world"].login(scene["member"], "2025-05-02T11:00:00")
    assert invoke("get", q, scene["admin"].headers).body["sessions_count"] == 1  # lags until a refresh
    assert invoke("search", q, scene["admin"].headers).body["total_count"] == 1
    res = invoke("refresh", None, scene["admin"].headers)
    assert res.status == 200
    assert res.body == {
        "success": True,
        "refreshed_views": list(ROLLUPS),
        "invalidated_tags": ["artifacts", "activity", "list"],
    }
    after = invoke("get", q, scene["admin"].headers).body
    assert (after["sessions_count"], after["logins_count"]) == (2, 1)
    assert invoke("search", q, scene["admin"].headers).body["total_count"] == 2


def wait_for_a_refresh_waiting_on_the_lock(conn: Any, failure: str) -> None:
    deadline = time.monotonic() + 30
    while not conn.run(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = :k)",
        k=REFRESH_LOCK_KEY,
    )[0][0]:
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)


def runs(conn: Any) -> int:
    return int(conn.run("SELECT count(*) FROM activity.refresh_runs")[0][0])


def age_every_refresh(conn: Any) -> None:
    """Make the last successful refresh an hour old, so that a debounced call finds none recent."""
    conn.run(
        "UPDATE activity.refresh_runs SET finished_at = finished_at - interval '1 hour',"
        " started_at = started_at - interval '1 hour'"
    )


def test_anyone_may_refresh_and_a_non_admins_call_is_debounced(invoke: Any, scene: dict[str, Any], conn: Any) -> None:
    # GIVEN a refresh that just succeeded (the scene's)
    last = conn.run("SELECT id, views FROM activity.refresh_runs WHERE outcome = 'success' ORDER BY id DESC LIMIT 1")[0]
    before = runs(conn)
    coord = scene["world"].profile(roles=["instructional"], departments=[scene["dept"]])
    for who in (scene["member"], coord):
        # WHEN a member or a coordinator presses Refresh  THEN that refresh answers and none runs
        res = invoke("refresh", {}, who.headers)
        assert res.status == 200
        assert res.body == {
            "success": True,
            "refreshed_views": last[1],
            "invalidated_tags": ["artifacts", "activity", "list"],
        }
        assert runs(conn) == before
    # an admin's call refreshes now
    assert invoke("refresh", {}, scene["admin"].headers).status == 200
    assert runs(conn) == before + 1
    assert invoke("refresh", {"force": True}, scene["admin"].headers).status == 422


def test_a_debounced_call_runs_a_refresh_when_none_is_recent(invoke: Any, scene: dict[str, Any], conn: Any) -> None:
    # GIVEN no refresh in the last REFRESH_MIN_INTERVAL_SECONDS, and a session of a minute ago the rollups do not
    # hold yet
    age_every_refresh(conn)
    just_now = datetime.now(UTC) - timedelta(minutes=1)
    scene["world"].session(scene["member"], just_now)
    before = runs(conn)
    # WHEN a member presses Refresh  THEN one runs, and the next press within the interval runs none
    assert invoke("refresh", {}, scene["member"].headers).status == 200
    assert runs(conn) == before + 1
    assert conn.run("SELECT trigger, requested_by::text, outcome FROM activity.refresh_runs ORDER BY id DESC LIMIT 1")[
        0
    ] == [
        "api",
        scene["member"].id,
        "success",
    ]
    assert invoke("refresh", {}, scene["member"].headers).status == 200
    assert runs(conn) == before + 1
    # (a light pass: the full one ran an hour ago)
    assert conn.run("SELECT full_pass FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [[False]]
    today = just_now.date().isoformat()
    q = {"date_from": "2025-05-01", "date_to": today, "department_ids": [scene["dept"]]}
    assert invoke("get", q, scene["admin"].headers).body["sessions_count"] == 2


def test_a_debounced_call_never_waits_for_the_running_refresh_and_answers_with_the_last_one(
    invoke: Any, scene: dict[str, Any], conn: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no recent refresh, and one running (it holds the lock)
    monkeypatch.setenv("REFRESH_MIN_INTERVAL_SECONDS", "600")
    age_every_refresh(conn)
    last = conn.run("SELECT max(id) FROM activity.refresh_runs WHERE outcome = 'success'")[0][0]
    holder = db.open_connection(db.params_from_url(database_url))
    holder.run("SELECT pg_advisory_lock(:k)", k=REFRESH_LOCK_KEY)
    try:
        # WHEN a member presses Refresh  THEN the answer comes at once, the last successful refresh's, and no run starts
        started = time.monotonic()
        res = invoke("refresh", {}, scene["member"].headers)
        assert time.monotonic() - started < 2
        assert res.status == 200 and res.body["refreshed_views"] == list(ROLLUPS)
        assert conn.run("SELECT max(id) FROM activity.refresh_runs")[0][0] == last
    finally:
        holder.run("SELECT pg_advisory_unlock(:k)", k=REFRESH_LOCK_KEY)
        holder.close()


def test_scheduled_event_runs_the_same_refresh_and_is_recorded(invoke: Any, scene: dict[str, Any], conn: Any) -> None:
    scene["world"].session(scene["member"], datetime.now(UTC) - timedelta(minutes=3))
    event = scheduled_event()
    result = invoke("refresh", event=event).raw
    assert result == {
        "success": True,
        "refreshed_views": list(ROLLUPS),
        "invalidated_tags": ["artifacts", "activity", "list"],
    }
    run = conn.run(
        "SELECT trigger, outcome, views, finished_at >= started_at, full_pass FROM activity.refresh_runs"
        " ORDER BY id DESC LIMIT 1"
    )[0]
    assert run == ["schedule", "success", list(ROLLUPS), True, False]  # light: the scene's full pass is recent
    assert conn.run(
        "SELECT operation, profile_id, channel, status_code FROM activity.audit_log WHERE request_id = :r",
        r=event["id"],
    ) == [["refresh", None, "schedule", 200]]
    body = invoke("get", {"department_ids": [scene["dept"]]}, scene["admin"].headers).body
    assert body["sessions_count"] == 2


def test_expired_idempotency_records_are_cleaned_by_refresh(invoke: Any, scene: dict[str, Any], conn: Any) -> None:
    conn.run("INSERT INTO activity.idempotency_records (id, status, expiration) VALUES ('stale-test', 'COMPLETED', 1)")
    invoke("refresh", None, scene["admin"].headers)
    assert conn.run("SELECT count(*) FROM activity.idempotency_records WHERE id = 'stale-test'")[0][0] == 0


def test_readers_are_not_blocked_by_a_running_refresh(
    invoke_concurrently: Any, scene: dict[str, Any], runtime_url: str
) -> None:
    # GIVEN a refresh by the runtime user holding the lock, the views' refresh locks and the daily table's rewritten
    # rows, not yet committed (a new session makes its month's days change)
    scene["world"].session(scene["member"], "2025-05-03T10:00:00")
    holder = db.open_connection(db.params_from_url(runtime_url))
    assert holder.run("SELECT current_user")[0][0] != "postgres"
    holder.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.run("SELECT pg_advisory_xact_lock(:k)", k=REFRESH_LOCK_KEY)
    holder.run(REFRESH_SQL, full_pass=True)
    rewritten = holder.run(
        "SELECT sessions FROM activity.activity_daily WHERE profile_id = CAST(:p AS uuid) AND day = '2025-05-03'",
        p=scene["member"].id,
    )
    assert rewritten and rewritten[0][0] >= 1
    try:
        # WHEN readers run meanwhile  THEN every one of them finishes while the refresh is still open
        calls = [(op, {"department_ids": [scene["dept"]]}, scene["admin"].headers) for op in ("get", "search") * 4]
        assert {r.status for r in invoke_concurrently(calls, timeout=60)} == {200}
    finally:
        holder.run("ROLLBACK")
        holder.close()


def test_two_refreshes_run_one_at_a_time(invoke: Any, scene: dict[str, Any], runtime_url: str, conn: Any) -> None:
    holder = db.open_connection(db.params_from_url(runtime_url))
    holder.run("BEGIN")
    holder.run("SELECT pg_advisory_xact_lock(:k)", k=REFRESH_LOCK_KEY)
    done = threading.Event()
    results: list[Any] = []

    def second() -> None:
        results.append(invoke("refresh", None, scene["admin"].headers))
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        # the second refresh waits on the advisory lock
        wait_for_a_refresh_waiting_on_the_lock(conn, "second refresh never waited on the lock")
        assert not done.is_set()
    finally:
        holder.run("COMMIT")
        holder.close()
    thread.join(timeout=60)
    assert results and results[0].status == 200


def test_a_failing_refresh_is_reported_releases_the_lock_and_the_next_one_works(
    invoke: Any, scene: dict[str, Any], conn: Any, monkeypatch: Any
) -> None:
    # GIVEN a refresh that fails after its work is done (a division by zero over a table of ours): broken on purpose
    conn.run("DROP TABLE IF EXISTS activity_broken_test")
    conn.run("CREATE TABLE activity_broken_test AS SELECT 1 AS x")
    conn.run("GRANT SELECT ON activity_broken_test TO activity_runtime")
    broken = f"{REFRESH_SQL}, 1 / (SELECT x - 1 FROM activity_broken_test)"
    monkeypatch.setattr(refresh, "REFRESH_SQL", broken)
    try:
        failed = invoke("refresh", None, scene["admin"].headers)
        assert failed.status == 500
        assert "Internal error" in failed.body["message"] and "activity_broken_test" not in failed.body["message"]
        run = conn.run("SELECT outcome, error IS NOT NULL FROM activity.refresh_runs ORDER BY id DESC LIMIT 1")[0]
        assert run == ["failed", True]
        assert (
            conn.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k", k=REFRESH_LOCK_KEY)[0][
                0
            ]
            == 0
        )
        with pytest.raises(Exception):
            invoke("refresh", event=scheduled_event())
    finally:
        monkeypatch.setattr(refresh, "REFRESH_SQL", REFRESH_SQL)
        conn.run("DROP TABLE activity_broken_test")
    assert invoke("refresh", None, scene["admin"].headers).status == 200


def test_etag_304_and_data_as_of(invoke: Any, scene: dict[str, Any], world: World) -> None:
    admin, q = scene["admin"], {"department_ids": [scene["dept"]]}
    first = invoke("get", q, admin.headers)
    second = invoke("get", q, admin.headers)
    etag = first.headers["etag"]
    assert etag == second.headers["etag"] and etag.startswith('"')
    assert first.headers["x-cache-tags"] == "artifacts,activity"
    assert first.headers["x-data-as-of"].endswith("Z")
    not_modified = invoke("get", q, {**admin.headers, "If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.raw["body"] == ""
    assert not_modified.headers["etag"] == etag
    bypass = invoke("get", q, {**admin.headers, "X-Bypass-Cache": "1"})
    assert bypass.status == 200 and bypass.body == first.body
    # another scope: another ETag, even for the same body
    other_admin = world.profile(roles=["admin"])
    assert invoke("get", q, other_admin.headers).headers["etag"] != etag
    # a refresh that changes the data changes the ETag and X-Data-As-Of
    world.session(scene["member"], "2025-05-09T10:00:00")
    assert invoke("refresh", None, admin.headers).status == 200
    changed = invoke("get", q, {**admin.headers, "If-None-Match": etag})
    assert changed.status == 200 and changed.headers["etag"] != etag
    assert changed.headers["x-data-as-of"] > first.headers["x-data-as-of"]


def test_search_etag(invoke: Any, scene: dict[str, Any]) -> None:
    admin, q = scene["admin"], {"department_ids": [scene["dept"]], "page_size": 5}
    res = invoke("search", q, admin.headers)
    assert res.headers["x-cache-tags"] == "artifacts,activity,list"
    assert invoke("search", q, {**admin.headers, "If-None-Match": res.headers["etag"]}).status == 304
    assert invoke("search", {**q, "page": 1}, admin.headers).headers["etag"] != res.headers["etag"]


def test_api_connections_plan_for_cached_reads_and_bulk_work_as_the_server(invoke: Any, scene: dict[str, Any]) -> None:
    """The container's connection is set for short reads (serial plans, pages in cache) by its role's defaults, with
    no SET of its own; refresh and export take PostgreSQL's planner values inside their own transaction only
    (db.BULK_PLANNER_SQL)."""
    assert invoke("get", {}, scene["admin"].headers).status == 200
    conn = db.connection()
    names = ("max_parallel_workers_per_gather", "random_page_cost")

    def planner() -> list[str]:
        return [conn.run("SELECT current_setting(:name)", name=name)[0][0] for name in names]

    server = [conn.run("SELECT boot_val FROM pg_settings WHERE name = :name", name=name)[0][0] for name in names]
    assert planner() == ["0", "1.1"] != server
    # an admin's window hashes 200,000 profiles at ten times Glow's size: room for it in memory, not on disk
    assert conn.run("SELECT current_setting('work_mem')")[0][0] == "64MB"
    sources = conn.run(
        "SELECT DISTINCT source FROM pg_settings WHERE name IN ('random_page_cost', 'statement_timeout',"
        " 'TimeZone', 'search_path', 'max_parallel_workers_per_gather', 'work_mem')"
    )
    assert sources == [["user"]]  # the role's defaults (ALTER ROLE ... SET), none set by the session
    with db.transaction(conn):
        conn.run(db.BULK_PLANNER_SQL)
        assert planner() == server
    assert planner() == ["0", "1.1"]


def test_the_daily_rollup_follows_changes_anywhere_in_history_and_rewrites_only_changed_months(
    invoke: Any, world: World, refresh: Any, conn: Any
) -> None:
    """activity_daily is maintained month by month (migration 0010): a back-dated insert, a move between two days
    of one month (which leaves the month's counts unchanged) and a delete are all caught; untouched months keep
    their rows as they were."""
    dept = world.department()
    admin = world.profile(roles=["admin"])
    ta = world.profile(roles=["member"], departments=[dept])
    moved = world.session(ta, "2024-05-10T12:00:00")
    world.session(ta, "2024-05-20T12:00:00")
    world.login(ta, "2024-02-03T08:00:00")
    refresh()

    def sessions_on(day: str) -> int:
        body = {"date_from": day, "date_to": day, "department_ids": [dept]}
        return int(invoke("get", body, admin.headers).body["sessions_count"])

    def row_version(day: str) -> Any:
        rows = conn.run(
            "SELECT xmin::text FROM activity.activity_daily"
            " WHERE profile_id = CAST(:p AS uuid) AND day = CAST(:d AS date)",
            p=ta.id,
            d=day,
        )
        return rows[0][0] if rows else None

    assert (sessions_on("2024-05-10"), sessions_on("2024-05-11")) == (1, 0)
    february = row_version("2024-02-03")
    assert february is not None
    # a move to the next day of the same month: the month's counts stay, its checksum does not
    conn.run("UPDATE sessions SET created_at = '2024-05-11T12:00:00Z' WHERE id = CAST(:s AS uuid)", s=moved)
    refresh()
    assert (sessions_on("2024-05-10"), sessions_on("2024-05-11")) == (0, 1)
    # a delete, and a back-dated insert into a month that had nothing
    conn.run("DELETE FROM sessions WHERE id = CAST(:s AS uuid)", s=moved)
    world.session(ta, "2023-11-30T23:59:59.999999")
    refresh()
    assert (sessions_on("2024-05-11"), sessions_on("2023-11-30"), sessions_on("2024-05-20")) == (0, 1, 1)
    # February's row was never rewritten: only the changed months were
    assert row_version("2024-02-03") == february
