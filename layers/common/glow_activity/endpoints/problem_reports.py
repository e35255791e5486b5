"""Creating a problem report: whose activity it concerns, who reported it, committed with its audit row."""

from __future__ import annotations

from glow_activity.audit import audit_with_write
from glow_activity.db import Connection, transaction
from glow_activity.errors import NotFound
from glow_activity.invocation import Invocation
from glow_activity.models import CreateProblemRequest, CreateProblemResponse
from glow_activity.scope import visible_conditions

# The id is the invocation's (chosen before the first attempt): when a lost connection makes the call run again,
# a row already committed by the first attempt is found by its id instead of being inserted twice.
_INSERT_SQL = """
INSERT INTO problems (id, type, message, session_id, profile_id, reported_by, created_at, updated_at)
VALUES (CAST(:id AS uuid), :type, :message, CAST(:session_id AS uuid), CAST(:profile_id AS uuid),
        CAST(:reported_by AS uuid), now(), now())
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


def _session_profile(conn: Connection, inv: Invocation, session_id: str) -> str:
    """The profile of a session the caller may see; 404 otherwise (existence is not revealed)."""
    where, params = visible_conditions(inv.authenticated)
    rows = conn.run(
        f"SELECT s.profile_id::text FROM sessions s JOIN profiles p ON p.id = s.profile_id"
        f" WHERE s.id = CAST(:session_id AS uuid) AND {where}",
        session_id=session_id,
        **params,
    )
    if not rows:
        raise NotFound("Session not found.")
    return str(rows[0][0])


def create_problem(conn: Connection, inv: Invocation, request: CreateProblemRequest) -> CreateProblemResponse:
    caller = inv.authenticated
    problem_id = inv.write_id
    session_id = str(request.session_id) if request.session_id else None
    with transaction(conn):
        profile_id = _session_profile(conn, inv, session_id) if session_id else caller.profile_id
        inserted = conn.run(
            _INSERT_SQL,
            id=problem_id,
            type=request.type,
            message=request.message,
            session_id=session_id,
            profile_id=profile_id,
            reported_by=caller.profile_id,
        )
        if inserted:
            audit_with_write(conn, inv)
        else:  # this invocation's first attempt committed the row and its audit row before its connection died
            inv.audited = True
    return CreateProblemResponse(problem_id=problem_id, success=True, message="Problem recorded.")
