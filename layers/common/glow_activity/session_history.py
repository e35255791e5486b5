"""A page of sessions: POST /search, and get's `history` (the Glow client's sessions table), one code path.

The rows behind it: in-scope sessions in the window, newest (or oldest) first, read from the
sessions table itself (always current); total_count comes from the rollups, like get's numbers.

Offsets serve page numbers; `cursor` continues after the last row of the previous page with a keyset
condition on (created_at, session_id), which stays fast however deep the page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from .auth import Caller
from .db import Connection
from .errors import Unprocessable
from .freshness import LATEST_REFRESH_SQL
from .models import SearchActivityRequest, SearchActivityResponse, SessionListItem, iso, money
from .rollups import DailyCoverage, in_scope_counts_ctes, window_snapshot
from .scope import hashed_scope_sql, in_scope_conditions, is_everyone, not_deleted_sql
from .sql import bind

# From this many rows passed over, an admin's filtered walk checks rows against a hashed set (`page_sql`).
HASHED_SCOPE_FROM_OFFSET = 1000


class SessionRow(NamedTuple):
    """A page row as `_COLUMNS` selects it, column for column."""

    session_id: str
    profile_id: str
    profile_name: str
    created_at: datetime
    updated_at: datetime
    active: bool
    group_count: int
    run_count: int
    first_run_at: datetime | None
    last_run_at: datetime | None
    chat_count: int
    attempt_count: int
    message_count: int
    total_tokens: int
    total_cost: Any
    problem_count: int


_COLUMNS = """s.id::text AS session_id, s.profile_id::text AS profile_id, p.name, s.created_at, s.updated_at,
       s.active, s.group_count, s.run_count, s.first_run_at, s.last_run_at, s.chat_count, s.attempt_count,
       s.message_count, s.total_tokens, s.total_cost,
       (SELECT count(*) FROM problems q WHERE q.session_id = s.id)::int AS problems"""


def _fingerprint(request: SearchActivityRequest) -> str:
    key = {**request.filter_key(), "active": request.active, "sort": request.sort_order, "size": request.page_size}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def encode_cursor(request: SearchActivityRequest, created_at: datetime, session_id: str, page: int) -> str:
    payload = {"v": 1, "at": iso(created_at), "id": session_id, "page": page, "f": _fingerprint(request)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(request: SearchActivityRequest) -> tuple[datetime, str, int]:
    def invalid(msg: str) -> Unprocessable:
        return Unprocessable(
            f"Invalid request: cursor: {msg}.", [{"loc": ["body", "cursor"], "msg": msg, "type": "value_error"}]
        )

    assert request.cursor is not None
    try:
        text = request.cursor + "=" * (-len(request.cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(text.encode()))
        at = datetime.fromisoformat(payload["at"])
        session_id = str(UUID(payload["id"]))
        page = int(payload["page"])
        fingerprint = payload["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid("not a cursor returned by this endpoint") from None
    if fingerprint != _fingerprint(request):
        raise invalid("it belongs to other filters, sort_order or page_size")
    return at, session_id, page


def _session_conditions(
    request: SearchActivityRequest, after: tuple[datetime, str] | None, params: dict[str, Any]
) -> str:
    """Conditions on `sessions s`: the window, `active`, and what comes after the cursor."""
    where = ["true"]
    lo, hi = request.window()
    if after is not None:
        # The cursor's row is the page's bound on its side. The window's bound on that side is then implied
        # and left out: given both, PostgreSQL began the index scan at the window's end and walked every row
        # up to the cursor (12 ms 90% into ten months of 2M sessions).
        beyond = "<" if request.sort_order == "desc" else ">"
        where.append(f"(s.created_at, s.id) {beyond} (:after_at, CAST(:after_id AS uuid))")
        params.update(after_at=after[0], after_id=after[1])
        if request.sort_order == "desc" and hi is not None and after[0] < hi:
            hi = None
        if request.sort_order == "asc" and lo is not None and after[0] >= lo:
            lo = None
    if lo is not None:
        where.append("s.created_at >= :lo")
        params["lo"] = lo
    if hi is not None:
        where.append("s.created_at < :hi")
        params["hi"] = hi
    if request.active is not None:
        where.append("s.active = :active")
        params["active"] = request.active
    return " AND ".join(where)


def count_sql(caller: Caller, request: SearchActivityRequest, coverage: DailyCoverage) -> tuple[str, dict[str, Any]]:
    """total_count from the rollups (and the event rows where they do not reach), without counting millions
    of session rows."""
    ctes, params = in_scope_counts_ctes(caller, request, coverage, ("sessions", "active_sessions"), total=True)
    counted = {None: "sessions", True: "active_sessions", False: "sessions - active_sessions"}[request.active]
    return f"WITH {ctes} SELECT {counted} FROM per_profile", params


def page_sql(
    caller: Caller, request: SearchActivityRequest, after: tuple[datetime, str] | None
) -> tuple[str, dict[str, Any]]:
    """The page's rows. An admin's sessions are walked in time order until the page is full: most of them are
    in scope. A coordinator's departments hold a few hundred of 20,000 profiles, so that walk passed over
    dozens of other profiles' sessions for each one it kept. Instead, each member's first `offset + limit`
    sessions come from the `(profile_id, created_at, id)` index alone (`activity_sessions_profile_idx`), the page
    is chosen among them, and only its rows are read (docs/PERFORMANCE.md)."""
    scope, params = in_scope_conditions(caller, request)
    sessions = _session_conditions(request, after, params)
    direction = "DESC" if request.sort_order == "desc" else "ASC"
    order = f"ORDER BY s.created_at {direction}, s.id {direction}"
    params["offset"] = 0 if after is not None else request.page * request.page_size
    params["limit"] = request.page_size
    if caller.scope != "departments":
        # The rows an OFFSET passes over are only walked for their keys (the (created_at, id) index holds the
        # profile and active flag too); the page's own rows alone get their columns and problem counts: computed
        # in the same walk, page 100 cost 3.4x page 0 (docs/PERFORMANCE.md).
        if is_everyone(caller, request):
            walked = f"sessions s WHERE {not_deleted_sql('s.profile_id', early_stop=True)} AND {sessions}"
        elif caller.scope == "all" and params["offset"] >= HASHED_SCOPE_FROM_OFFSET:
            # a deep page walks thousands of rows: the deleted profiles, the role holders and the department
            # members are hashed once instead of each row's profile looked up (page 100 of a role filter: 1.55x
            # page 0)
            hashed, hashed_params = hashed_scope_sql("s.profile_id", caller, request)
            params = bind(params, hashed_params)
            walked = f"sessions s WHERE {hashed} AND {sessions}"
        else:
            walked = f"sessions s JOIN profiles p ON p.id = s.profile_id WHERE {scope} AND {sessions}"
        sql = f"""
