"""Refresh of the rollups that get and search read.

One refresh at a time: a second caller *waits its turn* on an advisory lock and then runs its own refresh,
so its answer reflects at least the data committed when it was called. The views are refreshed
CONCURRENTLY in one REPEATABLE READ transaction, so readers are never blocked and all views come from one
snapshot, and the run is recorded in `refresh_runs` (its `finished_at` is what `X-Data-As-Of` reports).
The lock is released at the end, or by PostgreSQL when the connection dies: a killed refresh never
leaves it held.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .db import BULK_PLANNER_SQL, Connection, transaction
from .freshness import INVALIDATED_TAGS

REFRESH_LOCK_KEY = 0x72667368  # "rfsh"
# Order matters: activity_profile_totals is built from activity_monthly.
VIEWS = ("activity_monthly", "activity_recent_daily", "activity_profile_totals")


@dataclass(frozen=True)
class RefreshResult:
    run_id: int
    refreshed_views: list[str]
    invalidated_tags: list[str]


def refresh_views(conn: Connection, trigger: str, requested_by: str | None = None) -> RefreshResult:
    run_id = int(
        conn.run(
            "INSERT INTO refresh_runs (trigger, requested_by, outcome) VALUES (:trigger, CAST(:by AS uuid), 'running')"
            " RETURNING id",
            trigger=trigger,
            by=requested_by,
        )[0][0]
    )
    # One at a time: wait for the lock *before* the snapshot is taken, so that this refresh sees what the
    # previous one wrote. A session lock, released below or by PostgreSQL if the connection dies.
    api_timeout = conn.run("SHOW statement_timeout")[0][0]
    conn.run("SET statement_timeout = 0")  # waiting and refreshing take as long as they take (Lambda bounds it)
    conn.run("SELECT pg_advisory_lock(:key)", key=REFRESH_LOCK_KEY)
    try:
        # REPEATABLE READ: every view is computed from one snapshot, so they always agree with each other.
        with transaction(conn, isolation="REPEATABLE READ"):
            conn.run("SET LOCAL work_mem = '256MB'")  # CONCURRENTLY sorts every row to check for duplicates
            conn.run(BULK_PLANNER_SQL)  # whole-table reads: the server's planner settings, not the API's
            for view in VIEWS:
                conn.run(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")
            conn.run(f"ANALYZE {', '.join(VIEWS)}")  # fresh planner statistics for the new contents
            conn.run(
                "UPDATE refresh_runs SET outcome = 'success', finished_at = clock_timestamp(),"
                " views = CAST(:views AS text[]) WHERE id = :id",
                views=list(VIEWS),
                id=run_id,
            )
    except Exception as exc:
        _record_failure(conn, run_id, exc)
        raise
    finally:
        try:
            conn.run("SELECT pg_advisory_unlock(:key)", key=REFRESH_LOCK_KEY)
            conn.run("SELECT set_config('statement_timeout', :value, false)", value=api_timeout)
        except Exception:  # noqa: S110 - a dead connection has released the lock already
            pass
    return RefreshResult(run_id, list(VIEWS), list(INVALIDATED_TAGS))


def _record_failure(conn: Connection, run_id: int, exc: Exception) -> None:
    try:
        conn.run(
            "UPDATE refresh_runs SET outcome = 'failed', finished_at = clock_timestamp(), error = :error"
            " WHERE id = :id",
            error=f"{type(exc).__name__}: {exc}"[:2000],
            id=run_id,
        )
    except Exception:  # noqa: S110 - the connection may be gone; the original error is what matters
        pass


def delete_expired_idempotency_records(conn: Connection) -> int:
    """Housekeeping that rides on the schedule: idempotency records past their 24 h."""
    rows = conn.run("DELETE FROM idempotency_records WHERE expiration < :now RETURNING 1", now=int(time.time()))
    return len(rows)
