"""Per-profile activity counts over any window, from the rollups where they can answer and from the event
tables where they cannot. The rollups are tables the refresh keeps (migrations/functions/refresh.sql).

A window [lo, hi) is split into
- its whole days, as the running totals at one week's start less those at another's -> activity_weekly_running
  (two rows a profile), give or take the at most three days between each edge and its nearest week start
                                                                              -> activity_daily
- every other instant     -> the event tables (partial days at the ends; days before the rollups' first)
and an open window reads activity_profile_totals. The parts never overlap, so right after a refresh the
sum equals the contract's definition for any window; the event-table parts are simply never stale.

Weeks start on Monday (PostgreSQL's date_trunc('week')). A window of a week or less reads its days alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from .auth import Caller
from .db import Connection, read_snapshot
from .models import ActivityFilters
from .scope import in_scope_conditions, is_everyone, not_deleted_sql
from .sql import Sql, bind

# Every count the rollups keep per profile (their columns); a reader asks for the ones it needs.
KINDS = ("sessions", "active_sessions", "logins", "grants", "emulations", "problems")

# Each event table: its time column and what one row adds to each kind. The same mapping as the refresh's view
# activity.activity_event_tally (migrations/views/event_tally.sql), written over the tables themselves: the
# partial days a window reads from them go through each table's own time index. test_exactness holds the two to
# the contract's definitions.
_EVENTS = (
    ("sessions", "created_at", {"sessions": "1", "active_sessions": "x.active::int"}),
    ("logins", "logged_in_at", {"logins": "1"}),
    ("grants", "created_at", {"grants": "1", "emulations": "(x.kind = 'emulation')::int"}),
    ("problems", "created_at", {"problems": "1"}),
)

WEEK = timedelta(days=7)
# A window of this many whole days or fewer reads them from activity_daily alone: two running rows a profile cost
# more than a week of days.
DAYS_ALONE = 7


def utc_day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def week_start(day: date) -> date:
    """The Monday of the day's week (date_trunc('week'))."""
    return day - timedelta(days=day.weekday())


def nearest_week_start(day: date) -> date:
    """The week start at most three days from the day."""
    monday = week_start(day)
    return monday if (day - monday).days <= 3 else monday + WEEK


@dataclass
class WindowPlan:
    open_window: bool = False
    # The rollups' days in [from, to), both week starts (None = open), read as the difference of two rows of
    # activity_weekly_running: the row of the week before `to` (of `last_week` when open) less the row of the
    # week before `from` (none when open).
    running: tuple[date | None, date | None] | None = None
    last_week: date | None = None  # the last week the rollups hold (None: they hold nothing)
    daily_days: list[tuple[date, date]] = field(default_factory=list)  # [from, to) days added
    minus_days: list[tuple[date, date]] = field(default_factory=list)  # [from, to) days subtracted
    event_ranges: list[tuple[datetime | None, datetime | None]] = field(default_factory=list)  # [from, to)
    # The whole days [from, to) the rollups answer: what the running, daily and minus parts add up to for each
    # profile (a sum over every profile reads them from activity_platform_daily instead). None when none.
    days: tuple[date, date] | None = None


class DailyCoverage(NamedTuple):
    """The first and last day with rows in activity_daily (both None when it is empty). It holds every event as
    of the last refresh, so none falls on a day before `first_day` or after `last_day`."""

    first_day: date | None
    last_day: date | None


NO_COVERAGE = DailyCoverage(None, None)


