"""The audit trail: one row per call after authentication."""

from __future__ import annotations

from .db import Connection

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
