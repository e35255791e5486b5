"""Property: right after a refresh, get equals the contract's definitions computed straight from the base
tables, for random data and random windows (date and date-time bounds, ends inside days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

from factories import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BASE = datetime(2025, 3, 1, tzinfo=UTC)
SPAN_SECONDS = 6 * 24 * 3600

instants = st.integers(min_value=0, max_value=SPAN_SECONDS).map(lambda s: BASE + timedelta(seconds=s))
micro_instants = st.builds(lambda at, us: at + timedelta(microseconds=us), instants, st.integers(0, 999_999))


class Bound(NamedTuple):
    """A bound as sent, and the instants the contract says it stands for: as `date_from` (inclusive) and as
    `date_to` (given here as the exclusive instant after it). Worked out from the generated value, not by the
    service's own parser."""

    text: str
    as_from: datetime
    as_to: datetime


def _day(d: int, base: datetime = BASE) -> Bound:
    start = base + timedelta(days=d)  # a date: from 00:00 UTC that day, to the whole day included
    return Bound(start.date().isoformat(), start, start + timedelta(days=1))


def _instant(at: datetime, text: str) -> Bound:  # a date-time: that instant, inclusive either way
    return Bound(text, at, at + timedelta(microseconds=1))


def bound() -> st.SearchStrategy[Bound | None]:
    return st.one_of(
        st.none(),
        st.integers(-1, 7).map(_day),
        micro_instants.map(lambda t: _instant(t, t.isoformat().replace("+00:00", "Z"))),
        micro_instants.map(lambda t: _instant(t, t.replace(tzinfo=None).isoformat())),  # no offset: UTC
        micro_instants.map(lambda t: _instant(t, t.astimezone(timezone(timedelta(hours=-5))).isoformat())),
    )


EVER, NEVER = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def contract_window(date_from: Bound | None, date_to: Bound | None) -> dict[str, datetime] | None:
    """[lo, hi) per the contract, or None where it says 422 (date_from after date_to)."""
    lo = date_from.as_from if date_from else EVER
    hi = date_to.as_to if date_to else NEVER
    return None if lo >= hi else {"lo": lo, "hi": hi}


def text(b: Bound | None) -> str | None:
    return b.text if b else None


events = st.lists(
    st.tuples(
        st.sampled_from(["session", "login", "grant", "emulation", "problem"]), st.integers(0, 2), micro_instants
    ),
    max_size=25,
)

REFERENCE_SQL = """
WITH scope AS (
    SELECT p.id FROM profiles p WHERE p.deleted_at IS NULL
      AND EXISTS (SELECT 1 FROM profile_departments d WHERE d.profile_id = p.id AND d.department_id = :dept)
), per AS (
    SELECT s.id,
      (SELECT count(*) FROM sessions x WHERE x.profile_id = s.id AND x.created_at >= :lo AND x.created_at < :hi) ss,
      (SELECT count(*) FROM logins x WHERE x.profile_id = s.id AND x.logged_in_at >= :lo AND x.logged_in_at < :hi) ll,
      (SELECT count(*) FROM grants x WHERE x.profile_id = s.id AND x.created_at >= :lo AND x.created_at < :hi) gg,
      (SELECT count(*) FROM grants x WHERE x.profile_id = s.id AND x.kind = 'emulation'
         AND x.created_at >= :lo AND x.created_at < :hi) ee,
      (SELECT count(*) FROM problems x WHERE x.profile_id = s.id AND x.created_at >= :lo AND x.created_at < :hi) pp
    FROM scope s
)
SELECT id::text, ss, ll, gg, ee, pp FROM per
"""


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=events, date_from=bound(), date_to=bound())
def test_get_after_refresh_equals_base_table_sql(
    invoke: Any, conn: Any, refresh: Any, data: list[Any], date_from: Bound | None, date_to: Bound | None
) -> None:
    world = World(conn)
    dept = world.department()
    admin = world.profile(roles=["admin"])
    people = [world.profile(departments=[dept]) for _ in range(3)]
    for kind, who, at in data:
        if kind == "session":
            world.session(people[who], at)
        elif kind == "login":
            world.login(people[who], at)
        elif kind in ("grant", "emulation"):
            world.grant(people[who], at, kind="emulation" if kind == "emulation" else "access")
        else:
            world.problem(people[who], at)
    refresh()
    body = {"department_ids": [dept], "date_from": text(date_from), "date_to": text(date_to)}
    window = contract_window(date_from, date_to)
    if window is None:
        assert invoke("get", body, admin.headers).status == 422
        return
    res = invoke("get", body, admin.headers)
    assert res.status == 200, res.body
    got = res.body
    rows = conn.run(REFERENCE_SQL, dept=dept, **window)
    expected = {pid: (ss, ll, gg, pp) for pid, ss, ll, gg, ee, pp in rows}
    assert got["sessions_count"] == sum(r[1] for r in rows)
    assert got["logins_count"] == sum(r[2] for r in rows)
    assert got["emulations_count"] == sum(r[4] for r in rows)
    assert got["active_profiles_count"] == sum(1 for r in rows if r[1] + r[2] > 0)
    listed = {
        r["profile_id"]: (r["sessions_count"], r["logins_count"], r["grants_count"], r["problems_count"])
        for r in got["profile_summary"]
    }
    assert listed == {pid: counts for pid, counts in expected.items() if sum(counts) > 0}


