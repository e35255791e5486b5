"""The window plan splits any [lo, hi) into parts that never overlap and together cover it exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from glow_activity.rollups import month_start, plan_window, utc_day

START = datetime(2024, 10, 1, tzinfo=UTC)
instants = st.integers(0, 500 * 24 * 3600 * 10).map(lambda ds: START + timedelta(microseconds=ds * 100_000))
midnights = st.integers(0, 500).map(lambda d: START + timedelta(days=d))
bounds = st.one_of(st.none(), instants, midnights)
recent = st.one_of(st.none(), st.integers(0, 520).map(lambda d: (START + timedelta(days=d)).date()))


def covered_by_plan(plan: object, at: datetime, recent_from: date | None) -> int:
    """How many parts of the plan count an event at `at` (must be 1 inside the window, 0 outside)."""
    hits = 0
    if plan.open_window:  # type: ignore[attr-defined]
        return 1
    if plan.months is not None:  # type: ignore[attr-defined]
        lo, hi = plan.months  # type: ignore[attr-defined]
        month = month_start(utc_day(at))
        hits += (lo is None or month >= lo) and (hi is None or month < hi)
    for lo, hi in plan.recent_days:  # type: ignore[attr-defined]
        assert recent_from is not None and lo >= recent_from
        hits += lo <= utc_day(at) < hi
    for lo, hi in plan.event_ranges:  # type: ignore[attr-defined]
        hits += (lo is None or at >= lo) and (hi is None or at < hi)
    return hits


@settings(max_examples=3000, deadline=None)
@given(lo=bounds, hi=bounds, recent_from=recent, events=st.lists(instants, min_size=1, max_size=40))
def test_every_instant_is_counted_once_inside_and_never_outside(
    lo: datetime | None, hi: datetime | None, recent_from: date | None, events: list[datetime]
) -> None:
    if lo is not None and hi is not None and lo >= hi:
        return
    plan = plan_window(lo, hi, recent_from)
    probes = [*events]
    for edge in (lo, hi):  # instants right at and around the bounds and their days
        if edge is not None:
            probes += [edge, edge - timedelta(microseconds=1), edge + timedelta(microseconds=1)]
            day = datetime.combine(utc_day(edge), datetime.min.time(), tzinfo=UTC)
            probes += [day, day - timedelta(microseconds=1), day + timedelta(days=1)]
    for at in probes:
        inside = (lo is None or at >= lo) and (hi is None or at < hi)
        assert covered_by_plan(plan, at, recent_from) == int(inside), (lo, hi, recent_from, at, plan)
