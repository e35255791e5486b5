"""What keeps one caller's flood its own problem (CONTRACT.md, "Many callers at once"): the per-caller limit, and the
gauges the operator watches it by.

The limit is a token bucket per caller in the database (`activity.take_request`, migrations/functions/
caller_limit.sql), the one place every function and container shares: one round trip per request, on the writer.
docs/DECISIONS.md ("A limit per caller") says why there and not in API Gateway, a cache or the container.
"""

from __future__ import annotations

from dataclasses import dataclass

from .db import Connection
from .observability import logger, metrics

POLICY = "caller"  # the quota policy's name in RateLimit-Policy / RateLimit
WINDOW_SECONDS = 60
# An upload row older than this is no longer running, whatever it says: its function's 15 minutes are over.
EXPORT_STALE_SECONDS = 16 * 60


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    remaining: int
    reset_seconds: int
    audit_refusal: bool  # a refusal to audit as any call (the caller's first this minute)
    limit: int

    def headers(self) -> dict[str, str]:
        """The IETF draft's fields (draft-ietf-httpapi-ratelimit-headers): the policy, and what is left of it."""
        return {
            "RateLimit-Policy": f'"{POLICY}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset_seconds}',
        }


_TAKE_SQL = (
    "SELECT allowed, remaining, reset_seconds, audit_refusal"
    " FROM activity.take_request(CAST(:caller AS uuid), :limit, :operation, :channel, :request_id)"
)


def take_request(
    conn: Connection, caller: str, per_minute: int, *, operation: str, channel: str, request_id: str
) -> Allowance:
    """One request of `caller` against its limit of `per_minute` (a refusal takes nothing)."""
    allowed, remaining, reset_seconds, audit_refusal = conn.run(
        _TAKE_SQL, caller=caller, limit=per_minute, operation=operation, channel=channel, request_id=request_id
    )[0]
    return Allowance(bool(allowed), int(remaining), int(reset_seconds), bool(audit_refusal), per_minute)


def operator_gauges(conn: Connection) -> None:
    """Connections the functions' user holds against its CONNECTION LIMIT, and exports running: metrics for the
    dashboard and its alarms, sampled by the schedule."""
    in_use, limit, exports = conn.run(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user),"
        " (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user),"
        " (SELECT count(*) FROM activity.uploads WHERE status = 'running'"
        "  AND created_at > now() - make_interval(secs => :stale))",
        stale=EXPORT_STALE_SECONDS,
    )[0]
    metrics.add_metric(name="DbConnectionsInUse", unit="Count", value=int(in_use))
    if int(limit) >= 0:
        metrics.add_metric(name="DbConnectionLimit", unit="Count", value=int(limit))
    metrics.add_metric(name="ExportsRunning", unit="Count", value=int(exports))
    logger.info("gauges", extra={"db_connections": int(in_use), "db_connection_limit": int(limit), "exports": exports})
