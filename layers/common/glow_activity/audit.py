"""The audit trail: one row per call after authentication (CONTRACT.md, Audit). A write's row commits with the
write (`audit_with_write`); every other call's is written once it is answered (`audit_call`), on a new connection
if the container's turns out dead, and a failed audit never turns a served request into an error."""

from __future__ import annotations

from . import db
from .db import Connection
from .invocation import Invocation
from .observability import logger, metrics

AUDIT_SQL = """
INSERT INTO activity.audit_log (operation, profile_id, api_key_id, channel, status_code, request_id)
VALUES (:operation, CAST(:profile_id AS uuid), CAST(:api_key_id AS uuid), :channel, :status_code, :request_id)
"""


def write_audit(
    conn: Connection,
    *,
    operation: str,
    profile_id: str | None,
    api_key_id: str | None,
    channel: str,
    status_code: int,
    request_id: str,
) -> None:
    conn.run(
        AUDIT_SQL,
        operation=operation,
        profile_id=profile_id,
        api_key_id=api_key_id,
        channel=channel,
        status_code=status_code,
        request_id=request_id,
    )


def _write(conn: Connection, inv: Invocation, status_code: int) -> None:
    caller = inv.authenticated
    write_audit(
        conn,
        operation=inv.operation,
        profile_id=caller.profile_id,
        api_key_id=caller.api_key_id,
        channel=inv.channel,
        status_code=status_code,
        request_id=inv.request_id,
    )


def audit_with_write(conn: Connection, inv: Invocation) -> None:
    """Inside a write's transaction: its audit row commits (or rolls back) with the write."""
    _write(conn, inv, 200)
    inv.audited = True


def audit_call(inv: Invocation, status_code: int) -> None:
    """The call's row, unless it has none (no caller: refused before authentication) or has one already."""
    if inv.caller is None or inv.audited:
        return
    for attempt in (1, 2):  # once more on a new connection when this one turns out dead
        try:
            _write(db.connection(), inv, status_code)
            return
        except Exception as exc:  # a failed audit never turns a served request into an error
            if db.is_unavailable(exc):
                db.reset_connections()
                if attempt == 1:
                    continue
            logger.exception("audit write failed", extra={"operation": inv.operation})
            metrics.add_metric(name="AuditWriteFailed", unit="Count", value=1)
            return
