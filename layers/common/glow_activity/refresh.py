"""Refresh of the rollups that get and search read.

One refresh at a time (an advisory lock), and nobody waits long on another's (CONTRACT.md, POST /refresh and "Many
callers at once"):
- an admin's call (`refresh_views`) waits its turn for at most REFRESH_WAIT_SECONDS (RefreshBusy past it: 503 with
  Retry-After) and then runs a full pass, so its answer reflects at least the data committed when it was called;
  but when another full pass took its snapshot after this call was made, that pass answers it and nothing more runs
  (admins pressing Refresh while a full pass waits to start queue one more pass, not one each);
- anyone else's call is *debounced* (`debounced_refresh`): a refresh that succeeded less than
  REFRESH_MIN_INTERVAL_SECONDS ago answers it; when one is running, the last successful refresh answers it at once
  (it never waits on the lock: a thousand presses hold no connection); otherwise it runs one;
- the schedule's run (`scheduled_refresh`) skips when one is running: the next run comes in a few minutes.

The rollups are brought up to date in one REPEATABLE READ transaction, so readers are never blocked (they read the
previous rows until it commits) and all rollups come from one snapshot, and the run is recorded in
`activity.refresh_runs` (its `finished_at` is what `X-Data-As-Of` reports, its `snapshot_at` what coalesces admins'
calls). The lock is released at the end, or by PostgreSQL when the connection dies: a killed refresh never leaves it
held.

A refresh is a *full pass* (every month of history compared with the rollups) or a *light* one (the days since
yesterday, and the older days that a lately updated session or a changed problem count names): see
migrations/functions/refresh.sql. An admin's call, the CLI's and a migration's are full passes (`Pass.FULL`); the
schedule's and debounced calls are light unless no full pass succeeded in the last FULL_PASS_EVERY_SECONDS
(`Pass.DUE`), so that the rows a light pass cannot see (docs/DECISIONS.md) are counted at least daily.

Rollups that hold nothing while the platform has events are *built* instead (rollup_build: a month per transaction),
by the schedule's runs and admins' calls for as long as their statement timeout allows (BuildUnderWay when time ran
out first: an admin's 503), by a migration (`build_rollups`), never by a debounced call; a full pass follows a build.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from . import rollup_build
from .db import (
    BULK_PLANNER_SQL,
    Connection,
    LockNotAvailable,
    release_session_lock,
    take_session_lock,
    transaction,
)
from .freshness import INVALIDATED_TAGS
from .observability import logger

REFRESH_LOCK_KEY = 0x72667368  # "rfsh"
# The rollup tables a refresh brings up to date: activity_daily's changed days, then from them
# activity_platform_daily and activity_monthly, and from them activity_weekly_running and activity_profile_totals.
# The work itself is activity.refresh_rollups(full_pass) (migrations/functions/refresh.sql): it runs as the rollups'
# owner, since the runtime role may read them but not write them. (The answer's field is still `refreshed_views`,
# the contract's name from when they were views.)
ROLLUPS = (
    "activity_monthly",
    "activity_weekly_running",
    "activity_daily",
    "activity_platform_daily",
    "activity_profile_totals",
)
REFRESH_SQL = "SELECT activity.refresh_rollups(:full_pass)"
# A full pass at least daily: the schedule's first run after 23 hours without one is a full pass (its interval of
# a few minutes added, that is within the day the contract allows).
FULL_PASS_EVERY_SECONDS = 23 * 3600
# What an admin's 503 tells the caller to wait: about what a full pass takes at Glow's size (docs/PERFORMANCE.md).
BUSY_RETRY_AFTER_SECONDS = 15
# What an admin's 503 during the rollups' first build tells the caller to wait: the schedule's interval.
BUILD_RETRY_AFTER_SECONDS = 300


class Pass(Enum):
    """Which pass a refresh runs."""

    FULL = "full"  # every month of history compared: an admin's call, the CLI's, a migration's
    LIGHT = "light"  # what changed since yesterday
    DUE = "light, or full when due"  # the schedule's and debounced calls': full when none ran for a day


class RefreshBusy(Exception):
    """A refresh is running, and waiting for it would take longer than the caller may wait."""


class BuildUnderWay(RefreshBusy):
    """The rollups' first build went as far as this call's time allowed; the next refresh goes on with it."""

    def __init__(self, months_left: int) -> None:
        super().__init__(f"the rollups' first build goes on: {months_left} month(s) left")
        self.months_left = months_left


@dataclass(frozen=True)
class RefreshResult:
    run_id: int | None  # None: no refresh has succeeded yet (the answer names what the running one will refresh)
    refreshed_views: list[str]
    invalidated_tags: list[str]
    full_pass: bool | None = None  # set when this call ran it: which pass, and how long it took
    seconds: float | None = None


def _result(row: list[object] | None) -> RefreshResult:
    if row is None:
        return RefreshResult(None, list(ROLLUPS), list(INVALIDATED_TAGS))
    return RefreshResult(int(row[0]), list(row[1]), list(INVALIDATED_TAGS))  # type: ignore[call-overload, arg-type]


_LAST_SUCCESS_SQL = """
SELECT id, views FROM activity.refresh_runs
WHERE outcome = 'success' AND finished_at > clock_timestamp() - make_interval(secs => :seconds)
ORDER BY id DESC LIMIT 1
"""


def recent_refresh(conn: Connection, within_seconds: float) -> RefreshResult | None:
    """The last refresh, when it succeeded less than `within_seconds` ago."""
    rows = conn.run(_LAST_SUCCESS_SQL, seconds=float(within_seconds))
    return _result(rows[0]) if rows else None


def last_refresh(conn: Connection) -> RefreshResult:
    """The last successful refresh, however old (or, before the first, what a refresh refreshes)."""
    rows = conn.run("SELECT id, views FROM activity.refresh_runs WHERE outcome = 'success' ORDER BY id DESC LIMIT 1")
    return _result(rows[0] if rows else None)


def debounced_refresh(
    conn: Connection, trigger: str, requested_by: str | None, min_interval_seconds: float, statement_timeout_ms: int = 0
) -> tuple[RefreshResult, bool]:
    """A refresh for a caller who may not force one: (the refresh that answers, whether this call ran it). Never
    waits on the lock."""
    recent = recent_refresh(conn, min_interval_seconds)
    if recent is not None:
        return recent, False
    if not take_session_lock(conn, REFRESH_LOCK_KEY, wait_seconds=0):
        return last_refresh(conn), False  # one is running: it will bring the rollups up to date
    try:
        recent = recent_refresh(conn, min_interval_seconds)  # one may have finished between the two looks
        if recent is not None:
            return recent, False
        # a first build is minutes of work at scale: the schedule's and admins' calls do it, never this one
        return _run_locked(conn, trigger, requested_by, Pass.DUE, statement_timeout_ms, may_build=False), True
    except BuildUnderWay:
        return last_refresh(conn), False
    finally:
        release_session_lock(conn, REFRESH_LOCK_KEY)


def scheduled_refresh_run(conn: Connection, statement_timeout_ms: int = 0) -> tuple[RefreshResult, bool]:
    """The schedule's run: light unless a full pass is due; skipped (the last result, False) when one is running."""
    if not take_session_lock(conn, REFRESH_LOCK_KEY, wait_seconds=0):
        return last_refresh(conn), False
    try:
        return _run_locked(conn, "schedule", None, Pass.DUE, statement_timeout_ms), True
    except BuildUnderWay as exc:
        logger.info("the rollups' first build goes on at the next run", extra={"months_left": exc.months_left})
        return last_refresh(conn), False
    finally:
        release_session_lock(conn, REFRESH_LOCK_KEY)


