"""Resolving and reopening a problem: row-locked, so concurrent calls leave a consistent row."""

from __future__ import annotations

from glow_activity.audit import audit_with_write
from glow_activity.db import Connection, transaction
from glow_activity.errors import NotFound
from glow_activity.invocation import Invocation
from glow_activity.models import ResolveProblemRequest, ResolveProblemResponse, iso
from glow_activity.scope import visible_problem_conditions

_SET_SQL = """
UPDATE problems
SET resolved = :resolved,
    resolved_at = CASE WHEN :resolved THEN now() END,
    resolved_by = CASE WHEN :resolved THEN CAST(:caller AS uuid) END,
    updated_at = now()
WHERE id = CAST(:id AS uuid)
RETURNING resolved, updated_at
"""


def set_resolved(conn: Connection, inv: Invocation, request: ResolveProblemRequest) -> ResolveProblemResponse:
    """Resolve (or reopen) a visible problem. Repeating a call that changes nothing changes nothing."""
    caller = inv.authenticated
    visible, params = visible_problem_conditions(caller)
    problem_id = str(request.problem_id)
    with transaction(conn):
        rows = conn.run(
            f"SELECT q.resolved, q.updated_at FROM problems q WHERE q.id = CAST(:id AS uuid) AND {visible}"
            " FOR UPDATE OF q",
            id=problem_id,
            **params,
        )
        if not rows:
            raise NotFound("Problem not found.")
        resolved, updated_at = rows[0]
        if resolved != request.resolved:
            resolved, updated_at = conn.run(
                _SET_SQL, resolved=request.resolved, caller=caller.profile_id, id=problem_id
            )[0]
        audit_with_write(conn, inv)
    return ResolveProblemResponse(problem_id=problem_id, resolved=resolved, updated_at=iso(updated_at))
