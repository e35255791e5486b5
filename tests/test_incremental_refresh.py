"""The schedule's light pass: after it, get and search equal straightforward SQL over the base tables, except for
the rows the contract lets wait for the next full pass (an event time and, where there is one, an updated_at both
more than 24 hours in the past), which may or may not be counted yet; after a full pass everything is exact.
Random sequences of inserts (now, in the past, back-dated), session updates, problem deletions and refreshes of
both kinds, as the runtime user would run them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activity_dev.events import scheduled_event
from glow_activity import db
from glow_activity.refresh import ROLLUPS, Pass, refresh_views

NOW = datetime.now(UTC)

# when an event happened: in the last 20 hours (or an hour ahead), or 2 to 60 days ago
recent = st.integers(-3600, 20 * 3600).map(lambda s: NOW - timedelta(seconds=s))
old = st.integers(2 * 86400, 60 * 86400).map(lambda s: NOW - timedelta(seconds=s))
instant = st.one_of(recent, old)
who = st.integers(0, 2)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("session"), who, instant, st.booleans(), st.booleans()),  # ..., active, updated now
        st.tuples(st.just("login"), who, instant),
        st.tuples(st.just("grant"), who, instant, st.booleans()),  # ..., emulation
        st.tuples(st.just("problem"), who, instant),
        st.tuples(st.just("delete problem"), st.integers(0, 50)),
        st.tuples(st.just("update session"), st.integers(0, 50)),  # counters and active, updated_at now
        st.tuples(st.just("light refresh")),
        st.tuples(st.just("full refresh")),
    ),
    min_size=1,
    max_size=18,
)

END = datetime(9999, 1, 1, tzinfo=UTC)
# Each of the department's profiles' counts in [lo, hi) straight from the base tables, leaving out the rows in :skip
PER_PROFILE_SQL = """
SELECT p.profile_id::text,
  (SELECT count(*) FROM sessions x WHERE x.profile_id = p.profile_id AND x.created_at >= :lo AND x.created_at < :hi
     AND x.id <> ALL(CAST(:skip AS uuid[]))),
  (SELECT count(*) FROM logins x WHERE x.profile_id = p.profile_id AND x.logged_in_at >= :lo AND x.logged_in_at < :hi
     AND x.id <> ALL(CAST(:skip AS uuid[]))),
  (SELECT count(*) FROM grants x WHERE x.profile_id = p.profile_id AND x.created_at >= :lo AND x.created_at < :hi
     AND x.id <> ALL(CAST(:skip AS uuid[]))),
  (SELECT count(*) FROM grants x WHERE x.profile_id = p.profile_id AND x.created_at >= :lo AND x.created_at < :hi
     AND x.kind = 'emulation' AND x.id <> ALL(CAST(:skip AS uuid[]))),
  (SELECT count(*) FROM problems x WHERE x.profile_id = p.profile_id AND x.created_at >= :lo AND x.created_at < :hi
     AND x.id <> ALL(CAST(:skip AS uuid[])))
FROM profile_departments p WHERE p.department_id = :dept
"""
# the date-range facet: the first and last UTC day with a session or login of any visible profile (everyone's)
ACTIVE_DAYS_SQL = """
SELECT min(day), max(day) FROM (
    SELECT (x.created_at AT TIME ZONE 'UTC')::date AS day FROM sessions x JOIN profiles p ON p.id = x.profile_id
    WHERE p.deleted_at IS NULL
    UNION ALL
    SELECT (x.logged_in_at AT TIME ZONE 'UTC')::date FROM logins x JOIN profiles p ON p.id = x.profile_id
    WHERE p.deleted_at IS NULL) active