_COALESCED_SQL = """
SELECT id, views FROM activity.refresh_runs
WHERE outcome = 'success' AND full_pass AND snapshot_at >= :called_at
ORDER BY id DESC LIMIT 1
"""


def refresh_views(
    conn: Connection,
    trigger: str,
    requested_by: str | None = None,
    *,
    kind: Pass = Pass.FULL,
    wait_seconds: float | None = None,
    statement_timeout_ms: int = 0,
) -> RefreshResult:
    """Refresh now, after any refresh already running (waiting at most `wait_seconds` for it, RefreshBusy past it;
    None: as long as it takes): a full pass by default (admins, the CLI, migrations). A full pass whose snapshot was
    taken after this call began answers a full one instead."""
    called_at: datetime = conn.run("SELECT clock_timestamp()")[0][0]
    try:
        take_session_lock(conn, REFRESH_LOCK_KEY, wait_seconds=wait_seconds)
    except LockNotAvailable:
        raise RefreshBusy() from None
    try:
        if kind is Pass.FULL:
            rows = conn.run(_COALESCED_SQL, called_at=called_at)
            if rows:
                return _result(rows[0])
        return _run_locked(conn, trigger, requested_by, kind, statement_timeout_ms)
    finally:
        release_session_lock(conn, REFRESH_LOCK_KEY)


_FULL_PASS_DUE_SQL = """
SELECT NOT EXISTS (SELECT 1 FROM activity.refresh_runs WHERE outcome = 'success' AND full_pass
                   AND finished_at > clock_timestamp() - make_interval(secs => :s)
                   AND id > coalesce((SELECT max(id) FROM activity.refresh_runs
                                      WHERE built AND outcome = 'success'), 0))
"""  # noqa: S105 - not a password


def full_pass_due(conn: Connection) -> bool:
    """No full pass succeeded in the last FULL_PASS_EVERY_SECONDS, or none since the rollups were built."""
    return bool(conn.run(_FULL_PASS_DUE_SQL, s=float(FULL_PASS_EVERY_SECONDS))[0][0])


