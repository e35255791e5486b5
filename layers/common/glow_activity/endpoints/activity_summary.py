"""The numbers behind POST /get: per-profile counts from `glow_activity.rollups`, then totals, the ordered
profile_summary window with its resources, the newest problems, and the facets; and, when the request asks for
it, a page of session history from search's own code path (`glow_activity.session_history`), in the same
snapshot. Right after a refresh the result equals the contract's definitions for any window."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from glow_activity.auth import Caller
from glow_activity.db import Connection
from glow_activity.freshness import LATEST_REFRESH_SQL
from glow_activity.models import (
    ActivityResources,
    AnalyticsFacets,
    FacetOption,
    FieldState,
    GetActivityRequest,
    GetActivityResponse,
    ProblemListItem,
    SessionHistory,
    dump_with_json_parts,
    iso,
)
from glow_activity.rollups import DailyCoverage, in_scope_counts_ctes, range_conditions, window_snapshot
from glow_activity.scope import hashed_scope_sql, in_scope_conditions, visible_conditions
from glow_activity.session_history import session_page
from glow_activity.settings import ROLES
from glow_activity.sql import bind

# The counts get reports per profile (of rollups.KINDS, all but active_sessions, which only search's total reads)
SUMMARY_KINDS = ("sessions", "logins", "grants", "emulations", "problems")


def get_sql(caller: Caller, request: GetActivityRequest, coverage: DailyCoverage) -> tuple[str, dict[str, Any]]:
    """Everything get answers, in one statement (one round trip, one snapshot) and one row: the totals, the
    profile_summary window and its profiles' resources (rendered as JSON with the response models' field
    names, spliced into the answer as they are: `models.dump_with_json_parts`), the facets, and the time of
    the refresh the numbers come from."""
    counts, count_params = in_scope_counts_ctes(caller, request, coverage, SUMMARY_KINDS)
    own: dict[str, Any] = {"summary_limit": request.summary_limit, "summary_offset": request.summary_offset}
    listed = "true"
    if request.summary_profile_id is not None:
        listed = "profile_id = CAST(:summary_profile AS uuid)"
        own["summary_profile"] = str(request.summary_profile_id)
    problems, problems_total, problem_params = _problems_sql(caller, request)
    facets, facet_params = _facets_sql(caller)
    # the parts share the scope's names (its departments, the caller): bind refuses one bound to two values
    params = bind(count_params, own, problem_params, facet_params)
    sql = f"""
WITH {counts},
scored AS (
    SELECT *, sessions + logins + grants + problems AS activity FROM per_profile
),
totals AS (
    SELECT coalesce(sum(sessions), 0)::bigint AS sessions,
           coalesce(sum(logins), 0)::bigint AS logins,
           coalesce(sum(emulations), 0)::bigint AS emulations,
           count(*) FILTER (WHERE sessions > 0 OR logins > 0) AS active_profiles,
           count(*) FILTER (WHERE activity > 0 AND {listed}) AS summary_total
    FROM scored
),
cutoff AS (  -- the activity of the page's last row: only rows at least this active can be on the page
    SELECT activity FROM scored WHERE activity > 0 AND {listed}
    ORDER BY activity DESC OFFSET CAST(:summary_limit AS bigint) + CAST(:summary_offset AS bigint) - 1 LIMIT 1
),
page AS (
    SELECT s.profile_id, p.name, p.email, s.sessions, s.logins, s.grants, s.problems, s.activity,
           ARRAY(SELECT pd.department_id FROM profile_departments pd WHERE pd.profile_id = p.id
                 ORDER BY pd.department_id COLLATE "C") AS department_ids,
           ARRAY(SELECT pr.role FROM profile_roles pr WHERE pr.profile_id = p.id AND pr.active
                 ORDER BY pr.role COLLATE "C") AS roles
    FROM scored s JOIN scope p ON p.id = s.profile_id
    WHERE s.activity > 0 AND {listed} AND s.activity >= coalesce((SELECT activity FROM cutoff), 0)
    ORDER BY s.activity DESC, p.name COLLATE "C", s.profile_id
    LIMIT :summary_limit OFFSET :summary_offset
)
SELECT t.sessions, t.logins, t.emulations, t.active_profiles, t.summary_total, ({problems_total}) AS problems,
       (SELECT coalesce(json_agg(item ORDER BY pg.activity DESC, pg.name COLLATE "C", pg.profile_id), '[]')
        FROM page pg CROSS JOIN LATERAL (
            SELECT pg.profile_id, pg.name AS profile_name, pg.sessions AS sessions_count, pg.logins AS logins_count,
                   pg.grants AS grants_count, pg.problems AS problems_count, pg.activity AS activity_count) item
       )::text AS profile_summary,
       (SELECT coalesce(json_object_agg(pg.profile_id, item ORDER BY pg.activity DESC, pg.name COLLATE "C",
                                        pg.profile_id), '{{}}')
        FROM page pg CROSS JOIN LATERAL (
            SELECT pg.profile_id AS id, pg.name, pg.email, pg.department_ids, pg.roles) item
       )::text AS profiles,
       ({problems})::text AS problems,
       {facets},
       ({LATEST_REFRESH_SQL}) AS data_as_of