WITH chosen AS (
    SELECT s.id, s.created_at FROM {walked} {order} LIMIT :limit OFFSET :offset
)
SELECT {_COLUMNS} FROM chosen c JOIN sessions s ON s.id = c.id JOIN profiles p ON p.id = s.profile_id {order}"""
        return sql, params
    sql = f"""
WITH chosen AS (
    SELECT s.id, s.created_at FROM profiles p CROSS JOIN LATERAL (
        SELECT s.id, s.created_at FROM sessions s WHERE s.profile_id = p.id AND {sessions}
        {order} LIMIT CAST(:offset AS bigint) + CAST(:limit AS bigint)
    ) s
    WHERE {scope}
    {order} LIMIT :limit OFFSET :offset
)
SELECT {_COLUMNS} FROM chosen c JOIN sessions s ON s.id = c.id JOIN profiles p ON p.id = s.profile_id {order}"""
    return sql, params


def search_sql(
    caller: Caller, request: SearchActivityRequest, coverage: DailyCoverage, after: tuple[datetime, str] | None
) -> tuple[str, dict[str, Any]]:
    """total_count, the time of the refresh it comes from, and the page's rows, in one statement (one round
    trip, one snapshot): each row is `total, data_as_of, <session columns>`; no page rows gives one row of
    NULL columns."""
    count, count_params = count_sql(caller, request, coverage)
    page, page_params = page_sql(caller, request, after)
    params = bind(count_params, page_params)  # both from the same scope: bind refuses a name with two values
    direction = "DESC" if request.sort_order == "desc" else "ASC"
    sql = f"""
SELECT c.total, c.data_as_of, pg.*
FROM (SELECT ({count}) AS total, ({LATEST_REFRESH_SQL}) AS data_as_of) c
LEFT JOIN LATERAL ({page}) pg ON true
ORDER BY pg.created_at {direction}, CAST(pg.session_id AS uuid) {direction}"""
    return sql, params


def session_history(
    conn: Connection, caller: Caller, request: SearchActivityRequest
) -> tuple[SearchActivityResponse, datetime | None]:
    """search's answer, and the time of the refresh its total comes from."""
    with window_snapshot(conn, request) as coverage:
        return session_page(conn, caller, request, coverage)


def session_page(
    conn: Connection, caller: Caller, request: SearchActivityRequest, coverage: DailyCoverage
) -> tuple[SearchActivityResponse, datetime | None]:
    """One page, inside a snapshot that the caller began (`window_snapshot`), which gave `coverage`."""
    after: tuple[datetime, str] | None = None
    page = request.page
    if request.cursor is not None:
        at, session_id, page = decode_cursor(request)
        after = (at, session_id)
    sql, params = search_sql(caller, request, coverage, after)
    result = conn.run(sql, **params)
    total, as_of = int(result[0][0]), result[0][1]
    rows = [SessionRow(*r[2:]) for r in result if r[2] is not None]
    data = [
        SessionListItem(
            session_id=r.session_id,
            profile_id=r.profile_id,
            profile_name=r.profile_name,
            session_created_at=iso(r.created_at),
            session_updated_at=iso(r.updated_at),
            active=r.active,
            group_count=r.group_count,
            run_count=r.run_count,
            first_run_at=iso(r.first_run_at) if r.first_run_at is not None else None,
            last_run_at=iso(r.last_run_at) if r.last_run_at is not None else None,
            chat_count=r.chat_count,
            attempt_count=r.attempt_count,
            message_count=r.message_count,
            total_tokens=r.total_tokens,
            total_cost=money(r.total_cost),
            problem_count=r.problem_count,
        )
        for r in rows
    ]
    seen = page * request.page_size + len(data)
    next_cursor = None
    if data and len(data) == request.page_size and seen < total:
        next_cursor = encode_cursor(request, rows[-1][3], rows[-1][0], page + 1)
    response = SearchActivityResponse(
        data=data,
        total_count=total,
        page=page,
        page_size=request.page_size,
        total_pages=math.ceil(total / request.page_size),
        next_cursor=next_cursor,
    )
    return response, as_of