def plan_window(lo: datetime | None, hi: datetime | None, coverage: DailyCoverage = NO_COVERAGE) -> WindowPlan:
    """Split [lo, hi) (None = open) into non-overlapping parts, given the days activity_daily covers."""
    first, last = coverage
    if lo is None and hi is None:
        return WindowPlan(open_window=True)
    plan = WindowPlan(last_week=week_start(last) if last is not None else None)
    start: date | None = None
    if lo is not None:
        start = utc_day(lo) if lo == midnight(utc_day(lo)) else utc_day(lo) + timedelta(days=1)
    end = utc_day(hi) if hi is not None else None  # day D is whole when D + 1 day <= hi
    if start is not None and end is not None and start >= end:
        plan.event_ranges.append((lo, hi))  # inside one day (or two partial days): events only
        return plan
    if lo is not None and start is not None and lo < midnight(start):
        plan.event_ranges.append((lo, midnight(start)))
    if hi is not None and end is not None and midnight(end) < hi:
        plan.event_ranges.append((midnight(end), hi))
    # the whole days [start, end): before the rollups' first day (all of them when they hold nothing) from events
    if first is None or last is None:
        plan.event_ranges.append((None if start is None else midnight(start), None if end is None else midnight(end)))
        return plan
    if start is None or start < first:
        before = first if end is None else min(first, end)
        if start is None or start < before:
            plan.event_ranges.append((None if start is None else midnight(start), midnight(before)))
        start = before
    if (end is not None and start >= end) or start > last:
        return plan
    stop = None if end is None or end > last else end  # None: through the last day the rollups hold
    plan.days = (start, stop or last + timedelta(days=1))
    if (plan.days[1] - start).days <= DAYS_ALONE:
        plan.daily_days.append(plan.days)
        return plan
    # the days [start, stop) as C(stop) - C(start), C(d) the days before d: the running totals at d's nearest week
    # start, plus the days from there to d or less those from d to there
    to = None if stop is None else nearest_week_start(stop)
    since = nearest_week_start(start)
    if to is not None and stop is not None and to < stop:
        plan.daily_days.append((to, stop))
    elif to is not None and stop is not None and stop < to:
        plan.minus_days.append((stop, to))
    if max(since, first) < start:  # (activity_daily holds nothing before its first day)
        plan.minus_days.append((max(since, first), start))
    elif start < since:
        plan.daily_days.append((start, since))
    # a week start at or before the rollups' first week: nothing lies before it
    plan.running = (None if since <= week_start(first) else since, to)
    return plan


def _running_weeks(plan: WindowPlan) -> tuple[date, date | None] | None:
    """The weeks of activity_weekly_running whose difference is the plan's running days: (the week before the end,
    or the last week the rollups hold; the week before the start, None when open below)."""
    if plan.running is None or plan.last_week is None:
        return None
    since, to = plan.running
    hi = plan.last_week if to is None else min(to - WEEK, plan.last_week)
    return hi, None if since is None else since - WEEK


DAILY_COVERAGE_SQL = "SELECT min(day), max(day) FROM activity.activity_daily"


@contextmanager
def window_snapshot(conn: Connection, filters: ActivityFilters, *, statements: int = 1) -> Iterator[DailyCoverage]:
    """What a read needs before it can plan its window: for a bounded window, a REPEATABLE READ snapshot
    begun in the same round trip as reading activity_daily's coverage (the plan and the queries then see
    the same refresh); an open window plans without it, and its single statement is its own snapshot. A read
    of more `statements` than one always gets the snapshot, so that they all see the same data."""
    if filters.window() == (None, None) and statements == 1:
        yield NO_COVERAGE
        return
    with read_snapshot(conn, DAILY_COVERAGE_SQL) as rows:
        yield DailyCoverage(*rows[0])


def in_scope_counts_ctes(
    caller: Caller, filters: ActivityFilters, coverage: DailyCoverage, kinds: tuple[str, ...], *, total: bool = False
) -> Sql:
    """Two CTEs (for a `WITH`), and their bound parameters:
    - `scope (id, name, email)`: the caller's profiles in scope of the filters;
    - `per_profile`: their counts over the filters' window (`per_profile_counts_sql`; `coverage` from
      `window_snapshot`); with `total`, one row of their sums instead (no profile_id column).

    A scope short of everyone is computed once (MATERIALIZED) for every rollup part and the caller's page of
    profiles, and the planner sees its real size: index lookups per profile for a coordinator's department,
    hash joins for an admin's thousands. Everyone's is inlined: the parts anti-join the few deleted profiles
    instead, and a page joins `profiles` itself."""
    where, scope_params = in_scope_conditions(caller, filters)
    everyone = is_everyone(caller, filters)
    plan = plan_window(*filters.window(), coverage)  # which rollup answers which part of the window
    count_params: dict[str, Any] = {}
    counts = per_profile_counts_sql(count_params, plan, kinds, everyone=everyone, total=total)  # rendered
    materialized = "NOT MATERIALIZED" if everyone else "MATERIALIZED"
    scope = f"scope AS {materialized} (SELECT p.id, p.name, p.email FROM profiles p WHERE {where})"
    return Sql(f"{scope},\nper_profile AS ({counts})", bind(scope_params, count_params))