def _start_run(conn: Connection, trigger: str, requested_by: str | None) -> int:
    return int(
        conn.run(
            "INSERT INTO activity.refresh_runs (trigger, requested_by, outcome)"
            " VALUES (:trigger, CAST(:by AS uuid), 'running') RETURNING id",
            trigger=trigger,
            by=requested_by,
        )[0][0]
    )


def _run_locked(
    conn: Connection,
    trigger: str,
    requested_by: str | None,
    kind: Pass,
    statement_timeout_ms: int,
    *,
    may_build: bool = True,
) -> RefreshResult:
    """The refresh itself, the lock held; `Pass.DUE` is decided here, after the lock, so that of two callers only
    the first runs the due full pass. `statement_timeout_ms` bounds it (0: unbounded),
    so that a refresh outliving its function (which would then never commit) cannot run on. When the rollups need
    their first build, it goes on with that instead (BuildUnderWay at once when not `may_build`)."""
    if rollup_build.needed(conn):
        if not may_build:
            raise BuildUnderWay(len(rollup_build.months_left(conn)))
        return _build(conn, trigger, requested_by, statement_timeout_ms)
    run_id = _start_run(conn, trigger, requested_by)
    started = time.perf_counter()
    try:
        full = full_pass_due(conn) if kind is Pass.DUE else kind is Pass.FULL
        # REPEATABLE READ: every rollup is computed from one snapshot, so they always agree with each other.
        with transaction(conn, isolation="REPEATABLE READ"):
            conn.run(
                f"SET LOCAL work_mem = '256MB'; SET LOCAL statement_timeout = {int(statement_timeout_ms)}"
            )  # a full pass hashes every (profile, month) of history
            if full:  # whole-table reads: the server's planner settings; a light pass keeps the API's (cached pages:
                conn.run(BULK_PLANNER_SQL)  # a few thousand rows through their keys, not a scan of a whole table)
            conn.run(REFRESH_SQL, full_pass=full)
            conn.run(
                "UPDATE activity.refresh_runs SET outcome = 'success', finished_at = clock_timestamp(),"
                " snapshot_at = transaction_timestamp(), views = CAST(:views AS text[]), full_pass = :full"
                " WHERE id = :id",
                views=list(ROLLUPS),
                full=full,
                id=run_id,
            )
    except Exception as exc:
        _record_failure(conn, run_id, exc)
        raise
    return RefreshResult(run_id, list(ROLLUPS), list(INVALIDATED_TAGS), full, time.perf_counter() - started)


def _build(conn: Connection, trigger: str, requested_by: str | None, statement_timeout_ms: int) -> RefreshResult:
    """The rollups' first build (rollup_build), for as long as this call's statement timeout allows (0: to the
    end); BuildUnderWay when it stopped short."""
    started = time.perf_counter()
    until = math.inf
    if statement_timeout_ms:
        until = time.monotonic() + statement_timeout_ms / 1000 - rollup_build.STEP_MARGIN_SECONDS
    run_id = rollup_build.build_until(
        conn,
        until,
        trigger=trigger,
        views=list(ROLLUPS),
        requested_by=requested_by,
        statement_timeout_ms=statement_timeout_ms,
    )
    if run_id is None:
        raise BuildUnderWay(len(rollup_build.months_left(conn)))
    return RefreshResult(run_id, list(ROLLUPS), list(INVALIDATED_TAGS), False, time.perf_counter() - started)


def build_rollups(
    conn: Connection, until: float = math.inf, trigger: str = "migration", progress: Callable[[str], None] | None = None
) -> bool:
    """A migration's part of the rollups' first build (or the CLI's, to the end): under the refresh lock, waited
    for until `until`, and as far as `until` allows. Whether it is done (False: time ran out, waiting for the lock or
    between two steps; the next invocation goes on)."""
    wait = None if until == math.inf else max(0.0, until - time.monotonic())
    try:
        if not take_session_lock(conn, REFRESH_LOCK_KEY, wait_seconds=wait):
            return False
    except LockNotAvailable:
        return False
    try:
        if not rollup_build.needed(conn):
            return True
        run_id = rollup_build.build_until(conn, until, trigger=trigger, views=list(ROLLUPS), progress=progress)
        return run_id is not None
    finally:
        release_session_lock(conn, REFRESH_LOCK_KEY)


def _record_failure(conn: Connection, run_id: int, exc: Exception) -> None:
    try:
        conn.run(
            "UPDATE activity.refresh_runs SET outcome = 'failed', finished_at = clock_timestamp(), error = :error"
            " WHERE id = :id",
            error=f"{type(exc).__name__}: {exc}"[:2000],
            id=run_id,
        )
    except Exception:  # noqa: S110 - the connection may be gone; the original error is what matters
        pass


def delete_expired_idempotency_records(conn: Connection) -> int:
    """Housekeeping that rides on the schedule: idempotency records past their 24 h."""
    rows = conn.run(
        "DELETE FROM activity.idempotency_records WHERE expiration < :now RETURNING 1", now=int(time.time())
    )
    return len(rows)
