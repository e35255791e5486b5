"""Per-profile activity counts over any window, from the rollups where they can answer and from the event
tables where they cannot. The rollups are tables the refresh keeps (migrations/functions/refresh.sql).

A window [lo, hi) is split into
- whole months            -> activity_monthly
- whole days              -> activity_daily (all time)
- every other instant     -> the event tables (partial days at the ends; days after the last refresh)
and an open window reads activity_profile_totals. The parts never overlap, so right after a refresh the
sum equals the contract's definition for any window; the event-table parts are simply never stale.

A window that runs past the last day the rollups hold (the usual "up to today") takes its last month, begun
but not finished, from activity_monthly as well: that month's row holds nothing after the window's whole
days, so it is exactly their sum - one row per profile instead of up to 31.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def utc_day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def previous_month(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


@dataclass
class WindowPlan:
    open_window: bool = False
    months: tuple[date | None, date | None] | None = None  # [from, to) month starts; None side = open
    last_month: date | None = None  # the last month the rollups hold (None: they hold nothing)
    daily_days: list[tuple[date, date]] = field(default_factory=list)  # [from, to) days
    # [from, to) days subtracted: the rest of a month counted whole (`_whole_month_instead`)
    minus_days: list[tuple[date, date]] = field(default_factory=list)
    event_ranges: list[tuple[datetime | None, datetime | None]] = field(default_factory=list)  # [from, to)


class DailyCoverage(NamedTuple):
    """The first and last day with rows in activity_daily (both None when it is empty). It holds every event as
    of the last refresh, so none falls on a day before `first_day` or after `last_day`."""

    first_day: date | None
    last_day: date | None


NO_COVERAGE = DailyCoverage(None, None)


def plan_window(lo: datetime | None, hi: datetime | None, coverage: DailyCoverage = NO_COVERAGE) -> WindowPlan:
    """Split [lo, hi) (None = open) into non-overlapping parts, given the days activity_daily covers."""
    daily_from = coverage.first_day
    if lo is None and hi is None:
        return WindowPlan(open_window=True)
    plan = WindowPlan(last_month=month_start(coverage.last_day) if coverage.last_day is not None else None)
    whole_from: date | None = None
    if lo is not None:
        first = utc_day(lo)
        whole_from = first if lo == midnight(first) else first + timedelta(days=1)
    whole_to = utc_day(hi) if hi is not None else None  # day D is whole when D + 1 day <= hi
    if whole_from is not None and whole_to is not None and whole_from >= whole_to:
        plan.event_ranges.append((lo, hi))  # inside one day (or two partial days): events only
        return plan
    if lo is not None and whole_from is not None and lo < midnight(whole_from):
        plan.event_ranges.append((lo, midnight(whole_from)))
    if hi is not None and whole_to is not None and midnight(whole_to) < hi:
        plan.event_ranges.append((midnight(whole_to), hi))
    # whole months inside the whole days
    months_from = None if whole_from is None else (whole_from if whole_from.day == 1 else next_month(whole_from))
    months_to = None if whole_to is None else month_start(whole_to)
    if (
        whole_to is not None
        and months_to is not None
        and months_to < whole_to
        and coverage.last_day is not None
        and coverage.last_day < whole_to
    ):
        months_to = next_month(whole_to)  # the begun month holds nothing from whole_to on: count it whole
    loose: list[tuple[date | None, date | None]] = []
    if months_from is None or months_to is None or months_from < months_to:
        plan.months = (months_from, months_to)
        if whole_from is not None and months_from is not None and whole_from < months_from:
            loose.append((whole_from, months_from))
        if whole_to is not None and months_to is not None and months_to < whole_to:
            loose.append((months_to, whole_to))
    else:
        loose.append((whole_from, whole_to))
    if daily_from is not None:
        loose = [days for days in loose if not _whole_month_instead(plan, days)]
    for start, end in loose:  # loose whole days: activity_daily where it covers them, events elsewhere
        assert start is not None and end is not None
        if daily_from is not None and end > daily_from:
            covered_from = max(start, daily_from)
            plan.daily_days.append((covered_from, end))
            end = covered_from
        if start < end:
            plan.event_ranges.append((midnight(start), midnight(end)))
    return plan


def _whole_month_instead(plan: WindowPlan, days: tuple[date | None, date | None]) -> bool:
    """Loose days that are most of one month next to the plan's months: count that month whole (two running
    totals, whatever its size) less the few days of it outside the window, instead of reading each of its days:
    at most half a month of daily rows at either end of a window. False when it does not apply."""
    start, end = days
    if start is None or end is None:
        return False
    first, after = month_start(start), next_month(start)
    if end > after or (end - start).days * 2 <= (after - first).days:
        return False
    if plan.months is None:
        plan.months = (first, after)
    elif plan.months[0] == after:
        plan.months = (first, plan.months[1])
    elif plan.months[1] == first:
        plan.months = (plan.months[0], after)
    else:
        return False
    plan.minus_days += [(lo, hi) for lo, hi in ((first, start), (end, after)) if lo < hi]
    return True


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


def _running_months(plan: WindowPlan) -> tuple[date, date | None] | None:
    """The months of activity_monthly_running whose difference is the plan's whole months: (the last month in
    the window, the month before the first one, None when the window is open below), both no later than the last
    month the rollups hold (no event lies after it); None when they add nothing."""
    if plan.months is None or plan.last_month is None:
        return None
    first, end = plan.months
    hi = min(previous_month(end), plan.last_month) if end is not None else plan.last_month
    if first is None:
        return hi, None
    lo = min(previous_month(first), plan.last_month)
    return (hi, lo) if lo < hi else None


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
    profile, so the whole months are two plain sums (the running totals at the window's last month less those
    before its first) instead of a join of one profile's two rows (search's total_count: half the time)."""

    def part(source: str, alias: str, columns: str, conditions: str) -> str:
        """`source` is a table with its alias, or a join whose rows carry `alias.profile_id`."""
        if everyone:
            where = not_deleted_sql(f"{alias}.profile_id")
            return f"SELECT {alias}.profile_id, {columns} FROM {source} WHERE {where} AND ({conditions})"
        return (
            f"SELECT {alias}.profile_id, {columns} FROM {source}"
            f" JOIN scope ON scope.id = {alias}.profile_id WHERE {conditions}"
        )

    def stored(alias: str) -> str:
        return ", ".join(f"{alias}.{k}" for k in kinds)

    parts = []
    if plan.open_window:
        parts.append(part("activity.activity_profile_totals t", "t", stored("t"), "true"))
        if not total:
            return parts[0]
    months = None if plan.open_window else _running_months(plan)
    if months is not None:
        # the window's whole months: the running total at its last month less the one before its first
        hi, lo = months
        params["run_hi"] = hi
        # (as integers, like every other part's counts: sum() over bigints would accumulate in numeric, ~2x slower)
        if total:

            def running(sign: str, month: str) -> str:
                columns = ", ".join(f"{sign}r.{k}::integer AS {k}" for k in kinds)
                return part("activity.activity_monthly_running r", "r", columns, f"r.month = :{month}")

            parts.append(running("", "run_hi"))
            if lo is not None:
                params["run_lo"] = lo
                parts.append(running("-", "run_lo"))
        elif lo is None:
            columns = ", ".join(f"hi.{k}::integer AS {k}" for k in kinds)
            parts.append(part("activity.activity_monthly_running hi", "hi", columns, "hi.month = :run_hi"))
        else:
            params["run_lo"] = lo
            source = (
                "activity.activity_monthly_running hi LEFT JOIN activity.activity_monthly_running lo"
                " ON lo.profile_id = hi.profile_id AND lo.month = :run_lo"
            )
            columns = ", ".join(f"(hi.{k} - coalesce(lo.{k}, 0))::integer AS {k}" for k in kinds)
            parts.append(part(source, "hi", columns, "hi.month = :run_hi"))
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
    for table, column, adds in _EVENTS:
        if not any(k in adds for k in kinds):
            continue
        values = ", ".join(f"{adds.get(k, '0')} AS {k}" for k in kinds)
        for i, instants in enumerate(plan.event_ranges):
            parts.append(
                part(f"{table} x", "x", values, range_conditions(f"x.{column}", [instants], f"at{i}_", params))
            )
    if total:
        if not parts:
            return "SELECT " + ", ".join(f"0::bigint AS {k}" for k in kinds)
        sums = ", ".join(f"coalesce(sum({k}), 0)::bigint AS {k}" for k in kinds)
        return f"SELECT {sums} FROM (\n    " + "\n    UNION ALL ".join(parts) + "\n) activity"
    if not parts:
        return "SELECT NULL::uuid AS profile_id, " + ", ".join(f"0::bigint AS {k}" for k in kinds) + " WHERE false"
    sums = ", ".join(f"sum({k})::bigint AS {k}" for k in kinds)
    union = "\n    UNION ALL ".join(parts)
    return f"SELECT profile_id, {sums} FROM (\n    {union}\n) activity GROUP BY profile_id"