"""
FIELDS = ("sessions", "logins", "grants", "emulations", "problems")


@pytest.fixture
def as_runtime(runtime_url: str) -> Iterator[Callable[[bool], None]]:
    """A refresh as the functions run it: as the LOGIN member of activity_runtime, a light or a full pass."""
    connection = db.open_connection(db.params_from_url(runtime_url))
    assert connection.run("SELECT current_user")[0][0] != "postgres"

    def run(full_pass: bool) -> None:
        refresh_views(connection, "schedule", kind=Pass.FULL if full_pass else Pass.LIGHT)

    yield run
    connection.close()


@dataclass
class Story:
    world: World
    dept: str
    admin: Any
    people: list[Any]
    sessions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    may_lag: set[str] = field(default_factory=set)  # rows a light pass need not count yet


def windows() -> list[tuple[dict[str, str], datetime, datetime]]:
    """(get's window fields, [lo, hi)): all time, the last two days, an old stretch with its ends inside days."""
    today = NOW.date()
    days_ago = [(today - timedelta(days=d)).isoformat() for d in (1, 40)]
    old_lo, old_hi = NOW - timedelta(days=45, hours=5), NOW - timedelta(days=3, hours=7)
    return [
        ({}, datetime(1, 1, 1, tzinfo=UTC), END),
        ({"date_from": days_ago[0]}, datetime.fromisoformat(days_ago[0]).replace(tzinfo=UTC), END),
        (
            {"date_from": old_lo.isoformat(), "date_to": old_hi.isoformat()},
            old_lo,
            old_hi,
        ),
    ]


# What activity_platform_daily must hold (an admin's unfiltered search counts from it): each day's sums over the
# profiles it does not leave out; and what it holds, but for days whose sums are all zero (a profile that left
# took with it all of a day's rows)
PLATFORM_DAYS_SQL = """
SELECT day::text, sum(sessions)::bigint, sum(active_sessions)::bigint, sum(logins)::bigint, sum(grants)::bigint,
       sum(emulations)::bigint, sum(problems)::bigint
FROM activity.activity_daily d
WHERE NOT EXISTS (SELECT 1 FROM activity.activity_platform_left_out o WHERE o.profile_id = d.profile_id)
GROUP BY day ORDER BY day"""
HELD_PLATFORM_DAYS_SQL = """
SELECT day::text, sessions, active_sessions, logins, grants, emulations, problems
FROM activity.activity_platform_daily WHERE (sessions, active_sessions, logins, grants, emulations, problems)
      IS DISTINCT FROM (0, 0, 0, 0, 0, 0)
ORDER BY day"""
# an admin's unfiltered search total: every session in [lo, hi) of a profile not deleted
EVERYONES_SESSIONS_SQL = """
SELECT count(*) FROM sessions s JOIN profiles p ON p.id = s.profile_id
WHERE p.deleted_at IS NULL AND s.created_at >= :lo AND s.created_at < :hi"""


def check(story: Story, invoke: Any, conn: Any) -> None:
    assert conn.run(HELD_PLATFORM_DAYS_SQL) == conn.run(PLATFORM_DAYS_SQL)
    for fields, lo, hi in windows():
        body = {"department_ids": [story.dept], **fields}
        got = invoke("get", body, story.admin.headers)
        assert got.status == 200, got.body
        per_profile = conn.run(PER_PROFILE_SQL, dept=story.dept, lo=lo, hi=hi, skip=sorted(story.may_lag))
        with_lagging = conn.run(PER_PROFILE_SQL, dept=story.dept, lo=lo, hi=hi, skip=[])
        exact, lagging = (
            [sum(row[1 + i] for row in rows) for i in range(len(FIELDS))] for rows in (per_profile, with_lagging)
        )
        summary = got.body["profile_summary"]
        counted = {
            "sessions": got.body["sessions_count"],
            "logins": got.body["logins_count"],
            "grants": sum(row["grants_count"] for row in summary),
            "emulations": got.body["emulations_count"],
            "problems": sum(row["problems_count"] for row in summary),
        }
        for name, low, high in zip(FIELDS, exact, lagging, strict=True):
            assert low <= counted[name] <= high, (name, fields, counted[name], low, high)
        total = invoke("search", {**body, "page_size": 1}, story.admin.headers).body["total_count"]
        assert exact[0] <= total <= lagging[0]
        if not story.may_lag:  # nothing may lag: each profile's counts, and the date-range facet, are exact too
            listed = ("sessions", "logins", "grants", "problems")
            assert {r["profile_id"]: [r[f"{k}_count"] for k in listed] for r in summary} == {
                row[0]: [row[1 + FIELDS.index(k)] for k in listed] for row in per_profile if sum(row[1:]) > 0
            }
            facets = got.body["analytics"]
            assert [facets["date_range_earliest"], facets["date_range_latest"]] == [
                d.isoformat() if d else None for d in conn.run(ACTIVE_DAYS_SQL)[0]
            ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(steps=operations)
def test_after_any_refresh_get_and_search_are_exact_but_for_what_may_lag(
    invoke: Any, conn: Any, as_runtime: Callable[[bool], None], steps: list[Any]
) -> None:
    world = World(conn)
    dept = world.department()
    story = Story(world, dept, world.profile(roles=["admin"]), [world.profile(departments=[dept]) for _ in range(3)])
    as_runtime(True)  # a full pass: this story starts from exact rollups
    for step in steps:
        kind, *args = step
        if kind == "session":
            person, at, active, updated_now = args
            updated = NOW if updated_now else at + timedelta(minutes=5)
            sid = world.session(story.people[person], at, active=active, updated_at=updated)
            story.sessions.append(sid)
            if at < NOW - timedelta(days=1) and updated < NOW - timedelta(days=1):
                story.may_lag.add(sid)
        elif kind in ("login", "grant"):
            person, at, *emulation = args
            if kind == "login":
                rid = world.login(story.people[person], at)
            else:
                rid = world.grant(story.people[person], at, kind="emulation" if emulation[0] else "access")
            if at < NOW - timedelta(days=1):
                story.may_lag.add(rid)
        elif kind == "problem":
            person, at = args
            story.problems.append(world.problem(story.people[person], at))  # never lags: problems are counted
        elif kind == "delete problem" and story.problems:
            gone = story.problems.pop(args[0] % len(story.problems))
            conn.run("DELETE FROM problems WHERE id = CAST(:id AS uuid)", id=gone)
        elif kind == "update session" and story.sessions:
            sid = story.sessions[args[0] % len(story.sessions)]
            conn.run(
                "UPDATE sessions SET active = NOT active, run_count = run_count + 1, message_count = message_count + 2,"
                " updated_at = now() WHERE id = CAST(:id AS uuid)",
                id=sid,
            )
            story.may_lag.discard(sid)  # updated now: counted by the next refresh, whatever its kind
        elif kind == "light refresh":
            as_runtime(False)
            check(story, invoke, conn)
        elif kind == "full refresh":
            as_runtime(True)
            story.may_lag.clear()
            check(story, invoke, conn)
    # whatever came before, a full pass leaves everything exact
    as_runtime(True)
    story.may_lag.clear()
    check(story, invoke, conn)


def test_a_back_dated_row_waits_for_the_full_pass_which_the_schedule_runs_daily(
    invoke: Any, conn: Any, as_runtime: Callable[[bool], None], world: World
) -> None:
    dept = world.department()
    admin = world.profile(roles=["admin"])
    ta = world.profile(roles=["member"], departments=[dept])
    as_runtime(True)
    body = {"department_ids": [dept]}

    def logins() -> int:
        return int(invoke("get", body, admin.headers).body["logins_count"])

    # GIVEN a login written now with a time three days ago, and one of ten minutes ago
    world.login(ta, NOW - timedelta(days=3))
    world.login(ta, NOW - timedelta(minutes=10))
    # WHEN the schedule runs with a full pass recent  THEN a light pass counts the recent one only
    assert invoke("refresh", event=scheduled_event()).raw["success"] is True
    assert conn.run("SELECT full_pass FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [[False]]
    assert logins() == 1
    # WHEN no full pass succeeded for a day  THEN the schedule's next run is one, and counts the back-dated login
    conn.run("UPDATE activity.refresh_runs SET finished_at = finished_at - interval '1 day' WHERE full_pass")
    assert invoke("refresh", event=scheduled_event()).raw["success"] is True
    assert conn.run("SELECT full_pass FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [[True]]
    assert logins() == 2
    # AND an admin's refresh is always a full pass
    world.login(ta, NOW - timedelta(days=5))
    assert invoke("refresh", {}, admin.headers).status == 200
    assert conn.run("SELECT full_pass FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [[True]]
    assert logins() == 3


def test_an_admins_total_follows_profiles_deleted_or_restored_since_the_last_pass(
    invoke: Any, conn: Any, as_runtime: Callable[[bool], None], world: World
) -> None:
    """activity_platform_daily leaves out the profiles deleted as of its last update (activity_platform_left_out): one
    deleted or restored since is set right from its own rollup rows at once, and the next pass that changes anything
    takes it in."""
    admin = world.profile(roles=["admin"])
    leaving, returning = world.profile(), world.profile(deleted=True)
    world.session(leaving, NOW - timedelta(days=41, hours=3))  # among the running totals of a long window
    world.session(leaving, NOW - timedelta(days=1, hours=1))  # a day at the edge of one
    world.session(returning, NOW - timedelta(days=1, hours=5))  # (other counts than the first's: none cancels out)
    as_runtime(True)

    def exact() -> None:
        for fields, lo, hi in windows():
            total = invoke("search", {**fields, "page_size": 1}, admin.headers).body["total_count"]
            assert total == conn.run(EVERYONES_SESSIONS_SQL, lo=lo, hi=hi)[0][0], fields
        assert conn.run(HELD_PLATFORM_DAYS_SQL) == conn.run(PLATFORM_DAYS_SQL)

    def left_out() -> set[str]:
        return {
            r[0]
            for r in conn.run(
                "SELECT profile_id::text FROM activity.activity_platform_left_out"
                " WHERE profile_id = ANY(CAST(:p AS uuid[]))",
                p=[leaving.id, returning.id],
            )
        }

    exact()
    assert left_out() == {returning.id}
    # WHEN one profile is deleted and the other restored after the pass  THEN the totals follow at once
    conn.run("UPDATE profiles SET deleted_at = now() WHERE id = CAST(:p AS uuid)", p=leaving.id)
    conn.run("UPDATE profiles SET deleted_at = NULL WHERE id = CAST(:p AS uuid)", p=returning.id)
    exact()
    # WHEN a light pass runs with nothing else changed  THEN it does nothing, and the totals still follow
    as_runtime(False)
    assert left_out() == {returning.id}
    exact()
    # WHEN a light pass has something to do  THEN it takes the two in: their rows of every day moved, exactly
    world.login(admin, NOW - timedelta(minutes=1))
    as_runtime(False)
    assert left_out() == {leaving.id}
    exact()


def test_a_light_pass_rewrites_only_the_days_that_changed(
    conn: Any, as_runtime: Callable[[bool], None], world: World
) -> None:
    ta = world.profile(roles=["member"])
    world.session(ta, NOW - timedelta(hours=2))
    world.login(ta, NOW - timedelta(days=20))
    as_runtime(True)

    def versions() -> dict[str, str]:
        rows = conn.run(
            "SELECT 'daily ' || day::text, xmin::text FROM activity.activity_daily WHERE profile_id = CAST(:p AS uuid)"
            " UNION ALL SELECT 'total', xmin::text FROM activity.activity_profile_totals"
            " WHERE profile_id = CAST(:p AS uuid)",
            p=ta.id,
        )
        return dict((r[0], r[1]) for r in rows)

    before = versions()
    # WHEN nothing of this profile changed  THEN a light pass leaves its rows as they were
    as_runtime(False)
    assert versions() == before
    # WHEN a login arrives today  THEN only today's row and the totals are rewritten
    world.login(ta, NOW - timedelta(minutes=1))
    as_runtime(False)
    after = versions()
    old_day = f"daily {(NOW - timedelta(days=20)).date().isoformat()}"
    assert after[old_day] == before[old_day]
    assert after["total"] != before["total"]


def test_a_light_pass_sees_old_problems_come_and_go_and_old_sessions_updated_now(
    invoke: Any, conn: Any, as_runtime: Callable[[bool], None], world: World
) -> None:
    dept = world.department()
    admin = world.profile(roles=["admin"])
    ta = world.profile(roles=["member"], departments=[dept])
    flagged = world.problem(ta, NOW - timedelta(days=30))
    as_runtime(True)

    def counts() -> tuple[int, int]:
        body = invoke("get", {"department_ids": [dept]}, admin.headers).body
        return body["sessions_count"], sum(row["problems_count"] for row in body["profile_summary"])

    assert counts() == (0, 1)
    # WHEN an old problem is deleted, another is written back-dated, and a session of last month is written with
    # updated_at now
    conn.run("DELETE FROM problems WHERE id = CAST(:id AS uuid)", id=flagged)
    world.problem(ta, NOW - timedelta(days=40))
    world.problem(ta, NOW - timedelta(days=41))
    world.session(ta, NOW - timedelta(days=35), updated_at=NOW)
    as_runtime(False)
    # THEN the light pass counts all of it
    assert counts() == (1, 2)


def test_the_date_range_follows_the_first_and_last_active_days_both_ways(
    invoke: Any, conn: Any, as_runtime: Callable[[bool], None], world: World
) -> None:
    """Totals are kept by adding what changed; their first and last active days are summed again from the months
    when the day they held may have gone (here: the latest session anywhere, deleted)."""
    admin = world.profile(roles=["admin"])
    ta = world.profile(roles=["member"])

    def latest() -> str | None:
        value = invoke("get", {}, admin.headers).body["analytics"]["date_range_latest"]
        return str(value) if value else None

    as_runtime(True)
    before = latest()
    tomorrow, earlier = NOW + timedelta(days=1), NOW - timedelta(days=3)
    last = world.session(ta, tomorrow)
    world.session(ta, earlier, updated_at=NOW)  # another month's, counted by the light pass through updated_at
    as_runtime(False)
    assert latest() == tomorrow.date().isoformat()
    conn.run("DELETE FROM sessions WHERE id = CAST(:id AS uuid)", id=last)
    as_runtime(False)  # the deleted session's day is one a light pass counts again
    assert latest() == max(day for day in (before, earlier.date().isoformat()) if day)


def test_a_full_pass_builds_rollups_that_hold_nothing_and_they_are_exact(
    invoke: Any, conn: Any, as_runtime: Callable[[bool], None], world: World
) -> None:
    """The first refresh after loading data finds all of history changed and takes the whole-table path (more than
    half of the months the rollups hold are new): what it builds from nothing equals the base tables."""
    dept = world.department()
    story = Story(world, dept, world.profile(roles=["admin"]), [world.profile(departments=[dept]) for _ in range(3)])
    for i, who in enumerate(story.people):
        world.session(who, NOW - timedelta(days=40 * i + 1), active=i == 1)
        world.login(who, NOW - timedelta(days=95 * i, hours=3))
        world.grant(who, NOW - timedelta(days=33 * i + 2), kind="emulation" if i else "access")
        world.problem(who, NOW - timedelta(days=61 * i + 5))
    for table in ROLLUPS:
        conn.run(f"DELETE FROM activity.{table}")
    as_runtime(True)
    check(story, invoke, conn)


def test_the_first_build_goes_a_month_per_call_and_ends_exact(
    invoke: Any, conn: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollups that hold nothing while the platform has events are built a month per transaction (rollup_build): a
    call whose time is up stops between two steps and the next goes on. Meanwhile readers keep the last refresh's
    X-Data-As-Of, a non-admin's call never builds, an admin's goes on one step and answers 503; at the end every count
    is exact, and the schedule's next run is a full pass."""
    from glow_activity import rollup_build
    from glow_activity.settings import get_settings

    monkeypatch.setattr(rollup_build, "STEP_MARGIN_SECONDS", 10**6)  # every call's time is up after one step
    monkeypatch.setenv("REFRESH_MIN_INTERVAL_SECONDS", "0")  # a member's call is not answered by a recent refresh
    get_settings.cache_clear()  # read again with these (every test starts with them read afresh: conftest)
    dept = world.department()
    story = Story(world, dept, world.profile(roles=["admin"]), [world.profile(departments=[dept]) for _ in range(3)])
    member = world.profile(roles=["member"], departments=[dept])
    world.session(world.profile(deleted=True), NOW - timedelta(days=3))
    for i, who in enumerate(story.people):
        world.session(who, NOW - timedelta(days=40 * i + 1), active=i == 1)
        world.login(who, NOW - timedelta(days=95 * i, hours=3))
        world.grant(who, NOW - timedelta(days=33 * i + 2), kind="emulation" if i else "access")
        world.problem(who, NOW - timedelta(days=61 * i + 5))
    # GIVEN rollups that hold nothing (as on a database loaded after migrating)
    for table in ROLLUPS:
        conn.run(f"DELETE FROM activity.{table}")
    as_of = invoke("get", {"department_ids": [dept]}, story.admin.headers).headers["x-data-as-of"]
    months = len(rollup_build.months_left(conn))
    assert months >= 7
    # the running totals in three steps or so (every profile with events in the database has some)
    profiles = conn.run("SELECT count(DISTINCT profile_id) FROM activity.activity_events WHERE profile_id IS NOT NULL")
    monkeypatch.setattr(rollup_build, "RUNNING_BATCH", math.ceil(profiles[0][0] / 3))
    batches = math.ceil(profiles[0][0] / rollup_build.RUNNING_BATCH)
    assert batches >= 2

    def built() -> int:
        return int(conn.run("SELECT count(*) FROM activity.rollup_build")[0][0])

    # WHEN the schedule runs  THEN it writes one month and answers with the last refresh
    assert invoke("refresh", event=scheduled_event()).raw["success"] is True
    assert built() == 1
    # WHEN a member presses refresh  THEN the last refresh answers, and nothing is built
    assert invoke("refresh", {}, member.headers).status == 200
    assert built() == 1
    # WHEN an admin does  THEN the call goes on one step and says the build goes on, and when to try again
    busy = invoke("refresh", {}, story.admin.headers)
    assert busy.status == 503 and busy.headers["retry-after"] == "300", busy.body
    assert "built for the first time" in busy.body["message"] and built() == 2
    assert invoke("get", {"department_ids": [dept]}, story.admin.headers).headers["x-data-as-of"] == as_of
    # WHEN the schedule keeps running  THEN each run takes a step: the months left, the running totals a batch of
    # profiles at a time, then the totals
    runs = 0
    while rollup_build.needed(conn):
        invoke("refresh", event=scheduled_event())
        runs += 1
    assert runs == months - 2 + batches + 1
    assert conn.run("SELECT built, full_pass FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [[True, False]]
    # AND every profile's sums a day leave out the profiles deleted when it began: an admin's total sets none right
    assert conn.run("SELECT profile_id FROM activity.activity_platform_left_out ORDER BY 1") == conn.run(
        "SELECT id FROM profiles WHERE deleted_at IS NOT NULL ORDER BY 1"
    )
    # AND everything is exact, and X-Data-As-Of moved on
    check(story, invoke, conn)
    assert invoke("get", {"department_ids": [dept]}, story.admin.headers).headers["x-data-as-of"] != as_of
    # AND the schedule's next run is a full pass (a month written early may have changed before the build ended)
    invoke("refresh", event=scheduled_event())
    assert conn.run("SELECT built, full_pass FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [[False, True]]
