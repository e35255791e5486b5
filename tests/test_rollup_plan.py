"""The window plan splits any [lo, hi) into parts that never overlap and together cover it exactly: every
event the rollups hold is counted once inside the window and never outside, and an event that came after
the refresh (in the event tables only) at most once inside and never outside."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from glow_activity.rollups import DailyCoverage, plan_window, utc_day, week_start

START = datetime(2024, 10, 1, tzinfo=UTC)
instants = st.integers(0, 500 * 24 * 3600 * 10).map(lambda ds: START + timedelta(microseconds=ds * 100_000))
midnights = st.integers(0, 500).map(lambda d: START + timedelta(days=d))
bounds = st.one_of(st.none(), instants, midnights)
coverage = st.one_of(st.none(), st.integers(0, 520).map(lambda d: (START + timedelta(days=d)).date()))


def covered_by_plan(plan: object, at: datetime, daily_from: date | None, in_rollups: bool = True) -> int:
    """How many parts of the plan count an event at `at`; one that came after the refresh (`in_rollups`
    False) only by the parts that read the event tables."""
    hits = 0
    if plan.open_window:  # type: ignore[attr-defined]
        return int(in_rollups)
    if plan.running is not None and in_rollups:  # type: ignore[attr-defined]
        lo, hi = plan.running  # type: ignore[attr-defined]
        assert all(edge is None or edge.weekday() == 0 for edge in (lo, hi))  # week starts: rows that exist
        day = utc_day(at)  # the running totals hold what activity_daily holds: nothing before its first day
        hits += daily_from is not None and day >= daily_from and (lo is None or day >= lo) and (hi is None or day < hi)
    for lo, hi in plan.daily_days:  # type: ignore[attr-defined]
        assert daily_from is not None and lo >= daily_from
        hits += in_rollups and lo <= utc_day(at) < hi
    for lo, hi in plan.minus_days:  # type: ignore[attr-defined]
        assert daily_from is not None
        hits -= in_rollups and lo <= utc_day(at) < hi
    # the rollups' parts together count exactly the plan's whole days (what activity_platform_daily answers for
    # every profile at once)
    days = plan.days  # type: ignore[attr-defined]
    assert hits == (in_rollups and days is not None and days[0] <= utc_day(at) < days[1]), (at, plan)
    for lo, hi in plan.event_ranges:  # type: ignore[attr-defined]
        hits += (lo is None or at >= lo) and (hi is None or at < hi)
    return hits


@settings(max_examples=5000, deadline=None)
@given(
    lo=bounds,
    hi=bounds,
    since=coverage,
    refreshed_at=st.one_of(st.none(), instants),
    events=st.lists(instants, min_size=1, max_size=40),
)
def test_every_instant_is_counted_once_inside_and_never_outside(
    lo: datetime | None, hi: datetime | None, since: date | None, refreshed_at: datetime | None, events: list[datetime]
) -> None:
    if lo is not None and hi is not None and lo >= hi:
        return
    probes = []
    for edge in (lo, hi):  # instants right at and around the bounds and their days
        if edge is not None:
            probes += [edge, edge - timedelta(microseconds=1), edge + timedelta(microseconds=1)]
            day = datetime.combine(utc_day(edge), datetime.min.time(), tzinfo=UTC)
            probes += [day, day - timedelta(microseconds=1), day + timedelta(days=1)]
    # the rollups as the refresh at `refreshed_at` left them: `events` (some dated after it: clocks differ)
    # and the probes up to then; the later probes came after it and are in the event tables only
    held = events + [at for at in probes if refreshed_at is None or at <= refreshed_at]
    late = [at for at in probes if refreshed_at is not None and at > refreshed_at]
    daily_days = sorted(utc_day(at) for at in held if since is not None and utc_day(at) >= since)
    coverage = DailyCoverage(daily_days[0], daily_days[-1]) if daily_days else DailyCoverage(None, None)
    plan = plan_window(lo, hi, coverage)
    for at in held:
        inside = (lo is None or at >= lo) and (hi is None or at < hi)
        assert covered_by_plan(plan, at, coverage.first_day) == int(inside), (lo, hi, coverage, at, plan)
    for at in late:
        inside = (lo is None or at >= lo) and (hi is None or at < hi)
        assert covered_by_plan(plan, at, coverage.first_day, in_rollups=False) <= int(inside), (lo, hi, at, plan)


def test_a_windows_edges_are_at_most_three_days_from_a_week_start() -> None:
    """90 days up to today (Monday 2026-12-07): the running totals from Monday 2026-09-07 to the last week the
    rollups hold, less the one day from there to the window's start; nothing after the last day is read."""
    today = date(2026, 12, 7)
    plan = plan_window(
        datetime(2026, 9, 8, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC), DailyCoverage(date(2024, 12, 7), today)
    )
    assert plan.running == (date(2026, 9, 7), None) and plan.last_week == today
    assert plan.minus_days == [(date(2026, 9, 7), date(2026, 9, 8))] and plan.daily_days == []
    # edges inside days: their whole days from Friday 09-04 to Thursday 11-05, the running totals from the next
    # Monday to the Monday after, plus the three days before the one and less the three days before the other
    plan = plan_window(
        datetime(2026, 9, 3, 10, tzinfo=UTC),
        datetime(2026, 11, 6, 15, tzinfo=UTC),
        DailyCoverage(date(2024, 1, 1), today),
    )
    assert plan.running == (date(2026, 9, 7), date(2026, 11, 9))
    assert plan.daily_days == [(date(2026, 9, 4), date(2026, 9, 7))]  # Friday to Sunday, added
    assert plan.minus_days == [(date(2026, 11, 6), date(2026, 11, 9))]  # Friday to Sunday, subtracted
    assert len(plan.event_ranges) == 2  # the two partial days


def test_a_week_or_less_reads_its_days_and_a_window_from_before_the_rollups_reads_no_week_before_them() -> None:
    coverage = DailyCoverage(date(2026, 3, 4), date(2026, 12, 7))
    short = plan_window(datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 9, 9, tzinfo=UTC), coverage)
    assert short.running is None and short.daily_days == [(date(2026, 9, 2), date(2026, 9, 9))]
    early = plan_window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC), coverage)
    assert early.event_ranges == [(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC))]
    assert early.running == (None, date(2026, 6, 1))  # Monday 2026-06-01; nothing lies before the first week
    assert week_start(date(2026, 6, 3)) == date(2026, 6, 1)