def range_conditions(column: str, ranges: list[tuple[Any, Any]], prefix: str, params: dict[str, Any]) -> str:
    """`column` in any of the [from, to) ranges (None = open), as SQL whose values go into `params`."""
    parts = []
    for i, (start, end) in enumerate(ranges):
        conds = []
        if start is not None:
            conds.append(f"{column} >= :{prefix}{i}_from")
            params[f"{prefix}{i}_from"] = start
        if end is not None:
            conds.append(f"{column} < :{prefix}{i}_to")
            params[f"{prefix}{i}_to"] = end
        parts.append("(" + (" AND ".join(conds) or "true") + ")")
    return " OR ".join(parts)


def per_profile_counts_sql(
    params: dict[str, Any],
    plan: WindowPlan,
    kinds: tuple[str, ...] = KINDS,
    *,
    everyone: bool = False,
    total: bool = False,
) -> str:
    """`SELECT profile_id, <kinds...>` (bigints) for the profiles of a `scope` CTE with rows in the window
    (its bound parameters go into `params`). When the scope is everyone (`scope.is_everyone`), each part
    anti-joins the deleted profiles instead (`scope.not_deleted_sql`).

    With `total`, `SELECT <kinds...>`: one row, their sums over all those profiles. It needs no grouping by
    profile, so the running days are two plain sums (the running totals at the end's week less those at the
    start's) instead of a join of one profile's two rows (search's total_count: half the time). Everyone's sum
    takes the window's whole days from activity_platform_daily (`_everyone_total_sql`)."""

    def part(source: str, alias: str, columns: str, conditions: str) -> str:
        """`source` is a table with its alias, or a join whose rows carry `alias.profile_id`."""
        if everyone:
            where = not_deleted_sql(f"{alias}.profile_id")
            return f"SELECT {alias}.profile_id, {columns} FROM {source} WHERE {where} AND ({conditions})"
        return (
            f"SELECT {alias}.profile_id, {columns} FROM {source}"
            f" JOIN scope ON scope.id = {alias}.profile_id WHERE {conditions}"
        )

    if everyone and total:
        return _everyone_total_sql(params, plan, kinds, _event_parts(params, plan, kinds, part))
    parts = _rollup_parts(params, plan, kinds, part, total=total) + _event_parts(params, plan, kinds, part)
    if total:
        return _sums(parts, kinds)
    if plan.open_window:
        return parts[0]  # the all-time totals: a row a profile already, nothing to group
    if not parts:
        return "SELECT NULL::uuid AS profile_id, " + ", ".join(f"0::bigint AS {k}" for k in kinds) + " WHERE false"
    sums = ", ".join(f"sum({k})::bigint AS {k}" for k in kinds)
    union = "\n    UNION ALL ".join(parts)
    return f"SELECT profile_id, {sums} FROM (\n    {union}\n) activity GROUP BY profile_id"


# A part of a window's counts: (source, alias, columns, conditions) -> `SELECT alias.profile_id, columns ...` of the
# rows of the caller's profiles
Part = Callable[[str, str, str, str], str]


def _rollup_parts(
    params: dict[str, Any], plan: WindowPlan, kinds: tuple[str, ...], part: Part, *, total: bool
) -> list[str]:
    """The parts the rollups answer: all time (open), the running days, the days added and subtracted."""

    def stored(alias: str) -> str:
        return ", ".join(f"{alias}.{k}" for k in kinds)

    parts = []
    if plan.open_window:
        parts.append(part("activity.activity_profile_totals t", "t", stored("t"), "true"))
    weeks = None if plan.open_window else _running_weeks(plan)
    if weeks is not None:
        # the window's running days: the running totals at the end's week less those at the start's
        hi, lo = weeks
        params["run_hi"] = hi
        # (as integers, like every other part's counts: sum() over bigints would accumulate in numeric, ~2x slower)
        if total:

            def running(sign: str, week: str) -> str:
                columns = ", ".join(f"{sign}r.{k}::integer AS {k}" for k in kinds)
                return part("activity.activity_weekly_running r", "r", columns, f"r.week = :{week}")

            parts.append(running("", "run_hi"))
            if lo is not None:
                params["run_lo"] = lo
                parts.append(running("-", "run_lo"))
        elif lo is None:
            columns = ", ".join(f"hi.{k}::integer AS {k}" for k in kinds)
            parts.append(part("activity.activity_weekly_running hi", "hi", columns, "hi.week = :run_hi"))
        else:
            params["run_lo"] = lo
            source = (
                "activity.activity_weekly_running hi LEFT JOIN activity.activity_weekly_running lo"
                " ON lo.profile_id = hi.profile_id AND lo.week = :run_lo"
            )
            columns = ", ".join(f"(hi.{k} - coalesce(lo.{k}, 0))::integer AS {k}" for k in kinds)
            parts.append(part(source, "hi", columns, "hi.week = :run_hi"))
    # one part per range, so that each is a single range of its index (read from the index alone)
    for i, days in enumerate(plan.daily_days):
        parts.append(
            part("activity.activity_daily r", "r", stored("r"), range_conditions("r.day", [days], f"day{i}_", params))
        )
    negated = ", ".join(f"-r.{k} AS {k}" for k in kinds)
    for i, days in enumerate(plan.minus_days):
        parts.append(
            part("activity.activity_daily r", "r", negated, range_conditions("r.day", [days], f"minus{i}_", params))
        )
    return parts