sessions_data = st.lists(st.tuples(st.integers(0, 2), micro_instants, st.booleans()), max_size=30)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=sessions_data, date_from=bound(), date_to=bound(), active=st.sampled_from([None, True, False]))
def test_search_total_count_equals_its_rows(
    invoke: Any,
    conn: Any,
    refresh: Any,
    data: list[Any],
    date_from: Bound | None,
    date_to: Bound | None,
    active: bool | None,
) -> None:
    world = World(conn)
    dept = world.department()
    admin = world.profile(roles=["admin"])
    people = [world.profile(departments=[dept]) for _ in range(3)]
    for who, at, is_active in data:
        world.session(people[who], at, active=is_active)
    refresh()
    body = {
        "department_ids": [dept],
        "date_from": text(date_from),
        "date_to": text(date_to),
        "active": active,
        "page_size": 500,
    }
    window = contract_window(date_from, date_to)
    if window is None:
        assert invoke("search", body, admin.headers).status == 422
        return
    res = invoke("search", body, admin.headers)
    assert res.status == 200, res.body
    in_window = (
        "s.created_at >= :lo AND s.created_at < :hi"
        " AND (CAST(:active AS boolean) IS NULL OR s.active = CAST(:active AS boolean))"
    )
    expected = conn.run(
        "SELECT s.id::text FROM sessions s JOIN profile_departments d ON d.profile_id = s.profile_id"
        f" WHERE d.department_id = :dept AND {in_window} ORDER BY s.created_at DESC, s.id DESC",
        dept=dept,
        active=active,
        **window,
    )
    assert res.body["total_count"] == len(res.body["data"]) == len(expected)
    # the same window by cursor, three rows a page: every row once, in order
    walked, page = [], invoke("search", {**body, "page_size": 3}, admin.headers).body
    walked += [r["session_id"] for r in page["data"]]
    while page["next_cursor"]:
        page = invoke("search", {**body, "page_size": 3, "cursor": page["next_cursor"]}, admin.headers).body
        walked += [r["session_id"] for r in page["data"]]
    assert walked == [r[0] for r in expected]
    # everyone's total (an admin without filters): the rollups less the deleted profiles
    unfiltered = {k: v for k, v in body.items() if k != "department_ids"}
    everyone = invoke("search", {**unfiltered, "page_size": 1}, admin.headers).body
    counted = conn.run(
        "SELECT count(*) FROM sessions s JOIN profiles p ON p.id = s.profile_id"
        f" WHERE p.deleted_at IS NULL AND {in_window}",
        active=active,
        **window,
    )
    assert everyone["total_count"] == counted[0][0]


RECENT_BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=200)
recent_instants = st.integers(0, 200 * 24 * 3600).map(lambda s: RECENT_BASE + timedelta(seconds=s, microseconds=s % 7))
recent_bounds = st.one_of(
    st.none(),
    st.integers(-5, 205).map(lambda d: _day(d, RECENT_BASE)),
    recent_instants.map(lambda t: _instant(t, t.isoformat().replace("+00:00", "Z"))),
)
recent_events = st.lists(
    st.tuples(
        st.sampled_from(["session", "login", "grant", "emulation", "problem"]), st.integers(0, 2), recent_instants
    ),
    max_size=40,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=recent_events, date_from=recent_bounds, date_to=recent_bounds)
def test_get_is_exact_across_months_and_the_recent_rollup(
    invoke: Any, conn: Any, refresh: Any, data: list[Any], date_from: Bound | None, date_to: Bound | None
) -> None:
    """Windows over the last 200 days touch whole months, activity_daily and partial days."""
    test_get_after_refresh_equals_base_table_sql.hypothesis.inner_test(  # type: ignore[attr-defined]
        invoke, conn, refresh, data, date_from, date_to
    )
