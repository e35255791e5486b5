"""Refresh of the rollups that get and search read.

One refresh at a time: a second caller *waits its turn* on an advisory lock and then runs its own refresh,
so its answer reflects at least the data committed when it was called. The rollups are brought up to
date in one REPEATABLE READ transaction, so readers are never blocked (they read the previous rows until it
commits) and all rollups come from one snapshot, and the run is recorded in `activity.refresh_runs` (its
`finished_at` is what `X-Data-As-Of` reports).
The lock is released at the end, or by PostgreSQL when the connection dies: a killed refresh never
leaves it held.

Anyone may press the Glow client's Refresh button, so a call that is not an admin's is *debounced*
(`debounced_refresh`): a refresh that succeeded less than REFRESH_MIN_INTERVAL_SECONDS ago answers it and
nothing runs; a running one is waited for (on the same lock) and answers it; otherwise it runs one.

A refresh is a *full pass* (every month of history compared with the rollups) or a *light* one (the days since
yesterday, and the older days that a lately updated session or a changed problem count names): see
migrations/0002_incremental_rollups.sql. An admin's call, the CLI's and a migration's are full passes; the
schedule's and debounced calls are light unless no full pass succeeded in the last FULL_PASS_EVERY_SECONDS, so
that the rows a light pass cannot see (docs/DECISIONS.md) are counted at least daily.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass

from .db import BULK_PLANNER_SQL, Connection, session_lock, transaction
from .freshness import INVALIDATED_TAGS

REFRESH_LOCK_KEY = 0x72667368  # "rfsh"
# What a refresh brings up to date: activity_daily's changed days, then from them activity_monthly, and from that
# activity_monthly_running and activity_profile_totals. The work itself is activity.refresh_rollups(full_pass)
# (migrations/0002_incremental_rollups.sql): it runs as the rollups' owner, since the runtime role may read them
# but not write them.
VIEWS = ("activity_monthly", "activity_monthly_running", "activity_daily", "activity_profile_totals")
REFRESH_SQL = "SELECT activity.refresh_rollups(:full_pass)"
# A full pass at least daily: the schedule's first run after 23 hours without one is a full pass (its interval of
# a few minutes added, that is within the day the contract allows).
FULL_PASS_EVERY_SECONDS = 23 * 3600


@dataclass(frozen=True)
class RefreshResult:
    run_id: int
    refreshed_views: list[str]
    invalidated_tags: list[str]


_RECENT_SUCCESS_SQL = """
SELECT id, views FROM activity.refresh_runs
WHERE outcome = 'success' AND finished_at > clock_timestamp() - make_interval(secs => :seconds)
ORDER BY id DESC LIMIT 1
"""


def recent_refresh(conn: Connection, within_seconds: float) -> RefreshResult | None:
    """The last refresh, when it succeeded less than `within_seconds` ago."""
    rows = conn.run(_RECENT_SUCCESS_SQL, seconds=float(within_seconds))
    if not rows:
        return None
    return RefreshResult(int(rows[0][0]), list(rows[0][1]), list(INVALIDATED_TAGS))


def debounced_refresh(
    conn: Connection, trigger: str, requested_by: str | None, min_interval_seconds: float
) -> tuple[RefreshResult, bool]:
    """A refresh for a caller who may not force one: (the refresh that answers, whether this call ran it)."""
    recent = recent_refresh(conn, min_interval_seconds)
    if recent is not None:
        return recent, False
    # None recent: wait for a running one (it holds the lock), then ask again before running our own.
    with _lock_held(conn):
        recent = recent_refresh(conn, min_interval_seconds)
        if recent is not None:
            return recent, False
        return _run_locked(conn, _start_run(conn, trigger, requested_by), None), True


def refresh_views(
    conn: Connection, trigger: str, requested_by: str | None = None, *, full_pass: bool | None = True
) -> RefreshResult:
    """Refresh now, after any refresh already running: a full pass (admins, the CLI, migrations), or with
    `full_pass=None` a light one unless a full pass is due (the schedule)."""
    run_id = _start_run(conn, trigger, requested_by)
    with _lock_held(conn):
        return _run_locked(conn, run_id, full_pass)


_FULL_PASS_DUE_SQL = """
SELECT NOT EXISTS (SELECT 1 FROM activity.refresh_runs WHERE outcome = 'success' AND full_pass
                   AND finished_at > clock_timestamp() - make_interval(secs => :s))
"""  # noqa: S105 - not a password


def full_pass_due(conn: Connection) -> bool:
    """No full pass succeeded in the last FULL_PASS_EVERY_SECONDS."""
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


def _lock_held(conn: Connection) -> AbstractContextManager[None]:
    """One refresh at a time: wait for the lock *before* a snapshot is taken, so that a refresh sees what the
    previous one wrote (a session lock; waiting and refreshing take as long as they take)."""
    return session_lock(conn, REFRESH_LOCK_KEY)


def _run_locked(conn: Connection, run_id: int, full_pass: bool | None) -> RefreshResult:
    """The refresh itself, the lock held; `full_pass=None`: light unless one is due (decided here, after the wait,
    so that of two waiting callers only the first runs the due full pass)."""
    try:
        full = full_pass_due(conn) if full_pass is None else full_pass
        # REPEATABLE READ: every rollup is computed from one snapshot, so they always agree with each other.
        with transaction(conn, isolation="REPEATABLE READ"):
            conn.run("SET LOCAL work_mem = '256MB'")  # a full pass hashes every (profile, month) of history
            if full:  # whole-table reads: the server's planner settings; a light pass keeps the API's (cached pages:
                conn.run(BULK_PLANNER_SQL)  # a few thousand rows through their keys, not a scan of a whole table)
            conn.run(REFRESH_SQL, full_pass=full)
            conn.run(
                "UPDATE activity.refresh_runs SET outcome = 'success', finished_at = clock_timestamp(),"
                " views = CAST(:views AS text[]), full_pass = :full WHERE id = :id",
                views=list(VIEWS),
                full=full,
                id=run_id,
            )
    except Exception as exc:
        _record_failure(conn, run_id, exc)
        raise
    return RefreshResult(run_id, list(VIEWS), list(INVALIDATED_TAGS))


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