def _event_parts(params: dict[str, Any], plan: WindowPlan, kinds: tuple[str, ...], part: Part) -> list[str]:
    """The parts the event tables answer: partial days, and days before the rollups' first."""
    parts = []
    for table, column, adds in _EVENTS:
        if not any(k in adds for k in kinds):
            continue
        values = ", ".join(f"{adds.get(k, '0')} AS {k}" for k in kinds)
        for i, instants in enumerate(plan.event_ranges):
            parts.append(
                part(f"{table} x", "x", values, range_conditions(f"x.{column}", [instants], f"at{i}_", params))
            )
    return parts


# The profiles whose rows activity_platform_daily holds other than the API counts them now: deleted since its last
# update (sign -1, to take out of it) or restored since (sign +1, to add to it). Between two refreshes, none or a
# few: it leaves out the profiles deleted as of its last update (activity_platform_left_out).
MOVED_SINCE_PLATFORM_SQL = """
    SELECT gone.id AS profile_id, -1 AS sign FROM profiles gone
    WHERE gone.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM activity.activity_platform_left_out o WHERE o.profile_id = gone.id)
    UNION ALL
    SELECT o.profile_id, 1 FROM activity.activity_platform_left_out o
    WHERE NOT EXISTS (SELECT 1 FROM profiles back WHERE back.id = o.profile_id AND back.deleted_at IS NOT NULL)"""


def _everyone_total_sql(params: dict[str, Any], plan: WindowPlan, kinds: tuple[str, ...], events: list[str]) -> str:
    """Everyone's sums over the window (an admin's search without filters: total_count): the window's whole days
    from activity_platform_daily (a row a day: every profile's sums but those deleted as of the last refresh), set
    right for the profiles deleted or restored since from their own rollup rows (`MOVED_SINCE_PLATFORM_SQL`: none
    or a few, through the rollups' primary keys), plus the `events` parts (which leave the deleted profiles out
    themselves). At ten times Glow's size this reads a few hundred rows where the per-profile rollups are 200,000
    profiles' (docs/PERFORMANCE.md)."""

    def moved(source: str, alias: str, columns: str, conditions: str) -> str:
        return (
            f"SELECT {alias}.profile_id, {columns} FROM {source}"
            f" JOIN moved ON moved.profile_id = {alias}.profile_id WHERE {conditions}"
        )

    parts = []
    if plan.open_window or plan.days is not None:
        where = "true"
        if plan.days is not None:
            where = range_conditions("pd.day", [plan.days], "platform_", params)
        parts.append(
            f"SELECT NULL::uuid AS profile_id, {', '.join(f'pd.{k}' for k in kinds)}"
            f" FROM activity.activity_platform_daily pd WHERE {where}"
        )
        rows = "\n        UNION ALL ".join(_rollup_parts(params, plan, kinds, moved, total=True))
        signed = ", ".join(f"moved.sign * x.{k}" for k in kinds)
        parts.append(
            f"SELECT NULL::uuid, {signed} FROM (\n        {rows}\n    ) x JOIN moved ON moved.profile_id = x.profile_id"
        )
    return f"WITH moved AS MATERIALIZED ({MOVED_SINCE_PLATFORM_SQL}\n)\n" + _sums(parts + events, kinds)


def _sums(parts: list[str], kinds: tuple[str, ...]) -> str:
    """One row: each kind summed over the parts' rows."""
    if not parts:
        return "SELECT " + ", ".join(f"0::bigint AS {k}" for k in kinds)
    sums = ", ".join(f"coalesce(sum({k}), 0)::bigint AS {k}" for k in kinds)
    return f"SELECT {sums} FROM (\n    " + "\n    UNION ALL ".join(parts) + "\n) activity"
