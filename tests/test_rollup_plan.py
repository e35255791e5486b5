"""The window plan splits any [lo, hi) into parts that never overlap and together cover it exactly: every
event the rollups hold is counted once inside the window and never outside, and an event that came after
the refresh (in the event tables only) at most once inside and never outside."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from glow_activity.rollups import DailyCoverage, month_start, plan_window, utc_day

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
    if plan.months is not None and in_rollups:  # type: ignore[attr-defined]
        lo, hi = plan.months  # type: ignore[attr-defined]
        month = month_start(utc_day(at))
        hits += (lo is None or month >= lo) and (hi is None or month < hi)
    for lo, hi in plan.daily_days:  # type: ignore[attr-defined]
        assert daily_from is not None and lo >= daily_from
        hits += in_rollups and lo <= utc_day(at) < hi
    for lo, hi in plan.minus_days:  # type: ignore[attr-defined]
        assert daily_from is not None
        hits -= in_rollups and lo <= utc_day(at) < hi
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


def test_a_window_up_to_today_takes_its_begun_month_whole_from_the_monthly_rollup() -> None:
    today = date(2026, 11, 27)
    lo = datetime(2026, 8, 29, tzinfo=UTC)
    hi = datetime(2026, 11, 28, tzinfo=UTC)
    plan = plan_window(lo, hi, DailyCoverage(date(2026, 8, 1), today))
    assert plan.months == (date(2026, 9, 1), date(2026, 12, 1))
    assert plan.daily_days == [(date(2026, 8, 29), date(2026, 9, 1))]
    # an event on a later day (a date in the future when the rollups were refreshed): November is counted whole
    # again, less its days from the 28th on (most of the month is in the window)
    later = plan_window(lo, hi, DailyCoverage(date(2026, 8, 1), date(2026, 11, 29)))
    assert later.months == (date(2026, 9, 1), date(2026, 12, 1))
    assert later.minus_days == [(date(2026, 11, 28), date(2026, 12, 1))]


def test_most_of_a_month_is_that_month_less_its_other_days() -> None:
    """A window from September 2 reads September whole (two running totals) less September 1, not 29 days."""
    plan = plan_window(
        datetime(2026, 9, 2, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
        DailyCoverage(date(2025, 1, 1), date(2026, 12, 1)),
    )
    assert plan.months == (date(2026, 9, 1), date(2027, 1, 1))
    assert plan.daily_days == [] and plan.minus_days == [(date(2026, 9, 1), date(2026, 9, 2))]
    # a short edge stays days
    short = plan_window(
        datetime(2026, 9, 25, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
        DailyCoverage(date(2025, 1, 1), date(2026, 12, 1)),
    )
    assert short.daily_days == [(date(2026, 9, 25), date(2026, 10, 1))] and short.minus_days == []
