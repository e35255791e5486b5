"""The rollups' first build, a month per transaction (migrations/functions/build.sql).

When the rollups hold nothing and the platform has events (a first deploy against Glow's database, demo data loaded
after migrating), a full pass would count all of history in one transaction: 20 minutes at ten times Glow's size,
past the refresh function's 5 and a deploy's 15. The build writes one month per transaction instead, oldest first,
and records each in `activity.rollup_build`; a caller stops between two months once its time is up, and the next
caller (the schedule's next run, the migration's next invocation, the next admin) goes on from the first month
missing. Then the running totals, 20,000 profiles a step, and the all-time totals, a step of their own, and the run
is recorded (`built`: a full pass follows it, since a month written early may have changed before the build ended).

The caller holds the refresh lock (refresh.build_rollups): one build, and no pass, at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import date

from .db import BULK_PLANNER_SQL, Connection, transaction
from .observability import logger

# A caller starts no step with less than this left of its time: the longest month step measured at ten times
# Glow's size (docs/PERFORMANCE.md, "Ten times Glow"), with room to spare.
STEP_MARGIN_SECONDS = 60.0
# Profiles whose running totals one step writes: 31-38 s at ten times Glow's size (all 200,000 at once: 219 s).
RUNNING_BATCH = 20_000


def needed(conn: Connection) -> bool:
    """A build is under way, or the rollups hold nothing while the platform has events."""
    return bool(conn.run("SELECT activity.build_rollups_needed()")[0][0])


def months_left(conn: Connection) -> list[date]:
    """The months the build has yet to write, oldest first."""
    return [row[0] for row in conn.run("SELECT activity.build_rollups_months_left()")]


def _step(conn: Connection, sql: str, statement_timeout_ms: int, **params: object) -> object:
    """One step in its own transaction, with the planner settings of whole-table reads."""
    with transaction(conn):
        conn.run(f"SET LOCAL work_mem = '256MB'; SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        conn.run(BULK_PLANNER_SQL)
        return conn.run(sql, **params)[0][0]


def build_until(
    conn: Connection,
    until: float = math.inf,
    *,
    trigger: str,
    views: list[str],
    requested_by: str | None = None,
    statement_timeout_ms: int = 0,
    progress: Callable[[str], None] | None = None,
) -> int | None:
    """Go on with the build (`needed` said there is one) until it is done (the id of the refresh run that records
    it, `views` its rollups) or `time.monotonic()` passes `until` (None: more is left). Takes at least one step."""
    started = time.monotonic()
    steps = 0

    def time_left() -> bool:
        return steps == 0 or time.monotonic() < until

    for month in months_left(conn):
        if not time_left():
            return None
        if progress:
            progress(f"build the rollups: {month:%Y-%m}")
        _step(conn, "SELECT activity.build_rollups_month(:month)", statement_timeout_ms, month=month)
        steps += 1
    while True:  # the running totals, a batch of profiles a step
        if not time_left():
            return None
        if progress:
            progress("build the rollups: running totals")
        if not _step(
            conn,
            "SELECT activity.build_rollups_running(CAST(:batch AS integer))",
            statement_timeout_ms,
            batch=RUNNING_BATCH,
        ):
            break
        steps += 1
    if progress:
        progress("build the rollups: all-time totals")
    with transaction(conn):
        conn.run(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        first_month_at = conn.run("SELECT activity.build_rollups_finish()")[0][0]
        if first_month_at is None:  # no month recorded: `needed` was not asked, or the refresh lock was not held
            raise RuntimeError("the rollups' build was finished with no build under way")
        run_id = int(
            conn.run(
                "INSERT INTO activity.refresh_runs"
                " (started_at, finished_at, snapshot_at, trigger, requested_by, views, outcome, full_pass, built)"
                " VALUES (:first, clock_timestamp(), :first,"
                " :trigger, CAST(:by AS uuid), CAST(:views AS text[]), 'success', false, true) RETURNING id",
                first=first_month_at,
                trigger=trigger,
                by=requested_by,
                views=views,
            )[0][0]
        )
    logger.info("rollups built", extra={"run_id": run_id, "seconds": round(time.monotonic() - started, 3)})
    return run_id