FROM totals t
"""
    return sql, params


def _problems_sql(caller: Caller, request: GetActivityRequest) -> tuple[str, str, dict[str, Any]]:
    """The newest problems of the `scope` CTE's profiles in the window, as a JSON array, and how many there are in
    all: both read live, in the answer's one snapshot, so that the list and its total always agree (the rollups'
    per-profile counts lag a problem until the next refresh).

    An admin's profiles are most of them: the problems are walked newest first, each profile checked on its own,
    until the page is full (a role filter's scope joined whole sorted all 10,000 problems of 90 days: 8 ms). A
    coordinator's are a few hundred to a thousand of 20,000: each member's newest problems come from the
    `(profile_id, created_at)` index, and each member's count too (joining the window's problems with the scope
    read all 20,000 problems of ten months: 12.6 of a large department's 40 ms)."""
    params: dict[str, Any] = {"problems_limit": request.problems_limit}
    window = range_conditions("q.created_at", [request.window()], "problems_", params)
    order = "ORDER BY q.created_at DESC, q.id DESC"
    if caller.scope == "all":
        where, _ = in_scope_conditions(caller, request)  # the scope CTE's own conditions and parameters
        newest = (
            f"SELECT q.*, p.name AS profile_name FROM problems q JOIN profiles p ON p.id = q.profile_id AND {where}"
            f" WHERE {window} {order} LIMIT :problems_limit"
        )
        # the count reads every problem of the window: against hashed sets (the deleted profiles, the filters'
        # role holders and department members), not one profile look-up each (all time: 12.6 -> about 5 ms)
        hashed, hashed_params = hashed_scope_sql("q.profile_id", caller, request)
        params = bind(params, hashed_params)
        total = f"SELECT count(*) FROM problems q WHERE {hashed} AND ({window})"
    else:
        newest = (
            "SELECT q.*, p.name AS profile_name FROM scope p CROSS JOIN LATERAL ("
            f"SELECT q.* FROM problems q WHERE q.profile_id = p.id AND ({window}) {order} LIMIT :problems_limit"
            f") q {order} LIMIT :problems_limit"
        )
        total = (
            "SELECT coalesce(sum((SELECT count(*) FROM problems q WHERE q.profile_id = p.id"
            f" AND ({window}))), 0)::bigint FROM scope p"
        )
    sql = f"""SELECT coalesce(json_agg(json_build_object(
            'problem_id', q.id, 'type', q.type, 'message', q.message, 'resolved', q.resolved,
            'profile_id', q.profile_id, 'profile_name', q.profile_name, 'session_id', q.session_id,
            'created_at', q.created_at) ORDER BY q.created_at DESC, q.id DESC), '[]')
        FROM ({newest}) q"""
    return sql, total, params


def _problem_items(problems_json: str) -> list[ProblemListItem]:
    items = []
    for item in json.loads(problems_json):
        item["created_at"] = iso(datetime.fromisoformat(item["created_at"]))
        items.append(ProblemListItem(**item))
    return items


def _facets_sql(caller: Caller) -> tuple[str, dict[str, Any]]:
    """The facet columns over every profile the caller may see, whatever the filters. Each is a probe that
    stops at its first visible profile (a role's first holder, the first profile along the first- and
    last-active-day indexes of the totals) rather than a pass over all of them."""
    visible_where, params = visible_conditions(caller)
    params["facet_roles"] = list(ROLES)
    if caller.is_admin:
        departments = (
            "SELECT d.id, d.name FROM departments d WHERE EXISTS (SELECT 1 FROM profile_departments pd"
            " JOIN profiles p ON p.id = pd.profile_id WHERE pd.department_id = d.id AND " + visible_where + ")"
        )
    else:
        departments = "SELECT d.id, d.name FROM departments d WHERE d.id = ANY(CAST(:facet_departments AS text[]))"
        params["facet_departments"] = list(caller.department_ids)
    sql = f"""
  (SELECT coalesce(json_agg(json_build_object('value', o.id, 'label', o.name)
                            ORDER BY o.name COLLATE "C", o.id COLLATE "C"), '[]')
   FROM ({departments}) o)::text AS departments,
  ARRAY(SELECT role.role FROM unnest(CAST(:facet_roles AS text[])) role  -- the schema's six roles
        CROSS JOIN LATERAL (SELECT 1 FROM profile_roles r JOIN profiles p ON p.id = r.profile_id
                            WHERE r.role = role.role AND r.active AND {visible_where} LIMIT 1) holder
        ORDER BY role.role) AS roles,
  (SELECT t.first_active_day FROM activity.activity_profile_totals t JOIN profiles p ON p.id = t.profile_id
   WHERE t.first_active_day IS NOT NULL AND {visible_where} ORDER BY t.first_active_day LIMIT 1) AS earliest,
  (SELECT t.last_active_day FROM activity.activity_profile_totals t JOIN profiles p ON p.id = t.profile_id
   WHERE t.last_active_day IS NOT NULL AND {visible_where} ORDER BY t.last_active_day DESC NULLS LAST LIMIT 1)
    AS latest"""
    return sql, params


def _facets(
    departments_json: str, roles: list[str] | None, earliest: date | None, latest: date | None
) -> AnalyticsFacets:
    shown, hidden = FieldState(visible=True, disabled=False), FieldState(visible=False, disabled=True)
    return AnalyticsFacets(
        fields={"date_range": shown, "departments": shown, "cohorts": hidden, "roles": shown, "attempts": hidden},
        department_options=[FacetOption(**option) for option in json.loads(departments_json)],
        cohort_options=[],
        attempt_options=[],
        role_options=list(roles or []),
        date_range_earliest=earliest.isoformat() if earliest else None,
        date_range_latest=latest.isoformat() if latest else None,
    )


def activity_summary(conn: Connection, caller: Caller, request: GetActivityRequest) -> tuple[str, datetime | None]:
    """The JSON body of get's answer, and the time of the refresh its numbers come from."""
    history = None
    with window_snapshot(conn, request, statements=2 if request.wants_history else 1) as coverage:
        sql, params = get_sql(caller, request, coverage)
        row = conn.run(sql, **params)[0]
        if request.wants_history:
            page, _ = session_page(conn, caller, request.history_request(), coverage)
            history = SessionHistory(
                items=page.data,
                total_count=page.total_count,
                page=page.page,
                page_size=page.page_size,
                total_pages=page.total_pages,
            )
    sessions, logins, emulations, active_profiles, summary_total, problems_total = row[:6]
    summary_json, profiles_json, problems_json, departments_json, roles, earliest, latest, as_of = row[6:]
    response = GetActivityResponse(
        sessions_count=sessions,
        active_profiles_count=active_profiles,
        logins_count=logins,
        emulations_count=emulations,
        profile_summary=[],  # filled with the JSON PostgreSQL rendered, below
        profile_summary_total=summary_total,
        resources=ActivityResources(profiles={}),
        analytics=_facets(departments_json, roles, earliest, latest),
        history=history,
        problems=_problem_items(problems_json),
        problems_total=problems_total,
    )
    return dump_with_json_parts(response, {"profile_summary": summary_json, "profiles": profiles_json}), as_of
